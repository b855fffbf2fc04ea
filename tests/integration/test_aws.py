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
(stderr, the audit log, /proc/PID/environ and cmdline, a credential_process's
environment).  Also: the whole Secrets Manager and Parameter Store trees
against what boto3 reads from the same server, a wrong secret key (every
request rejected, nothing served), a throttling burst under 16 readers,
single-flight, an outage (the server as a process, killed, then restarted on
its port), a slow server past fetch_timeout, and rotation through boto3.

Counts come from the server's own counters.  Cache TTLs are a second or
so, since the cache runs on the real monotonic clock.
"""

import base64
import errno
import json
import os
import secrets as pysecrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import (
    POLL_TIMEOUT,
    REPO,
    STOP_TIMEOUT,
    TIME_SCALE,
    UNREACHABLE,
    ctl_metric,
    hostile_file,
    is_mounted,
    parallel_reads,
    read_err,
    read_file,
    run_secretfs,
    sanitizer_env,
    timed_read,
    wait_until,
)

sys.path.insert(0, str(REPO / "tests" / "servers"))
from aws_server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, AdminClient, spawn_cli  # noqa: E402

DB_JSON = {"username": "db-user-41", "password": "pa55-w0rd-db", "port": 5432}
BINARY = bytes(range(256)) + b"\x00tail"
ROLE = "arn:aws:iam::123456789012:role/secretfs-web"
# More than one ListSecrets page (100 a page).
FILLER = [f"fill/s{i:03d}" for i in range(105)]
CONFIG = {
    "secrets": [
        {"name": "prod/db", "secret_string": json.dumps(DB_JSON)},
        {"name": "prod/api-key", "secret_string": "api-key-plain-77"},
        {"name": "prod/blob", "secret_binary_b64": base64.b64encode(BINARY).decode()},
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
def aws_server(certs, tmp_path_factory):
    srv = Aws(certs, tmp_path_factory.mktemp("aws-server"))
    yield srv
    srv.stop()


@pytest.fixture
def aws(aws_server):
    """The module's server, back to its starting state for each test."""
    aws_server.post("/_test/reset")
    return aws_server


class AwsProcess(Aws):
    """
    aws_server.py as a child process of its own, so that it can be killed (SIGKILL: no
    goodbye on its connections) and started again on the same port and with the same admin
    token, from the same startup config (CONFIG: its state starts over).
    """

    def __init__(self, certs, workdir):  # not super().__init__(), which spawns at once
        self.certs, self.dir = certs, Path(workdir)
        self.admin_token = pysecrets.token_hex(16)
        self.proc = self.port = self.url = self.metadata_url = self.admin = None

    def start(self):
        args = ["--admin-token", self.admin_token]
        if self.port:
            args += ["--port", str(self.port)]
        deadline = time.monotonic() + POLL_TIMEOUT
        while True:
            try:
                self.proc, info = spawn_cli(self.certs.server, self.certs.server_key,
                                            str(self.dir), config=CONFIG, extra_args=args,
                                            python=sys.executable)
                break
            except RuntimeError:  # the port not free yet after a kill
                if not self.port or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert not self.port or info["port"] == self.port
        self.port, self.url, self.metadata_url = info["port"], info["url"], info["metadata_url"]
        self.admin = AdminClient(self.url, self.admin_token, cafile=self.certs.ca)
        return self

    def kill(self):
        """SIGKILL: the server vanishes mid-connection."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)
        self._close_pipes()
        self.proc = None

    def restart(self):
        assert self.proc is None, "kill() it first"
        return self.start()

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._close_pipes()
            self.proc = None

    def _close_pipes(self):
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def aws_proc(certs, workdir):
    """A started AwsProcess (CONFIG), stopped in teardown."""
    p = AwsProcess(certs, workdir / "aws-proc")
    yield p.start()
    p.stop()


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
    """Factory: mounts @source (default aws-sm:us-east-1) with the static key in the environment,
    on the module's server or on @server (an AwsProcess)."""

    def start(source="aws-sm:us-east-1", *, options=(), env=None, static=True, secrets=(),
              server=None):
        e = aws_env(workdir, server or aws, certs,
                    **({**(STATIC if static else {}), **(env or {})}))
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


def no_secret_in_environ(pid):
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    for name in (b"AWS_SECRET_ACCESS_KEY=", b"AWS_SESSION_TOKEN=", b"AWS_ACCESS_KEY_ID=",
                 b"AWS_CONTAINER_AUTHORIZATION_TOKEN="):
        assert name not in environ, name
    assert DEFAULT_SECRET_KEY.encode() not in environ


def pause(seconds):
    time.sleep(seconds * TIME_SCALE)


def boto3_client(server, certs, service):
    """A boto3 client for @server's @service, with the default static key."""
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(service, region_name="us-east-1", endpoint_url=server.url,
                        verify=certs.ca, aws_access_key_id=DEFAULT_ACCESS_KEY,
                        aws_secret_access_key=DEFAULT_SECRET_KEY,
                        config=Config(retries={"mode": "standard", "max_attempts": 3}))


