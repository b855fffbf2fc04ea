"""
Several stores in one mount ([source NAME] sections), through the real
mount: a file store, Vault (tests/servers/vault_server.py) and AWS Secrets
Manager (tests/servers/aws_server.py) and Doppler, each under its prefix.

Checked here: the root lists the prefixes; values equal the stores'; each
source keeps its own TTL (counted at the servers); one policy covers all
with paths that include the prefix (an attacker tries `..`, another
source's prefix and a view of another source); audit records, metrics and
`ctl status` name the source; ctl flush and refresh route by prefix; a
source down at start is a start-up error naming it, or with optional =
true an empty directory that fills once its store is back; config mistakes
name file:line; no token or value reaches the logs, the audit log or the
metrics.

Doppler (tests/servers/doppler_server.py) is the fourth store, [source app]:
the `.env` template reads Vault, AWS, Doppler and file values.
"""

import json
import os
import sys

import pytest

from helpers import POLL_TIMEOUT, REPO, ctl_metric, is_mounted, read_file, run_secretfs, sanitizer_env, wait_until
from policy_env import EACCES, write_policy

sys.path.insert(0, str(REPO / "tests" / "servers"))
from aws_server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY  # noqa: E402
from test_aws import Aws  # noqa: E402
from test_doppler import doppler_server  # noqa: E402,F401 (a module fixture, on our certs)
from test_vault import ROOT, SECRETS, VALUES as VAULT_VALUES, VaultProcess  # noqa: E402
from vault_server import VaultServer  # noqa: E402

FILE_DOC = {"public/motd": "multi-file-motd-1", "team/cfg": {"region": "multi-file-region-1"}}
AWS_VALUES = [b"db-user-41", b"pa55-w0rd-db", b"api-key-plain-77", b"single-value-xyz"]
DOPPLER = {"DATABASE_URL": "postgres://app:dop-pa55@db:5432/shop", "API_KEY": "dop-api-key-9"}
LEAKS = [*VAULT_VALUES, *AWS_VALUES, b"multi-file-motd-1", b"multi-file-region-1",
         ROOT.encode(), DEFAULT_SECRET_KEY.encode(), b"dop-pa55", b"dop-api-key-9"]
V = ".secretfs/view"


@pytest.fixture(scope="module")
def vault(certs):
    vs = VaultServer(certs.server, certs.server_key, config={"root_token": ROOT, "secrets": SECRETS})
    vs.start()
    yield vs
    vs.stop()


@pytest.fixture(scope="module")
def aws_server(certs, tmp_path_factory):
    srv = Aws(certs, tmp_path_factory.mktemp("multi-aws"))
    yield srv
    srv.stop()


@pytest.fixture
def doppler(doppler_server):
    doppler_server.reset()
    doppler_server.put_config("shop", "prd", DOPPLER)
    doppler_server.token = doppler_server.add_token("shop", "prd")["token"]
    return doppler_server


@pytest.fixture
def servers(vault, aws_server, doppler):
    vault.reset()
    aws_server.post("/_test/reset")
    return vault, aws_server


def daemon_env(workdir, aws, certs, doppler=None):
    """Every store's credentials, as their own clients read them; none of ours."""
    env = {k: v for k, v in sanitizer_env().items()
           if not k.startswith(("AWS_", "VAULT_", "DOPPLER_"))}
    if doppler:
        env["DOPPLER_TOKEN"] = doppler.token
    env.pop("CREDENTIALS_DIRECTORY", None)
    env.update(HOME=str(workdir), VAULT_TOKEN=ROOT, AWS_ENDPOINT_URL=aws.url,
               AWS_CA_BUNDLE=certs.ca, AWS_EC2_METADATA_DISABLED="true",
               AWS_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=DEFAULT_SECRET_KEY)
    return env


