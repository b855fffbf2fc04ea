"""
The AWS backends (aws-sm, aws-ssm) against tests/servers/aws_server.py,
started once per module with its spawn helper (TLS on 127.0.0.1 with the
certificates of certs.py, plus its plain-HTTP metadata listener for IMDS
and container credentials), driven through its /_test/ control API:
exact bytes of strings, JSON directories and binaries, names with '/' as
directories, ListSecrets paging and its own cache time, DescribeSecret
revalidation, Parameter Store trees with empty pages, errors (ENOENT,
EACCES, DecryptionFailure, throttling, expired tokens), every credential
source end to end and the order of the chain, refreshing temporary
credentials before they expire, and where credentials must never appear
(stderr, the audit log, /proc/PID/environ, a credential_process's
environment).

Counts come from the server's own counters.  Cache TTLs are a second or
so, since the cache runs on the real monotonic clock.
"""

import errno
import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, TIME_SCALE, is_mounted, read_file, run_secretfs, sanitizer_env, wait_until

sys.path.insert(0, str(REPO / "tests" / "servers"))
from aws_server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, AdminClient, spawn_cli  # noqa: E402
from certs import generate_certs  # noqa: E402

DB_JSON = {"username": "db-user-41", "password": "pa55-w0rd-db", "port": 5432}
BINARY = bytes(range(256)) + b"\x00tail"
ROLE = "arn:aws:iam::123456789012:role/secretfs-web"
# More than one ListSecrets page (100 a page).
FILLER = [f"fill/s{i:03d}" for i in range(105)]
CONFIG = {
    "secrets": [
        {"name": "prod/db", "secret_string": json.dumps(DB_JSON)},
        {"name": "prod/api-key", "secret_string": "api-key-plain-77"},
        {"name": "prod/blob", "secret_binary_b64": __import__("base64").b64encode(BINARY).decode()},
        {"name": "single", "secret_string": "single-value-xyz"},
        {"name": "broken-json", "secret_string": "{\"a\": 1"},
        {"name": "denied/x", "secret_string": "denied-value-1"},
        {"name": "kms/broken", "secret_string": "undecryptable-1", "decryption_failure": True},
        *[{"name": n, "secret_string": "filler-value"} for n in FILLER],
    ],
    "parameters": [
        {"name": "/app/prod/db/url", "value": "postgres://db.internal/app"},
        {"name": "/app/prod/db/password", "value": "ssm-secure-pw-9", "type": "SecureString"},
        {"name": "/app/prod/hosts", "value": "h1,h2,h3", "type": "StringList"},
        {"name": "/app/prod/deep/a/b/c", "value": "deep-value-c"},
        {"name": "/app/dev/x", "value": "dev-value-x"},
        {"name": "/other/y", "value": "other-value-y"},
    ],
    "roles": [{"role_arn": ROLE, "tokens": ["web-jwt-one"]}],
    "container": {"authorization": "container-auth-tok-1"},
}
VALUES = [b"db-user-41", b"pa55-w0rd-db", b"api-key-plain-77", b"single-value-xyz",
          b"denied-value-1", b"undecryptable-1", b"postgres://db.internal/app",
          b"ssm-secure-pw-9", b"deep-value-c", b"dev-value-x", b"other-value-y",
          DEFAULT_SECRET_KEY.encode(), b"web-jwt-one", b"container-auth-tok-1"]


# ---------------------------------------------------------------- the server


class Aws:
    """aws_server.py as a child process, through its control API."""

    def __init__(self, certs, workdir):
        self.proc, info = spawn_cli(certs.server, certs.server_key, str(workdir), config=CONFIG,
                                    python=sys.executable)
        self.url, self.metadata_url = info["url"], info["metadata_url"]
        self.admin = AdminClient(self.url, info["admin_token"], cafile=certs.ca)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def post(self, path, body=None):
        return self.admin.post(path, body)

    def get(self, path):
        return self.admin.get(path)

    def counts(self):
        return self.get("/_test/counts")

    def op(self, key):
        return self.counts()["operations"].get(key, 0)

    def secret_op(self, name, op):
        return self.counts()["secrets"].get(name, {}).get(op, 0)

    def put_secret(self, name, **kw):
        return self.post("/_test/secret", {"name": name, **kw})

    def fault(self, **kw):
        return self.post("/_test/fault", kw)["id"]

    def key(self, **kw):
        return self.post("/_test/key", kw)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("aws-certs")
    os.chmod(d, 0o755)
    return generate_certs(str(d))


