"""
The Azure Key Vault backend (azure-kv) against tests/servers/azure_server.py,
started once per module with its spawn helper (TLS on 127.0.0.1 with the
certificates of certs.py, plus its plain-HTTP IMDS listener), driven through
its /_test/ control API: the tree with name_separator, JSON directories and
PKCS#12 bytes, listings past one page, the tree and values against what
Azure's own client (@azure/keyvault-secrets, tests/node) reads, errors
(ENOENT, EACCES for Forbidden and SecretDisabled, a 401 that a new token
does not cure), token expiry in the middle of a run (a 401, and the refresh
before expiry), the three credentials (client secret, workload identity with
its file read again, IMDS with a client id), a wrong CA, 429 and 503
retried, single-flight, the outage, stale and deadline behaviour of the
Vault tests, a nextLink to another host, and no token, client secret or
value in stderr, the audit log, metrics or /proc.

Counts come from the server's own counters.
"""

import base64
import errno
import json
import os
import secrets as pysecrets
import signal
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
from azure_server import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    FEDERATED_CLIENT_ID,
    FEDERATED_TOKEN,
    MI_CLIENT_ID,
    TENANT,
    AdminClient,
    spawn_cli,
    vendor_client,
    vendor_client_missing,
)

DB_JSON = {"username": "kv-user-7", "password": "kv-pa55-w0rd", "port": 5432}
PFX = bytes(range(256)) + b"\x00pfx-tail"
FILLER = [f"fill--s{i:02d}" for i in range(30)]  # more than one 25-name page
CONFIG = {
    "token_lifetime": 3599,
    "secrets": [
        {"name": "prod--db", "value": json.dumps(DB_JSON)},
        {"name": "prod--api-key", "value": "kv-api-key-plain-31"},
        {"name": "single", "value": "kv-single-value-xyz"},
        {"name": "tls-cert", "value": base64.b64encode(PFX).decode(),
         "content_type": "application/x-pkcs12"},
        {"name": "disabled-one", "value": "kv-disabled-value", "enabled": False},
        {"name": "denied", "value": "kv-denied-value-3"},
        *[{"name": n, "value": "kv-filler-value"} for n in FILLER],
    ],
    "deny": [{"name": "denied"}],
}
VALUES = [b"kv-user-7", b"kv-pa55-w0rd", b"kv-api-key-plain-31", b"kv-single-value-xyz",
          b"kv-disabled-value", b"kv-denied-value-3", b"kv-filler-value", CLIENT_SECRET.encode(),
          FEDERATED_TOKEN.encode()]
SEP = ["-o", "name_separator=--"]


# ---------------------------------------------------------------- the server


class Azure:
    """azure_server.py as a child process, through its control API."""

    def __init__(self, certs, workdir, port=None, admin_token=None):
        args = []
        if port:
            args += ["--port", str(port)]
        if admin_token:
            args += ["--admin-token", admin_token]
        deadline = time.monotonic() + POLL_TIMEOUT
        while True:
            try:
                self.proc, info = spawn_cli(certs.server, certs.server_key, str(workdir),
                                            config=CONFIG, extra_args=args,
                                            python=sys.executable)
                break
            except RuntimeError:  # the port not free yet after a kill
                if not port or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.port, self.url, self.metadata_url = info["port"], info["url"], info["metadata_url"]
        self.admin_token = info["admin_token"]
        self.admin = AdminClient(self.url, self.admin_token, cafile=certs.ca)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()
        self.proc = None

    def post(self, path, body=None):
        return self.admin.post(path, body)

    def get(self, path):
        return self.admin.get(path)

    def counts(self):
        return self.get("/_test/counts")

    def op(self, name):
        return self.counts()["operations"].get(name, 0)

    def reads(self, name):
        return self.counts()["secrets"].get(name, {}).get("GetSecret", 0)

    def fault(self, **kw):
        return self.post("/_test/fault", kw)["id"]

    def tokens(self):
        return [t["token"] for t in self.get("/_test/tokens")["tokens"]]


@pytest.fixture(scope="module")
def azure_server(certs, tmp_path_factory):
    srv = Azure(certs, tmp_path_factory.mktemp("azure-server"))
    yield srv
    srv.stop()