def served(value):
    """How a JSON value of an object's key reads through the mount (src/namespace.c
    value_bytes): a string as its bytes, anything else compact JSON in the stored key order."""
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def expected_tree(values):
    """
    The mount's tree for {relative name: str (a SecretString or a parameter's Value) or
    bytes (a SecretBinary, or a StringList's Value as stored)}: ({file: bytes},
    {directory: set of child names}).  Names hold '/' as folders; a string whose JSON is an
    object (after leading blanks) is a directory of its keys (src/backends/aws_parse.c
    string_value); anything else a file with the exact bytes.
    """
    files, dirs = {}, {"": set()}
    for rel, v in values.items():
        parts = rel.split("/")
        for i in range(len(parts)):
            dirs.setdefault("/".join(parts[:i]), set()).add(parts[i])
        obj = None
        if isinstance(v, str) and v.lstrip(" \t\r\n").startswith("{"):
            try:
                obj = json.loads(v)
            except ValueError:
                obj = None
        if isinstance(obj, dict):
            dirs.setdefault(rel, set()).update(obj)
            for k, x in obj.items():
                files[f"{rel}/{k}"] = served(x)
        else:
            files[rel] = v if isinstance(v, bytes) else v.encode()
    assert not set(files) & set(dirs), "a name both a file and a folder: fix the test data"
    return files, dirs