def write_config(path, text):
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def mount_config(workdir, store, vault_url, certs, doppler_url, *, extra="", db_extra=""):
    return (f"[cache]\nttl = 1h\n\n[http]\nca_file = {certs.ca}\n\n"
            f"[control]\nsocket = {workdir}/ctl.sock\n\n"
            f"[source files]\nuri = file:{store}\n\n"
            f"[source db]\nuri = vault:{vault_url}/secret\n{db_extra}\n"
            f"[source aws]\nuri = aws-sm:us-east-1\nprefix = cloud\nttl = 1s\n\n"
            f"[source app]\nuri = doppler:shop/prd\ndoppler_api_host = {doppler_url}\n\n"
            f"{extra}")


@pytest.fixture
def multi(secretfs, workdir, certs, servers, doppler):
    """Factory: mounts file + Vault + AWS SM + Doppler from a config file; returns the Daemon."""
    vault, aws = servers

    def start(*, extra="", db_extra="", vault_url=None, options=()):
        store = workdir / "files.json"
        store.write_text(json.dumps(FILE_DOC))
        os.chmod(store, 0o600)
        conf = write_config(workdir / "multi.conf",
                            mount_config(workdir, store, vault_url or vault.url, certs,
                                         doppler.url, extra=extra, db_extra=db_extra))
        d = secretfs(None, argv=lambda _store, mnt: [*options, "--config", str(conf), str(mnt)],
                     env=daemon_env(workdir, aws, certs, doppler),
                     secrets=[*LEAKS, doppler.token.encode()])
        d.sock = workdir / "ctl.sock"
        wait_until(lambda: d.sock.exists(), what="the control socket")
        return d

    return start


def ctl(d, *args):
    r = run_secretfs(["ctl", "--socket", str(d.sock), *args])
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def audit_records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tree_values_ttls_audit_metrics_and_status(multi, servers, workdir):
    vault, aws = servers
    audit = workdir / "audit.log"
    d = multi(options=["-o", f"audit={audit}"])

    assert sorted(os.listdir(d.mnt)) == ["app", "cloud", "db", "files"]
    assert read_file(d.path("files/public/motd")) == b"multi-file-motd-1"
    assert read_file(d.path("app/API_KEY")) == b"dop-api-key-9"
    assert {"API_KEY", "DATABASE_URL"} <= set(os.listdir(d.path("app")))
    assert read_file(d.path("files/team/cfg/region")) == b"multi-file-region-1"
    assert read_file(d.path("db/app/api-key/value")) == b"abc-api-key-123"
    assert read_file(d.path("cloud/single")) == b"single-value-xyz"
    assert read_file(d.path("cloud/prod/db/password")) == b"pa55-w0rd-db"
    assert sorted(os.listdir(d.path("db/app"))) == ["api-key", "db"]
    # a prefix is a directory of its own: nothing of one store shows under another
    assert not os.path.exists(d.path("db/single"))
    assert not os.path.exists(d.path("cloud/app"))
    assert not os.path.exists(d.path("nosuch"))

    # per-source TTLs: aws has 1s (revalidated with DescribeSecret), db the mount's 1h
    assert vault.secret_count("secret/app/api-key", "read") == 1
    assert aws.secret_op("single", "GetSecretValue") == 1

    def aws_revalidated():
        assert read_file(d.path("cloud/single")) == b"single-value-xyz"
        return aws.secret_op("single", "DescribeSecret") >= 1

    wait_until(aws_revalidated, what="the aws source's 1s ttl to pass")
    assert read_file(d.path("db/app/api-key/value")) == b"abc-api-key-123"
    assert vault.secret_count("secret/app/api-key", "read") == 1  # still fresh: 1h

    # the audit log names the source of each path (the path includes the prefix)
    recs = [r for r in audit_records(audit) if r["op"] == "open"]
    by_path = {r["path"]: r["source"] for r in recs}
    assert by_path["files/public/motd"] == "files"
    assert by_path["db/app/api-key/value"] == "db"
    assert by_path["cloud/single"] == "aws"
    assert by_path["app/API_KEY"] == "app"

    # metrics: one series per source
    assert ctl_metric(d.sock, "secretfs_backend_requests_total",
                      source="db", op="fetch", code="ok") >= 1
    assert ctl_metric(d.sock, "secretfs_backend_requests_total",
                      source="aws", op="fetch", code="ok") >= 2
    assert ctl_metric(d.sock, "secretfs_cache_entries", source="files", cache="values") >= 1
    assert ctl_metric(d.sock, "secretfs_source_up", source="db") == 1

    # ctl status: one block per source
    st = json.loads(ctl(d, "status"))
    blocks = {s["name"]: s for s in st["sources"]}
    assert list(blocks) == ["files", "db", "aws", "app"]
    assert blocks["app"]["backend"] == "doppler"
    assert blocks["aws"]["prefix"] == "cloud" and blocks["aws"]["backend"] == "aws-sm"
    assert blocks["db"]["backend"] == "vault" and blocks["db"]["state"] == "up"
    assert blocks["db"]["cache"]["fetches"] >= 1

    # ctl flush and refresh take mount paths and route them by prefix
    out = ctl(d, "flush", "db/app/api-key")
    assert out.startswith("ok [db] "), out
    assert read_file(d.path("db/app/api-key/value")) == b"abc-api-key-123"
    assert vault.secret_count("secret/app/api-key", "read") == 2
    out = ctl(d, "refresh", "cloud/single")
    assert out.startswith("ok [aws] "), out
    r = run_secretfs(["ctl", "--socket", str(d.sock), "flush", "elsewhere/x"])
    assert "no source has that prefix" in r.stdout + r.stderr
    out = ctl(d, "flush")
    assert "[files]" in out and "[db]" in out and "[aws]" in out, out

    # no token or value in the audit log or the metrics (stderr: the fixture's teardown)
    metrics = ctl(d, "metrics").encode() + ctl(d, "status").encode()
    for text in (audit.read_bytes(), metrics):
        assert not [v for v in LEAKS if v in text]