@pytest.fixture
def az(azure_server):
    """The module's server, back to its starting state for each test."""
    azure_server.post("/_test/reset")
    return azure_server


def az_env(workdir, server, **extra):
    """The daemon's environment: the client secret of the server, no other AZURE_*."""
    env = {k: v for k, v in sanitizer_env().items() if not k.startswith("AZURE_")}
    env.update(HOME=str(workdir), AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT_ID,
               AZURE_CLIENT_SECRET=CLIENT_SECRET, AZURE_AUTHORITY_HOST=server.url)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k in [k for k, v in extra.items() if v is None]:
        env.pop(k, None)
    return env


@pytest.fixture
def amount(secretfs, workdir, az, certs):
    """Factory: mounts azure-kv:SERVER with the client secret, on @server or the module's."""

    def start(*, options=(), env=None, server=None, secrets=()):
        srv = server or az
        e = az_env(workdir, srv, **(env or {}))
        leak = [*VALUES, *(s.encode() if isinstance(s, str) else s for s in secrets)]
        return secretfs(None, argv=lambda store, mnt: ["-o", f"ca_file={certs.ca}", *SEP,
                                                       *options, f"azure-kv:{srv.url}",
                                                       str(mnt)],
                        env=e, secrets=leak)

    return start


def start_failure(workdir, server, certs, *, options=(), env=None):
    """Runs the daemon, which must fail before mounting; returns its stderr."""
    mnt = workdir / f"mnt-fail-{time.monotonic_ns()}"
    mnt.mkdir()
    r = run_secretfs(["-f", *options, f"azure-kv:{server.url}", str(mnt)],
                     env=az_env(workdir, server, **(env or {})))
    assert r.returncode != 0, f"secretfs started:\n{r.stderr}"
    assert not is_mounted(mnt)
    assert CLIENT_SECRET not in r.stderr
    return r.stderr


def vendor(server, certs, ops):
    """What @azure/keyvault-secrets reads from @server: its results."""
    why = vendor_client_missing()
    if why:
        pytest.skip(why)
    return vendor_client(server.url, certs.ca, ops)[0]


def served(value):
    """A JSON object's key as the mount shows it (src/namespace.c)."""
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def mount_tree(root):
    files, dirs = {}, {}
    for dp, dn, fn in os.walk(root):
        rel = os.path.relpath(dp, root)
        rel = "" if rel == "." else rel
        dirs[rel] = set(dn) | set(fn)
        for f in fn:
            try:
                files[os.path.join(rel, f)] = read_file(os.path.join(dp, f))
            except OSError as e:
                files[os.path.join(rel, f)] = e.errno
    return files, dirs


# ---------------------------------------------------------------- the tree


def test_tree_matches_the_vendor_client(az, amount, certs, workdir):
    audit = workdir / "audit.log"
    d = amount(options=["-o", f"audit={audit}", "-o", "ttl=1h"])
    # What Azure's own client reads: every name, then every value it may read.
    names = vendor(az, certs, [{"op": "list"}])[0]["names"]
    got = vendor(az, certs, [{"op": "get", "name": n} for n in names])
    model_files, model_dirs = {}, {"": set()}
    for n, r in zip(names, got):
        if "error" in r:  # disabled, or denied to every token
            assert r["error"]["statusCode"] == 403
            continue
        rel = n.replace("--", "/")
        parts = rel.split("/")
        for i in range(len(parts)):
            model_dirs.setdefault("/".join(parts[:i]), set()).add(parts[i])
        if r["contentType"] == "application/x-pkcs12":
            model_files[rel] = base64.b64decode(r["value"])
            continue
        try:
            obj = json.loads(r["value"])
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            model_dirs[rel] = set(obj)
            for k, v in obj.items():
                model_files[f"{rel}/{k}"] = served(v)
        else:
            model_files[rel] = r["value"].encode()
    files, dirs = mount_tree(d.mnt)
    # A denied secret is listed (the listing cannot know) and reads EACCES; a disabled one
    # is left out of the listing.
    assert files.pop("denied") == errno.EACCES
    dirs[""].discard("denied")
    assert "disabled-one" not in dirs[""]
    assert files == model_files
    assert dirs == model_dirs
    assert files["tls-cert"] == PFX and files["prod/db/password"] == b"kv-pa55-w0rd"
    # The audit record carries the version, the last segment of the id.
    ver = [v for v in vendor(az, certs, [{"op": "get", "name": "prod--db"}])][0]["version"]
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    pw = next(r for r in recs if r["op"] == "open" and r["path"].endswith("prod/db/password"))
    assert pw["version"] == ver
    assert not [v for v in VALUES if v in audit.read_bytes()]


