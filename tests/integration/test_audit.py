"""
The audit log (-o audit=FILE|stderr|syslog): exactly one JSON record per
decision (each open and each listing), every field checked against what the
test did; a file target created 0600 and reopened on SIGHUP after a rename;
syslog through a private /dev/log; and no secret value in any of it.
"""

import base64
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from helpers import (
    CMD_TIMEOUT,
    MIN_LEAK_CHECK_LEN,
    POLL_TIMEOUT,
    SECRETFS_BIN,
    force_unmount,
    is_mounted,
    kill_pids,
    pids_serving,
    run_secretfs,
    sanitizer_env,
    sanitizer_reports,
    secret_values,
    session_mounts,
    wait_until,
    write_store,
)
from policy_env import DOC, EACCES, POLICY, VALUES, write_policy
from users import own_exe

FIELDS = ["time", "uid", "gid", "pid", "exe", "exe_dev", "exe_ino", "op", "path", "source",
          "decision", "rule", "errno", "cache", "version"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SECRETS = [v for v in secret_values(DOC) if len(v) >= MIN_LEAK_CHECK_LEN]


def assert_no_secrets(data, where):
    if isinstance(data, str):
        data = data.encode()
    leaked = [s for s in SECRETS if s in data]
    assert not leaked, f"secret values in {where}: {[s[:8] for s in leaked]}"


@pytest.fixture(autouse=True)
def no_secrets_in_audit_files(workdir):
    """After each test: no secret value in any audit file it wrote, rotated ones included."""
    yield
    for p in sorted(workdir.rglob("audit*")):
        if p.is_file() and not p.is_symlink():
            assert_no_secrets(p.read_bytes(), p)


def parse_records(text, where):
    """Every line a JSON object with exactly FIELDS, in that order."""
    recs = []
    for n, line in enumerate(text.splitlines(keepends=True), 1):
        assert line.endswith("\n"), f"{where}:{n}: no newline at the end: {line!r}"
        rec = json.loads(line)
        assert list(rec) == FIELDS, f"{where}:{n}: fields {list(rec)}"
        recs.append(rec)
    return recs


def file_records(path):
    try:
        data = Path(path).read_text()
    except FileNotFoundError:
        return []
    return parse_records(data, path)


def check_times(recs, t0, t1):
    """RFC 3339 UTC with microseconds, within [t0, t1], in order; then dropped from @recs."""
    prev = None
    for r in recs:
        t = r.pop("time")
        assert TIME_RE.match(t), t
        ts = datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        assert t0 - 0.001 <= ts <= t1 + 0.001, (t, t0, t1)
        assert prev is None or ts >= prev, "records out of order"
        prev = ts
    return recs


def store_version(store):
    ns = os.stat(store).st_mtime_ns
    return f"{ns // 10**9}.{ns % 10**9:09d}"


class Expect:
    """Builds the records a mount must write."""

    def __init__(self, fs, exe=None):
        self.fs = fs
        self.exe = exe or own_exe()
        self.source = f"file:{fs.store}"
        self.version = store_version(fs.store)

    def __call__(self, who, op, rel, line=None, permit=False, *, pid=None, exe=None):
        u = who.user
        exe = exe or self.exe
        st = os.stat(exe)  # the binary the record names, by device and inode
        return {
            "uid": u.uid, "gid": u.gid, "pid": pid or who.pid, "exe": exe,
            "exe_dev": st.st_dev, "exe_ino": st.st_ino,
            "op": op, "path": rel, "source": self.source,
            "decision": "permit" if permit else "deny",
            "rule": f"{self.fs.policy}:{line}" if line else None,
            "errno": 0 if permit else 13,
            "cache": "hit" if permit and op == "open" else None,
            "version": self.version if permit and op == "open" else None,
        }


def do(agent, op, fs, rel):
    p = fs.path(rel) if rel else fs.mnt
    return agent.read(p) if op == "open" else agent.listdir(p)


# ---------------------------------------------------------------- a file target


def test_one_record_per_decision(policy_fs, agents, workdir, sfs_users):
    audit = workdir / "audit.log"
    assert not audit.exists()
    fs = policy_fs(options=["-o", f"audit={audit}"])
    assert file_records(audit) == []  # mounting decides nothing
    alice, bob, carol, root = (agents[w] for w in ("alice", "bob", "carol", "root"))
    e = Expect(fs)
    t0 = time.time()
    script = [
        # (who, op, path, outcome, deciding line, permit)
        (alice, "open", "app/token", VALUES["app/token"], 3, True),
        (bob, "open", "app/token", EACCES, None, False),
        (carol, "open", "app/db/password", EACCES, 4, False),
        (carol, "open", "app/db/user", VALUES["app/db/user"], 3, True),
        (alice, "list", "app/db", ["password", "user"], 3, True),
        (bob, "list", "app", EACCES, None, False),
        (bob, "list", "", ["public", "team"], 6, True),
        (root, "open", "ops/root-key", VALUES["ops/root-key"], 7, True),
        (root, "open", "team/alice", EACCES, None, False),
        (root, "list", "ops", ["root-key"], 7, True),
        (bob, "open", "team/bob", VALUES["team/bob"], 6, True),
        (alice, "open", "team/bob", EACCES, None, False),
        (bob, "open", "tools/cat-only", EACCES, None, False),  # exe= says cat, this is python
        (alice, "open", "tools/cat-only", VALUES["tools/cat-only"], 9, True),
        (alice, "open", "app/token", VALUES["app/token"], 3, True),  # again: again a record
    ]
    want = []
    for n, (who, op, rel, outcome, line, permit) in enumerate(script):
        assert do(who, op, fs, rel) == outcome, (n, who.user.name, op, rel)
        want.append(e(who, op, rel, line, permit))
        if n == 3:
            # no open, no open record: stat, access(2), a name that does not exist
            assert alice.stat(fs.path("app/token"))[0] == sfs_users.alice.uid
            assert bob.access(fs.path("team/alice")) is False
            assert root.read(fs.path("app/missing")) == "ENOENT"
            assert alice.listdir(fs.path("nope")) == "ENOENT"
    # cat, run as bob: the exe= rule applies; pid and exe are cat's
    p = subprocess.Popen([*sfs_users.bob.setpriv(), "/usr/bin/cat", str(fs.path("tools/cat-only"))],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=CMD_TIMEOUT)
    assert (p.returncode, out, err) == (0, VALUES["tools/cat-only"], b"")
    want.append(e(bob, "open", "tools/cat-only", 8, True, pid=p.pid, exe="/usr/bin/cat"))

    wait_until(lambda: len(file_records(audit)) >= len(want), what=f"{len(want)} records")
    t1 = time.time()
    got = check_times(file_records(audit), t0, t1)
    # Denied lookups are recorded too, once per (uid, path), but only when the
    # kernel asks: it shares looked-up names between uids (test_exposure.py).
    lookups = [r for r in got if r["op"] == "lookup"]
    got = [r for r in got if r["op"] != "lookup"]
    assert all(r["decision"] == "deny" for r in lookups), lookups
    assert len({(r["uid"], r["path"]) for r in lookups}) == len(lookups), lookups
    assert len(got) == len(want), "\n".join(json.dumps(r) for r in got)
    for n, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"record {n}"


def test_cache_state_and_failed_fetch_in_records(policy_fs, agents, workdir):
    """
    cache is the cache's answer for a permitted open: "miss" with ttl=0;
    "negative" for a secret remembered as gone.  A permitted open that fails
    to fetch is still a permit, with the errno the caller got.
    """
    alice = agents["alice"]
    audit = workdir / "audit-ttl0.log"
    fs = policy_fs(options=["-o", f"audit={audit}", "-o", "ttl=0"])
    e = Expect(fs)
    for _ in range(2):
        assert alice.read(fs.path("app/token")) == VALUES["app/token"]
    want = e(alice, "open", "app/token", 3, True)
    want["cache"] = "miss"
    assert [{k: v for k, v in r.items() if k != "time"} for r in file_records(audit)] == [want] * 2

    # attr_timeout=1h: the kernel keeps the entry, so opens reach the daemon after the
    # secret is gone from the store, and the daemon answers them.
    audit = workdir / "audit-gone.log"
    fs = policy_fs(options=["-o", f"audit={audit}", "-o", "attr_timeout=1h"])
    e = Expect(fs)
    assert alice.read(fs.path("team/alice")) == VALUES["team/alice"]
    doc = {k: v for k, v in DOC.items() if k != "team/alice"}
    fs.replace_store(doc)
    fs.wait_stderr("store changed")
    got = [alice.read(fs.path("team/alice")) for _ in range(3)]
    assert got == ["ENOENT"] * 3
    recs = [{k: v for k, v in r.items() if k != "time"} for r in file_records(audit)]
    assert len(recs) == 4, recs
    assert recs[0] == e(alice, "open", "team/alice", 5, True)
    gone = e(alice, "open", "team/alice", 5, True)
    gone.update(errno=2, version=None)
    # the fetch that finds it gone: no cache answer to speak of (or a miss)
    assert recs[1] == {**gone, "cache": recs[1]["cache"]} and recs[1]["cache"] in (None, "miss")
    assert recs[2:] == [{**gone, "cache": "negative"}] * 2


def test_audit_file_is_0600_and_reopened_after_logrotate(policy_fs, agents, workdir):
    audit = workdir / "audit.log"
    rotated = workdir / "audit.log.1"
    old_umask = os.umask(0)  # the daemon inherits it: 0600 must not depend on it
    try:
        fs = policy_fs(options=["-o", f"audit={audit}"])
    finally:
        os.umask(old_umask)
    assert audit.exists() and (audit.stat().st_mode & 0o7777) == 0o600
    assert audit.stat().st_uid == 0
    alice, bob, root = agents["alice"], agents["bob"], agents["root"]
    e = Expect(fs)
    done = []  # every record the daemon must have written, in order

    def op(who, rel, line, permit):
        want = VALUES[rel] if permit else EACCES
        assert who.read(fs.path(rel)) == want
        done.append(e(who, "open", rel, line, permit))

    op(alice, "team/alice", 5, True)
    os.rename(audit, rotated)  # what logrotate does (no copytruncate)
    op(bob, "team/alice", None, False)  # still goes to the renamed file
    assert not audit.exists()
    assert len(file_records(rotated)) == 2

    os.kill(fs.pid, signal.SIGHUP)

    def reopened():
        op(root, "public/motd", 2, True)
        return len(file_records(audit)) > 0

    wait_until(reopened, what="records in the new audit file after SIGHUP")
    assert (audit.stat().st_mode & 0o7777) == 0o600
    n_old, n_new = len(file_records(rotated)), len(file_records(audit))
    op(alice, "team/alice", 5, True)
    op(bob, "team/alice", None, False)
    op(alice, "app/token", 3, True)
    old, new = file_records(rotated), file_records(audit)
    assert len(old) == n_old, "records still go to the renamed file"
    assert len(new) == n_new + 3
    # nothing lost, nothing doubled, across the switch
    t1 = time.time()
    both = [{k: v for k, v in r.items() if k != "time"} for r in old + new]
    assert both == done
    check_times(old + new, 0, t1)


def test_reopen_refuses_a_symlink_and_keeps_logging(policy_fs, agents, workdir):
    """A symlink put where the log was is not followed on SIGHUP; the old file goes on."""
    audit = workdir / "audit.log"
    rotated = workdir / "audit.log.1"
    victim = workdir / "victim"
    victim.write_bytes(b"untouched\n")
    fs = policy_fs(options=["-o", f"audit={audit}"])
    alice = agents["alice"]
    assert alice.read(fs.path("team/alice")) == VALUES["team/alice"]
    os.rename(audit, rotated)
    audit.symlink_to(victim)
    os.kill(fs.pid, signal.SIGHUP)
    fs.wait_stderr(f"audit log: {audit}: refusing a symbolic link as the audit log")
    assert alice.read(fs.path("team/alice")) == VALUES["team/alice"]
    assert victim.read_bytes() == b"untouched\n"
    assert len(file_records(rotated)) == 2
    assert audit.is_symlink()


@pytest.fixture
def tiny_tmpfs(workdir):
    """A 12 KiB tmpfs in the workdir, to run out of space on; detached at the end."""
    d = workdir / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k,mode=0700", "sfst-tiny", str(d)],
                   check=True, timeout=CMD_TIMEOUT)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], timeout=CMD_TIMEOUT)


