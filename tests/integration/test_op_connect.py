"""
The 1Password Connect backend (op-connect) against
tests/servers/op_connect_server.py (in this process, over TLS on 127.0.0.1):
the tree (items as directories, fields as files, sections as
subdirectories) and its values equal what npm @1password/connect reads;
duplicate titles shown once with a warning naming both ids; unsafe names
hidden; revalidation with the item summary, the item read again only when
its version changed; the token from a file and from $CREDENTIALS_DIRECTORY;
429/503 retries; stale values over an outage; a wrong CA; 64 readers of a
cold key; and that no token or value reaches stderr, the audit log, ctl
status or the metrics.

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
from op_connect_server import OpConnectServer  # noqa: E402

VAULT = "Prod"
TWIN_A = "a" * 26  # the smaller id: the one shown
TWIN_Z = "z" * 26
SECTION = "sec1"
ITEMS = [
    {"title": "db", "sections": [{"id": SECTION, "label": "Admin"}, {"id": "bad", "label": ".."}],
     "fields": [
         {"label": "username", "value": "app-user-77"},
         {"label": "password", "value": "s3cr3t-op-pass"},
         {"label": "root password", "value": "root-pw-9090", "section": SECTION},
         {"label": "hidden-by-section", "value": "top-level-value", "section": "bad"},
         {"id": "extrafield", "value": "extra-value-42"},  # no label: named by its id
         {"id": "emptyfield"},                              # no label, no value: skipped
         {"label": "notes"},                                # a label, no value: empty
         {"label": "..", "value": "never-shown-dotdot"},
     ]},
    {"title": "api", "fields": [{"label": "key", "value": "abc-api-key-123"}]},
    {"title": "twin", "id": TWIN_Z, "fields": [{"label": "v", "value": "twin-zzz-value"}]},
    {"title": "twin", "id": TWIN_A, "fields": [{"label": "v", "value": "twin-aaa-value"}]},
    {"title": "a/b", "fields": [{"label": "x", "value": "slash-title-value"}]},
]
VALUES = [b"app-user-77", b"s3cr3t-op-pass", b"root-pw-9090", b"top-level-value",
          b"extra-value-42", b"abc-api-key-123", b"twin-zzz-value", b"twin-aaa-value",
          b"slash-title-value", b"never-shown-dotdot"]
NODE_CLIENT = REPO / "tests" / "servers" / "op_node_client.js"
NODE_MODULES = REPO / "tests" / "node" / "node_modules" / "@1password" / "connect"


@pytest.fixture(scope="module")
def op_server(certs):
    s = OpConnectServer(certs.server, certs.server_key)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def ops(op_server):
    op_server.reset()
    op_server.add_vault(VAULT)
    op_server.add_vault("Elsewhere")
    op_server.items = {}
    for it in ITEMS:
        op_server.items[(it["title"], it.get("id"))] = op_server.put_item(VAULT, **it)
    op_server.token = op_server.add_token()["token"]
    yield op_server
    op_server.clear_faults()


def item_id(server, title):
    return next(v["id"] for (t, _), v in server.items.items() if t == title)


def op_env(workdir, server, token=True, **extra):
    env = {k: v for k, v in sanitizer_env().items() if not k.startswith("OP_")}
    env["HOME"] = str(workdir)
    env["OP_CONNECT_HOST"] = server.url
    if token:
        env["OP_CONNECT_TOKEN"] = server.token
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def opmount(secretfs, workdir, certs):
    """Factory: mounts op-connect:VAULT[/PREFIX] on @server, the token in OP_CONNECT_TOKEN."""

    def start(server, prefix="", *, options=(), env=None, ca=True, token=True, vault=VAULT):
        opts = []
        if ca:
            opts += ["-o", f"ca_file={certs.ca if ca is True else ca}"]
        opts += list(options)
        src = f"op-connect:{vault}" + (f"/{prefix}" if prefix else "")
        d = secretfs(None, argv=lambda store, mnt: [*opts, src, str(mnt)],
                     env=op_env(workdir, server, token, **(env or {})),
                     secrets=list(VALUES) + [server.token.encode()])
        d.server = server
        return d

    return start


def assert_no_leaks(d, server, *files):
    tokens = [t.encode() for t in server.tokens]
    blobs = [d.stderr_bytes()] + [f.read_bytes() for f in files if f.exists()]
    for blob in blobs:
        for secret in VALUES + tokens:
            assert secret not in blob, secret[:10]


# ---------------------------------------------------------------- the tree


def test_tree_values_and_audit_equal_the_npm_client(ops, opmount, workdir, certs):
    audit = workdir / "audit.log"
    sock = workdir / "op.sock"
    d = opmount(ops, options=["-o", f"audit={audit}", "-o", f"control={sock}"])
    assert sorted(os.listdir(d.mnt)) == ["api", "db", "twin"]  # "a/b" is hidden
    assert sorted(os.listdir(d.path("db"))) == ["Admin", "extrafield", "hidden-by-section",
                                                "notes", "password", "username"]
    assert os.listdir(d.path("db", "Admin")) == ["root password"]
    assert read_file(d.path("db/password")) == b"s3cr3t-op-pass"
    assert read_file(d.path("db/Admin/root password")) == b"root-pw-9090"
    assert read_file(d.path("db/hidden-by-section")) == b"top-level-value"
    assert read_file(d.path("db/extrafield")) == b"extra-value-42"
    assert read_file(d.path("db/notes")) == b""
    assert read_err(d.path("db/emptyfield")) == errno.ENOENT
    assert read_err(d.path("db/nope")) == errno.ENOENT
    assert read_err(d.path("nope/x")) == errno.ENOENT

    # the item's version is the audit's version
    ops.put_item(VAULT, "api", id=item_id(ops, "api"),
                 fields=[{"label": "key", "value": "abc-api-key-123"}])  # version 2
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    key = next(r for r in recs if r["op"] == "open" and r["path"].endswith("api/key"))
    assert key["version"] == "2" and key["decision"] == "permit"

    status = run_secretfs(["ctl", "--socket", str(sock), "status"])
    metrics = run_secretfs(["ctl", "--socket", str(sock), "metrics"])
    assert status.returncode == 0 and metrics.returncode == 0
    assert '"vault": "Prod"' in status.stdout and '"OP_CONNECT_TOKEN"' in status.stdout
    for out in (status.stdout, metrics.stdout):
        for secret in VALUES + [ops.token.encode()]:
            assert secret.decode() not in out
    # the token was taken from the daemon's environment
    with open(f"/proc/{d.proc.pid}/environ", "rb") as f:
        assert ops.token.encode() not in f.read()

    if shutil.which("node") is None or not NODE_MODULES.is_dir():
        pytest.skip("npm @1password/connect not installed (make node-deps)")
    vid = next(i for i, v in ops.vaults.items() if v["name"] == VAULT)
    args = {"url": ops.url, "token": ops.token, "ops": [
        {"op": "vault_by_title", "title": VAULT},
        {"op": "get_item_by_title", "vault": vid, "title": "db"},
        {"op": "get_item", "vault": vid, "item": item_id(ops, "api")}]}
    r = subprocess.run(["node", str(NODE_CLIENT), json.dumps(args)], capture_output=True,
                       text=True, timeout=120,
                       env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca, NODE_NO_WARNINGS="1"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    assert res[0]["vaults"][0]["id"] == vid
    fields = {f["label"]: f["value"] for f in res[1]["fields"] if f["label"]}
    assert fields["password"].encode() == read_file(d.path("db/password"))
    assert fields["root password"].encode() == read_file(d.path("db/Admin/root password"))
    assert res[2]["fields"][0]["value"].encode() == read_file(d.path("api/key"))
    assert_no_leaks(d, ops, audit)


def test_duplicate_titles_shown_once_with_a_warning(ops, opmount):
    d = opmount(ops)
    assert os.listdir(d.path("twin")) == ["v"]
    assert read_file(d.path("twin/v")) == b"twin-aaa-value"
    d.wait_stderr(TWIN_A)
    line = next(ln for ln in d.stderr().splitlines() if TWIN_A in ln)
    assert TWIN_Z in line and "twin" in line
    assert d.stderr().count(TWIN_Z) == 1  # said once, not at every listing
    os.listdir(d.mnt)
    assert ops.item_count(TWIN_Z) == 0


def test_prefix_shows_one_item(ops, opmount):
    d = opmount(ops, "db")
    assert sorted(os.listdir(d.mnt)) == ["Admin", "extrafield", "hidden-by-section", "notes",
                                         "password", "username"]
    assert read_file(d.path("Admin/root password")) == b"root-pw-9090"
    s = opmount(ops, "db/Admin")
    assert os.listdir(s.mnt) == ["root password"]


def test_vault_by_id_and_unknown_vault(ops, opmount, workdir, certs):
    vid = next(i for i, v in ops.vaults.items() if v["name"] == VAULT)
    d = opmount(ops, vault=vid)
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    assert ops.endpoint_count("get_vault") == 1
    u = opmount(ops, vault="Nowhere")
    assert read_err(u.path("api/key")) == errno.ENOENT
    u.wait_stderr("no vault titled 'Nowhere'")


def test_revalidation_reads_the_item_only_when_its_version_changed(ops, opmount):
    d = opmount(ops, options=["-o", "ttl=0"])
    db = item_id(ops, "db")
    for _ in range(3):
        assert read_file(d.path("db/password")) == b"s3cr3t-op-pass"
    assert ops.item_count(db) == 1
    assert ops.endpoint_count("list_items") >= 3  # one summary per revalidation
    fields = [dict(f, value="rotated-op-pass") if f.get("label") == "password" else f
              for f in ITEMS[0]["fields"]]
    ops.put_item(VAULT, "db", id=db, fields=fields, sections=ITEMS[0]["sections"])
    d.secrets.append(b"rotated-op-pass")
    assert read_file(d.path("db/password")) == b"rotated-op-pass"
    assert ops.item_count(db) == 2


# ---------------------------------------------------------------- the token


def test_token_from_file_and_credentials_directory(ops, opmount, workdir):
    tf = workdir / "op-token"
    tf.write_text(ops.token + "\n")
    os.chmod(tf, 0o600)
    d = opmount(ops, token=False, options=["-o", f"op_token_file={tf}"])
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    creds = workdir / "creds"
    creds.mkdir(mode=0o700)
    (creds / "op-connect-token").write_text(ops.token)
    os.chmod(creds / "op-connect-token", 0o600)
    c = opmount(ops, token=False, env={"CREDENTIALS_DIRECTORY": creds})
    assert read_file(c.path("api/key")) == b"abc-api-key-123"
    assert_no_leaks(c, ops)


def test_startup_errors_and_a_refused_token(ops, opmount, workdir, certs):
    mnt = workdir / "mnt-fail"
    mnt.mkdir()
    base = ["-f", "-o", f"ca_file={certs.ca}"]
    r = run_secretfs([*base, f"op-connect:{VAULT}", str(mnt)],
                     env=op_env(workdir, ops, token=False))
    assert r.returncode != 0 and "OP_CONNECT_TOKEN" in r.stderr
    env = op_env(workdir, ops)
    del env["OP_CONNECT_HOST"]
    r = run_secretfs([*base, f"op-connect:{VAULT}", str(mnt)], env=env)
    assert r.returncode != 0 and "OP_CONNECT_HOST" in r.stderr
    r = run_secretfs([*base, 'op-connect:Pr"od', str(mnt)], env=op_env(workdir, ops))
    assert r.returncode != 0 and "VAULT" in r.stderr
    assert not is_mounted(mnt)
    d = opmount(ops, env={"OP_CONNECT_TOKEN": "forged-token"})
    # a listing refused is read as "may read, may not list" (DESIGN): nothing shows
    assert os.listdir(d.mnt) == []
    assert read_err(d.path("api/key")) in (errno.EACCES, errno.EISDIR)
    assert ops.counts()["statuses"].get("401", 0) >= 1
    assert "forged-token" not in d.stderr()


def test_plain_http_needs_insecure_and_warns(ops, opmount, workdir):
    plain = OpConnectServer(tls=False, config={"tokens": [{"token": ops.token}], "vaults": [
        {"name": VAULT, "items": [{"title": "api", "fields": [
            {"label": "key", "value": "abc-api-key-123"}]}]}]})
    plain.start()
    try:
        plain.token = ops.token
        mnt = workdir / "mnt-plain"
        mnt.mkdir()
        r = run_secretfs(["-f", f"op-connect:{VAULT}", str(mnt)], env=op_env(workdir, plain))
        assert r.returncode != 0 and "plain HTTP" in r.stderr and "insecure" in r.stderr
        assert not is_mounted(mnt)
        d = opmount(plain, ca=False, options=["-o", "insecure"])
        d.wait_stderr("plain HTTP (-o insecure)")
        assert read_file(d.path("api/key")) == b"abc-api-key-123"
        assert_no_leaks(d, plain)
    finally:
        plain.stop()


# ---------------------------------------------------------------- faults


def test_wrong_ca_is_refused(ops, opmount, certs):
    d = opmount(ops, ca=certs.rogue_ca, options=["-o", "max_attempts=1"])
    assert read_err(d.path("api/key")) in UNREACHABLE
    c = ops.counts()
    assert c["tls_handshake_failures"] >= 1 and c["total"] == 0


def test_429_and_503_are_retried(ops, opmount):
    d = opmount(ops)
    api = item_id(ops, "api")
    ops.add_fault("status", status=429, secret=f"^{api}$", count=1, retry_after=0)
    ops.add_fault("status", status=503, secret=f"^{api}$", count=1)
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    assert ops.item_count(api) == 3
    assert ops.counts()["faults_fired"] == 2


def test_outage_serves_stale_then_recovers(ops, opmount):
    d = opmount(ops, options=["-o", "ttl=0", "-o", "stale_ttl=1h", "-o", "max_attempts=1"])
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    ops.add_fault("status", status=503)
    assert read_file(d.path("api/key")) == b"abc-api-key-123"  # stale over a 503
    assert read_err(d.path("db/password")) in UNREACHABLE  # nothing to fall back on
    ops.add_fault("drop")
    assert read_file(d.path("api/key")) == b"abc-api-key-123"
    ops.clear_faults()
    assert read_file(d.path("db/password")) == b"s3cr3t-op-pass"


def test_64_readers_of_a_cold_key_make_one_call(ops, opmount):
    d = opmount(ops, options=["-o", "fetch_timeout=30s"])
    os.listdir(d.mnt)  # the vault and the listing are fetched before the readers start
    os.listdir(d.path("api"))
    ops.reset_counts()
    api = item_id(ops, "api")
    fid = ops.add_fault("hold", path="/items$")
    got = []
    threads = [threading.Thread(target=lambda: got.append(read_file(d.path("api/key"))))
               for _ in range(64)]
    for t in threads:
        t.start()
    wait_until(lambda: ops.counts()["in_flight"] == 1, POLL_TIMEOUT, what="the held summary")
    ops.clear_faults(fid)
    for t in threads:
        t.join(POLL_TIMEOUT)
    assert got == [b"abc-api-key-123"] * 64
    assert ops.endpoint_count("list_items") == 1
    assert ops.item_count(api) <= 1
    assert ops.counts()["in_flight_peak"] == 1