def test_listing_past_one_page_and_names(az, amount):
    d = amount(options=["-o", "ttl=1h"])
    assert sorted(os.listdir(d.mnt)) == ["denied", "fill", "prod", "single", "tls-cert"]
    # 36 names, 25 a page: two pages, the second through nextLink
    reqs = [r for r in az.get("/_test/requests")["requests"] if r["op"] == "GetSecrets"]
    assert [r["status"] for r in reqs] == [200, 200]
    assert "maxresults=25" in reqs[0]["query"] and "$skiptoken" in reqs[1]["query"]
    assert sorted(os.listdir(d.path("fill"))) == sorted(n[6:] for n in FILLER)
    assert read_file(d.path("fill/s29")) == b"kv-filler-value"
    # Names the listings do not hold are not found without a request.  (Each folder's
    # listing pages through the whole vault: Key Vault cannot list by prefix.)
    os.listdir(d.path("prod"))
    assert az.op("GetSecrets") == 6
    n = az.counts()["total"]
    assert read_err(d.path("prod/no_such")) == errno.ENOENT
    assert read_err(d.path("nope")) == errno.ENOENT
    assert az.counts()["total"] == n


def test_flat_tree_without_a_separator(az, secretfs, workdir, certs):
    e = az_env(workdir, az)
    d = secretfs(None, argv=lambda store, mnt: ["-o", f"ca_file={certs.ca}",
                                                f"azure-kv:{az.url}", str(mnt)],
                 env=e, secrets=VALUES)
    top = os.listdir(d.mnt)
    assert "prod--db" in top and "fill--s00" in top and "prod" not in top
    assert read_file(d.path("prod--db", "port")) == b"5432"


def test_errors_map_to_errno(az, amount):
    d = amount(options=["-o", "negative_ttl=0"])
    assert read_err(d.path("denied")) == errno.EACCES
    # A disabled secret is left out of listings, so it is not found; one disabled after the
    # listing was made answers 403 SecretDisabled: EACCES.
    assert read_err(d.path("disabled-one")) == errno.ENOENT
    assert read_err(d.path("prod/missing")) == errno.ENOENT
    az.post("/_test/secret/enabled", {"name": "prod--api-key", "enabled": False})
    assert read_err(d.path("prod/api-key")) == errno.EACCES
    d.wait_stderr("disabled secret")
    az.post("/_test/secret/enabled", {"name": "prod--api-key", "enabled": True})
    # A 401 that a new token does not cure: one refresh, one more try, then EACCES.
    tokens = az.counts()["tokens_issued"].get("client_secret", 0)
    az.fault(kind="status", status=401, op="GetSecret", name="^single$", count=2,
             code="Unauthorized", message="AKV10022: Invalid audience.")
    assert read_err(d.path("single")) == errno.EACCES
    assert az.counts()["tokens_issued"]["client_secret"] == tokens + 1
    assert az.reads("single") == 2
    d.wait_stderr("Unauthorized")
    # The daemon works on.
    assert read_file(d.path("prod/api-key")) == b"kv-api-key-plain-31"


def test_token_expiry_mid_run_is_refreshed(az, amount):
    d = amount(options=["-o", "ttl=1s"])
    assert read_file(d.path("single")) == b"kv-single-value-xyz"
    assert az.counts()["tokens_issued"] == {"client_secret": 1}
    # The vault stops taking the token: the read after the ttl gets a 401, a new token, and
    # the value.
    az.post("/_test/tokens/expire")
    time.sleep(1.2)
    d.wait_value("single", b"kv-single-value-xyz")
    wait_until(lambda: az.counts()["tokens_issued"].get("client_secret") == 2,
               what="a second token")

    def statuses():
        return [r["status"] for r in az.get("/_test/requests")["requests"]
                if r["op"] == "GetSecret"]

    # The read above may be the stale value (stale-while-revalidate) while the
    # refresh still runs: wait for its retry with the new token to be recorded.
    wait_until(lambda: statuses()[-1] == 200, what="a GetSecret sent again with the new token")
    assert 401 in statuses()
    # Reads go on with the new token: no third one, and no 401 after the refresh.
    seen = az.counts()["unauthorized"]
    for _ in range(3):
        time.sleep(1.1)
        assert read_file(d.path("single")) == b"kv-single-value-xyz"
    assert az.counts()["tokens_issued"]["client_secret"] == 2
    assert az.counts()["unauthorized"] == seen


