"""
The access policy (-o policy=FILE), seen through the kernel by real users:
who reads what, what listings show, what stat presents, exe= rules, SIGHUP
reloads, load errors, `secretfs check-policy`, and the hardening that keeps
other users out of the daemon's memory.

The users come from the sfs_users session fixture (users.py): sfst-alice
(supplementary group sfst-app), sfst-bob (no shared group), sfst-carol
(primary group sfst-app); and root, the test process itself.
"""

import dataclasses
import os
import signal
import stat
import subprocess
import threading

import pytest

from helpers import (
    MOUNT_TIMEOUT,
    POLL_TIMEOUT,
    SECRETFS_BIN,
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    kill_pids,
    mount_of,
    pids_serving,
    run_secretfs,
    sanitizer_env,
    sanitizer_reports,
    secret_values,
    session_mounts,
    wait_until,
    write_store,
)
from policy_env import DOC, EACCES, VALUES, write_policy
from users import Agent, probe_processes, run_as

# ---------------------------------------------------------------- reads and listings


def test_reads_follow_the_policy_for_each_user(policy_fs, agents):
    fs = policy_fs()
    table = {
        #                 alice   bob     carol   root
        "app/token":       ("ok", EACCES, "ok", EACCES),
        "app/db/password": ("ok", EACCES, EACCES, EACCES),  # carol: the later deny wins
        "app/db/user":     ("ok", EACCES, "ok", EACCES),
        "team/alice":      ("ok", EACCES, EACCES, EACCES),
        "team/bob":        (EACCES, "ok", EACCES, EACCES),
        "ops/root-key":    (EACCES, EACCES, EACCES, "ok"),
        "public/motd":     ("ok", "ok", "ok", "ok"),
    }
    who = ["alice", "bob", "carol", "root"]
    want = {
        (rel, w): VALUES[rel] if row[i] == "ok" else row[i]
        for rel, row in table.items()
        for i, w in enumerate(who)
    }
    got = {(rel, w): agents[w].read(fs.path(rel)) for rel in table for w in who}
    assert got == want
    # access(2) gives the same answers as open.
    got = {(rel, w): agents[w].access(fs.path(rel)) for rel in table for w in who}
    assert got == {k: v != EACCES for k, v in want.items()}


def test_hidden_entries_are_absent_from_listings(policy_fs, agents):
    fs = policy_fs()
    want = {
        "alice": {
            "": ["app", "public", "team", "tools"],
            "app": ["db", "token"],
            "app/db": ["password", "user"],
            "team": ["alice"],
            "ops": EACCES,
        },
        "bob": {
            # tools/cat-only is bob's only through cat, and this is python
            "": ["public", "team"],
            "app": EACCES,
            "app/db": EACCES,
            "team": ["bob"],
            "ops": EACCES,
        },
        "carol": {
            "": ["app", "public"],
            "app": ["db", "token"],
            "app/db": ["user"],  # password: denied to carol by a later rule
            "team": EACCES,
            "ops": EACCES,
        },
        "root": {
            "": ["ops", "public"],
            "app": EACCES,
            "app/db": EACCES,
            "team": EACCES,
            "ops": ["root-key"],
        },
    }
    got = {w: {d: agents[w].listdir(fs.path(d)) for d in want[w]} for w in want}
    assert got == want
    # Hidden is not absent: a name that is hidden still resolves, and is still denied.
    assert agents["bob"].stat(fs.path("team/alice")) not in ("ENOENT", EACCES)
    assert agents["bob"].read(fs.path("team/alice")) == EACCES


def test_show_denied_lists_entries_that_stay_denied(policy_fs, agents):
    fs = policy_fs(options=["-o", "show_denied"])
    bob = agents["bob"]
    assert bob.listdir(fs.mnt) == ["app", "ops", "public", "team", "tools"]
    assert bob.listdir(fs.path("team")) == ["alice", "bob"]
    assert bob.read(fs.path("team/alice")) == EACCES
    assert bob.read(fs.path("team/bob")) == VALUES["team/bob"]
    # Listing a directory is still a decision of its own.
    assert bob.listdir(fs.path("app")) == EACCES
    carol = agents["carol"]
    assert carol.listdir(fs.path("app/db")) == ["password", "user"]
    assert carol.read(fs.path("app/db/password")) == EACCES
    assert carol.read(fs.path("app/db/user")) == VALUES["app/db/user"]


