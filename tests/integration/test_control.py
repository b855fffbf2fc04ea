"""
The admin control socket (-o control=PATH) and `secretfs ctl`: status JSON
with sane numbers that move with reads, Prometheus metrics (parsed here by a
small parser of the text exposition format: HELP/TYPE lines, label escaping,
histogram buckets), flush and refresh seen through the file store's backend
request counter, reload with a good and a broken policy, who may use the
socket (root, a configured admin; a non-admin is refused and counted), the
socket's mode and owner, a stale socket replaced, a foreign file left alone,
and the socket removed at exit.  A Vault mount shows its token's state and
expiry, never the token.

Real users come from users.py: sfst-alice (supplementary group sfst-app),
sfst-bob (no shared group), sfst-carol (primary group sfst-app).
"""

import datetime
import grp
import json
import os
import re
import socket
import stat

import pytest

from helpers import (
    STOP_TIMEOUT,
    force_unmount,
    run_secretfs,
    sanitizer_env,
    try_read,
    wait_until,
)
from policy_env import DOC, POLICY, VALUES, write_policy
from test_vault import ROOT, vault_server, vmount, vs  # noqa: F401  (fixtures)
from test_vault import VALUES as VAULT_VALUES
from users import run_as

STORE = {
    "prod/db": {"password": "ctl-db-password-1", "user": "ctl-db-user-1"},
    "prod/api-key": "ctl-api-key-value-1",
    "single": "ctl-single-value-1",
}

REQUIRED_FAMILIES = {
    "secretfs_cache_hits_total": "counter",
    "secretfs_cache_misses_total": "counter",
    "secretfs_stale_served_total": "counter",
    "secretfs_cache_entries": "gauge",
    "secretfs_cache_bytes": "gauge",
    "secretfs_backend_requests_total": "counter",
    "secretfs_backend_request_duration_seconds": "histogram",
    "secretfs_access_denied_total": "counter",
    "secretfs_audit_write_errors_total": "counter",
    "secretfs_uptime_seconds": "gauge",
    "secretfs_build_info": "gauge",
    "secretfs_control_denied_total": "counter",
    "secretfs_open_handles": "gauge",
    "secretfs_handles_refused_total": "counter",
}


# ---------------------------------------------------------------- helpers


def ctl(sock, *args, user=None):
    """`secretfs ctl --socket SOCK ARGS`, as @user (setpriv) or as root."""
    return run_secretfs(["ctl", "--socket", str(sock), *args],
                        prefix=user.setpriv() if user else ())


def ctl_ok(sock, *args):
    r = ctl(sock, *args)
    assert r.returncode == 0, f"ctl {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def wait_socket(sock, fs):
    """The socket comes up just after the mount (before readiness is reported): wait for it."""
    def up():
        assert fs.proc.poll() is None, f"secretfs exited:\n{fs.stderr()}"
        return os.path.lexists(sock) and stat.S_ISSOCK(os.lstat(sock).st_mode)

    wait_until(up, what=f"{sock} to appear")


def status(sock):
    return json.loads(ctl_ok(sock, "status"))