def test_token_refreshed_before_it_expires(az, amount):
    # 303 s tokens: inside the 5-minute refresh window after 3 s.
    az.post("/_test/config", {"token_lifetime": 303})
    d = amount(options=["-o", "ttl=1s"])
    assert read_file(d.path("single")) == b"kv-single-value-xyz"
    time.sleep(3.5)
    d.wait_value("single", b"kv-single-value-xyz")
    wait_until(lambda: az.counts()["tokens_issued"].get("client_secret", 0) >= 2,
               what="a token fetched before the old one expired")
    assert az.counts()["unauthorized"] == 0


def test_workload_identity_rereads_the_token_file(az, amount, workdir):
    f = workdir / "azure-identity-token"
    f.write_text(FEDERATED_TOKEN + "\n")
    f.chmod(0o600)
    d = amount(options=["-o", "ttl=1s"], env={"AZURE_CLIENT_SECRET": None,
                                              "AZURE_CLIENT_ID": FEDERATED_CLIENT_ID,
                                              "AZURE_FEDERATED_TOKEN_FILE": f})
    assert read_file(d.path("single")) == b"kv-single-value-xyz"
    assert az.counts()["tokens_issued"] == {"workload": 1}
    # The kubelet rotates the file, and the old assertion stops working: the next token
    # request must send what the file holds now.
    new = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb3RhdGVkLXNhIn0."
    d.secrets.append(new.encode())
    az.post("/_test/federated", {"client_id": FEDERATED_CLIENT_ID, "assertion": new})
    f.write_text(new + "\n")
    az.post("/_test/tokens/expire")
    time.sleep(1.2)
    d.wait_value("single", b"kv-single-value-xyz")
    wait_until(lambda: az.counts()["tokens_issued"].get("workload") == 2, what="a new token")
    assert az.counts()["tokens_issued"] == {"workload": 2}
    token_reqs = [r for r in az.get("/_test/requests")["requests"] if r["op"] == "token"]
    assert [r["status"] for r in token_reqs] == [200, 200]  # the new assertion was taken
    # A file another user may write is refused, at the next token request.
    f.chmod(0o666)
    az.post("/_test/tokens/expire")
    time.sleep(1.2)
    assert read_err(d.path("prod/api-key")) == errno.EIO
    d.wait_stderr("federated token file")


def test_managed_identity_through_imds(az, amount):
    d = amount(env={"AZURE_CLIENT_SECRET": None, "AZURE_TENANT_ID": None,
                    "AZURE_CLIENT_ID": MI_CLIENT_ID,
                    "AZURE_POD_IDENTITY_AUTHORITY_HOST": az.metadata_url})
    assert read_file(d.path("single")) == b"kv-single-value-xyz"
    reqs = [r for r in az.get("/_test/requests")["requests"] if r["op"] == "imds"]
    assert len(reqs) == 1 and reqs[0]["metadata_header"] == "true"
    assert f"client_id={MI_CLIENT_ID}" in reqs[0]["query"]
    assert "resource=https%3A%2F%2Fvault.azure.net" in reqs[0]["query"]
    assert az.counts()["tokens_issued"] == {"imds": 1}


def test_wrong_ca_and_bad_credentials_are_refused(az, workdir, certs):
    err = start_failure(workdir, az, certs, options=["-o", f"ca_file={certs.rogue_ca}"])
    assert "certificate" in err.lower(), err
    err = start_failure(workdir, az, certs)  # the system's CAs: not our test CA
    assert "certificate" in err.lower(), err
    err = start_failure(workdir, az, certs, options=["-o", f"ca_file={certs.ca}"],
                        env={"AZURE_CLIENT_SECRET": "wrong-secret-value-1"})
    assert "invalid_client" in err and "AADSTS7000215" in err
    assert "wrong-secret-value-1" not in err
    err = start_failure(workdir, az, certs, options=["-o", f"ca_file={certs.ca}"],
                        env={"AZURE_TENANT_ID": None})
    assert "AZURE_TENANT_ID" in err
    err = start_failure(workdir, az, certs, options=["-o", f"ca_file={certs.ca}",
                                                     "-o", "name_separator=/"])
    assert "name_separator" in err
    assert az.counts()["tokens_issued"] == {}