def test_decisions_survive_kernel_caching_in_either_order(policy_fs, agents):
    """
    The kernel caches entries and attributes per inode for every uid (1 s by
    default); the decision must not be cached with them.  Each pair runs back
    to back, so a second access lands inside the cache window of the first.
    """
    fs = policy_fs()
    alice, bob = agents["alice"], agents["bob"]
    ok = VALUES["team/alice"]
    token = VALUES["app/token"]
    for round_ in range(3):
        # denied first (the first lookup of team/alice is bob's), then allowed, then denied
        seq = [
            bob.read(fs.path("team/alice")),
            alice.read(fs.path("team/alice")),
            bob.read(fs.path("team/alice")),
            alice.read(fs.path("team/alice")),
        ]
        assert seq == [EACCES, ok, EACCES, ok], f"round {round_}"
        # allowed first (the first lookup of app/token is alice's), then denied, then allowed
        seq = [
            alice.read(fs.path("app/token")),
            bob.read(fs.path("app/token")),
            alice.read(fs.path("app/token")),
            bob.read(fs.path("app/token")),
        ]
        assert seq == [token, EACCES, token, EACCES], f"round {round_}"
        # listings and access(2) too
        seq = [
            alice.listdir(fs.path("team")),
            bob.listdir(fs.path("team")),
            alice.listdir(fs.path("team")),
            bob.access(fs.path("team/alice")),
            alice.access(fs.path("team/alice")),
            bob.access(fs.path("team/alice")),
        ]
        assert seq == [["alice"], ["bob"], ["alice"], False, True, False], f"round {round_}"


def test_group_rules_match_primary_and_supplementary_groups(policy_fs, agents, sfs_users):
    fs = policy_fs()
    token = fs.path("app/token")
    assert agents["carol"].read(token) == VALUES["app/token"]  # sfst-app is carol's primary group
    assert agents["alice"].read(token) == VALUES["app/token"]  # a supplementary group of alice
    assert agents["bob"].read(token) == EACCES  # not in sfst-app

    # What counts is the caller's credentials, not the user database.
    bob_in_app = dataclasses.replace(sfs_users.bob, groups=[sfs_users.bob.gid, sfs_users.app_gid])
    alice_alone = dataclasses.replace(sfs_users.alice, groups=[sfs_users.alice.gid])
    with Agent(bob_in_app) as b, Agent(alice_alone) as a:
        assert b.read(token) == VALUES["app/token"]
        assert a.read(token) == EACCES
        assert a.listdir(fs.path("app")) == EACCES
        assert b.listdir(fs.path("app")) == ["db", "token"]


def test_a_denied_subtree_is_hidden_and_closed(policy_fs, agents):
    fs = policy_fs(
        "permit *               **\n"
        "deny   user:sfst-bob   team/**\n"
        "permit user:sfst-bob   team/bob\n"
        "deny   user:sfst-carol app/**\n"
    )
    alice, bob, carol = agents["alice"], agents["bob"], agents["carol"]
    everything = ["app", "ops", "public", "team", "tools"]
    assert alice.listdir(fs.mnt) == everything
    assert bob.listdir(fs.mnt) == everything  # team/bob is still his
    assert bob.listdir(fs.path("team")) == ["bob"]
    assert bob.read(fs.path("team/alice")) == EACCES
    assert bob.read(fs.path("team/bob")) == VALUES["team/bob"]
    # a deny of "**" below app closes app itself and hides it from carol
    assert carol.listdir(fs.mnt) == ["ops", "public", "team", "tools"]
    assert carol.listdir(fs.path("app")) == EACCES
    assert carol.listdir(fs.path("app/db")) == EACCES
    assert carol.read(fs.path("app/db/user")) == EACCES
    assert carol.read(fs.path("team/alice")) == VALUES["team/alice"]