class Exposition:
    """A parsed Prometheus text exposition: help, types and samples."""

    def __init__(self):
        self.help = {}
        self.types = {}
        self.samples = []  # (name, {label: value}, float)

    def family_of(self, name):
        if name in self.types:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if base != name and self.types.get(base) == "histogram":
                return base
        return None

    def get(self, name, **labels):
        """The value of the one sample @name whose labels include @labels (0 if none)."""
        found = [v for n, l, v in self.samples
                 if n == name and all(l.get(k) == want for k, want in labels.items())]
        assert len(found) <= 1, f"{name} {labels}: {len(found)} samples"
        return found[0] if found else 0.0

    def series(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _label_value(line, i):
    """The escaped label value starting after the opening quote at @i; (value, index after)."""
    out = []
    while True:
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            nxt = line[i + 1]
            assert nxt in '\\"n', f"bad escape \\{nxt} in {line!r}"
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        assert c != "\n"
        out.append(c)
        i += 1


def parse_exposition(text):
    """Parses (and checks) the text format: every sample's family has a TYPE line before it."""
    e = Exposition()
    assert text.endswith("\n")
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, _, h = line[7:].partition(" ")
            assert _NAME.fullmatch(name), line
            assert name not in e.help, f"two HELP lines for {name}"
            e.help[name] = h.replace("\\n", "\n").replace("\\\\", "\\")
            continue
        if line.startswith("# TYPE "):
            name, _, t = line[7:].partition(" ")
            assert t in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in e.types, f"two TYPE lines for {name}"
            assert not any(n == name or e.family_of(n) == name for n, _, _ in e.samples), \
                f"TYPE {name} after its samples"
            e.types[name] = t
            continue
        assert line and not line.startswith("#"), f"unexpected line {line!r}"
        m = _NAME.match(line)
        assert m, line
        name, i, labels = m.group(0), m.end(), {}
        if line[i] == "{":
            i += 1
            while line[i] != "}":
                lm = _LABEL.match(line, i)
                assert lm and line[lm.end():lm.end() + 2] == '="', line
                value, i = _label_value(line, lm.end() + 2)
                assert lm.group(0) not in labels, f"label twice: {line}"
                labels[lm.group(0)] = value
                if line[i] == ",":
                    i += 1
            i += 1
        assert line[i] == " ", line
        value = line[i + 1:].split(" ")[0]
        v = float(value)  # "+Inf", "NaN" and exponents parse too
        fam = e.family_of(name)
        assert fam, f"sample {name} without a TYPE line"
        e.samples.append((name, labels, v))
    # Histograms: cumulative buckets ending in +Inf == _count, for every label set.
    for fam, t in e.types.items():
        if t != "histogram":
            continue
        groups = {}
        for l, v in e.series(fam + "_bucket"):
            key = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
            groups.setdefault(key, []).append((float(l["le"]), v))
        for key, buckets in groups.items():
            les = [b for b, _ in buckets]
            assert les == sorted(les) and les[-1] == float("inf"), f"{fam} {key}: {les}"
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{fam} {key}: not cumulative: {counts}"
            assert e.get(fam + "_count", **dict(key)) == counts[-1]
            assert e.get(fam + "_sum", **dict(key)) >= 0
    for name, t in e.types.items():
        if t == "counter":
            assert name.endswith("_total"), name
    return e


def metrics(sock):
    text = ctl_ok(sock, "metrics")
    return parse_exposition(text), text


def fetches(m, code="ok"):
    return m.get("secretfs_backend_requests_total", op="fetch", code=code)


@pytest.fixture
def ctl_fs(secretfs, workdir):
    """Factory: mounts @doc with -o control=<workdir>/ctlN.sock; returns (Daemon, socket)."""
    n = [0]

    def start(doc=STORE, options=(), **kw):
        n[0] += 1
        sock = workdir / f"ctl{n[0]}.sock"
        fs = secretfs(doc, options=["-o", f"control={sock}", *options], **kw)
        wait_socket(sock, fs)
        return fs, sock

    return start


def assert_no_values(text, values):
    for v in values:
        v = v if isinstance(v, bytes) else v.encode()
        assert len(v) < 6 or v not in text.encode(), f"a secret value in the output: {v[:10]!r}"


# ---------------------------------------------------------------- status


def test_status_reports_the_source_cache_and_uptime(ctl_fs):
    fs, sock = ctl_fs()
    s0 = status(sock)
    assert s0["version"] == re.search(r"secretfs (\S+)", run_secretfs(["--version"]).stdout)[1]
    assert s0["pid"] == fs.pid
    assert s0["mountpoint"] == str(fs.mnt)
    assert 0 <= s0["uptime_seconds"] < 600
    assert len(s0["sources"]) == 1
    src = s0["sources"][0]
    assert src["source"] == f"file:{fs.store}"
    assert src["backend"] == "file"
    assert src["path"] == str(fs.store)
    assert re.fullmatch(r"\d+\.\d{9}", src["version"]), src["version"]
    assert src["secrets"] == len(STORE)
    assert src["auth"] == {"method": "file permissions", "state": "ok"}
    for k in ("entries", "bytes", "hits", "misses", "stale_served", "errors", "fetches"):
        assert isinstance(s0["cache"][k], int) and s0["cache"][k] >= 0, k
    assert s0["access"] == {"policy": None, "denied": 0, "open_handles": 0, "handles_refused": 0}
    assert s0["audit"]["enabled"] is False
    assert s0["control"]["socket"] == str(sock)

    for _ in range(5):
        assert try_read(fs.path("prod/db/password")) == b"ctl-db-password-1"
    s1 = status(sock)
    assert s1["cache"]["hits"] >= s0["cache"]["hits"] + 4  # the first open may be the miss
    assert s1["sources"][0]["cache"]["entries"] >= 1
    assert s1["sources"][0]["cache"]["bytes"] >= len("ctl-db-password-1")
    assert s1["sources"][0]["backend_requests"]["fetch"]["ok"] >= 1
    assert s1["uptime_seconds"] >= s0["uptime_seconds"]
    assert s1["control"]["requests"] >= 2
    assert_no_values(json.dumps(s1, ensure_ascii=False), fs.secrets)


# ---------------------------------------------------------------- metrics


def test_metrics_parse_and_counters_grow(ctl_fs):
    fs, sock = ctl_fs()
    m0, _ = metrics(sock)
    for name, t in REQUIRED_FAMILIES.items():
        assert m0.types.get(name) == t, f"TYPE of {name}: {m0.types.get(name)}"
        assert m0.help.get(name), f"no HELP for {name}"
    assert m0.get("secretfs_build_info", version=s_version(sock)) == 1

    for rel in ("prod/db/password", "prod/db/user", "prod/api-key", "single"):
        assert try_read(fs.path(rel)) is not None
        assert try_read(fs.path(rel)) is not None
    m1, text = metrics(sock)
    src = f"file:{fs.store}"
    hits = ("secretfs_cache_hits_total", {"source": src, "cache": "values"})
    assert m1.get(hits[0], **hits[1]) > m0.get(hits[0], **hits[1])
    assert m1.get("secretfs_cache_misses_total", source=src, cache="values") >= 3
    assert fetches(m1) >= 3
    assert m1.get("secretfs_backend_request_duration_seconds_count", source=src,
                  op="fetch") == fetches(m1)
    assert m1.get("secretfs_cache_entries", source=src, cache="values") >= 3
    assert m1.get("secretfs_uptime_seconds") >= m0.get("secretfs_uptime_seconds")
    # Every counter only grows.
    for name, t in m0.types.items():
        if t != "counter":
            continue
        for labels, v in m0.series(name):
            assert m1.get(name, **labels) >= v, (name, labels)
    assert_no_values(text, fs.secrets)

    # A failed fetch is counted by its errno name.
    assert fetches(m1, "ENOENT") == 0
    assert ctl(sock, "refresh", "prod/nope").returncode == 1
    m2, _ = metrics(sock)
    assert fetches(m2, "ENOENT") >= 1
    codes = {l["code"] for l, _ in m2.series("secretfs_backend_requests_total")}
    assert codes == {"ok", "ENOENT"}, codes


def s_version(sock):
    return status(sock)["version"]


def test_label_values_are_escaped(secretfs, workdir):
    """A source path with a quote, a backslash and a newline comes back intact."""
    weird = workdir / 'we"ird\\dir\nname'
    weird.mkdir()
    sock = workdir / "ctl.sock"

    def argv(store, mnt):
        os.symlink(store, weird / "store.json")
        return ["-o", f"control={sock}", f"file:{weird}/store.json", str(mnt)]

    fs = secretfs(STORE, argv=argv)
    wait_socket(sock, fs)
    assert try_read(fs.path("single")) == b"ctl-single-value-1"
    m, text = metrics(sock)
    want = f"file:{weird}/store.json"
    assert m.get("secretfs_backend_requests_total", source=want, op="fetch", code="ok") >= 1
    assert '\\"ird\\\\dir\\nname' in text  # the raw escapes, as the format wants them
    # The newline never reached the output unescaped: every line is a comment or a sample.
    assert all(line.startswith(("# ", "secretfs_")) for line in text.split("\n")[:-1])
    assert status(sock)["sources"][0]["source"] == want


# ---------------------------------------------------------------- flush and refresh


def test_flush_makes_the_next_read_fetch_again(ctl_fs):
    fs, sock = ctl_fs()
    pw = fs.path("prod/db/password")
    assert try_read(pw) == b"ctl-db-password-1"
    n = fetches(metrics(sock)[0])
    assert try_read(pw) == b"ctl-db-password-1"
    assert fetches(metrics(sock)[0]) == n  # a hit

    r = ctl(sock, "flush", "prod/db/password")
    assert (r.returncode, r.stdout) == (0, "ok flushed prod/db (the secret that holds "
                                           "prod/db/password)\n"), r.stderr
    assert try_read(pw) == b"ctl-db-password-1"
    assert fetches(metrics(sock)[0]) == n + 1
    assert try_read(pw) == b"ctl-db-password-1"
    assert fetches(metrics(sock)[0]) == n + 1

    out = ctl_ok(sock, "flush")
    assert out.startswith("ok flushed everything: "), out
    assert status(sock)["sources"][0]["cache"]["entries"] == 0
    assert try_read(pw) == b"ctl-db-password-1"
    assert fetches(metrics(sock)[0]) == n + 2

    # A folder: everything cached under it.
    assert try_read(fs.path("prod/api-key")) == b"ctl-api-key-value-1"
    out = ctl_ok(sock, "flush", "/prod/")
    assert out.startswith("ok flushed prod: "), out
    assert status(sock)["sources"][0]["cache"]["entries"] == 0


def test_refresh_fetches_now_and_reports(ctl_fs):
    fs, sock = ctl_fs()
    assert try_read(fs.path("prod/db/user")) == b"ctl-db-user-1"
    n = fetches(metrics(sock)[0])
    out = ctl_ok(sock, "refresh", "prod/db/user")
    assert re.fullmatch(r"ok refreshed prod/db \(the secret that holds prod/db/user\) "
                        r"version \d+\.\d{9}\n", out), out
    assert fetches(metrics(sock)[0]) == n + 1
    assert try_read(fs.path("prod/db/user")) == b"ctl-db-user-1"
    assert fetches(metrics(sock)[0]) == n + 1  # the refresh filled the cache

    out = ctl_ok(sock, "refresh", "prod/api-key")
    assert re.fullmatch(r"ok refreshed prod/api-key version \d+\.\d{9}\n", out), out
    out = ctl_ok(sock, "refresh")
    assert out == "ok refreshed 2 secrets\n", out
    assert fetches(metrics(sock)[0]) == n + 4

    r = ctl(sock, "refresh", "prod/no-such")
    assert r.returncode == 1, r
    assert r.stderr.startswith("error: refresh prod/no-such: "), r.stderr
    assert "(ENOENT)" in r.stderr
    assert r.stdout == ""
    assert_no_values(out + r.stderr, fs.secrets)


def test_usage_and_connection_errors(ctl_fs, workdir):
    fs, sock = ctl_fs()
    for args in (["bogus"], ["status", "x"], ["reload", "now"], ["flush", "../etc"],
                 ["flush", ""], [], ["flush", "a", "b"]):
        r = ctl(sock, *args)
        assert r.returncode == 2, (args, r)
        assert "secretfs ctl: " in r.stderr, (args, r.stderr)
    r = run_secretfs(["ctl", "--help"])
    assert r.returncode == 0 and r.stdout.startswith("usage: secretfs ctl"), r
    r = ctl(workdir / "no-such.sock", "status")
    assert r.returncode == 2 and "cannot connect" in r.stderr, r
    assert "secretfs ctl" in run_secretfs(["--help"]).stdout


# ---------------------------------------------------------------- reload and access


def test_reload_reports_and_a_broken_policy_keeps_the_old_one(ctl_fs, workdir, agents):
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    fs, sock = ctl_fs(DOC, options=["-o", f"policy={policy}"])
    alice, bob = agents["alice"], agents["bob"]
    target = fs.path("team/alice")
    assert alice.read(target) == VALUES["team/alice"]
    assert bob.read(target) == "EACCES"

    out = ctl_ok(sock, "reload")
    assert out == f"ok reloaded the policy {policy}\n", out
    fs.wait_stderr(f"{policy}: policy reloaded")

    write_policy(policy, "permit user:sfst-bob team/*\npermit user:sfst-nosuch team/*\n")
    r = ctl(sock, "reload")
    assert r.returncode == 1, r
    assert r.stderr == (f"error: {policy}:2: unknown user 'sfst-nosuch'; "
                        "keeping the previous policy\n"), r.stderr
    assert alice.read(target) == VALUES["team/alice"]  # the old policy still decides
    assert bob.read(target) == "EACCES"
    assert status(sock)["access"]["denied"] >= 2
    m, _ = metrics(sock)
    assert m.get("secretfs_access_denied_total") >= 2

    write_policy(policy, "permit user:sfst-bob team/*\n")
    assert ctl_ok(sock, "reload") == f"ok reloaded the policy {policy}\n"
    assert bob.read(target) == VALUES["team/alice"]
    assert alice.read(target) == "EACCES"


def test_non_admins_are_refused_and_the_admin_is_served(ctl_fs, workdir, sfs_users):
    alice, bob, carol = sfs_users.alice, sfs_users.bob, sfs_users.carol
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    # carol is the admin: the socket is opened to her primary group, sfst-app.
    fs, sock = ctl_fs(DOC, options=["-o", f"policy={policy}", "-o", "control_admin=sfst-carol"])
    st = os.lstat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, sfs_users.app_gid)

    # alice is in sfst-app, so she can connect; the peer check refuses her.
    for args in (["status"], ["metrics"], ["flush"], ["reload"]):
        r = ctl(sock, *args, user=alice)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: permission denied\n"), r
    # bob cannot even connect.
    r = ctl(sock, "status", user=bob)
    assert r.returncode == 2 and "Permission denied" in r.stderr, r

    r = ctl(sock, "status", user=carol)
    assert r.returncode == 0, r
    s = json.loads(r.stdout)
    assert s["control"]["denied"] == 4
    assert s["access"]["policy"] == str(policy)
    r = ctl(sock, "refresh", "app/token", user=carol)
    assert r.returncode == 0 and r.stdout.startswith("ok refreshed app/token"), r
    m, _ = metrics(sock)
    assert m.get("secretfs_control_denied_total") == 4
    assert f"control: refused uid {alice.uid}" in fs.stderr()
    # The admin of the socket is no reader of secrets: the policy still decides.
    r = run_as(carol, ["/usr/bin/cat", str(fs.path("app/db/password"))])
    assert r.returncode != 0 and "Permission denied" in r.stderr