ENV_TEMPLATE = """\
DB_API_KEY={{ db/app/api-key/value }}
AWS_SINGLE={{ cloud/single }}
MOTD={{ files/public/motd }}
DATABASE_URL={{ app/DATABASE_URL }}
"""


def test_one_env_file_from_vault_aws_doppler_and_file_values(multi, servers, doppler, workdir):
    vault, aws = servers
    tmpl = workdir / "app.env.tmpl"
    tmpl.write_text(ENV_TEMPLATE)
    os.chmod(tmpl, 0o600)
    d = multi(extra=f"[template app-env]\nfile = {tmpl}\npath = files/app.env\nformat = env\n")
    assert read_file(d.path("files/app.env")) == (
        b'DB_API_KEY="abc-api-key-123"\n'
        b'AWS_SINGLE="single-value-xyz"\n'
        b'MOTD="multi-file-motd-1"\n'
        b'DATABASE_URL="postgres://app:dop-pa55@db:5432/shop"\n')
    assert vault.secret_count("secret/app/api-key", "read") == 1
    assert aws.secret_op("single", "GetSecretValue") == 1
    assert doppler.counts()["endpoints"].get("download", 0) == 1


POLICY = """\
permit user:sfst-alice  db/**
permit user:sfst-bob    cloud/**
permit *                files/public/*
permit user:sfst-carol  db/app/api-key/value
permit user:sfst-carol  cloud/single
permit user:sfst-carol  files/app.env
permit user:sfst-carol  app/DATABASE_URL
"""