def test_decisions_for_a_threaded_caller(policy_fs, agents):
    """The request names the calling thread: groups and exe must still be the caller's."""
    fs = policy_fs()
    data, tid = agents["alice"].thread_read(fs.path("app/token"))  # a supplementary group
    assert data == VALUES["app/token"] and tid != agents["alice"].pid
    data, tid = agents["carol"].thread_read(fs.path("app/db/password"))
    assert data == EACCES
    data, tid = agents["bob"].thread_read(fs.path("app/token"))
    assert data == EACCES


def test_root_is_not_exempt(policy_fs, agents):
    fs = policy_fs("permit user:sfst-alice **\n")
    root = agents["root"]
    assert os.geteuid() == 0
    assert root.read(fs.path("team/alice")) == EACCES
    assert root.read(fs.path("public/motd")) == EACCES
    assert root.listdir(fs.mnt) == EACCES
    assert root.access(fs.path("team/alice")) is False
    assert agents["alice"].read(fs.path("team/alice")) == VALUES["team/alice"]
    assert agents["alice"].listdir(fs.mnt) == ["app", "ops", "public", "team", "tools"]


def test_presented_attributes_are_the_same_for_every_caller(policy_fs, agents, sfs_users):
    fs = policy_fs()
    alice, bob, app = sfs_users.alice, sfs_users.bob, sfs_users.app_gid
    want = {
        "app/token": (alice.uid, app, stat.S_IFREG | 0o440),
        "app/db/password": (alice.uid, app, stat.S_IFREG | 0o440),
        "team/bob": (bob.uid, 0, stat.S_IFREG | 0o400),  # no group=: the mounting user's group
        "team/alice": (0, 0, stat.S_IFREG | 0o400),  # no rule sets attributes: the defaults
        "public/motd": (0, 0, stat.S_IFREG | 0o400),
    }
    # bob first, who may read none of the app/ files: stat must not depend on the caller.
    for w in ["bob", "carol", "root", "alice"]:
        got = {rel: agents[w].stat(fs.path(rel)) for rel in want}
        assert got == want, w


def test_exe_rule_permits_cat_and_denies_head(policy_fs, sfs_users, agents):
    fs = policy_fs()
    assert os.path.realpath("/usr/bin/cat") == "/usr/bin/cat"
    path = str(fs.path("tools/cat-only"))
    bob, alice = sfs_users.bob, sfs_users.alice
    r = run_as(bob, ["/usr/bin/cat", path])
    assert (r.returncode, r.stdout, r.stderr) == (0, VALUES["tools/cat-only"].decode(), "")
    r = run_as(bob, ["/usr/bin/head", "-c", "4096", path])
    assert r.returncode != 0 and r.stdout == "", r
    assert "Permission denied" in r.stderr, r.stderr
    assert agents["bob"].read(path) == EACCES  # python is not cat either
    # Control: head itself can read it when the rule has no exe= (alice's).
    r = run_as(alice, ["/usr/bin/head", "-c", "4096", path])
    assert (r.returncode, r.stdout) == (0, VALUES["tools/cat-only"].decode()), r


# ---------------------------------------------------------------- reloads


def _hup(fs):
    os.kill(fs.pid, signal.SIGHUP)