def test_without_an_admin_only_root_may_connect(ctl_fs, sfs_users):
    fs, sock = ctl_fs()
    st = os.lstat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o600 and (st.st_uid, st.st_gid) == (0, 0)
    r = ctl(sock, "status", user=sfs_users.alice)
    assert r.returncode == 2 and "Permission denied" in r.stderr, r
    assert ctl(sock, "status").returncode == 0


def test_an_admin_by_uid(ctl_fs, sfs_users):
    bob = sfs_users.bob
    fs, sock = ctl_fs(options=["-o", f"control_admin={bob.uid}"])
    st = os.lstat(sock)
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, bob.gid)
    assert grp.getgrgid(st.st_gid).gr_name == "sfst-bob"
    r = ctl(sock, "metrics", user=bob)
    assert r.returncode == 0 and "# TYPE secretfs_cache_hits_total counter" in r.stdout, r


# ---------------------------------------------------------------- the socket file


def test_socket_is_removed_at_exit(ctl_fs):
    fs, sock = ctl_fs()
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert force_unmount(fs.mnt)
    fs.proc.wait(timeout=STOP_TIMEOUT)
    assert fs.proc.returncode == 0, fs.stderr()
    assert not os.path.lexists(sock)


def test_a_stale_socket_is_replaced(ctl_fs, workdir):
    sock = workdir / "ctl1.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # bound, never listening, then closed: what a crash leaves
    s.close()
    fs, got = ctl_fs()
    assert got == sock
    # It was there before the daemon: wait until the daemon's own answers.
    wait_until(lambda: ctl(sock, "status").returncode == 0, what="the new socket to answer")
    assert status(sock)["pid"] == fs.pid