def test_429_and_503_are_retried(az, amount):
    d = amount()
    az.fault(kind="status", status=429, op="GetSecret", name="^single$", count=1)
    az.fault(kind="status", status=503, op="GetSecret", name="^single$", count=1)
    assert read_file(d.path("single")) == b"kv-single-value-xyz"
    statuses = [r["status"] for r in az.get("/_test/requests")["requests"]
                if r["op"] == "GetSecret"]
    assert statuses == [429, 503, 200]
    # Past max_attempts it is EAGAIN, and the daemon goes on.
    az.fault(kind="status", status=503, op="GetSecret", name="^prod--api-key$")
    assert read_err(d.path("prod/api-key")) == errno.EAGAIN
    assert az.reads("prod--api-key") == 4  # the http layer's default of 4 attempts


def test_next_link_to_another_host_is_not_followed(az, amount):
    az.post("/_test/config", {"next_link_base": "https://attacker.invalid:443"})
    d = amount()
    with pytest.raises(OSError) as e:
        os.listdir(d.mnt)
    assert e.value.errno == errno.EIO
    d.wait_stderr("nextLink")
    assert az.op("GetSecrets") == 1
    reqs = az.get("/_test/requests")["requests"]
    assert all("attacker" not in (r["path"] + r["query"]) for r in reqs)


def test_single_flight(az, amount):
    """64 readers of a cold secret (three of its keys): one GetSecret."""
    d = amount(options=["-o", "ttl=60s"])
    os.listdir(d.path("prod"))
    az.fault(kind="latency", op="GetSecret", name="^prod--db$", latency_ms=300)
    want = {"password": b"kv-pa55-w0rd", "username": b"kv-user-7", "port": b"5432"}
    keys = [list(want)[i % 3] for i in range(64)]
    results = parallel_reads([d.path("prod/db", k) for k in keys])
    assert results == [want[k] for k in keys]
    assert az.reads("prod--db") == 1
    assert az.counts()["tokens_issued"] == {"client_secret": 1}


# ---------------------------------------------------------------- outages and slow servers


@pytest.fixture
def az_proc(certs, workdir):
    """A server of the test's own, which can be killed and started again on its port."""
    p = Azure(certs, workdir / "az-proc", admin_token=pysecrets.token_hex(16))
    yield p
    p.stop()


def test_outage_kill_and_restart(az_proc, amount, certs, workdir):
    ttl, stale_ttl, fetch_timeout = 1.0, 2.0, 1.0
    srv = az_proc
    d = amount(server=srv, options=["-o", "ttl=1s", "-o", "stale_ttl=2s",
                                    "-o", "fetch_timeout=1s", "-o", "max_attempts=2"])
    pw = d.path("prod/db/password")
    assert read_file(pw) == b"kv-pa55-w0rd"
    fetched = time.monotonic()
    port, token = srv.port, srv.admin_token
    srv.stop(signal.SIGKILL)
    time.sleep(max(0.0, fetched + ttl + 0.1 - time.monotonic()))
    got, took = timed_read(pw)
    assert got == b"kv-pa55-w0rd", f"not the stale value: {got!r}\n{d.stderr()}"
    assert took < fetch_timeout + 1.5 * TIME_SCALE
    errs = []

    def fails():
        t = time.monotonic()
        got, took = timed_read(pw)
        if isinstance(got, bytes):
            assert got == b"kv-pa55-w0rd"
            assert t < fetched + ttl + stale_ttl + 0.05, "served past its stale window"
            return False
        errs.append((got, took))
        return True

    wait_until(fails, stale_ttl + POLL_TIMEOUT, interval=0.1, what="the stale window's end")
    err, took = errs[0]
    assert err in UNREACHABLE, os.strerror(err)
    assert took < fetch_timeout + 1.5, f"an erroring read took {took:.2f}s"
    got, took = timed_read(d.path("single"))
    assert got in UNREACHABLE and took < fetch_timeout + 1.5, (got, took)
    assert "connection refused" in d.stderr().lower() or "couldn't connect" in \
        d.stderr().lower(), d.stderr()

    # Back on the same port (a new process: new tokens, so the old one gets a 401 first).
    new = Azure(certs, workdir / "az-proc2", port=port, admin_token=token)
    try:
        d.wait_value("prod/db/password", b"kv-pa55-w0rd")
        assert read_file(d.path("single")) == b"kv-single-value-xyz"
        assert new.counts()["tokens_issued"] == {"client_secret": 1}
    finally:
        new.stop()