def test_sighup_reload_changes_decisions_and_broken_reloads_change_nothing(
    policy_fs, agents, sfs_users
):
    v1 = "# v1\npermit user:sfst-alice team/*\n"
    fs = policy_fs(v1)
    alice, bob = agents["alice"], agents["bob"]
    target = fs.path("team/alice")
    assert alice.read(target) == VALUES["team/alice"]
    assert bob.read(target) == EACCES

    v2 = "# v2\n\npermit user:sfst-bob team/*\n"
    write_policy(fs.policy, v2)
    _hup(fs)
    wait_until(lambda: bob.read(target) == VALUES["team/alice"], what="bob to be let in by v2")
    assert alice.read(target) == EACCES
    fs.wait_stderr(f"{fs.policy}: policy reloaded")

    broken = [
        # each would change decisions if any of it were applied
        ("permit user:sfst-alice team/*\npermit user:sfst-nosuch team/*\n",
         f"{fs.policy}:2: unknown user 'sfst-nosuch'"),
        ("permit user:sfst-alice team/*\n# c\npermit user:sfst-alice team/[ab\n",
         f"{fs.policy}:3: bad glob 'team/[ab'"),
        ("permit group:sfst-nogroup team/*\n",
         f"{fs.policy}:1: unknown group 'sfst-nogroup'"),
        ("permit user:sfst-alice team/*  mode=0999\n", f"{fs.policy}:1: bad mode '0999'"),
    ]
    for n, (text, needle) in enumerate(broken, 1):
        write_policy(fs.policy, text)
        _hup(fs)
        err = fs.wait_stderr("keeping the previous policy", count=n)
        line = [l for l in err.splitlines() if "keeping the previous policy" in l][n - 1]
        assert needle in line, line
        assert bob.read(target) == VALUES["team/alice"], text
        assert alice.read(target) == EACCES, text
        assert alice.listdir(fs.path("team")) == EACCES, text

    # A policy that others could write is refused at reload too (file level, no line).
    write_policy(fs.policy, "permit * **\n", mode=0o666)
    _hup(fs)
    err = fs.wait_stderr("keeping the previous policy", count=len(broken) + 1)
    assert f"{fs.policy}: refusing a policy that is writable by group or others" in err
    assert alice.read(target) == EACCES

    # nor is a missing one
    os.unlink(fs.policy)
    _hup(fs)
    err = fs.wait_stderr("keeping the previous policy", count=len(broken) + 2)
    assert f"{fs.policy}: cannot open" in err
    assert alice.read(target) == EACCES and bob.read(target) == VALUES["team/alice"]

    # and a good one after all that still takes effect
    write_policy(fs.policy, "permit user:sfst-alice team/alice\n")
    _hup(fs)
    wait_until(lambda: alice.read(target) == VALUES["team/alice"], what="alice to be let back in")
    assert bob.read(target) == EACCES
    assert fs.proc.poll() is None and is_mounted(fs.mnt)