def test_full_disk_fails_no_read_and_leaves_no_broken_line(tiny_tmpfs, policy_fs, agents):
    """
    With the log's filesystem full, reads go on and the daemon says so on its
    log.  A record that fit only in part must not leave a fragment that the
    next record, once there is room again, is glued to: every line parses.
    """
    filler = tiny_tmpfs / "filler"
    filler.write_bytes(b"x" * 4096)  # one page, to free later
    audit = tiny_tmpfs / "audit.log"
    fs = policy_fs(options=["-o", f"audit={audit}"])
    alice = agents["alice"]
    n = 0
    while "records could not be written" not in fs.stderr():
        assert alice.read(fs.path("app/token")) == VALUES["app/token"]
        n += 1
        assert n < 200, "the audit file never filled up"
    for _ in range(5):  # the log is full: reads still succeed
        assert alice.read(fs.path("app/token")) == VALUES["app/token"]
    os.unlink(filler)
    for _ in range(3):
        assert alice.read(fs.path("app/token")) == VALUES["app/token"]
    lines = audit.read_text().splitlines(keepends=True)
    bad = []
    for i, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except ValueError:
            glued = line.count('{"time":')
            bad.append(f"line {i} ({glued} record starts): {line[:60]!r}...{line[-60:]!r}")
    assert not bad, "audit lines that are not JSON:\n" + "\n".join(bad)
    assert lines and all(l.endswith("\n") for l in lines)
    e = Expect(fs)
    assert {k: v for k, v in json.loads(lines[-1]).items() if k != "time"} == \
        e(alice, "open", "app/token", 3, True)