def test_one_policy_over_all_sources(multi, workdir, agents):
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    audit = workdir / "audit.log"
    tmpl = workdir / "app.env.tmpl"
    tmpl.write_text(ENV_TEMPLATE)
    os.chmod(tmpl, 0o600)
    d = multi(options=["-o", f"policy={policy}", "-o", f"audit={audit}"],
              extra=f"[template app-env]\nfile = {tmpl}\npath = files/app.env\nformat = env\n")
    alice, bob, carol = agents["alice"], agents["bob"], agents["carol"]

    assert alice.read(d.path("db/app/api-key/value")) == b"abc-api-key-123"
    assert bob.read(d.path("cloud/single")) == b"single-value-xyz"
    assert bob.read(d.path("files/public/motd")) == b"multi-file-motd-1"
    # another source's prefix, by its path and by `..` from one's own
    assert bob.read(d.path("db/app/api-key/value")) == EACCES
    assert bob.read(os.path.join(d.mnt, "cloud", "..", "db", "app", "api-key", "value")) == EACCES
    assert alice.read(os.path.join(d.mnt, "db", "..", "cloud", "single")) == EACCES
    assert alice.read(d.path("files/team/cfg/region")) == EACCES
    # a view of another source's object, and a view reached with `..`
    assert alice.read(d.path(V, "env", "db", "app", "db")).startswith(b"password=")
    assert bob.read(d.path(V, "env", "db", "app", "db")) == EACCES
    assert bob.read(d.path(V, "env", "cloud", "..", "db", "app", "db")) == EACCES
    # the same name at the root, without a prefix, is nobody's
    assert bob.read(d.path("single")) == "ENOENT"
    # a template over four sources needs each reference: only carol has all four
    assert carol.read(d.path("files/app.env")).startswith(b'DB_API_KEY="abc-api-key-123"')
    assert bob.read(d.path("files/app.env")) == EACCES
    assert alice.read(d.path("files/app.env")) == EACCES

    bob_uid = bob.user.uid
    denied = [r for r in audit_records(audit)
              if r["uid"] == bob_uid and r["decision"] == "deny" and r["op"] == "open"]
    assert {r["path"] for r in denied} >= {"db/app/api-key/value"}
    assert all(r["source"] == "db" for r in denied if r["path"].startswith("db/"))
    assert not [v for v in LEAKS if v in audit.read_bytes()]


def test_optional_source_down_at_start_comes_back(multi, certs, workdir):
    proc = VaultProcess(certs, workdir / "vault-proc", {"root_token": ROOT, "secrets": SECRETS})
    proc.start()
    try:
        url = proc.url
        proc.kill()
        d = multi(vault_url=url, db_extra="optional = true\n")
        assert sorted(os.listdir(d.mnt)) == ["app", "cloud", "db", "files"]
        assert os.listdir(d.path("db")) == []
        assert read_file(d.path("cloud/single")) == b"single-value-xyz"  # the others serve
        err = d.wait_stderr("source 'db' (optional) is down")
        assert "serving several stores" in err
        st = {s["name"]: s for s in json.loads(ctl(d, "status"))["sources"]}
        assert st["db"]["state"] == "down" and st["db"]["error"]
        assert ctl_metric(d.sock, "secretfs_source_up", source="db") == 0

        proc.restart()
        wait_until(lambda: "app" in os.listdir(d.path("db")), timeout=POLL_TIMEOUT + 16,
                   what="db to come back (retries after 1s, 2s, 4s, 8s, 16s, ...)")
        assert read_file(d.path("db/app/api-key/value")) == b"abc-api-key-123"
        d.wait_stderr("source 'db' is up")
        assert ctl_metric(d.sock, "secretfs_source_up", source="db") == 1
    finally:
        proc.stop()


def test_a_source_down_at_start_is_an_error_naming_it(workdir, certs, servers):
    vault, aws = servers
    store = workdir / "files.json"
    store.write_text(json.dumps(FILE_DOC))
    os.chmod(store, 0o600)
    conf = write_config(workdir / "down.conf",
                        mount_config(workdir, store, "https://127.0.0.1:1", certs,
                                     "https://127.0.0.1:1"))
    mnt = workdir / "mnt-down"
    mnt.mkdir()
    r = run_secretfs(["-f", "--config", str(conf), str(mnt)],
                     env=daemon_env(workdir, aws, certs))
    assert r.returncode != 0
    assert "source 'db'" in r.stderr, r.stderr
    assert not is_mounted(mnt)
    assert ROOT not in r.stderr


