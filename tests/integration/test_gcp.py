"""
The Google Secret Manager backend (gcp-sm) against tests/servers/gcp_server.py
(in this process, over TLS on 127.0.0.1): values and listings through the
kernel equal what npm @google-cloud/secret-manager reads; name_separator
folders and PREFIX; paging past one page; a CRC32C mismatch is never served;
revalidation through versions/latest; token expiry mid-run; each credential
kind (service account JWT, authorized_user, metadata server); a wrong CA;
429/503 retries; stale values over an outage; the fetch deadline; 64 readers
of a cold key; and that no token or value reaches stderr or the audit log.

Counts come from the server's own counters.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from helpers import POLL_TIMEOUT, REPO, UNREACHABLE, is_mounted, read_err, read_file, \
    run_secretfs, sanitizer_env, wait_until

sys.path.insert(0, str(REPO / "tests" / "servers"))
from gcp_server import GcpServer  # noqa: E402

PROJECT = "secretfs-it"
SECRETS = {
    "prod__db": '{"user": "app-user-77", "password": "s3cr3t-pa55word", "port": 5432}',
    "prod__api-key": "abc-api-key-123",
    "prod__team__cfg": "team-config-value",
    "single": "single-value-xyz",
    "other": "other-value-777",
}
VALUES = [b"app-user-77", b"s3cr3t-pa55word", b"abc-api-key-123", b"team-config-value",
          b"single-value-xyz", b"other-value-777"]
# The member of a service-account key file that holds the PEM key.
KEY_PEM = "private_key"
NODE_CLIENT = REPO / "tests" / "servers" / "gcp_node_client.js"
NODE_MODULES = REPO / "tests" / "node" / "node_modules" / "@google-cloud" / "secret-manager"


@pytest.fixture(scope="module")
def gcp_server(certs):
    s = GcpServer(certs.server, certs.server_key, metadata_port=0)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def gs(gcp_server):
    gcp_server.reset()
    for name, value in SECRETS.items():
        gcp_server.put_secret(PROJECT, name, value)
    yield gcp_server
    gcp_server.clear_faults()


def write_creds(workdir, doc, name="creds.json"):
    p = workdir / name
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return p


def gcp_env(workdir, **extra):
    env = {k: v for k, v in sanitizer_env().items()
           if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
    env["HOME"] = str(workdir)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def gmount(secretfs, workdir, certs):
    """Factory: mounts gcp-sm:PROJECT[/PREFIX] on @server with a service-account key file."""

    def start(server, prefix="", *, options=(), env=None, creds="sa", ca=True, sep="__"):
        leak = list(VALUES)
        opts = ["-o", f"gcp_endpoint={server.url}"]
        if ca:
            opts += ["-o", f"ca_file={certs.ca if ca is True else ca}"]
        if sep:
            opts += ["-o", f"name_separator={sep}"]
        if creds == "sa":
            key = server.add_service_account()
            leak.append(key[KEY_PEM].split("\n")[1].encode())
            opts += ["-o", f"gcp_credentials={write_creds(workdir, key)}"]
        elif creds == "user":
            user = server.add_authorized_user()
            leak += [user["refresh_token"].encode(), user["client_secret"].encode()]
            opts += ["-o", f"gcp_credentials={write_creds(workdir, user)}"]
        opts += list(options)
        src = f"gcp-sm:{PROJECT}" + (f"/{prefix}" if prefix else "")
        d = secretfs(None, argv=lambda store, mnt: [*opts, src, str(mnt)],
                     env=gcp_env(workdir, **(env or {})), secrets=leak)
        d.server = server
        return d

    return start


def tokens_issued(server):
    with server._lock:
        return [t.encode() for t in server.tokens]


def assert_no_leaks(d, server, *files):
    blobs = [d.stderr_bytes()] + [f.read_bytes() for f in files if f.exists()]
    for blob in blobs:
        for secret in VALUES + tokens_issued(server):
            assert secret not in blob, secret[:10]


# ---------------------------------------------------------------- reads and listings


def test_tree_values_and_audit_equal_the_npm_client(gs, gmount, workdir, certs):
    audit = workdir / "audit.log"
    sock = workdir / "gcp.sock"
    d = gmount(gs, options=["-o", f"audit={audit}", "-o", f"control={sock}"])
    assert sorted(os.listdir(d.mnt)) == ["other", "prod", "single"]
    assert sorted(os.listdir(d.path("prod"))) == ["api-key", "db", "team"]
    assert sorted(os.listdir(d.path("prod", "db"))) == ["password", "port", "user"]
    assert read_file(d.path("prod/db/password")) == b"s3cr3t-pa55word"
    assert read_file(d.path("prod/db/port")) == b"5432"
    assert read_file(d.path("prod/team/cfg")) == b"team-config-value"
    assert read_err(d.path("prod/nope")) == errno.ENOENT
    assert read_err(d.path("has space")) == errno.ENOENT

    gs.put_secret(PROJECT, "single", "single-value-xyz")  # version 2
    assert read_file(d.path("single")) == b"single-value-xyz"
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    opens = {r["path"]: r for r in recs if r["op"] == "open"}
    single = next(r for p, r in opens.items() if p.rsplit("/", 1)[-1] == "single")
    assert single["version"] == "2" and single["decision"] == "permit"
    assert gs.counts()["grants"] == {"urn:ietf:params:oauth:grant-type:jwt-bearer": 1}
    # ctl status says how it authenticates, never with what; metrics hold no secret either
    status = run_secretfs(["ctl", "--socket", str(sock), "status"])
    metrics = run_secretfs(["ctl", "--socket", str(sock), "metrics"])
    assert status.returncode == 0 and metrics.returncode == 0
    assert '"service_account"' in status.stdout and '"project": "secretfs-it"' in status.stdout
    for out in (status.stdout, metrics.stdout):
        for secret in VALUES + tokens_issued(gs):
            assert secret.decode() not in out

    if shutil.which("node") is None or not NODE_MODULES.is_dir():
        pytest.skip("npm @google-cloud/secret-manager not installed (make node-deps)")
    ops = [{"op": "list", "parent": f"projects/{PROJECT}"}] + [
        {"op": "access", "name": f"projects/{PROJECT}/secrets/{n}/versions/latest"}
        for n in ("prod__api-key", "prod__team__cfg", "single", "other")]
    args = {"port": gs.port, "token_uri": gs.token_uri, "credentials": gs.add_authorized_user(),
            "ops": ops}
    r = subprocess.run(["node", str(NODE_CLIENT), json.dumps(args)], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca, NODE_NO_WARNINGS="1"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    ids = sorted(n.rsplit("/", 1)[1] for n in res[0]["names"])
    assert ids == sorted(SECRETS)
    import base64
    assert [base64.b64decode(x["data_b64"]) for x in res[1:]] == [
        read_file(d.path(p)) for p in ("prod/api-key", "prod/team/cfg", "single", "other")]
    assert_no_leaks(d, gs, audit)


def test_prefix_flat_names_and_paging(gs, gmount):
    d = gmount(gs, "prod")
    assert sorted(os.listdir(d.mnt)) == ["api-key", "db", "team"]
    assert read_file(d.path("api-key")) == b"abc-api-key-123"
    # without a separator the tree is flat: every id is a file
    gs.configure(page_size=4)
    for i in range(11):
        gs.put_secret(PROJECT, f"page-{i:02d}", f"paged-{i}")
    gs.reset_counts()
    flat = gmount(gs, sep=None)
    names = sorted(os.listdir(flat.mnt))
    assert names == sorted(list(SECRETS) + [f"page-{i:02d}" for i in range(11)])
    assert gs.endpoint_count("list") == 4  # 16 secrets in pages of 4
    assert read_file(flat.path("prod__api-key")) == b"abc-api-key-123"
    assert read_file(flat.path("page-10")) == b"paged-10"


def test_crc32c_mismatch_is_never_served(gs, gmount):
    gs.put_secret(PROJECT, "crc", "crc-protected-value")
    d = gmount(gs, options=["-o", "negative_ttl=0"])
    d.secrets.append(b"crc-protected-value")
    gs.add_fault("bad_crc", secret="^crc$")
    assert read_err(d.path("crc")) == errno.EIO
    assert gs.secret_count(PROJECT, "crc", "access") >= 1
    d.wait_stderr("checksum mismatch")
    gs.clear_faults()
    d.wait_value("crc", b"crc-protected-value")


def test_revalidation_reads_metadata_until_the_version_changes(gs, gmount):
    d = gmount(gs, options=["-o", "ttl=0"])
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert gs.secret_count(PROJECT, "single", "access") == 1
    assert gs.secret_count(PROJECT, "single", "get_version") >= 1
    gs.put_secret(PROJECT, "single", "single-rotated-222")
    d.secrets.append(b"single-rotated-222")
    assert read_file(d.path("single")) == b"single-rotated-222"
    assert gs.secret_count(PROJECT, "single", "access") == 2
    # a disabled latest version is gone, not served from what was kept
    gs.set_version_state(PROJECT, "single", 2, "DISABLED")
    assert read_err(d.path("single")) == errno.ENOENT


def test_token_expiry_mid_run_is_refreshed(gs, gmount):
    d = gmount(gs, options=["-o", "ttl=0"])
    assert read_file(d.path("other")) == b"other-value-777"
    assert gs.expire_tokens() == 1
    assert read_file(d.path("other")) == b"other-value-777"
    # That read may be the stale value while the refresh runs (stale-while-revalidate).
    wait_until(lambda: sum(gs.counts()["grants"].values()) == 2, what="a second token")
    wait_until(lambda: gs.counts()["statuses"].get("401", 0) == 1, what="the one 401")
    assert read_file(d.path("other")) == b"other-value-777"
    assert sum(gs.counts()["grants"].values()) == 2
    assert gs.counts()["statuses"].get("401", 0) == 1
    assert_no_leaks(d, gs)


@pytest.mark.parametrize("kind", ["user", "metadata", "adc-home"])
def test_other_credentials(gs, gmount, workdir, kind):
    if kind == "user":
        d = gmount(gs, creds="user")
        want = "refresh_token"
    elif kind == "metadata":
        d = gmount(gs, creds=None, env={"GCE_METADATA_HOST": f"127.0.0.1:{gs.metadata_port}"})
        want = "metadata"
    else:
        conf = workdir / ".config" / "gcloud"
        conf.mkdir(parents=True)
        write_creds(conf, gs.add_authorized_user(), "application_default_credentials.json")
        d = gmount(gs, creds=None)
        want = "refresh_token"
    assert read_file(d.path("prod/api-key")) == b"abc-api-key-123"
    assert gs.counts()["grants"] == {want: 1}
    assert_no_leaks(d, gs)


def test_startup_errors_name_the_problem(gs, workdir, certs):
    mnt = workdir / "mnt-fail"
    mnt.mkdir()
    base = ["-f", "-o", f"gcp_endpoint={gs.url}", "-o", f"ca_file={certs.ca}"]
    r = run_secretfs([*base, f"gcp-sm:{PROJECT}/prod", str(mnt)], env=gcp_env(workdir))
    assert r.returncode != 0 and "name_separator" in r.stderr
    key = gs.add_service_account()
    loose = write_creds(workdir, key, "loose.json")
    os.chmod(loose, 0o666)  # another user could swap the identity the daemon takes
    r = run_secretfs([*base, "-o", f"gcp_credentials={loose}", f"gcp-sm:{PROJECT}", str(mnt)],
                     env=gcp_env(workdir))
    assert r.returncode != 0 and "loose.json" in r.stderr
    assert key[KEY_PEM].split("\n")[1] not in r.stderr
    bad = write_creds(workdir, {"type": "external_account"}, "ext.json")
    r = run_secretfs([*base, "-o", f"gcp_credentials={bad}", f"gcp-sm:{PROJECT}", str(mnt)],
                     env=gcp_env(workdir))
    assert r.returncode != 0 and "service_account or authorized_user" in r.stderr
    assert not is_mounted(mnt)


# ---------------------------------------------------------------- faults


def test_wrong_ca_is_refused(gs, gmount, certs):
    d = gmount(gs, ca=certs.rogue_ca, options=["-o", "max_attempts=1"])
    assert read_err(d.path("single")) in UNREACHABLE
    c = gs.counts()
    assert c["tls_handshake_failures"] >= 1 and c["total"] == 0


def test_429_and_503_are_retried(gs, gmount):
    d = gmount(gs)
    gs.add_fault("status", status=429, path=":access$", count=1, retry_after=0)
    gs.add_fault("status", status=503, path=":access$", count=1)
    assert read_file(d.path("single")) == b"single-value-xyz"
    assert gs.secret_count(PROJECT, "single", "access") == 3
    assert gs.counts()["faults_fired"] == 2


def test_outage_serves_stale_then_recovers(gs, gmount):
    d = gmount(gs, options=["-o", "ttl=0", "-o", "stale_ttl=1h", "-o", "max_attempts=1"])
    assert read_file(d.path("single")) == b"single-value-xyz"
    gs.add_fault("status", status=503)
    assert read_file(d.path("single")) == b"single-value-xyz"  # stale over UNAVAILABLE
    assert read_err(d.path("other")) in UNREACHABLE  # nothing to fall back on
    gs.add_fault("drop")
    assert read_file(d.path("single")) == b"single-value-xyz"
    gs.clear_faults()
    assert read_file(d.path("other")) == b"other-value-777"


def test_deadline_on_a_slow_store(gs, gmount):
    d = gmount(gs, options=["-o", "fetch_timeout=1s"])
    fid = gs.add_fault("hold", path=":access$")
    assert read_err(d.path("other")) in UNREACHABLE
    gs.clear_faults(fid)
    d.wait_value("other", b"other-value-777")


def test_64_readers_of_a_cold_key_make_one_call(gs, gmount):
    d = gmount(gs, options=["-o", "fetch_timeout=30s"])
    os.listdir(d.mnt)  # the token and the listing are fetched before the readers start
    gs.reset_counts()
    fid = gs.add_fault("hold", path=":access$")
    got = []
    threads = [threading.Thread(target=lambda: got.append(read_file(d.path("single"))))
               for _ in range(64)]
    for t in threads:
        t.start()
    wait_until(lambda: gs.counts()["in_flight"] == 1, POLL_TIMEOUT, what="the held access")
    gs.clear_faults(fid)
    for t in threads:
        t.join(POLL_TIMEOUT)
    assert got == [b"single-value-xyz"] * 64
    assert gs.secret_count(PROJECT, "single", "access") == 1
    assert gs.counts()["in_flight_peak"] == 1
