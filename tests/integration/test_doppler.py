"""
The Doppler backend (doppler) against tests/servers/doppler_server.py (in this
process, over TLS on 127.0.0.1): values and the flat listing through the kernel
equal what npm @dopplerhq/node-sdk reads; one download serves every secret for
a ttl, and an older document is revalidated with If-None-Match (304), both
counted at the server; `doppler:` with the token's own config and with
DOPPLER_PROJECT/DOPPLER_CONFIG; -o doppler_token_file; a JSON value stays a
file; 401/404; 429/503 retries; stale values over an outage; a wrong CA; 64
readers of a cold key make one call; and no token or value reaches stderr, the
audit log, ctl status or the metrics.

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
from doppler_server import DopplerServer  # noqa: E402

PROJECT, CONFIG = "shop", "prd"
SECRETS = {
    "DATABASE_URL": "postgres://app:s3cr3t-pa55word@db:5432/shop",
    "API_KEY": "abc-api-key-123",
    "USER": "brian-user-77",
    "GREETING": "hello ${USER}",
    "APP_JSON": '{"feature": true, "limit": 42}',
}
VALUES = [b"s3cr3t-pa55word", b"abc-api-key-123", b"brian-user-77"]
MANAGED = ["DOPPLER_CONFIG", "DOPPLER_ENVIRONMENT", "DOPPLER_PROJECT"]
NODE_CLIENT = REPO / "tests" / "servers" / "doppler_node_client.js"
NODE_MODULES = REPO / "tests" / "node" / "node_modules" / "@dopplerhq" / "node-sdk"


@pytest.fixture(scope="module")
def doppler_server(certs):
    s = DopplerServer(certs.server, certs.server_key)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def ds(doppler_server):
    doppler_server.reset()
    doppler_server.put_config(PROJECT, CONFIG, SECRETS)
    doppler_server.put_config(PROJECT, "dev", {"API_KEY": "dev-key-not-prod"})
    yield doppler_server
    doppler_server.clear_faults()


def doppler_env(workdir, **extra):
    env = {k: v for k, v in sanitizer_env().items() if not k.startswith("DOPPLER_")}
    env["HOME"] = str(workdir)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def dmount(secretfs, workdir, certs):
    """Factory: mounts doppler:PROJECT/CONFIG (or @source) with DOPPLER_TOKEN."""

    def start(server, source=f"doppler:{PROJECT}/{CONFIG}", *, options=(), env=None, ca=True,
              token=None):
        token = token or server.add_token(PROJECT, CONFIG)["token"]
        opts = ["-o", f"doppler_api_host={server.url}"]
        if ca:
            opts += ["-o", f"ca_file={certs.ca if ca is True else ca}"]
        opts += list(options)
        e = {"DOPPLER_TOKEN": token}
        e.update(env or {})
        d = secretfs(None, argv=lambda store, mnt: [*opts, source, str(mnt)],
                     env=doppler_env(workdir, **e), secrets=list(VALUES) + [token.encode()])
        d.server, d.token = server, token
        return d

    return start


def downloads(server, status=None):
    c = server.counts()
    if status is None:
        return c["endpoints"].get("download", 0)
    return c["statuses"].get(str(status), 0)


def assert_no_leaks(d, *files, extra=()):
    blobs = [d.stderr_bytes()] + [f.read_bytes() for f in files if f.exists()]
    blobs += [b.encode() if isinstance(b, str) else b for b in extra]
    for blob in blobs:
        for secret in VALUES + [d.token.encode()]:
            assert secret not in blob, secret[:10]


# ---------------------------------------------------------------- reads and listings


def test_tree_and_values_equal_the_npm_sdk(ds, dmount, workdir, certs):
    audit = workdir / "audit.log"
    sock = workdir / "doppler.sock"
    d = dmount(ds, options=["-o", f"audit={audit}", "-o", f"control={sock}"])
    names = sorted(os.listdir(d.mnt))
    assert names == sorted(list(SECRETS) + MANAGED)
    assert read_file(d.path("GREETING")) == b"hello brian-user-77"  # the computed value
    # A JSON value is a file holding the raw string, not a directory.
    assert os.path.isfile(d.path("APP_JSON"))
    assert read_file(d.path("APP_JSON")) == b'{"feature": true, "limit": 42}'
    assert read_file(d.path("DOPPLER_CONFIG")) == b"prd"
    assert read_err(d.path("NOPE")) == errno.ENOENT

    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    opens = [r for r in recs if r["op"] == "open" and r["path"].endswith("GREETING")]
    assert opens and opens[-1]["decision"] == "permit" and opens[-1]["version"] == "1"

    status = run_secretfs(["ctl", "--socket", str(sock), "status"])
    metrics = run_secretfs(["ctl", "--socket", str(sock), "metrics"])
    assert status.returncode == 0 and metrics.returncode == 0
    assert '"DOPPLER_TOKEN"' in status.stdout and '"project": "shop"' in status.stdout
    assert_no_leaks(d, audit, extra=(status.stdout, metrics.stdout))

    if shutil.which("node") is None or not NODE_MODULES.is_dir():
        pytest.skip("npm @dopplerhq/node-sdk not installed (make node-deps)")
    args = {"url": ds.url, "token": d.token, "ops": [
        {"op": "download", "project": PROJECT, "config": CONFIG},
        {"op": "list", "project": PROJECT, "config": CONFIG},
        {"op": "get", "project": PROJECT, "config": CONFIG, "name": "GREETING"}]}
    r = subprocess.run(["node", str(NODE_CLIENT), json.dumps(args)], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca, NODE_NO_WARNINGS="1"))
    assert r.returncode == 0, r.stderr
    download, listing, greeting = (x["data"] for x in json.loads(r.stdout)["results"])
    assert sorted(download) == names
    assert sorted(listing["secrets"]) == names
    for n in names:
        assert read_file(d.path(n)) == download[n].encode()
        assert listing["secrets"][n]["computed"] == download[n]
    assert greeting["value"]["computed"].encode() == read_file(d.path("GREETING"))


def test_one_download_serves_every_secret_for_a_ttl(ds, dmount):
    d = dmount(ds, options=["-o", "ttl=1h"])
    for _ in range(3):
        assert len(os.listdir(d.mnt)) == len(SECRETS) + len(MANAGED)
        for n in SECRETS:
            read_file(d.path(n))
    assert downloads(ds) == 1
    req = ds.requests_log()[0]
    assert req["query"] == {"format": "json", "project": PROJECT, "config": CONFIG}
    assert req["auth_form"] == "bearer" and req["if_none_match"] is None


def test_an_older_document_is_revalidated_with_if_none_match(ds, dmount):
    d = dmount(ds, options=["-o", "ttl=0"])
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert read_file(d.path("USER")) == b"brian-user-77"
    # ttl=0: every read asks, but only the first one downloads.
    assert downloads(ds, 200) == 1
    assert downloads(ds, 304) >= 2
    etag = ds.requests_log()[-1]["if_none_match"]
    assert etag and etag.startswith('"')
    ds.put_secret(PROJECT, CONFIG, "API_KEY", "rotated-key-456")
    d.secrets.append(b"rotated-key-456")
    assert read_file(d.path("API_KEY")) == b"rotated-key-456"
    assert downloads(ds, 200) == 2
    # The value derived from another follows it.
    ds.put_secret(PROJECT, CONFIG, "USER", "carol-user-88")
    d.secrets.append(b"carol-user-88")
    assert read_file(d.path("GREETING")) == b"hello carol-user-88"


def test_ctl_refresh_asks_the_store_within_the_ttl(ds, dmount, workdir):
    sock = workdir / "refresh.sock"
    d = dmount(ds, options=["-o", "ttl=1h", "-o", f"control={sock}"])
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    r = run_secretfs(["ctl", "--socket", str(sock), "refresh"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert downloads(ds, 200) == 1 and downloads(ds, 304) == 1  # unchanged: a 304
    ds.put_secret(PROJECT, CONFIG, "API_KEY", "rotated-by-refresh-9")
    d.secrets.append(b"rotated-by-refresh-9")
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"  # within the ttl: kept
    assert downloads(ds) == 2
    r = run_secretfs(["ctl", "--socket", str(sock), "refresh", "API_KEY"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_file(d.path("API_KEY")) == b"rotated-by-refresh-9"
    assert downloads(ds, 200) == 2


@pytest.mark.parametrize("how", ["token", "env"])
def test_the_config_can_come_from_the_token_or_the_environment(ds, dmount, how):
    if how == "token":
        d = dmount(ds, "doppler:")
        want = {"format": "json"}
    else:
        d = dmount(ds, "doppler:", env={"DOPPLER_PROJECT": PROJECT, "DOPPLER_CONFIG": CONFIG})
        want = {"format": "json", "project": PROJECT, "config": CONFIG}
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert ds.requests_log()[0]["query"] == want


def test_token_file_and_a_token_of_another_config(ds, dmount, secretfs, workdir, certs):
    tok = ds.add_token(PROJECT, CONFIG)["token"]
    tf = workdir / "doppler-token"
    fd = os.open(tf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    d = dmount(ds, options=["-o", f"doppler_token_file={tf}"], token="dp.st.prd.not-this-one")
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert ds.requests_log()[0]["auth_form"] == "bearer"
    # A token of dev asked for prd: 403 is EACCES.
    dev = ds.add_token(PROJECT, "dev")["token"]
    d2 = dmount(ds, token=dev)
    assert read_err(d2.path("API_KEY")) == errno.EACCES
    d2.wait_stderr("403")
    ds.revoke_token(d.token)
    assert_no_leaks(d)
    assert dev.encode() not in d2.stderr_bytes()


def test_startup_errors_name_the_problem(ds, workdir, certs):
    mnt = workdir / "mnt-fail"
    mnt.mkdir()
    base = ["-f", "-o", f"doppler_api_host={ds.url}", "-o", f"ca_file={certs.ca}"]
    r = run_secretfs([*base, "doppler:shop", str(mnt)], env=doppler_env(workdir,
                                                                          DOPPLER_TOKEN="x"))
    assert r.returncode != 0 and "doppler:PROJECT/CONFIG" in r.stderr
    r = run_secretfs([*base, "doppler:shop/prd", str(mnt)], env=doppler_env(workdir))
    assert r.returncode != 0 and "DOPPLER_TOKEN" in r.stderr
    r = run_secretfs(["-f", "-o", "doppler_api_host=http://127.0.0.1:9", "doppler:shop/prd",
                      str(mnt)], env=doppler_env(workdir, DOPPLER_TOKEN="dp.st.x.y"))
    assert r.returncode != 0 and "plain HTTP" in r.stderr and "dp.st.x.y" not in r.stderr
    assert not is_mounted(mnt)


# ---------------------------------------------------------------- faults


def test_a_bad_token_is_eacces(ds, dmount):
    d = dmount(ds, token="dp.st.prd.revoked-token-xyz", options=["-o", "negative_ttl=0"])
    assert read_err(d.path("API_KEY")) == errno.EACCES
    d.wait_stderr("Invalid Auth token")
    assert_no_leaks(d)


def test_wrong_ca_is_refused(ds, dmount, certs):
    d = dmount(ds, ca=certs.rogue_ca, options=["-o", "max_attempts=1"])
    assert read_err(d.path("API_KEY")) in UNREACHABLE
    c = ds.counts()
    assert c["tls_handshake_failures"] >= 1 and c["total"] == 0


def test_429_and_503_are_retried(ds, dmount):
    d = dmount(ds)
    ds.add_fault("status", status=429, count=1, retry_after=0)
    ds.add_fault("status", status=503, count=1)
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert downloads(ds) == 3 and ds.counts()["faults_fired"] == 2


def test_malformed_document_is_never_served(ds, dmount):
    d = dmount(ds, options=["-o", "max_attempts=1"])
    ds.add_fault("malformed", count=1)
    assert read_err(d.path("API_KEY")) == errno.EAGAIN
    d.wait_stderr("malformed JSON")
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    assert_no_leaks(d)


def test_outage_serves_stale_then_recovers(ds, dmount):
    d = dmount(ds, options=["-o", "ttl=0", "-o", "stale_ttl=1h", "-o", "max_attempts=1"])
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    ds.add_fault("status", status=503)
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"  # stale over 503
    assert read_err(d.path("USER")) in UNREACHABLE  # never read: nothing to fall back on
    ds.add_fault("drop")
    assert read_file(d.path("API_KEY")) == b"abc-api-key-123"
    ds.clear_faults()
    assert read_file(d.path("USER")) == b"brian-user-77"


def test_64_readers_of_a_cold_key_make_one_call(ds, dmount):
    d = dmount(ds, options=["-o", "fetch_timeout=30s"])
    fid = ds.add_fault("hold", path="download$")
    got = []
    threads = [threading.Thread(target=lambda: got.append(read_file(d.path("API_KEY"))))
               for _ in range(64)]
    for t in threads:
        t.start()
    wait_until(lambda: ds.counts()["in_flight"] == 1, POLL_TIMEOUT, what="the held download")
    ds.clear_faults(fid)
    for t in threads:
        t.join(POLL_TIMEOUT)
    assert got == [b"abc-api-key-123"] * 64
    assert downloads(ds) == 1 and ds.counts()["in_flight_peak"] == 1
