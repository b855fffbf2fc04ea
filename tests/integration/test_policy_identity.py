"""
What the policy knows about a caller, and what it does when it cannot know
(issue 9, items 2 and 4), through the kernel with real users:

- group rules fail closed when the caller's groups cannot be read (a daemon
  in another pid namespace, where FUSE reports pid 0): a deny on a group
  still matches, a permit on a supplementary group does not, the primary
  group from the request still works, and a warning says so once;
- a user in 300 groups: the daemon sees all of them, as check-policy does;
- exe= names a binary by (device, inode), not by the text of
  /proc/PID/exe: a user's own program bind-mounted over /usr/bin/cat in a
  user+mount namespace is refused, a rule naming a symlink matches the binary
  it points to, a reload re-resolves the path, and a path that does not
  exist is a load error.
"""

import grp
import json
import os
import shutil
import signal

import pytest

from helpers import run_secretfs, wait_until
from policy_env import EACCES, VALUES, write_policy
from users import PREFIX, _run, _user, run_as

GROUP_WARNING = "group rules fail closed"


def _check(policy, user, path, *opts):
    r = run_secretfs(["check-policy", str(policy), user, *opts, path])
    return r.stdout.splitlines()[:1], r.returncode, r.stderr


def _records(path):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines()]


# ---------------------------------------------------------------- groups


PIDNS_POLICY = """\
permit user:sfst-alice  app/**
deny   group:sfst-app   app/db/password
permit group:sfst-app   team/**
permit *                public/*
deny   user:sfst-bob    public/*   exe=/usr/bin/cat
"""


def test_group_rules_fail_closed_for_a_daemon_in_another_pid_namespace(
    policy_fs, agents, sfs_users
):
    if not shutil.which("unshare"):
        pytest.skip("unshare is missing (Debian package util-linux)")
    # The daemon's pid namespace is its own: FUSE reports pid 0 for every
    # caller here, as for the app containers of a sidecar.
    fs = policy_fs(PIDNS_POLICY, prefix=["unshare", "-pf", "--kill-child"])
    alice, bob, carol = agents["alice"], agents["bob"], agents["carol"]

    assert alice.read(fs.path("app/db/user")) == VALUES["app/db/user"]  # by uid
    # alice is in sfst-app only as a supplementary group, which cannot be read:
    # the deny still matches ...
    assert alice.read(fs.path("app/db/password")) == EACCES
    # ... and the permit does not
    assert alice.read(fs.path("team/alice")) == EACCES
    assert alice.listdir(fs.path("team")) == EACCES
    # carol's primary group comes with the request: both rules work for her
    assert carol.read(fs.path("team/bob")) == VALUES["team/bob"]
    assert carol.listdir(fs.path("team")) == ["alice", "bob"]
    assert carol.read(fs.path("app/db/password")) == EACCES
    # an exe= deny cannot be shown not to apply: it matches too
    assert bob.read(fs.path("public/motd")) == EACCES
    r = run_as(sfs_users.bob, ["/usr/bin/cat", str(fs.path("public/motd"))])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r
    assert alice.read(fs.path("public/motd")) == VALUES["public/motd"]

    # Said once, not once per request.
    err = fs.wait_stderr(GROUP_WARNING)
    assert err.count(GROUP_WARNING) == 1, err


def _make_user_in_groups(n):
    """sfst-many, in sfst-g000 ... (n groups, created in gid order) and its own group."""
    names = [f"{PREFIX}g{i:03d}" for i in range(n)]
    for g in names:
        r = _run(["groupadd", g])
        assert r.returncode == 0, r.stderr
    r = _run(["useradd", "-M", "-s", "/usr/sbin/nologin", "-U", "-G", ",".join(names),
              PREFIX + "many"])
    assert r.returncode == 0, r.stderr
    return _user(PREFIX + "many"), names


def _remove_user_in_groups(names):
    _run(["userdel", PREFIX + "many"])
    for g in names:
        _run(["groupdel", g])


def test_a_user_in_300_groups_gets_the_same_decisions_as_check_policy(
    policy_fs, sfs_users
):
    many, names = _make_user_in_groups(300)
    try:
        last = names[-1]
        gids = sorted(many.groups)
        # the kernel keeps groups sorted: the 300th is past the first 256
        assert len(gids) == 301 and gids.index(grp.getgrnam(last).gr_gid) >= 256
        policy_text = (
            "permit user:sfst-many app/**\n"
            f"deny   group:{last}  app/db/password\n"
            f"permit group:{last}  team/**\n"
        )
        fs = policy_fs(policy_text)

        def cat(rel):
            r = run_as(many, ["/usr/bin/cat", str(fs.path(rel))])
            return r.stdout.encode() if r.returncode == 0 else r.stderr.encode()

        assert cat("app/db/user") == VALUES["app/db/user"]
        assert b"Permission denied" in cat("app/db/password")
        assert cat("team/bob") == VALUES["team/bob"]
        assert _check(fs.policy, "sfst-many", "app/db/password") == (["deny"], 1, "")
        assert _check(fs.policy, "sfst-many", "team/bob") == (["permit"], 0, "")
        assert GROUP_WARNING not in fs.stderr()
    finally:
        _remove_user_in_groups(names)


# ---------------------------------------------------------------- exe=