BAD_CONFIGS = [
    ("[secretfs]\nsource = file:/x\n[source a]\nuri = file:/y\n", 2,
     "not with [source NAME] sections"),
    ("[source a]\nuri = file:/x\n[source b]\nuri = file:/y\n[source a]\nttl = 1s\n", 6,
     "a second source named 'a'"),
    ("[source a]\nuri = file:/x\n[source b]\nuri = file:/y\nprefix = a\n", 3,
     "prefix 'a' is taken by [source a]"),
    ("[source a]\nuri = file:/x\ncolour = red\n", 3, "key 'colour': unknown key"),
    ("[source a]\nuri = file:/x\nvault_token_file = /t\n", 3, "is not a vault store"),
    ("[source a]\nttl = 1s\n", 1, "no uri"),
    ("[source a]\nuri = file:/x\nprefix = ../up\n", 3, "key 'prefix'"),
    ("[source a/b]\nuri = file:/x\n", 2, "expected a source name"),
    ("[source a]\nuri = file:/x\nttl = soon\n", 3, "expected a duration"),
    ("[source a]\nuri = file:/x\nmax_fetches = 3\n", 3, "unknown key"),
]


@pytest.mark.parametrize("text,line,what", BAD_CONFIGS)
def test_config_mistakes_name_file_and_line(workdir, text, line, what):
    conf = write_config(workdir / "bad.conf", text)
    r = run_secretfs(["-f", "--config", str(conf), str(workdir)])
    assert r.returncode != 0
    assert f"{conf}:{line}: " in r.stderr and what in r.stderr, r.stderr


def test_source_on_the_command_line_and_sections_are_an_error(workdir):
    conf = write_config(workdir / "both.conf", "[source a]\nuri = file:/x\n")
    r = run_secretfs(["-f", "--config", str(conf), "file:/y", str(workdir)])
    assert r.returncode != 0
    assert "give one or the other" in r.stderr, r.stderr


def test_examples_multi_conf_runs(secretfs, workdir, certs, servers):
    """examples/multi.conf, its paths and hosts mapped to this machine's test servers."""
    vault, aws = servers
    store = workdir / "store.json"
    store.write_text(json.dumps(FILE_DOC))
    token = workdir / "vault-token"
    tmpl = workdir / "app.env.tmpl"
    tmpl.write_text("KEY={{ db/app/api-key/value }}\nSINGLE={{ aws/single }}\n")
    policy = workdir / "policy"
    write_policy(policy, "permit user:root **\n")
    token.write_text(ROOT)
    for f in (store, token, tmpl):
        os.chmod(f, 0o600)
    text = (REPO / "examples" / "multi.conf").read_text()
    for old, new in [("https://vault.example:8200", vault.url),
                     ("/etc/secretfs/vault-token", str(token)),
                     ("/etc/secretfs/store.json", str(store)),
                     ("/etc/secretfs/templates/app.env.tmpl", str(tmpl)),
                     ("/etc/secretfs/policy", str(policy)),
                     ("audit  = syslog", f"audit = {workdir}/audit.log"),
                     ("socket = auto", f"socket = {workdir}/ctl.sock")]:
        assert old in text, old
        text = text.replace(old, new)
    conf = write_config(workdir / "multi.conf", text + f"\n[http]\nca_file = {certs.ca}\n")
    env = daemon_env(workdir, aws, certs)
    del env["VAULT_TOKEN"]  # the example's token file
    d = secretfs(None, argv=lambda _store, mnt: ["--config", str(conf), str(mnt)], env=env,
                 secrets=LEAKS)
    assert sorted(os.listdir(d.mnt)) == ["aws", "db", "local"]
    assert read_file(d.path("local/public/motd")) == b"multi-file-motd-1"
    assert read_file(d.path("local/app.env")) == (b'KEY="abc-api-key-123"\n'
                                                  b'SINGLE="single-value-xyz"\n')