def test_reloads_under_concurrent_readers(policy_fs, sfs_users):
    """
    Readers never see anything but the old or the new answer while the policy
    is swapped under them (the sanitizer build checks the reference counting).
    """
    a_only = "permit user:sfst-alice team/*\n"
    both = "permit user:sfst-alice team/*\npermit user:sfst-bob team/*\n"
    fs = policy_fs(a_only)
    target = fs.path("team/alice")
    stop = threading.Event()
    seen, errors = {"alice": set(), "bob": set()}, []

    def reader(name, user):
        try:
            with Agent(user) as ag:
                while not stop.is_set():
                    r = ag.read(target)
                    seen[name].add(r if r == EACCES else "value" if r == VALUES["team/alice"] else r)
                    r = ag.listdir(fs.path("team"))
                    if r not in (EACCES, ["alice", "bob"]):
                        errors.append((name, "list", r))
        except Exception as e:  # noqa: BLE001
            errors.append((name, repr(e)))

    threads = [threading.Thread(target=reader, args=(n, getattr(sfs_users, n)))
               for n in ("alice", "bob")]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            write_policy(fs.policy, both if i % 2 == 0 else a_only)
            _hup(fs)
            fs.wait_stderr("policy reloaded", count=i + 1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=POLL_TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert seen["alice"] == {"value"}
    assert seen["bob"] <= {"value", EACCES}
    assert fs.proc.poll() is None


# ---------------------------------------------------------------- mount options


def test_allow_other_only_with_a_policy(policy_fs, secretfs):
    with_policy = policy_fs()
    without = secretfs(DOC)
    assert "allow_other" in mount_of(with_policy.mnt)["super_options"]
    assert "allow_other" not in mount_of(without.mnt)["super_options"]
    for fs in (with_policy, without):
        assert {"ro", "nosuid", "nodev", "noexec"} <= mount_of(fs.mnt)["options"]


# ---------------------------------------------------------------- load errors


LOAD_ERRORS = {
    # name: (policy text, mode, what stderr must say after "FILE")
    "unknown-user": ("# c\npermit user:sfst-nosuch app/*\n", 0o644, ":2: unknown user 'sfst-nosuch'"),
    "unknown-group": ("permit * public/*\n\npermit group:sfst-nogroup app/*\n", 0o644,
                      ":3: unknown group 'sfst-nogroup'"),
    "unknown-owner": ("permit * app/* owner=sfst-nosuch\n", 0o644,
                      ":1: unknown user 'sfst-nosuch' in owner="),
    "bad-glob-bracket": ("permit * app/[ab\n", 0o644, ":1: bad glob 'app/[ab'"),
    "bad-glob-starstar": ("permit * public/*\npermit * app/x**\n", 0o644, ":2: bad glob 'app/x**'"),
    "bad-glob-absolute": ("permit * /app/*\n", 0o644, ":1: bad path '/app/*'"),
    "bad-mode-digit": ("permit * app/* mode=0999\n", 0o644, ":1: bad mode '0999'"),
    "bad-mode-setuid": ("permit * app/* mode=4755\n", 0o644, ":1: bad mode '4755'"),
    "bad-mode-word": ("permit * app/* mode=rw\n", 0o644, ":1: bad mode 'rw'"),
    "unknown-option": ("permit * app/* colour=red\n", 0o644, ":1: unknown option 'colour=red'"),
    "bad-exe": ("permit * app/* exe=cat\n", 0o644, ":1: bad exe 'cat'"),
    "missing-exe": ("permit * public/*\npermit * app/* exe=/nonexistent/sfst-prog\n", 0o644,
                    ":2: exe '/nonexistent/sfst-prog': No such file or directory"),
    "bad-action": ("allow * app/*\n", 0o644, ":1: bad action 'allow'"),
    "missing-field": ("permit *\n", 0o644, ":1: missing field"),
    "group-writable": ("permit * app/*\n", 0o664, ": refusing a policy that is writable by group"),
    "world-writable": ("permit * app/*\n", 0o646, ": refusing a policy that is writable by group"),
}


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
@pytest.mark.parametrize("case", sorted(LOAD_ERRORS))
def test_policy_load_error_at_start(workdir, sfs_users, case, foreground):
    text, mode, needle = LOAD_ERRORS[case]
    store = workdir / "store.json"
    write_store(store, DOC)
    mnt = workdir / "mnt"
    mnt.mkdir()
    policy = workdir / "policy.conf"
    write_policy(policy, text, mode=mode)
    _expect_start_failure(mnt, store, policy, f"{policy}{needle}", foreground)


@pytest.mark.parametrize("case", ["owned-by-another-user", "missing", "directory"])
def test_policy_file_level_error_at_start(workdir, sfs_users, case):
    store = workdir / "store.json"
    write_store(store, DOC)
    mnt = workdir / "mnt"
    mnt.mkdir()
    policy = workdir / "policy.conf"
    if case == "owned-by-another-user":
        write_policy(policy, "permit * app/*\n", owner=sfs_users.bob.uid)
        needle = f"{policy}: refusing a policy owned by uid {sfs_users.bob.uid}"
    elif case == "missing":
        needle = f"{policy}: cannot open"
    else:
        policy.mkdir()
        needle = f"{policy}: not a regular file"
    _expect_start_failure(mnt, store, policy, needle, True)


def _expect_start_failure(mnt, store, policy, needle, foreground):
    before = session_mounts(mnt)
    args = [*(["-f"] if foreground else []), "-o", f"policy={policy}", f"file:{store}", str(mnt)]
    r = run_secretfs(args, timeout=10 * (4 if os.environ.get("SECRETFS_SANITIZER") else 1))
    mounted = is_mounted(mnt)
    if mounted or r.returncode == 0:
        force_unmount(mnt)
        kill_pids(pids_serving(str(mnt)))
    assert not mounted, r.stderr
    assert r.returncode != 0, r.stderr
    assert needle in r.stderr, f"{needle!r} not in:\n{r.stderr}"
    assert session_mounts(mnt) == before
    for v in secret_values(DOC):
        assert v.decode() not in r.stderr + r.stdout


# ---------------------------------------------------------------- check-policy

CHECK_POLICY = """\
# check-policy table
permit *                 public/*
permit group:sfst-app    app/**           owner=sfst-alice group=sfst-app mode=0440
deny   user:sfst-carol   app/db/password
permit user:sfst-bob     team/*
deny   user:sfst-bob     team/alice
permit user:sfst-alice   team/alice       exe=/usr/bin/cat
permit user:1            daemon/*         owner=1 group=1
"""


def _check_cases(u, f):
    alice, bob, app = u.alice, u.bob, u.app_gid
    app_attrs = f"owner: sfst-alice({alice.uid}) group: sfst-app({app}) mode: 0440"
    none = "rule: none (no rule matched)"
    default = "attributes: default"
    return [
        # (USER, [options...] PATH), (stdout lines, exit status)
        (["sfst-alice", "app/db/password"], (["permit", f"rule: {f}:3", app_attrs], 0)),
        # last match wins: carol is in sfst-app, but line 4 comes later
        (["sfst-carol", "app/db/password"], (["deny", f"rule: {f}:4", app_attrs], 1)),
        (["sfst-carol", "app/token"], (["permit", f"rule: {f}:3", app_attrs], 0)),  # primary group
        (["sfst-bob", "app/token"], (["deny", none, app_attrs], 1)),
        (["sfst-bob", "team/bob"], (["permit", f"rule: {f}:5", default], 0)),
        (["sfst-bob", "team/alice"], (["deny", f"rule: {f}:6", default], 1)),
        # an exe= rule applies only to that executable
        (["sfst-alice", "team/alice"], (["deny", none, default], 1)),
        (["sfst-alice", "--exe", "/usr/bin/cat", "team/alice"], (["permit", f"rule: {f}:7", default], 0)),
        (["sfst-alice", "--exe=/usr/bin/head", "team/alice"], (["deny", none, default], 1)),
        # a uid for the user; "*" for everyone, root included
        ([str(bob.uid), "team/x"], (["permit", f"rule: {f}:5", default], 0)),
        (["root", "public/motd"], (["permit", f"rule: {f}:2", default], 0)),
        (["0", "public/a/b"], (["deny", none, default], 1)),  # "*" stays in one component
        (["root", "team/bob"], (["deny", none, default], 1)),  # root is not exempt
        (["1", "daemon/x"], (["permit", f"rule: {f}:8", "owner: daemon(1) group: daemon(1)"], 0)),
        # directories: a trailing "/" or --dir
        (["sfst-alice", "app/"], (["permit", f"rule: {f}:3", app_attrs], 0)),
        (["sfst-bob", "--dir", "team"], (["permit", f"rule: {f}:5", default], 0)),
        (["sfst-bob", "app/"], (["deny", none, app_attrs], 1)),
        (["sfst-bob", "/"], (["permit", f"rule: {f}:5", default], 0)),
    ]


def _check(args, user=None):
    prefix = user.setpriv() if user else ()
    return run_secretfs(["check-policy", *args], prefix=prefix)


@pytest.mark.parametrize("as_user", ["root", "sfst-bob"])
def test_check_policy_table(workdir, sfs_users, as_user):
    policy = workdir / "check.conf"
    write_policy(policy, CHECK_POLICY)  # root-owned 0644: readable and acceptable for anyone
    runner = None if as_user == "root" else sfs_users.bob
    failures = []
    for args, (lines, status) in _check_cases(sfs_users, policy):
        r = _check([str(policy), *args], runner)
        got = (r.stdout.splitlines(), r.returncode, r.stderr)
        if got != (lines, status, ""):
            failures.append(f"check-policy {' '.join(args)}: got {got}, want {(lines, status, '')}")
    assert not failures, "\n".join(failures)


def test_check_policy_errors(workdir, sfs_users):
    policy = workdir / "check.conf"
    write_policy(policy, CHECK_POLICY)
    bob = sfs_users.bob
    cases = [
        ([str(policy), "sfst-nosuch", "app/x"], None, "unknown user 'sfst-nosuch'"),
        ([str(workdir / "missing.conf"), "root", "app/x"], None, "missing.conf: cannot open"),
        ([str(policy), "root"], None, "usage: secretfs check-policy"),
        ([str(policy), "root", "--exe", "cat", "app/x"], None, "--exe needs an absolute path"),
        ([str(policy), "root", "--bogus", "app/x"], None, "unknown option '--bogus'"),
    ]
    # bob may not trust a policy that alice owns, nor one that others may write
    own = workdir / "alice.conf"
    write_policy(own, CHECK_POLICY, owner=sfs_users.alice.uid)
    cases.append(([str(own), "root", "app/x"], bob, f"refusing a policy owned by uid {sfs_users.alice.uid}"))
    loose = workdir / "loose.conf"
    write_policy(loose, CHECK_POLICY, mode=0o666)
    cases.append(([str(loose), "root", "app/x"], bob, "writable by group or others"))
    bad = workdir / "bad.conf"
    write_policy(bad, "permit * a\ndeny * b/[\n")
    cases.append(([str(bad), "root", "a"], bob, f"{bad}:2: bad glob"))
    for args, user, needle in cases:
        r = _check(args, user)
        assert (r.returncode, r.stdout) == (2, ""), (args, r)
        assert needle in r.stderr, (args, r.stderr)
    # but a policy of bob's own, 0644, is his to check
    mine = workdir / "bob.conf"
    write_policy(mine, "permit user:sfst-bob team/*\n", owner=bob.uid)
    r = _check([str(mine), "sfst-bob", "team/x"], bob)
    assert (r.returncode, r.stdout.splitlines()) == (0, ["permit", f"rule: {mine}:1", "attributes: default"]), r


# ---------------------------------------------------------------- hardening


def _core_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max core file size"))
    return line.split()[4:6]


DENIED = ("EACCES", "EPERM")


def test_other_users_cannot_ptrace_or_read_the_daemon(policy_fs, agents, sfs_users):
    fs = policy_fs()
    assert agents["bob"].read(fs.path("team/bob")) == VALUES["team/bob"]  # a secret is in memory
    got = probe_processes([fs.pid], sfs_users.bob.setpriv())
    assert got["uid"] == sfs_users.bob.uid
    r = got["pids"][str(fs.pid)]
    assert r["mem"] in DENIED and r["environ"] in DENIED, r
    assert r["ptrace"] == "EPERM", r
    assert _core_limit(fs.pid) == ["0", "0"]


NO_PTRACE = ["setpriv", "--bounding-set=-sys_ptrace"]


def test_daemon_is_undumpable(workdir, agents):
    """
    Root without CAP_SYS_PTRACE may ptrace a root process whose capabilities
    it holds too, unless that process is undumpable.  So with the daemon and
    a control process started alike (without CAP_SYS_PTRACE), only the
    daemon's PR_SET_DUMPABLE 0 can tell them apart.
    """
    doc = {"k": "undumpable-secret-7"}
    store = workdir / "store.json"
    write_store(store, doc)
    mnt = workdir / "mnt"
    mnt.mkdir()
    errpath = workdir / "daemon.stderr"
    control = None
    with open(errpath, "wb") as errf:
        daemon = subprocess.Popen(
            [*NO_PTRACE, SECRETFS_BIN, "-f", f"file:{store}", str(mnt)],
            stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=sanitizer_env(),
        )
    try:
        wait_until(lambda: is_mounted(mnt) or daemon.poll() is not None, MOUNT_TIMEOUT,
                   what="the daemon to mount")
        assert is_mounted(mnt), errpath.read_text()
        assert agents["root"].read(mnt / "k") == b"undumpable-secret-7"  # a secret in memory
        control = subprocess.Popen([*NO_PTRACE, "sleep", "600"], stdin=subprocess.DEVNULL)
        wait_until(lambda: os.readlink(f"/proc/{control.pid}/exe").endswith("/sleep"),
                   what="the control process to exec sleep")
        got = probe_processes([control.pid, daemon.pid], NO_PTRACE)
        assert got["uid"] == 0 and got["cap_sys_ptrace"] is False, got
        ctl = got["pids"][str(control.pid)]
        assert ctl == {"mem": "opened", "environ": "read", "ptrace": "attached"}, got
        r = got["pids"][str(daemon.pid)]
        assert r["mem"] in DENIED and r["ptrace"] == "EPERM", got
        assert _core_limit(daemon.pid) == ["0", "0"]
        # still serving after all that
        assert agents["root"].read(mnt / "k") == b"undumpable-secret-7"
    finally:
        if control:
            control.kill()
            control.wait()
        force_unmount(mnt)
        try:
            daemon.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    err = errpath.read_text(errors="replace")
    assert not sanitizer_reports(err), err
    assert "undumpable-secret-7" not in err
    assert daemon.returncode == 0, err