def mount_tree(root):
    """The mount's tree, walked, in expected_tree()'s form: ({file: bytes}, {dir: names})."""
    files, dirs = {}, {}
    for dp, dn, fn in os.walk(root):
        rel = os.path.relpath(dp, root)
        rel = "" if rel == "." else rel
        dirs[rel] = set(dn) | set(fn)
        for f in fn:
            p = os.path.join(dp, f)
            files[os.path.join(rel, f)] = read_file(p)
            assert os.stat(p).st_size == len(files[os.path.join(rel, f)]), p
    return files, dirs


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
    # (asked behind the stale value: stale-while-revalidate)
    pause(1.2)
    assert read_file(pw) == b"pa55-w0rd-db"
    wait_until(lambda: aws.secret_op("prod/db", "DescribeSecret") == 1, what="DescribeSecret")
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
    assert read_file(pw) in (b"pa55-w0rd-db", b"rotated-pw-22")  # the first may be stale
    d.wait_value("prod/db/password", b"rotated-pw-22")
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
    deny = aws.key(access_key_id="AKIADENYEXAMPLE00001", secret_access_key="deny-secret-key-1",
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
    # (the refetch runs behind the stale value: stale-while-revalidate)
    wait_until(lambda: aws.secret_op("single", "GetSecretValue") == 2, what="a GetSecretValue")
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
    # (the refetch runs behind the stale value: stale-while-revalidate)
    d.wait_stderr("still throttled after retries")


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
    # the refetch runs behind the stale value (stale-while-revalidate)
    wait_until(lambda: len(aws.counts()["access_keys"]) >= 2, what="a request with new keys")
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
    # (the refetch runs behind the stale value: stale-while-revalidate)
    wait_until(lambda: aws.counts()["roles"][ROLE]["AssumeRoleWithWebIdentity"] == 2,
               what="a second AssumeRoleWithWebIdentity")
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
    # (the refetch runs behind the stale value: stale-while-revalidate)
    wait_until(lambda: aws.op("container.credentials") >= 2, what="new container credentials")
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


# ---------------------------------------------------------------- against boto3

# A Secrets Manager tree for the boto3 comparison, created through boto3: nested names, a
# secret that is also a folder, JSON objects holding every JSON type (floats exact in
# binary, so jansson's %.17g and Python print them alike), plain strings, strings that are
# JSON but not an object, broken JSON, and SecretBinary with every byte value.
SM_TREE = {
    "cmp/db": json.dumps({
        "password": "pw-<&>-\"q\"-9f2k", "port": 5432, "tls": True, "off": False, "ratio": 1.5,
        "neg": -0.25, "whole": 2.0, "none": None, "big": 2 ** 62,
        "hosts": ["db1.internal", 2, False, None], "empty": "", "emptyobj": {},
        "emptylist": [], "nested": {"b": [1, {"c": "ü-<tag>&"}], "a": "x/y"},
        "unicode": "пароль-秘密-🔑", "multi": "line1\nline2\n", "ключ-🔑": "välue-ñ-Ωmega"},
        ensure_ascii=False),
    "cmp/escaped": json.dumps({"k": "escaped-ü-✓", "t\u00e9": "tab\there"}),  # \u escapes
    "cmp/svc": json.dumps({"self": "svc-itself-value"}),
    "cmp/svc/child": json.dumps({"k": "svc-child-value"}),
    "cmp/api-key": "plain-api-key-5150",
    "cmp/a/b/c/d": "deep-plain-value-d",
    "cmp/spaced": '  \n\t{"k": "spaced-object-value"}',  # leading blanks: still an object
    "cmp/list": '["not", "an", "object"]',
    "cmp/number": "42",
    "cmp/broken": '{"a": 1',
    "cmp/empty-object": "{}",
    "cmp/name.with@odd+chars=_-": "odd-name-value-77",
    "cmp/bin/all-bytes": bytes(range(256)),
    "cmp/bin/reversed": bytes(range(255, -1, -1)) + b"\x00\x00",
}


def leak_values(files):
    return [v for v in files.values() if len(v) >= 6]


def test_sm_mount_matches_boto3(aws, amount, certs):
    sm = boto3_client(aws, certs, "secretsmanager")
    for name, v in SM_TREE.items():
        sm.create_secret(Name=name, **({"SecretBinary": v} if isinstance(v, bytes)
                                        else {"SecretString": v}))
    # boto3's view: ListSecrets with the name filter, every page, then each value
    names = [s["Name"] for page in sm.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": ["cmp/"]}]) for s in page["SecretList"]]
    assert sorted(names) == sorted(SM_TREE)
    values = {}
    for n in names:
        r = sm.get_secret_value(SecretId=n)
        values[n[len("cmp/"):]] = r["SecretString"] if "SecretString" in r else r["SecretBinary"]
    files, dirs = expected_tree(values)
    assert files["bin/all-bytes"] == bytes(range(256))  # boto3 decoded it
    assert "child" in dirs["svc"] and "self" in dirs["svc"]

    aws.post("/_test/reset-counts")
    d = amount("aws-sm:us-east-1/cmp", secrets=leak_values(files))
    got_files, got_dirs = mount_tree(d.mnt)
    assert got_dirs == dirs
    assert sorted(got_files) == sorted(files)
    wrong = [k for k in files if got_files[k] != files[k]]
    assert not wrong, {k: (got_files[k][:60], files[k][:60]) for k in wrong}
    lists = [r for r in aws.get("/_test/requests")["requests"]
             if r["op_key"] == "secretsmanager.ListSecrets"]
    assert lists and all(r["status"] == 200 for r in lists)
    assert "warning" not in d.stderr().lower()


# A Parameter Store tree of 25 parameters under /cmp (three GetParametersByPath pages of
# 10): String, StringList (as stored, even when it looks like JSON), SecureString
# (decrypted), and a String holding a JSON object (a directory, as for Secrets Manager).
SSM_TREE = {
    "/cmp/app/db/url": ("String", "postgres://cmp.internal:5432/app"),
    "/cmp/app/db/password": ("SecureString", "cmp-secure-pw-<&>"),
    "/cmp/app/db/config": ("String", '{"pool": 5, "ssl": true, "host": "db-cfg.internal",'
                                     ' "ratio": 0.5, "tags": ["a", null]}'),
    "/cmp/app/db/secure-json": ("SecureString", '{"user": "sec-json-user", "n": 7}'),
    "/cmp/app/hosts": ("StringList", "h1.internal,h2.internal,h3"),
    "/cmp/app/braces": ("StringList", '{"x":1,"y":2}'),
    "/cmp/app/unicode": ("String", "välue-ñ-Ωmega-秘密"),
    "/cmp/deep/a/b/c/d/e": ("SecureString", "deep-secure-value"),
    "/cmp/dev/x": ("String", "dev-x-value-cmp"),
    "/cmp/dev/list-json": ("String", '["a", "b"]'),
    **{f"/cmp/svc/s{i:02d}": ("String" if i % 3 else "SecureString", f"svc-value-{i:02d}-cmp")
       for i in range(15)},
}


def test_ssm_mount_matches_boto3(aws, amount, certs):
    ssm = boto3_client(aws, certs, "ssm")
    for name, (typ, value) in SSM_TREE.items():
        ssm.put_parameter(Name=name, Type=typ, Value=value)
    assert len(SSM_TREE) > 20
    # boto3's view: GetParametersByPath, recursive, decrypted, every page
    pages = list(ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/cmp", Recursive=True, WithDecryption=True))
    assert len(pages) >= 3
    values = {}
    for page in pages:
        for prm in page["Parameters"]:
            v = prm["Value"]
            values[prm["Name"][len("/cmp/"):]] = v.encode() if prm["Type"] == "StringList" else v
    assert len(values) == len(SSM_TREE)
    assert values["app/db/password"] == "cmp-secure-pw-<&>"  # decrypted
    files, dirs = expected_tree(values)

    aws.post("/_test/reset-counts")
    d = amount("aws-ssm:us-east-1/cmp", secrets=leak_values(files))
    got_files, got_dirs = mount_tree(d.mnt)
    assert got_dirs == dirs
    assert sorted(got_files) == sorted(files)
    wrong = [k for k in files if got_files[k] != files[k]]
    assert not wrong, {k: (got_files[k][:60], files[k][:60]) for k in wrong}
    # the top listing took every page (10 a page)
    top = [r for r in aws.get("/_test/requests")["requests"]
           if r["op_key"] == "AmazonSSM.GetParametersByPath" and r["names"] == ["/cmp/"]]
    assert len(top) >= 3 and all(r["status"] == 200 for r in top)
    assert "warning" not in d.stderr().lower()


# ---------------------------------------------------------------- a wrong signature


def test_wrong_secret_key_is_never_accepted(aws, amount):
    """
    The right key id with the wrong secret: the server refuses every request
    (InvalidSignatureException), nothing is listed or served, reads fail with EACCES or
    EIO, and the daemon's stderr says why without quoting either key.
    """
    wrong = "wRoNgSecretKeyForSecretfsTests/0123456789"
    aws.post("/_test/reset-counts")
    d = amount(env={"AWS_SECRET_ACCESS_KEY": wrong}, secrets=[wrong])

    def main_requests():
        return [r for r in aws.get("/_test/requests")["requests"] if r["listener"] == "main"]

    def only_rejected():
        reqs = main_requests()
        assert all(r["access_key"] == DEFAULT_ACCESS_KEY and r["signed"] for r in reqs)
        assert all(r["auth"] == "InvalidSignatureException" and r["status"] == 400
                   for r in reqs), [(r["op_key"], r["auth"], r["status"]) for r in reqs]
        c = aws.counts()
        assert c["auth_failures"] == ({"InvalidSignatureException": len(reqs)} if reqs else {})
        assert set(c["statuses"]) <= {"400"}, c["statuses"]
        return reqs

    only_rejected()  # whatever the daemon sent to start (it may send nothing)
    first = read_err(d.path("single"))
    assert only_rejected(), "the first read never asked the server"
    assert first != 0

    problems = []
    try:
        listing = os.listdir(d.mnt)
        if listing:  # an empty listing serves nothing; anything else would
            problems.append(f"the top lists {listing}")
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EIO):
            problems.append(f"listing the top: {errno.errorcode[e.errno]}")
    reads = {"single": first}
    for rel in ("prod/db/password", "prod/api-key", "prod/blob", "no-such-secret"):
        reads[rel] = read_err(d.path(rel))
    for rel, got in reads.items():
        assert got != 0, f"{rel} was served"
        if got not in (errno.EACCES, errno.EIO):
            try:
                mode = oct(os.stat(d.path(rel)).st_mode)
            except OSError as e:
                mode = errno.errorcode[e.errno]
            problems.append(f"reading {rel}: {errno.errorcode[got]} (stat: {mode})")
    reqs = only_rejected()
    # The daemon asked (a listing fails first, so it need not get as far as a value).
    assert any(r["op_key"].startswith("secretsmanager.") for r in reqs)

    time.sleep(0.5)  # give a log line time to land
    err = d.stderr()
    assert wrong not in err and DEFAULT_SECRET_KEY not in err
    if "InvalidSignatureException" not in err:
        problems.append("stderr does not name the failure (InvalidSignatureException):\n" + err)
    assert not problems, "with a wrong secret key:\n" + "\n".join(problems)


# ---------------------------------------------------------------- throttling, single-flight


@pytest.mark.parametrize("service", ["aws-sm", "aws-ssm"])
def test_throttling_burst_under_16_readers(aws, amount, service):
    """The next N requests are throttled (N < max_attempts) while 16 threads read cold
    values: each call has max_attempts - 1 throttling retries, so every read succeeds."""
    max_attempts, n = 4, 3
    if service == "aws-sm":
        want = {"prod/db/password": b"pa55-w0rd-db", "prod/db/username": b"db-user-41",
                "prod/db/port": b"5432", "prod/api-key": b"api-key-plain-77",
                "prod/blob": BINARY, "single": b"single-value-xyz",
                **{f"fill/s{i:03d}": b"filler-value" for i in range(10)}}
        d = amount(options=["-o", f"max_attempts={max_attempts}", "-o", "fetch_timeout=20s"])
        fault = aws.fault(kind="throttle", service="secretsmanager", count=n)
    else:
        want = {"prod/db/url": b"postgres://db.internal/app",
                "prod/db/password": b"ssm-secure-pw-9", "prod/hosts": b"h1,h2,h3",
                "prod/deep/a/b/c": b"deep-value-c", "dev/x": b"dev-value-x"}
        d = amount("aws-ssm:us-east-1/app",
                   options=["-o", f"max_attempts={max_attempts}", "-o", "fetch_timeout=20s"])
        fault = aws.fault(kind="throttle", service="ssm", count=n)
    paths = [list(want)[i % len(want)] for i in range(16)]
    results = parallel_reads([d.path(p) for p in paths], timeout=POLL_TIMEOUT * 2)
    bad = {p: r for p, r in zip(paths, results) if r != want[p]}
    assert not bad, {p: errno.errorcode.get(r, r) if isinstance(r, int) else r[:40]
                     for p, r in bad.items()}
    fired = [f for f in aws.get("/_test/faults")["faults"] if f["id"] == fault]
    assert fired and fired[0]["fired"] == n
    assert aws.counts()["errors"].get("ThrottlingException") == n


def test_single_flight(aws, amount):
    """64 readers of a cold secret (three of its keys): one GetSecretValue."""
    d = amount(options=["-o", "ttl=60s"])
    aws.fault(kind="latency", operation="GetSecretValue", name="^prod/db$", latency_ms=300)
    want = {"password": b"pa55-w0rd-db", "username": b"db-user-41", "port": b"5432"}
    keys = [list(want)[i % 3] for i in range(64)]
    results = parallel_reads([d.path("prod/db", k) for k in keys])
    assert results == [want[k] for k in keys]
    assert aws.secret_op("prod/db", "GetSecretValue") == 1
    assert aws.secret_op("prod/db", "DescribeSecret") == 0
    # and the listings on the way were single-flight too: the top (two pages) and prod/
    assert aws.op("secretsmanager.ListSecrets") == 3


# ---------------------------------------------------------------- outages and slow servers


def test_outage_kill_and_restart(aws_proc, amount):
    """
    The server process is killed: within stale_ttl the old value is served and the
    failure is logged; past it reads fail promptly; a server started again on the
    same port is used again.
    """
    ttl, stale_ttl, fetch_timeout = 1.0, 2.0, 1.0
    srv = aws_proc
    d = amount(server=srv, options=["-o", "ttl=1s", "-o", "stale_ttl=2s",
                                    "-o", "fetch_timeout=1s", "-o", "max_attempts=2"])
    pw = d.path("prod/db/password")
    assert read_file(pw) == b"pa55-w0rd-db"
    fetched = time.monotonic()  # the value was stored before this: stale until at most +3 s
    assert srv.secret_op("prod/db", "GetSecretValue") == 1

    srv.kill()
    time.sleep(max(0.0, fetched + ttl + 0.1 - time.monotonic()))  # let the value expire
    got, took = timed_read(pw)
    assert got == b"pa55-w0rd-db", f"not the stale value: {got!r}\n{d.stderr()}"
    assert took < fetch_timeout + 1.5 * TIME_SCALE

    def failure_logged():
        return [ln for ln in d.stderr().splitlines() if "prod/db" in ln and
                any(w in ln.lower() for w in ("connection refused", "connection lost",
                                              "connection reset"))]

    deadline = time.monotonic() + 1.0 * TIME_SCALE
    while not failure_logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    logged_while_stale = failure_logged()

    # Past the stale window: an error, never the old value, and never a hang.
    errs = []

    def fails():
        t = time.monotonic()
        got, took = timed_read(pw)
        if isinstance(got, bytes):
            assert got == b"pa55-w0rd-db"
            assert t < fetched + ttl + stale_ttl + 0.05, "served past its stale window"
            return False
        errs.append((got, took))
        return True

    wait_until(fails, stale_ttl + POLL_TIMEOUT, interval=0.1, what="the stale window's end")
    err, took = errs[0]
    assert err in UNREACHABLE, os.strerror(err)
    assert took < fetch_timeout + 1.5, f"an erroring read took {took:.2f}s"
    got, took = timed_read(d.path("single"))  # never cached: fails as promptly
    assert got in UNREACHABLE and took < fetch_timeout + 1.5, (got, took)

    # The server comes back on the same port: reads work again, from the new process.
    url = srv.url
    srv.restart()
    assert srv.url == url
    d.wait_value("prod/db/password", b"pa55-w0rd-db")
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert srv.secret_op("prod/db", "GetSecretValue") == 1  # the new process's first
    assert logged_while_stale, ("no stderr line names prod/db and the error while the stale "
                                "value was served:\n" + d.stderr())


def test_slow_server_past_the_deadline(aws, amount):
    """
    A server 3 s slow, fetch_timeout=500ms: the stale value (cached and expired), or an
    error (never fetched), within the deadline plus slack; the fetches given up on land.
    """
    deadline, slack = 0.5, 1.0 * TIME_SCALE
    d = amount(options=["-o", "ttl=1s", "-o", "fetch_timeout=500ms"])
    pw = d.path("prod/db/password")
    assert read_file(pw) == b"pa55-w0rd-db"
    fetched = time.monotonic()
    for op in ("GetSecretValue", "DescribeSecret"):
        aws.fault(kind="latency", operation=op, latency_ms=3000)
    time.sleep(max(0.0, fetched + 1.1 - time.monotonic()))  # let the value expire

    stale, stale_took = timed_read(pw)  # asserted last, after the rest is checked
    got, took = timed_read(d.path("single"))  # never fetched: an error
    assert got in (errno.EAGAIN, errno.EIO, errno.ETIMEDOUT), got
    assert took < deadline + slack, f"the error took {took:.2f}s"
    # the fetches that were given up on still land: the values come back without the fault
    aws.post("/_test/faults/clear")
    d.wait_value("single", b"single-value-xyz")
    assert aws.secret_op("single", "GetSecretValue") == 1
    assert stale == b"pa55-w0rd-db"
    assert stale_took < deadline + slack, \
        f"the stale value took {stale_took:.2f}s with fetch_timeout={deadline}s"
    # the revalidation given up on landed too: DescribeSecret, no second GetSecretValue
    wait_until(lambda: aws.secret_op("prod/db", "DescribeSecret") >= 1, what="DescribeSecret")
    assert read_file(pw) == b"pa55-w0rd-db"
    assert aws.secret_op("prod/db", "GetSecretValue") == 1


# ---------------------------------------------------------------- rotation through boto3


def test_sm_rotation_after_the_ttl_not_before(aws, amount, certs):
    """
    PutSecretValue through boto3 shows after the TTL and not before.  Past the TTL with no
    rotation, the revalidation is one DescribeSecret; a new AWSPENDING version (the first
    step of a rotation) changes nothing; a new AWSCURRENT costs exactly one more
    GetSecretValue.
    """
    sm = boto3_client(aws, certs, "secretsmanager")
    ttl = 2.0
    new = ["pending-key-3333", "rotated-key-4444", "rotated-key-5555"]
    d = amount(options=["-o", "ttl=2s"], secrets=new)
    key = d.path("prod/api-key")
    gets = lambda: aws.secret_op("prod/api-key", "GetSecretValue")  # noqa: E731
    describes = lambda: aws.secret_op("prod/api-key", "DescribeSecret")  # noqa: E731

    t0 = time.monotonic()
    assert read_file(key) == b"api-key-plain-77"
    assert (gets(), describes()) == (1, 0)

    # past the TTL, no rotation: DescribeSecret only
    time.sleep(max(0.0, t0 + ttl + 0.2 - time.monotonic()))
    t1 = time.monotonic()
    assert read_file(key) == b"api-key-plain-77"
    assert (gets(), describes()) == (1, 1)

    # AWSPENDING: AWSCURRENT has not moved, so past the TTL it is still DescribeSecret only
    sm.put_secret_value(SecretId="prod/api-key", SecretString="pending-key-3333",
                        VersionStages=["AWSPENDING"])
    time.sleep(max(0.0, t1 + ttl + 0.2 - time.monotonic()))
    t2 = time.monotonic()
    assert read_file(key) == b"api-key-plain-77"
    assert (gets(), describes()) == (1, 2)

    def rotate_and_wait(value, old, since):
        """PutSecretValue (AWSCURRENT): not seen before the TTL, then is, with one
        DescribeSecret and one GetSecretValue."""
        g, ds = gets(), describes()
        sm.put_secret_value(SecretId="prod/api-key", SecretString=value)
        assert read_file(key) == old  # still fresh: the old value, from memory
        assert (gets(), describes()) == (g, ds)
        seen = []

        def check():
            t = time.monotonic()
            v = read_file(key)
            assert v in (old, value.encode()), v
            if v == value.encode():
                seen.append((t, time.monotonic()))
            return v == value.encode()

        wait_until(check, ttl + POLL_TIMEOUT, interval=0.05, what=f"{value!r} after the TTL")
        # the old value was fresh until at least `since` + TTL
        assert seen[0][1] - since >= ttl, seen[0][1] - since
        assert (gets(), describes()) == (g + 1, ds + 1)
        return seen[0][0]

    since = rotate_and_wait("rotated-key-4444", b"api-key-plain-77", t2)
    rotate_and_wait("rotated-key-5555", b"rotated-key-4444", since)
    stages = aws.get("/_test/secret?name=prod/api-key")["version_ids_to_stages"]
    assert sorted(s for v in stages.values() for s in v) == ["AWSCURRENT", "AWSPENDING",
                                                             "AWSPREVIOUS"]


def test_sm_pending_promoted_to_current(aws, amount, certs):
    """AWSPENDING becomes AWSCURRENT (UpdateSecretVersionStage, the last step of a
    rotation): seen after the TTL, with one more GetSecretValue."""
    from botocore.exceptions import ClientError

    sm = boto3_client(aws, certs, "secretsmanager")
    probe = aws.put_secret("probe/stage", secret_string="probe-current")
    pend = aws.put_secret("probe/stage", secret_string="probe-pending", stages=["AWSPENDING"])
    try:
        sm.update_secret_version_stage(SecretId="probe/stage", VersionStage="AWSCURRENT",
                                       MoveToVersionId=pend["version_id"],
                                       RemoveFromVersionId=probe["version_id"])
    except ClientError as e:
        if e.response["Error"]["Code"] in ("UnknownOperationException", "InvalidAction"):
            pytest.skip("tests/servers/aws_server.py does not implement "
                        "UpdateSecretVersionStage")
        raise

    cur = aws.put_secret("rot/x", secret_string="current-value-rot1")
    pend = aws.put_secret("rot/x", secret_string="pending-value-rot2", stages=["AWSPENDING"])
    d = amount(options=["-o", "ttl=1s"], secrets=["current-value-rot1", "pending-value-rot2"])
    t0 = time.monotonic()
    assert read_file(d.path("rot/x")) == b"current-value-rot1"
    sm.update_secret_version_stage(SecretId="rot/x", VersionStage="AWSCURRENT",
                                   MoveToVersionId=pend["version_id"],
                                   RemoveFromVersionId=cur["version_id"])
    d.wait_value("rot/x", b"pending-value-rot2")
    assert time.monotonic() - t0 >= 1.0
    assert aws.secret_op("rot/x", "GetSecretValue") == 2


# ---------------------------------------------------------------- where credentials go


def assert_no_credentials(d, creds, audit=None):
    """No credential in @d's argv, environment, stderr or audit log."""
    cmdline = Path(f"/proc/{d.pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{d.pid}/environ").read_bytes()
    stderr = d.stderr_bytes()
    text = audit.read_bytes() if audit else b""
    for c in creds:
        c = c.encode()
        for where, blob in (("argv", cmdline), ("environ", environ), ("stderr", stderr),
                            ("audit log", text)):
            assert c not in blob, f"a credential ({c[:8]!r}...) in the daemon's {where}"
    for name in (b"AWS_SECRET_ACCESS_KEY", b"AWS_SESSION_TOKEN"):
        assert name not in cmdline and name + b"=" not in environ, name


def test_credentials_in_no_argv_environ_stderr_or_audit(aws, amount, workdir):
    token = "IQoJb3JpZ2luX2VjELeakCheckSessionToken0123456789abcdef"
    secret = "leakCheckTemporarySecretKey0123456789abcd"
    tmp = aws.key(session_token=token, secret_access_key=secret, expires_in=3600)
    creds = {"AWS_ACCESS_KEY_ID": tmp["access_key_id"], "AWS_SECRET_ACCESS_KEY": secret,
             "AWS_SESSION_TOKEN": token}
    audit = workdir / "audit.log"
    d = amount(options=["-o", f"audit={audit}", "-o", "ttl=1s"], env=creds,
               secrets=[token, secret])
    assert sorted(os.listdir(d.path("prod"))) == ["api-key", "blob", "db"]
    assert read_file(d.path("prod/db/password")) == b"pa55-w0rd-db"
    assert read_err(d.path("nope")) == errno.ENOENT
    assert read_err(d.path("kms/broken")) == errno.EIO  # an error that is logged
    d.wait_stderr("DecryptionFailure")
    pause(1.2)
    assert read_file(d.path("prod/db/password")) == b"pa55-w0rd-db"  # revalidated
    reqs = [r for r in aws.get("/_test/requests")["requests"] if r["listener"] == "main"]
    assert reqs and all(r["session_token_sent"] and r["access_key"] == tmp["access_key_id"]
                        for r in reqs)
    assert audit.read_text().count('"open"') >= 2
    assert_no_credentials(d, [secret, token], audit)

    # The server stops accepting the daemon's secret for that key id: its signature error
    # goes on with the canonical request, which carries the session token
    # (signature_debug); the daemon logs the error, but not that part.
    aws.post("/_test/config", {"signature_debug": True})
    aws.key(access_key_id=tmp["access_key_id"], session_token=token, expires_in=3600,
            secret_access_key="leakCheckOtherSecretKey00000000000000000")
    pause(1.2)
    # Rejected credentials are a setup error (EIO), not a policy denial (EACCES),
    # once the refresh behind the stale value was refused (stale-while-revalidate).
    wait_until(lambda: read_err(d.path("prod/db/password")) == errno.EIO, what="EIO")
    err = d.wait_stderr("InvalidSignatureException")
    assert "signature we calculated does not match" in err
    assert "Canonical String" not in err and "x-amz-security-token" not in err.lower()
    last = [r for r in aws.get("/_test/requests")["requests"] if r["listener"] == "main"][-1]
    assert last["auth"] == "InvalidSignatureException" and last["session_token_sent"]
    assert_no_credentials(d, [secret, token, "leakCheckOtherSecretKey00000000000000000"], audit)


# ---------------------------------------------------------------- trusted files




@pytest.mark.parametrize("place", ["open", "other-user", "proc"])
@pytest.mark.parametrize("kind", ["credentials", "config", "web-identity", "ca-bundle",
                                  "process"])
def test_credential_and_ca_files_are_checked_like_the_policy(aws, workdir, certs, kind, place):
    """
    The shared credentials and config files (a config can name a
    credential_process to run), a web identity token file and the CA bundle,
    when another user can replace them or they lead into /proc, are refused
    at start, naming the file and why.
    """
    keys = (f"[default]\naws_access_key_id = {DEFAULT_ACCESS_KEY}\n"
            f"aws_secret_access_key = {DEFAULT_SECRET_KEY}\n")
    if kind == "credentials":
        path, needle = hostile_file(workdir, place, "c", keys)
        env = {"AWS_SHARED_CREDENTIALS_FILE": path}
    elif kind == "config":
        path, needle = hostile_file(workdir, place, "c", keys)
        env = {"AWS_CONFIG_FILE": path}
    elif kind == "web-identity":
        path, needle = hostile_file(workdir, place, "t", "web-jwt-one\n")
        env = {"AWS_WEB_IDENTITY_TOKEN_FILE": path, "AWS_ROLE_ARN": ROLE}
    elif kind == "process":
        # the config is in a good place; the program it names is not
        creds = json.dumps({"Version": 1, "AccessKeyId": DEFAULT_ACCESS_KEY,
                            "SecretAccessKey": DEFAULT_SECRET_KEY})
        path, needle = hostile_file(workdir, place, "p", f"#!/bin/sh\necho '{creds}'\n")
        if place != "proc":
            os.chmod(path, 0o700)
        cfg = workdir / "cfg"
        cfg.write_text(f"[default]\ncredential_process = {path}\n")
        os.chmod(cfg, 0o600)
        env = {"AWS_CONFIG_FILE": cfg}
    else:
        path, needle = hostile_file(workdir, place, "ca", Path(certs.ca).read_text())
        env = {**STATIC, "AWS_CA_BUNDLE": path}
    err = start_failure(workdir, aws, certs, env=env)
    assert str(path) in err and needle in err, err


# ---------------------------------------------------------------- transient means transient




def test_cut_short_reset_and_malformed_keep_the_stale_value(aws, amount, workdir):
    """
    Issue 10 (4), against Parameter Store: a body cut short, a reset, a dropped connection
    and a malformed 200 keep serving the expired value; a denial and a not-found end it.
    Each path is logged once per reason however many reads; the malformed body is never
    quoted, and it is counted.
    """
    sock = workdir / "aws-transient.sock"
    src = "aws-ssm:us-east-1/app"
    d = amount(src, options=["-o", "ttl=1s", "-o", "max_attempts=2", "-o", "negative_ttl=1h",
                             "-o", f"control={sock}"])
    stale = {"prod/db/url": b"postgres://db.internal/app",
             "prod/db/password": b"ssm-secure-pw-9",
             "prod/hosts": b"h1,h2,h3",
             "prod/deep/a/b/c": b"deep-value-c"}
    for rel, want in stale.items():
        assert read_file(d.path(rel)) == want
    assert read_file(d.path("dev/x")) == b"dev-value-x"
    fetched = time.monotonic()
    marker = "PROXY-BODY-MARKER-aws-51c"
    op = "GetParameter"
    fids = {
        "prod/db/url": aws.fault(kind="truncate", operation=op, name="/app/prod/db/url$"),
        "prod/db/password": aws.fault(kind="drop", rst=True, operation=op,
                                      name="/app/prod/db/password$"),
        "prod/hosts": aws.fault(kind="malformed", operation=op, name="/app/prod/hosts$",
                                status=200, content_type="text/html",
                                body=f"<html>{marker} gateway page</html>"),
        "prod/deep/a/b/c": aws.fault(kind="drop", operation=op, name="/app/prod/deep/a/b/c$"),
        "dev/x": aws.fault(kind="error", code="AccessDeniedException", operation=op,
                           name="/app/dev/x$"),
    }
    time.sleep(max(0.0, fetched + 1.1 - time.monotonic()))

    reads, denied = 0, []
    t_end = time.monotonic() + 2.5
    while time.monotonic() < t_end:
        for rel, want in stale.items():
            try:
                got = read_file(d.path(rel))
            except OSError as e:
                got = errno.errorcode.get(e.errno, e.errno)
            assert got == want, f"{rel}: {got}, not the stale value"
            reads += 1
        denied.append(read_err(d.path("dev/x")))
    # stale-while-revalidate may serve the old value once while the refresh that meets
    # the denial runs; from then on the entry is gone for good
    while denied and denied[0] == 0:
        denied.pop(0)
    assert denied and set(denied) == {errno.EACCES}, denied
    faults = {f["id"]: f for f in aws.get("/_test/faults")["faults"]}
    for rel, fid in fids.items():  # each transient fault was met again; the denial is kept
        assert faults[fid]["fired"] >= (1 if rel == "dev/x" else 2), (rel, faults[fid])

    aws.post("/_test/faults/clear", {"id": fids["prod/db/url"]})
    aws.fault(kind="error", code="ParameterNotFound", operation=op, name="/app/prod/db/url$")
    time.sleep(1.1)
    # served stale at most while the refresh that meets the 404 runs, then gone
    wait_until(lambda: read_err(d.path("prod/db/url")) == errno.ENOENT, what="ENOENT after the 404")

    err = d.stderr()
    lines = err.splitlines()

    def logged(*words):
        return [ln for ln in lines if all(w in ln for w in words)]

    for rel in stale:
        got = logged("serving a stale value of", f"'{rel}'")
        assert len(got) == 1, f"{rel}: {len(got)} stale lines in {reads} reads:\n{err}"
    got = logged("'dev/x'", "Permission denied")
    assert len(got) == 1, f"{len(got)} lines for {len(denied)} denied reads:\n{err}"
    got = [ln for ln in logged("'prod/hosts'", "malformed") if "serving a stale" not in ln]
    assert len(got) == 1, err
    assert marker not in err and "gateway page" not in err
    n = faults[fids["prod/hosts"]]["fired"]
    assert ctl_metric(sock, "secretfs_backend_malformed_total", source=src) >= n
    assert ctl_metric(sock, "secretfs_backend_requests_total", source=src, op="fetch",
                      code="EBADMSG") >= n


def test_views_keep_the_types_of_a_secret_string(aws, amount):
    """Issue 11: a SecretString object's number stays a number in the json and yaml views."""
    import yaml

    d = amount()
    assert json.loads(read_file(d.path(".secretfs/view/json/prod/db"))) == DB_JSON
    assert yaml.safe_load(read_file(d.path(".secretfs/view/yaml/prod/db"))) == DB_JSON
    assert read_file(d.path(".secretfs/view/shell/prod/db")) == (
        b"export password='pa55-w0rd-db'\nexport port='5432'\nexport username='db-user-41'\n")
    assert read_err(d.path(".secretfs/view/json/prod/api-key")) == errno.ENOENT