def test_odd_paths_stay_one_json_line(secretfs, workdir, sfs_users):
    doc = {
        "odd/multi\nline": "odd-value-newline",
        'odd/quote"back\\slash': "odd-value-quote",
        "odd/tab\tand\u0001ctl": "odd-value-control",
        "odd/日本語-ü": "odd-value-unicode",
    }
    policy = workdir / "odd.conf"
    write_policy(policy, "permit user:root odd/*\n")
    audit = workdir / "audit.log"
    fs = secretfs(doc, options=["-o", f"policy={policy}", "-o", f"audit={audit}"])
    for rel, value in doc.items():
        assert Path(fs.path(rel)).read_bytes() == value.encode()
    text = audit.read_text()
    assert text.count("\n") == len(doc)
    recs = parse_records(text, audit)
    assert [r["path"] for r in recs] == list(doc)
    assert all(r["decision"] == "permit" and r["rule"] == f"{policy}:1" for r in recs)


def test_audit_to_stderr(policy_fs, agents):
    fs = policy_fs(options=["-o", "audit=stderr"])
    alice, bob = agents["alice"], agents["bob"]
    e = Expect(fs)
    t0 = time.time()
    assert alice.read(fs.path("app/token")) == VALUES["app/token"]
    assert bob.read(fs.path("app/token")) == EACCES
    assert bob.listdir(fs.path("team")) == ["bob"]
    want = [
        e(alice, "open", "app/token", 3, True),
        e(bob, "open", "app/token", None, False),
        e(bob, "list", "team", 6, True),
    ]
    text = fs.wait_stderr('"op":', count=len(want))
    lines = [l + "\n" for l in text.splitlines() if l.startswith("{")]
    got = check_times(parse_records("".join(lines), "stderr"), t0, time.time())
    assert got == want
    # the daemon's own messages stay plain text lines
    assert all(l.startswith("secretfs: ") or l.startswith("{") for l in text.splitlines()), text