def test_exe_rule_refuses_a_program_bind_mounted_over_the_named_path(
    policy_fs, sfs_users, workdir
):
    if not shutil.which("unshare"):
        pytest.skip("unshare is missing (Debian package util-linux)")
    bob = sfs_users.bob
    audit = workdir / "audit.log"
    fs = policy_fs("permit user:sfst-bob tools/cat-only exe=/usr/bin/cat\n",
                   options=["-o", f"audit={audit}"])
    target = str(fs.path("tools/cat-only"))
    # bob's own program: here a copy of cat, which reads files just as well
    mine = workdir / "mycat"
    shutil.copy("/usr/bin/cat", mine)
    os.chmod(mine, 0o755)
    probe = run_as(bob, ["unshare", "-rm", "true"])
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are off: {probe.stderr.strip()}")

    # The genuine cat is let in.
    r = run_as(bob, ["/usr/bin/cat", target])
    assert (r.returncode, r.stdout) == (0, VALUES["tools/cat-only"].decode()), r
    # bob's program at /usr/bin/cat, in his own user and mount namespace
    r = run_as(bob, ["unshare", "-rm", "sh", "-c",
                     'mount --bind "$1" /usr/bin/cat && exec /usr/bin/cat "$2"',
                     "sh", str(mine), target])
    assert r.returncode != 0 and r.stdout == "", r
    assert "Permission denied" in r.stderr, r.stderr

    real, fake = os.stat("/usr/bin/cat"), os.stat(mine)
    wait_until(lambda: len(_records(audit)) >= 2, what="2 audit records")
    good, bad = _records(audit)
    assert (good["decision"], good["exe"], good["exe_dev"], good["exe_ino"]) == (
        "permit", "/usr/bin/cat", real.st_dev, real.st_ino)
    # The record names the binary that ran, whatever its path text says.
    assert (bad["decision"], bad["exe_dev"], bad["exe_ino"]) == (
        "deny", fake.st_dev, fake.st_ino), bad


SYMLINK_POLICY = """\
permit user:sfst-alice  tools/cat-only  exe=/usr/bin/python3
permit user:sfst-bob    tools/cat-only  exe=/bin/cat
"""


def test_exe_rule_naming_a_symlink_matches_the_binary_and_check_policy_agrees(
    policy_fs, agents, sfs_users
):
    py = os.path.realpath("/usr/bin/python3")
    cat = os.path.realpath("/bin/cat")
    if py == "/usr/bin/python3" or cat == "/bin/cat":
        pytest.skip("needs /usr/bin/python3 to be a symlink and a merged /usr")
    fs = policy_fs(SYMLINK_POLICY)
    target = fs.path("tools/cat-only")
    # The agents are python, started as /usr/bin/python3: /proc/PID/exe is py.
    assert os.readlink(f"/proc/{agents['alice'].pid}/exe") == py
    assert agents["alice"].read(target) == VALUES["tools/cat-only"]
    r = run_as(sfs_users.bob, ["/usr/bin/cat", str(target)])
    assert (r.returncode, r.stdout) == (0, VALUES["tools/cat-only"].decode()), r
    assert agents["bob"].read(target) == EACCES  # python is not cat
    for user, exe in [("sfst-alice", "/usr/bin/python3"), ("sfst-alice", py),
                      ("sfst-bob", "/bin/cat"), ("sfst-bob", cat)]:
        assert _check(fs.policy, user, "tools/cat-only", "--exe", exe) == (["permit"], 0, "")
    assert _check(fs.policy, "sfst-bob", "tools/cat-only", "--exe", py) == (["deny"], 1, "")


def test_reload_resolves_exe_paths_again(policy_fs, sfs_users, workdir):
    bindir = workdir / "bin"
    bindir.mkdir()
    os.chmod(bindir, 0o755)
    tool = bindir / "tool"

    def install():
        # as a package manager does: a new file renamed over the old one
        tmp = bindir / "tool.new"
        shutil.copy("/usr/bin/cat", tmp)
        os.chmod(tmp, 0o755)
        os.rename(tmp, tool)

    install()
    fs = policy_fs(f"permit user:sfst-bob tools/cat-only exe={tool}\n")
    target = str(fs.path("tools/cat-only"))

    want = VALUES["tools/cat-only"].decode()

    def read():
        r = run_as(sfs_users.bob, [str(tool), target])
        return r.stdout if r.returncode == 0 else r.stderr

    assert read() == want
    install()  # another binary now: the rule still names the one resolved at load
    assert "Permission denied" in read()
    os.kill(fs.pid, signal.SIGHUP)
    fs.wait_stderr("policy reloaded")
    assert read() == want

    # A path that is gone at reload: the reload fails, naming the line.
    write_policy(fs.policy, f"# gone\npermit user:sfst-bob tools/cat-only exe={bindir}/gone\n")
    os.kill(fs.pid, signal.SIGHUP)
    err = fs.wait_stderr("keeping the previous policy")
    line = next(l for l in err.splitlines() if "keeping the previous policy" in l)
    assert f"{fs.policy}:2: exe '{bindir}/gone': " in line, line
    assert read() == want


def test_exe_rule_naming_a_missing_path_is_a_load_error(workdir, sfs_users):
    policy = workdir / "policy.conf"
    write_policy(policy, "permit * public/*\npermit * app/* exe=/nonexistent/sfst-prog\n")
    r = run_secretfs(["check-policy", str(policy), "root", "public/motd"])
    assert r.returncode == 2
    assert f"{policy}:2: exe '/nonexistent/sfst-prog': No such file or directory" in r.stderr
    # and check-policy's own --exe is resolved the same way
    write_policy(policy, "permit * public/*\n")
    r = run_secretfs(["check-policy", str(policy), "root", "--exe", "/nonexistent/x",
                      "public/motd"])
    assert r.returncode == 2 and "/nonexistent/x: No such file or directory" in r.stderr, r