@pytest.fixture(scope="module")
def aws_server(certs, tmp_path_factory):
    srv = Aws(certs, tmp_path_factory.mktemp("aws-server"))
    yield srv
    srv.stop()


@pytest.fixture
def aws(aws_server):
    """The module's server, back to its starting state for each test."""
    aws_server.post("/_test/reset")
    return aws_server


def aws_env(workdir, aws, certs, **extra):
    """The daemon's environment: no AWS_* of ours, a HOME without ~/.aws, no instance metadata."""
    env = {k: v for k, v in sanitizer_env().items() if not k.startswith("AWS_")}
    env.update(HOME=str(workdir), AWS_ENDPOINT_URL=aws.url, AWS_CA_BUNDLE=certs.ca,
               AWS_EC2_METADATA_DISABLED="true")
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        env.pop(k, None)
    return env


STATIC = {"AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_KEY}


@pytest.fixture
def amount(secretfs, workdir, aws, certs):
    """Factory: mounts @source (default aws-sm:us-east-1) with the static key in the environment."""

    def start(source="aws-sm:us-east-1", *, options=(), env=None, static=True, secrets=()):
        e = aws_env(workdir, aws, certs, **({**(STATIC if static else {}), **(env or {})}))
        leak = [*VALUES, *(s.encode() if isinstance(s, str) else s for s in secrets)]
        return secretfs(None, argv=lambda store, mnt: [*options, source, str(mnt)], env=e,
                        secrets=leak)

    return start


def start_failure(workdir, aws, certs, source="aws-sm:us-east-1", *, options=(), env=None):
    """Runs the daemon, which must fail before mounting; returns its stderr."""
    mnt = workdir / f"mnt-fail-{time.monotonic_ns()}"
    mnt.mkdir()
    r = run_secretfs(["-f", *options, source, str(mnt)], env=aws_env(workdir, aws, certs,
                                                                       **(env or {})))
    assert r.returncode != 0, f"secretfs started:\n{r.stderr}"
    assert not is_mounted(mnt)
    assert DEFAULT_SECRET_KEY not in r.stderr
    return r.stderr


def read_err(path):
    try:
        read_file(path)
    except OSError as e:
        return e.errno
    return 0


def no_secret_in_environ(pid):
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    for name in (b"AWS_SECRET_ACCESS_KEY=", b"AWS_SESSION_TOKEN=", b"AWS_ACCESS_KEY_ID=",
                 b"AWS_CONTAINER_AUTHORIZATION_TOKEN="):
        assert name not in environ, name
    assert DEFAULT_SECRET_KEY.encode() not in environ


def pause(seconds):
    time.sleep(seconds * TIME_SCALE)


# ---------------------------------------------------------------- Secrets Manager


def test_sm_values_listing_and_audit(aws, amount, workdir):
    audit = workdir / "audit.log"
    d = amount(options=["-o", f"audit={audit}", "-o", "ttl=1h", "-o", "aws_list_ttl=1h"])

    # prod/db: a name with '/' is a folder; a JSON object is a directory of its keys
    assert sorted(os.listdir(d.mnt)) == ["broken-json", "denied", "fill", "kms", "prod", "single"]
    # 105 + 7 secrets: the top took both ListSecrets pages (100 a page), unfiltered
    top = [r for r in aws.get("/_test/requests")["requests"] if r["operation"] == "ListSecrets"]
    assert len(top) == 2 and all(r["status"] == 200 for r in top)
    assert sorted(os.listdir(d.path("prod"))) == ["api-key", "blob", "db"]
    assert sorted(os.listdir(d.path("prod/db"))) == ["password", "port", "username"]
    assert read_file(d.path("prod/db/password")) == b"pa55-w0rd-db"
    assert read_file(d.path("prod/db/port")) == b"5432"
    assert os.stat(d.path("prod/db/username")).st_size == len(b"db-user-41")
    # a plain string is a file, SecretBinary its decoded bytes, broken JSON the string as it is
    assert read_file(d.path("prod/api-key")) == b"api-key-plain-77"
    assert read_file(d.path("prod/blob")) == BINARY
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert read_file(d.path("broken-json")) == b'{"a": 1'
    assert read_err(d.path("prod/nope")) == errno.ENOENT

    # prod/ and fill/ are asked with a name filter; then all is served from the listing cache
    assert len(os.listdir(d.path("fill"))) == len(FILLER)
    n = aws.op("secretsmanager.ListSecrets")
    for _ in range(3):
        os.listdir(d.mnt)
        os.listdir(d.path("prod"))
        os.listdir(d.path("fill"))
    assert aws.op("secretsmanager.ListSecrets") == n
    reqs = [r for r in aws.get("/_test/requests")["requests"]
            if r["operation"] == "ListSecrets" and r["status"] == 200]
    assert len(reqs) >= 3 and all(r["session_token_sent"] is False for r in reqs)

    # the audit record carries the VersionId, never a value or a key
    vid = aws.get("/_test/secret?name=prod/db")["version_ids_to_stages"]
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    pw = next(r for r in recs if r["op"] == "open" and r["path"].endswith("prod/db/password"))
    assert pw["version"] in vid and vid[pw["version"]] == ["AWSCURRENT"]
    text = audit.read_bytes()
    assert not [v for v in VALUES if v in text]
    # the key left the environment the daemon was started with
    no_secret_in_environ(d.pid)
    c = aws.counts()
    assert c["auth_failures"] == {} and c["access_keys"].get(DEFAULT_ACCESS_KEY, 0) > 0


def test_sm_listing_has_its_own_ttl_and_values_revalidate(aws, amount):
    d = amount(options=["-o", "ttl=1s", "-o", "aws_list_ttl=1h"])
    pw = d.path("prod/db/password")
    assert sorted(os.listdir(d.path("prod"))) == ["api-key", "blob", "db"]
    assert read_file(pw) == b"pa55-w0rd-db"
    lists = aws.op("secretsmanager.ListSecrets")
    assert aws.secret_op("prod/db", "GetSecretValue") == 1
    assert aws.secret_op("prod/db", "DescribeSecret") == 0

    # past the ttl, no rotation: DescribeSecret says the version is still AWSCURRENT
    pause(1.2)
    assert read_file(pw) == b"pa55-w0rd-db"
    assert aws.secret_op("prod/db", "DescribeSecret") == 1
    assert aws.secret_op("prod/db", "GetSecretValue") == 1
    # the listing outlives the values' ttl (its own aws_list_ttl)
    os.listdir(d.path("prod"))
    os.listdir(d.mnt)
    assert aws.op("secretsmanager.ListSecrets") == lists

    # rotated: the stage moved, so the value is fetched again
    aws.put_secret("prod/db", secret_string=json.dumps({**DB_JSON, "password": "rotated-pw-22"}))
    d.secrets.append(b"rotated-pw-22")
    pause(1.2)
    assert read_file(pw) == b"rotated-pw-22"
    assert aws.secret_op("prod/db", "DescribeSecret") == 2
    assert aws.secret_op("prod/db", "GetSecretValue") == 2

    # a short listing ttl: a new secret shows once it passes
    d2 = amount(options=["-o", "aws_list_ttl=1s"])
    assert "new" not in os.listdir(d2.path("prod"))
    aws.put_secret("prod/new", secret_string="new-secret-value")
    d2.secrets.append(b"new-secret-value")
    wait_until(lambda: "new" in os.listdir(d2.path("prod")), what="prod/new in the listing")


def test_sm_prefix_region_from_env_and_version_stage(aws, amount):
    # aws-sm:REGION/PREFIX shows the tree under the prefix
    d = amount("aws-sm:us-east-1/prod")
    assert sorted(os.listdir(d.mnt)) == ["api-key", "blob", "db"]
    assert read_file(d.path("db/username")) == b"db-user-41"
    # aws-sm: takes the region from AWS_REGION (or AWS_DEFAULT_REGION)
    d2 = amount("aws-sm:", env={"AWS_DEFAULT_REGION": "us-east-1"})
    assert read_file(d2.path("single")) == b"single-value-xyz"
    # another staging label
    aws.put_secret("staged", secret_string="current-value-1")
    aws.put_secret("staged", secret_string="pending-value-2", stages=["AWSPENDING"])
    d3 = amount(options=["-o", "aws_version_stage=AWSPENDING"],
                secrets=["current-value-1", "pending-value-2"])
    assert read_file(d3.path("staged")) == b"pending-value-2"
    assert read_err(d3.path("single")) == errno.ENOENT  # no AWSPENDING version


# ---------------------------------------------------------------- Parameter Store


def test_ssm_tree_paging_and_types(aws, amount):
    # empty pages before, between and after the data, and 2 a page
    aws.post("/_test/config", {"ssm_paging": {"page_size": 2, "empty_leading": 2,
                                              "empty_between": 1, "empty_trailing": 3}})
    d = amount("aws-ssm:us-east-1/app/prod")
    assert sorted(os.listdir(d.mnt)) == ["db", "deep", "hosts"]
    assert sorted(os.listdir(d.path("db"))) == ["password", "url"]
    assert os.listdir(d.path("deep/a/b")) == ["c"]
    assert read_file(d.path("db/url")) == b"postgres://db.internal/app"
    # SecureString decrypted, StringList as stored
    assert read_file(d.path("db/password")) == b"ssm-secure-pw-9"
    assert read_file(d.path("hosts")) == b"h1,h2,h3"
    assert read_file(d.path("deep/a/b/c")) == b"deep-value-c"
    assert read_err(d.path("db/nope")) == errno.ENOENT
    reqs = [r for r in aws.get("/_test/requests")["requests"]
            if r["operation"] == "GetParametersByPath" and r["names"] == ["/app/prod/"]]
    # 4 parameters, 2 a page: 2 leading + 2 data + 1 between + 3 trailing (the last has none)
    assert len(reqs) >= 8
    # the whole store, and the version in the audit
    d2 = amount("aws-ssm:us-east-1")
    assert sorted(os.listdir(d2.mnt)) == ["app", "other"]
    assert read_file(d2.path("other/y")) == b"other-value-y"
    assert read_file(d2.path("app/dev/x")) == b"dev-value-x"


# ---------------------------------------------------------------- errors


def test_errors_map_to_errno(aws, amount):
    deny = aws.key(access_key_id="AKIADENYTEST00000001", secret_access_key="deny-secret-key-1",
                   deny=["secretsmanager:GetSecretValue:denied/*",
                         "secretsmanager:DescribeSecret:*"])
    d = amount(options=["-o", "ttl=1s"],
               env={"AWS_ACCESS_KEY_ID": deny["access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": deny["secret_access_key"]},
               secrets=["deny-secret-key-1"])
    assert read_err(d.path("denied/x")) == errno.EACCES
    assert read_err(d.path("nope")) == errno.ENOENT
    # DecryptionFailure: EIO, AWS's reason in the log
    assert read_err(d.path("kms/broken")) == errno.EIO
    err = d.wait_stderr("DecryptionFailure")
    assert "can't decrypt the protected secret text" in err
    assert read_file(d.path("single")) == b"single-value-xyz"
    # allowed GetSecretValue but not DescribeSecret: revalidation falls back to reading
    pause(1.2)
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert aws.secret_op("single", "DescribeSecret") == 1
    assert aws.secret_op("single", "GetSecretValue") == 2

    # every wire form of an error code (header, __type, code, namespaces, URIs)
    aws.post("/_test/config", {"error_style": "rotate"})
    for i in range(13):
        assert read_err(d.path(f"missing-{i}")) == errno.ENOENT, i


def test_throttling_is_retried_then_eagain(aws, amount):
    d = amount(options=["-o", "ttl=1s", "-o", "stale_ttl=1h", "-o", "fetch_timeout=20s"])
    aws.fault(kind="throttle", operation="GetSecretValue", count=2)
    assert read_file(d.path("single")) == b"single-value-xyz"
    c = aws.counts()
    assert c["errors"].get("ThrottlingException") == 2
    assert aws.secret_op("single", "GetSecretValue") == 3
    # 5xx: retried by the http layer
    aws.fault(kind="error", status=500, operation="GetSecretValue", count=1)
    assert read_file(d.path("prod/api-key")) == b"api-key-plain-77"
    assert aws.secret_op("prod/api-key", "GetSecretValue") == 2
    # throttled for good: EAGAIN without a value, the stale value with one
    aws.fault(kind="throttle", service="secretsmanager")
    assert read_err(d.path("prod/blob")) == errno.EAGAIN
    pause(1.2)
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert "still throttled after retries" in d.stderr()


def test_expired_token_refreshes_and_retries(aws, amount):
    # instance metadata credentials; AWS says they expired before their Expiration
    d = amount(options=["-o", "ttl=1s"], static=False,
               env={"AWS_EC2_METADATA_DISABLED": None,
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT": aws.metadata_url + "/"})
    assert read_file(d.path("single")) == b"single-value-xyz"
    first = aws.get("/_test/imds")["credentials"]
    d.secrets += [first["secret_access_key"].encode(), first["session_token"].encode()]
    aws.post("/_test/key/expire", {"access_key_id": first["access_key_id"]})
    pause(1.2)
    assert read_file(d.path("single")) == b"single-value-xyz"
    c = aws.counts()
    assert c["auth_failures"].get("ExpiredTokenException") == 1
    assert c["operations"]["imds.credentials"] == 2
    assert c["operations"]["imds.token"] == 2
    second = aws.get("/_test/imds")["credentials"]
    assert second["access_key_id"] != first["access_key_id"]
    assert c["access_keys"].get(second["access_key_id"], 0) >= 1
    d.secrets += [second["secret_access_key"].encode(), second["session_token"].encode()]


def test_plain_http_endpoint_needs_insecure(aws, workdir, certs):
    err = start_failure(workdir, aws, certs,
                        env={**STATIC, "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:9/"})
    assert "plain HTTP" in err and "-o insecure" in err
    err = start_failure(workdir, aws, certs, "aws-sm:", env=STATIC)
    assert "no region" in err
    err = start_failure(workdir, aws, certs, "aws-ssm:us-east-1/a/../b", env=STATIC)
    assert "'..' component" in err


# ---------------------------------------------------------------- credentials


def test_web_identity_rereads_the_token_file(aws, amount, workdir):
    tokfile = workdir / "web-identity-token"
    tokfile.write_text("web-jwt-one\n")
    d = amount(options=["-o", "ttl=1s"], static=False,
               env={"AWS_WEB_IDENTITY_TOKEN_FILE": tokfile, "AWS_ROLE_ARN": ROLE,
                    "AWS_ROLE_SESSION_NAME": "secretfs-it"},
               secrets=["web-jwt-two"])
    assert read_file(d.path("prod/api-key")) == b"api-key-plain-77"
    role = aws.get("/_test/roles")["roles"][0]
    assert len(role["issued"]) == 1
    reqs = [r for r in aws.get("/_test/requests")["requests"]
            if r["op_key"] == "sts.AssumeRoleWithWebIdentity"]
    assert len(reqs) == 1 and not reqs[0]["signed"]
    keys = {k["access_key_id"]: k for k in aws.get("/_test/keys")["keys"]}
    d.secrets += [keys[role["issued"][0]]["secret_access_key"].encode(),
                  keys[role["issued"][0]]["session_token"].encode()]
    # the provider rotates the token file; the old token stops working
    tokfile.write_text("web-jwt-two")
    aws.post("/_test/role", {"role_arn": ROLE, "tokens": ["web-jwt-two"]})
    aws.post("/_test/key/expire", {"access_key_id": role["issued"][0]})
    pause(1.2)
    assert read_file(d.path("prod/api-key")) == b"api-key-plain-77"
    role = aws.get("/_test/roles")["roles"][0]
    assert len(role["issued"]) == 1  # add_role replaced the record: one new call
    c = aws.counts()
    assert c["roles"][ROLE]["AssumeRoleWithWebIdentity"] == 2
    assert c["auth_failures"].get("ExpiredTokenException") == 1
    keys = {k["access_key_id"]: k for k in aws.get("/_test/keys")["keys"]}
    d.secrets += [keys[role["issued"][0]]["secret_access_key"].encode(),
                  keys[role["issued"][0]]["session_token"].encode()]


def write_shared_files(home, credentials="", config=""):
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text(config)


PROCESS_SCRIPT = """#!/usr/bin/python3
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, f)
print(json.dumps(%s))
"""


def test_shared_files_profiles_and_credential_process(aws, amount, workdir):
    dev = aws.key(access_key_id="AKIAPROFILEDEV00001", secret_access_key="profile-dev-secret")
    cfgkey = aws.key(access_key_id="AKIAPROFILECFG00001", secret_access_key="profile-cfg-secret")
    tmp = aws.key(session_token="process-session-token-1", expires_in=3600,
                  secret_access_key="process-secret-key-1")
    script = workdir / "creds-helper"
    envdump = workdir / "helper-env.json"
    script.write_text(PROCESS_SCRIPT % json.dumps(
        {"Version": 1, "AccessKeyId": tmp["access_key_id"], "SecretAccessKey":
         "process-secret-key-1", "SessionToken": "process-session-token-1",
         "Expiration": tmp["expiration_iso"]}))
    script.chmod(stat.S_IRWXU)
    write_shared_files(
        workdir,
        credentials="# static keys\n[default]\naws_access_key_id = AKIANOTUSED0000001\n"
                    "aws_secret_access_key = not-used-secret\n\n"
                    f"[dev]\naws_access_key_id={dev['access_key_id']}\n"
                    "aws_secret_access_key : profile-dev-secret\n",
        config="[default]\nregion = eu-west-3\n[profile dev]\nregion = us-east-1\n"
               f"[profile proc]\ncredential_process = {script} '{envdump}' \"two words\"\n"
               f"[profile cfg]\naws_access_key_id = {cfgkey['access_key_id']}\n"
               "aws_secret_access_key = profile-cfg-secret\n")
    leak = ["profile-dev-secret", "profile-cfg-secret", "process-secret-key-1",
            "process-session-token-1", "not-used-secret"]

    # AWS_PROFILE picks the credentials file's [dev]; the region comes from the config
    d = amount("aws-sm:", static=False, env={"AWS_PROFILE": "dev"}, secrets=leak)
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert aws.counts()["access_keys"].get(dev["access_key_id"], 0) >= 1

    # -o aws_profile: credential_process, run without a shell, split like botocore does;
    # AWS_SECRET_ACCESS_KEY is set but skipped (an explicit profile, as --profile does)
    # and the helper never sees it
    d2 = amount(options=["-o", "aws_profile=proc"], env=STATIC, secrets=leak)
    assert read_file(d2.path("prod/api-key")) == b"api-key-plain-77"
    seen = json.loads(envdump.read_text())
    assert seen["argv"] == [str(envdump), "two words"]
    assert not [k for k in seen["env"] if k.startswith("AWS_SECRET") or k == "AWS_SESSION_TOKEN"]
    assert DEFAULT_SECRET_KEY not in json.dumps(seen["env"])
    c = aws.counts()
    assert c["access_keys"].get(tmp["access_key_id"], 0) >= 1
    no_secret_in_environ(d2.pid)

    # the config file's static keys, with files named by the environment
    alt = workdir / "alt"
    alt.mkdir()
    (alt / "creds").write_text("")
    (alt / "conf").write_text("[profile cfg]\n" + (workdir / ".aws" / "config").read_text()
                              .split("[profile cfg]\n")[1])
    d3 = amount("aws-sm:us-east-1", static=False,
                env={"AWS_PROFILE": "cfg", "AWS_SHARED_CREDENTIALS_FILE": alt / "creds",
                     "AWS_CONFIG_FILE": alt / "conf"}, secrets=leak)
    assert read_file(d3.path("single")) == b"single-value-xyz"
    assert aws.counts()["access_keys"].get(cfgkey["access_key_id"], 0) >= 1


def test_container_credentials_token_file_and_refresh(aws, amount, workdir):
    tokfile = workdir / "container-token"
    tokfile.write_text("container-auth-tok-1\n")
    # credentials that expire in 302 s: inside the 5-minute window after 2 s
    aws.post("/_test/container", {"duration": 302, "rotate_before": 300})
    d = amount(options=["-o", "ttl=1s"], static=False,
               env={"AWS_CONTAINER_CREDENTIALS_FULL_URI": aws.metadata_url + "/creds",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokfile},
               secrets=["container-auth-tok-2"])
    assert read_file(d.path("single")) == b"single-value-xyz"
    first = aws.get("/_test/container")["credentials"]
    d.secrets += [first["secret_access_key"].encode(), first["session_token"].encode()]
    assert aws.op("container.credentials") == 1
    # the token file is read for every call: a new token works
    tokfile.write_text("container-auth-tok-2")
    aws.post("/_test/container", {"authorization": "container-auth-tok-2"})
    pause(2.5)
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert aws.op("container.credentials") >= 2
    second = aws.get("/_test/container")["credentials"]
    d.secrets += [second["secret_access_key"].encode(), second["session_token"].encode()]
    assert second["access_key_id"] != first["access_key_id"]
    assert aws.counts()["access_keys"].get(second["access_key_id"], 0) >= 1
    # refreshed before they expired: AWS never had to say so
    assert "ExpiredTokenException" not in aws.counts()["auth_failures"]
    reqs = [r for r in aws.get("/_test/requests")["requests"] if r["service"] == "container"]
    assert reqs and all(r["authorization_sent"] for r in reqs)


def test_imds_and_the_chain_order(aws, amount, workdir):
    imds = {"AWS_EC2_METADATA_DISABLED": None,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": aws.metadata_url}
    # instance metadata, last in the chain
    d = amount(static=False, env=imds)
    assert read_file(d.path("single")) == b"single-value-xyz"
    c = aws.counts()["operations"]
    assert c.get("imds.token") == 1 and c.get("imds.credentials") == 1
    creds = aws.get("/_test/imds")["credentials"]
    d.secrets += [creds["secret_access_key"].encode(), creds["session_token"].encode()]

    # container before instance metadata
    aws.post("/_test/reset-counts")
    d2 = amount(static=False, env={**imds, "AWS_CONTAINER_CREDENTIALS_FULL_URI":
                                   aws.metadata_url + "/creds",
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-auth-tok-1"})
    assert read_file(d2.path("single")) == b"single-value-xyz"
    c = aws.counts()["operations"]
    assert c.get("container.credentials") == 1 and "imds.token" not in c
    no_secret_in_environ(d2.pid)
    creds = aws.get("/_test/container")["credentials"]
    d2.secrets += [creds["secret_access_key"].encode(), creds["session_token"].encode()]

    # the shared files before the container; the environment before the files
    other = aws.key(access_key_id="AKIAFILEKEY00000001", secret_access_key="file-key-secret-1")
    write_shared_files(workdir, credentials=f"[default]\naws_access_key_id = "
                       f"{other['access_key_id']}\naws_secret_access_key = file-key-secret-1\n")
    aws.post("/_test/reset-counts")
    d3 = amount(static=False, env={**imds, "AWS_CONTAINER_CREDENTIALS_FULL_URI":
                                   aws.metadata_url + "/creds"}, secrets=["file-key-secret-1"])
    assert read_file(d3.path("single")) == b"single-value-xyz"
    c = aws.counts()
    assert c["access_keys"] == {other["access_key_id"]: c["access_keys"][other["access_key_id"]]}
    assert "container.credentials" not in c["operations"]
    aws.post("/_test/reset-counts")
    d4 = amount(env={"AWS_PROFILE": "default"}, secrets=["file-key-secret-1"])
    assert read_file(d4.path("single")) == b"single-value-xyz"
    assert list(aws.counts()["access_keys"]) == [DEFAULT_ACCESS_KEY]


def test_no_credentials_is_a_startup_error(aws, workdir, certs):
    err = start_failure(workdir, aws, certs)
    assert "no AWS credentials found" in err
    for tried in ("environment", "web identity", "profile default", "container",
                  "AWS_EC2_METADATA_DISABLED"):
        assert tried in err, tried
    # instance metadata that does not answer fails fast (1 s, one attempt)
    t0 = time.monotonic()
    err = start_failure(workdir, aws, certs, env={"AWS_EC2_METADATA_DISABLED": None,
                                                  "AWS_EC2_METADATA_SERVICE_ENDPOINT":
                                                  "http://127.0.0.1:9"})
    assert "instance metadata" in err and time.monotonic() - t0 < 5 * TIME_SCALE
    # a profile named explicitly must exist; half a key pair is an error
    err = start_failure(workdir, aws, certs, env={"AWS_PROFILE": "nope"})
    assert "'nope'" in err
    err = start_failure(workdir, aws, certs, env={"AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY})
    assert "AWS_SECRET_ACCESS_KEY is not" in err
    # a container URI on a host botocore would not talk to
    err = start_failure(workdir, aws, certs, env={"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                                                  "http://192.0.2.1/creds"})
    assert "unsupported host" in err
    # wrong credentials are not a startup error but a denial
    assert DEFAULT_SECRET_KEY not in err


def test_ca_file_wins_over_aws_ca_bundle(aws, amount, certs, workdir):
    d = amount(options=["-o", f"ca_file={certs.ca}"], env={"AWS_CA_BUNDLE": certs.rogue_ca})
    assert read_file(d.path("single")) == b"single-value-xyz"
    # AWS_CA_BUNDLE alone is used: a CA that did not sign the server's certificate fails
    d2 = amount(env={"AWS_CA_BUNDLE": certs.rogue_ca})
    assert read_err(d2.path("single")) == errno.EIO
    assert "certificate" in d2.wait_stderr("certificate")