# ---------------------------------------------------------------- syslog


SYSLOG_RE = re.compile(
    r"^<(?P<pri>\d+)>(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
    r"(?P<ident>[^:\[ ]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$", re.S)
LOG_AUTHPRIV_INFO = (10 << 3) | 6


def test_audit_to_syslog(workdir, sfs_users):
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) is missing (util-linux): no private /dev/log for the syslog test")
    store = workdir / "store.json"
    write_store(store, DOC)
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    mnt = workdir / "mnt"
    mnt.mkdir()
    scratch = workdir / "ns"
    scratch.mkdir()
    alice, bob = sfs_users.alice, sfs_users.bob
    ju = lambda u: {"uid": u.uid, "gid": u.gid, "groups": u.groups}  # noqa: E731
    actions = [
        # (user or None for root, op, path, outcome, line, permit)
        (None, "read", "public/motd", VALUES["public/motd"], 2, True),
        (alice, "read", "app/token", VALUES["app/token"], 3, True),
        (bob, "read", "app/token", EACCES, None, False),
        (bob, "list", "app", EACCES, None, False),
        (alice, "list", "team", ["alice"], 5, True),
    ]
    cfg = {
        "bin": SECRETFS_BIN, "env": sanitizer_env(), "store": str(store), "policy": str(policy),
        "mnt": str(mnt), "scratch": str(scratch), "host_mntns": os.readlink("/proc/self/ns/mnt"),
        "timeout": POLL_TIMEOUT * 2,
        "actions": [{"user": ju(u) if u else None, "op": op, "path": str(mnt / rel)}
                    for u, op, rel, *_ in actions],
    }
    t0 = time.time()
    p = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "/usr/bin/python3",
         str(Path(__file__).with_name("syslog_capture.py")), json.dumps(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=POLL_TIMEOUT * 3)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"the syslog capture hung:\n{err}")
    finally:
        assert not is_mounted(mnt)  # it lived in the private namespace only
    if p.returncode != 0 and "unshare failed" in err:
        pytest.skip(f"no private mount namespace here: {err.strip()}")
    assert p.returncode == 0, err
    res = json.loads(out)
    assert res["rc"] == 0, res["stderr"]
    assert not sanitizer_reports(res["stderr"]), res["stderr"]
    assert_no_secrets(res["stderr"], "the daemon's stderr")
    assert_no_secrets("".join(res["messages"] + res["extra"]), "syslog")
    assert '"op":' not in res["stderr"], "audit records went to stderr, not syslog"

    root = NS(name="root", uid=0, gid=0)
    e = Expect(NS(store=store, policy=policy))
    want = []
    assert len(res["results"]) == len(actions)
    for (u, op, rel, outcome, line, permit), r in zip(actions, res["results"]):
        o = r["outcome"]
        got_outcome = base64.b64decode(o["data"]) if "data" in o else o.get("errno", o.get("names"))
        assert got_outcome == outcome, (u and u.name, op, rel, o)
        want.append(e(NS(user=u or root, pid=r["pid"]), "open" if op == "read" else "list", rel,
                      line, permit))
    assert res["extra"] == [], res["extra"]
    recs = []
    for m in res["messages"]:
        mm = SYSLOG_RE.match(m)
        assert mm, m
        assert int(mm["pri"]) == LOG_AUTHPRIV_INFO, m
        assert mm["ident"] == "secretfs", m
        recs.append(mm["msg"] + "\n")
    got = check_times(parse_records("".join(recs), "syslog"), t0, time.time())
    assert got == want