def test_a_file_in_the_way_is_not_replaced(workdir):
    sock = workdir / "ctl.sock"
    sock.write_text("someone's file\n")
    store = workdir / "store.json"
    store.write_text(json.dumps(STORE))
    os.chmod(store, 0o600)
    mnt = workdir / "mnt"
    mnt.mkdir()
    r = run_secretfs(["-f", "-o", f"control={sock}", f"file:{store}", str(mnt)])
    assert r.returncode == 1, r
    assert f"control socket {sock}: exists and is not a socket" in r.stderr
    assert sock.read_text() == "someone's file\n"
    force_unmount(mnt)


def test_a_live_socket_is_not_taken_over(ctl_fs, workdir):
    fs, sock = ctl_fs()
    store = workdir / "store-b.json"
    store.write_text(json.dumps(STORE))
    os.chmod(store, 0o600)
    mnt = workdir / "mnt-b"
    mnt.mkdir()
    r = run_secretfs(["-f", "-o", f"control={sock}", f"file:{store}", str(mnt)])
    assert r.returncode == 1, r
    assert "another process is serving it" in r.stderr
    assert status(sock)["pid"] == fs.pid  # the first daemon keeps it
    force_unmount(mnt)


def test_control_auto_uses_the_runtime_directory(secretfs, workdir):
    rt = workdir / "rt"
    rt.mkdir()
    env = dict(sanitizer_env(), RUNTIME_DIRECTORY=f"{rt}:/nonexistent")
    fs = secretfs(STORE, options=["-o", "control=auto"], env=env)
    sock = rt / "secretfs.sock"
    wait_socket(sock, fs)
    assert status(sock)["pid"] == fs.pid
    # The client finds it the same way.
    r = run_secretfs(["ctl", "status"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["pid"] == fs.pid, r


# ---------------------------------------------------------------- Vault: the token's state


def test_vault_status_shows_the_token_state_not_the_token(vs, vmount, workdir):
    tok = vs.create_token(ttl=3600, renewable=True)["token"]
    sock = workdir / "vault-ctl.sock"
    d = vmount(vs, token=tok, options=["-o", f"control={sock}"])
    wait_socket(sock, d)
    assert try_read(d.path("app/db/password")) == b"s3cr3t-pa55word"
    r = ctl(sock, "status")
    assert r.returncode == 0, r
    assert tok not in r.stdout and ROOT not in r.stdout
    src = json.loads(r.stdout)["sources"][0]
    assert src["backend"] == "vault"
    assert src["address"] == vs.url and src["mount"] == "secret" and src["kv_version"] == 2
    auth = src["auth"]
    assert auth["method"] == "token" and auth["state"] == "ok" and auth["renewable"] is True
    expires = datetime.datetime.strptime(auth["token_expires"], "%Y-%m-%dT%H:%M:%SZ")
    left = (expires.replace(tzinfo=datetime.timezone.utc)
            - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert 3000 < left <= 3601, auth
    assert 3000 < auth["token_ttl_seconds"] <= 3600
    m, text = metrics(sock)
    assert m.get("secretfs_backend_requests_total", op="fetch", code="ok") >= 1
    assert tok not in text
    assert_no_values(r.stdout + text, VAULT_VALUES)


def test_vault_root_token_never_expires(vs, vmount, workdir):
    sock = workdir / "vault-ctl.sock"
    wait_socket(sock, vmount(vs, options=["-o", f"control={sock}"]))
    auth = status(sock)["sources"][0]["auth"]
    assert auth["token_expires"] is None and auth["state"] == "ok", auth


def test_refresh_a_folder(vs, vmount, workdir):
    """
    `ctl refresh FOLDER` works as it does for a secret: the folder's listing
    is fetched again now (a secret added to the store shows at once, with no
    further LIST), and so is every value cached under it.  A folder that does
    not exist is an error.
    """
    sock = workdir / "vault-ctl.sock"
    d = vmount(vs, options=["-o", f"control={sock}", "-o", "ttl=300"])
    wait_socket(sock, d)
    lists = lambda: vs.secret_count("secret/app/", "list")  # noqa: E731
    gets = lambda: vs.secret_count("secret/app/db", "read")  # noqa: E731
    assert sorted(os.listdir(d.path("app"))) == ["api-key", "db"]  # listed, nothing read
    assert lists() == 1 and gets() == 0

    vs.put_secret("secret", "app/new", {"v": "a-new-secret-value"})
    assert sorted(os.listdir(d.path("app"))) == ["api-key", "db"]  # the cached listing
    out = ctl_ok(sock, "refresh", "app")
    assert out == "ok refreshed app: a listing of 3 entries, 0 secrets\n", out
    assert lists() == 2
    assert sorted(os.listdir(d.path("app"))) == ["api-key", "db", "new"]
    assert lists() == 2  # the refresh filled the cache

    assert try_read(d.path("app/db/password")) == b"s3cr3t-pa55word"
    assert gets() == 1
    out = ctl_ok(sock, "refresh", "/app/")
    assert out == "ok refreshed app: a listing of 3 entries, 1 secret\n", out
    assert (lists(), gets()) == (3, 2)

    # A secret that is also a folder: the secret, as before, and its folder.
    assert sorted(os.listdir(d.path("foo"))) == ["bar", "self"]
    out = ctl_ok(sock, "refresh", "foo")
    assert re.fullmatch(r"ok refreshed foo version \d+; a listing of 1 entry\n", out), out

    r = ctl(sock, "refresh", "no-such-folder")
    assert r.returncode == 1, r
    assert r.stderr.startswith("error: refresh no-such-folder: "), r.stderr
    assert "(ENOENT)" in r.stderr
    assert_no_values(out + r.stdout + r.stderr, [*VAULT_VALUES, b"a-new-secret-value"])