def test_slow_server_past_the_deadline(az, amount):
    deadline, slack = 0.5, 1.0 * TIME_SCALE
    d = amount(options=["-o", "ttl=1s", "-o", "fetch_timeout=500ms"])
    pw = d.path("prod/db/password")
    assert read_file(pw) == b"kv-pa55-w0rd"
    fetched = time.monotonic()
    az.fault(kind="latency", op="GetSecret", latency_ms=3000)
    time.sleep(max(0.0, fetched + 1.1 - time.monotonic()))
    stale, stale_took = timed_read(pw)
    got, took = timed_read(d.path("single"))
    assert got in (errno.EAGAIN, errno.EIO, errno.ETIMEDOUT), got
    assert took < deadline + slack, f"the error took {took:.2f}s"
    az.admin.call("DELETE", "/_test/faults", {})
    d.wait_value("single", b"kv-single-value-xyz")
    assert stale == b"kv-pa55-w0rd"
    assert stale_took < deadline + slack


def test_cut_short_and_malformed_keep_the_stale_value(az, amount):
    d = amount(options=["-o", "ttl=1s", "-o", "max_attempts=1"])
    pw = d.path("prod/db/password")
    assert read_file(pw) == b"kv-pa55-w0rd"
    for kind in ("truncate", "malformed", "drop"):
        az.fault(kind=kind, op="GetSecret", name="^prod--db$")
        time.sleep(1.2)
        assert read_file(pw) == b"kv-pa55-w0rd", kind
        az.admin.call("DELETE", "/_test/faults", {})
    assert read_err(d.path("single")) == 0


# ---------------------------------------------------------------- where secrets must not be


def test_no_token_secret_or_value_in_logs_audit_metrics_or_proc(az, amount, workdir):
    audit, sock = workdir / "audit.log", workdir / "ctl.sock"
    d = amount(options=["-o", f"audit={audit}", "-o", f"control={sock}", "-o", "ttl=1s"])
    assert read_file(d.path("prod/db/password")) == b"kv-pa55-w0rd"
    assert read_err(d.path("denied")) == errno.EACCES
    az.post("/_test/tokens/expire")
    time.sleep(1.2)
    d.wait_value("prod/db/password", b"kv-pa55-w0rd")
    wait_until(lambda: az.counts()["tokens_issued"].get("client_secret") == 2,
               what="a second token")
    tokens = az.tokens()
    assert len(tokens) == 2
    d.secrets.extend(t.encode() for t in tokens)
    metrics = run_secretfs(["ctl", "--socket", str(sock), "metrics"])
    status = run_secretfs(["ctl", "--socket", str(sock), "status"])
    assert metrics.returncode == 0 and status.returncode == 0, metrics.stderr + status.stderr
    assert "secretfs_backend_requests_total" in metrics.stdout
    st = json.loads(status.stdout)
    assert json.dumps(st).count("client_secret") >= 1  # the method's name, not the secret
    blobs = {"stderr": d.stderr_bytes(), "audit": audit.read_bytes(),
             "metrics": metrics.stdout.encode(), "status": status.stdout.encode(),
             "environ": Path(f"/proc/{d.pid}/environ").read_bytes(),
             "cmdline": Path(f"/proc/{d.pid}/cmdline").read_bytes()}
    for what in [*VALUES, *(t.encode() for t in tokens)]:
        for where, blob in blobs.items():
            assert what not in blob, f"{what[:10]!r}... in the daemon's {where}"
    assert b"AZURE_CLIENT_SECRET=" not in blobs["environ"]