# ---------------------------------------------------------------- start-up errors


def _audit_start_failure(workdir, audit, needle, *, foreground=True):
    store = workdir / "store.json"
    write_store(store, DOC)
    mnt = workdir / "mnt"
    mnt.mkdir()
    before = session_mounts(mnt)
    args = [*(["-f"] if foreground else []), "-o", f"audit={audit}", f"file:{store}", str(mnt)]
    r = run_secretfs(args)
    mounted = is_mounted(mnt)
    if mounted or r.returncode == 0:
        force_unmount(mnt)
        kill_pids(pids_serving(str(mnt)))
    assert not mounted and r.returncode != 0, r.stderr
    assert needle in r.stderr, f"{needle!r} not in:\n{r.stderr}"
    assert session_mounts(mnt) == before


def test_audit_target_errors_at_start(workdir):
    d = workdir / "adir"
    d.mkdir()
    _audit_start_failure(workdir, d, f"{d}: refusing a directory as the audit log")


def test_audit_symlink_is_refused(workdir):
    target = workdir / "victim"
    target.write_bytes(b"untouched\n")
    link = workdir / "audit-link"
    link.symlink_to(target)
    _audit_start_failure(workdir, link, f"{link}: refusing a symbolic link as the audit log")
    assert target.read_bytes() == b"untouched\n"


@pytest.mark.parametrize("audit, needle", [
    ("relative/audit.log", "expected syslog, stderr or an absolute file path"),
    ("/nonexistent-secretfs-dir/audit.log", "/nonexistent-secretfs-dir/audit.log: cannot open"),
])
def test_bad_audit_option_is_refused(workdir, audit, needle):
    _audit_start_failure(workdir, audit, needle)


def test_audit_to_stderr_needs_foreground(workdir):
    _audit_start_failure(workdir, "stderr", "audit=stderr needs -f", foreground=False)

