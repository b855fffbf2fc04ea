"""
What one unprivileged reader can cost everyone else (issue 9 item 6), through
the kernel, with real users, against tests/servers/vault_server.py:

- a flood of lookups of names that do not exist, in read-but-not-list mode
  (the token may read secrets but not list folders, so every name is asked
  of the store), must not push another user's cached value out: when the
  store then answers 503, that user still gets the value, stale;
- the listing denial is asked of the store once, then remembered;
- one uid holding directory handles is refused with EMFILE past
  -o max_handles_per_uid, counted in the metrics, while another uid still
  opens and reads (its value stale under a 503) and the flooder gets its
  handles back once it closes some.

The flooder is its own process running as sfst-bob; the victim is an Agent
running as sfst-alice (tests/integration/users.py).
"""

import errno
import json
import os
import subprocess
import time

import pytest

from helpers import CMD_TIMEOUT, POLL_TIMEOUT, run_secretfs, wait_until
from policy_env import write_policy
from test_control import metrics
from test_vault import ROOT, vault_server, vmount, vs  # noqa: F401
from users import Agent

POLICY = """\
permit user:sfst-alice **
permit user:sfst-bob   **
"""

# A token that may read every secret of the mount but list nothing.
READ_NOT_LIST = [{"prefix": "secret/data/", "capabilities": ["read"]}]

# Stats many missing names, then prints how each one answered.
LOOKUP_FLOOD = r"""
import collections, json, os, sys
base, n = sys.argv[1], int(sys.argv[2])
out = collections.Counter()
for i in range(n):
    try:
        os.stat(os.path.join(base, f"no-such-{i}"))
        out["ok"] += 1
    except OSError as e:
        out[str(e.errno)] += 1
print(json.dumps(out), flush=True)
"""

# Opens @n handles of a directory and holds them until its stdin closes.
HOLD_DIRS = r"""
import collections, json, os, resource, sys
path, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
fds, errs = [], collections.Counter()
for i in range(n):
    try:
        fds.append(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as e:
        errs[str(e.errno)] += 1
print(json.dumps({"open": len(fds), "errors": errs}), flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "close":
        for _ in range(int(cmd[1])):
            os.close(fds.pop())
        print(json.dumps({"open": len(fds)}), flush=True)
    elif cmd[0] == "open":
        try:
            fds.append(os.open(cmd[1], os.O_RDONLY))
            print(json.dumps({"ok": True}), flush=True)
        except OSError as e:
            print(json.dumps({"errno": e.errno}), flush=True)
"""


def as_user(user, script, *args, stdin=None):
    return subprocess.Popen(["/usr/bin/python3", "-c", script, *map(str, args)],
                            preexec_fn=user.drop, stdin=stdin, stdout=subprocess.PIPE,
                            text=True)


@pytest.fixture
def bob_alice(sfs_users):
    users = {u.name: u for u in sfs_users.all()}
    return users["sfst-bob"], users["sfst-alice"]


def policy_mount(vs, vmount, workdir, token, options):
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    return vmount(vs, token=token, options=["-o", f"policy={policy}", *options])


def test_missing_name_flood_keeps_other_users_values(vs, vmount, workdir, bob_alice):
    bob, alice = bob_alice
    tok = vs.create_token(acl=READ_NOT_LIST, ttl="1h")["token"]
    # attr_timeout stays 1s: alice's path walk (app, app/db) is asked of the
    # daemon again after the flood, and in this mode app is known only as a
    # remembered not-found, which the flood pushes out of its (bounded) cache.
    d = policy_mount(vs, vmount, workdir, tok,
                     ["-o", "ttl=1", "-o", "negative_ttl=1h", "-o", "cache_max_entries=20",
                      "-o", "max_attempts=1"])
    with Agent(alice) as a:
        assert a.read(d.path("app/db/password")) == b"s3cr3t-pa55word"
        lists0 = vs.endpoint_count("LIST /v1/secret/metadata/*")

        p = as_user(bob, LOOKUP_FLOOD, d.path("app"), 400)
        out, _ = p.communicate(timeout=CMD_TIMEOUT * 4)
        assert p.returncode == 0
        # unlisted names look like (empty) folders: the store cannot say otherwise
        assert json.loads(out) == {"ok": 400}
        assert vs.secret_count("secret/app/no-such-7", "read") == 1
        # the listing of app was denied once, then the denial was remembered
        assert vs.endpoint_count("LIST /v1/secret/metadata/*") - lists0 <= 1

        vs.add_fault(kind="status", status=503, path="/v1/secret/")
        time.sleep(1.2)  # past ttl: the value must be asked again, and the store fails
        reads = vs.secret_count("secret/app/db", "read")
        assert a.read(d.path("app/db/password")) == b"s3cr3t-pa55word"
        # asked (in the background: stale-while-revalidate), failed: stale
        wait_until(lambda: vs.secret_count("secret/app/db", "read") == reads + 1,
                   what="the refresh behind the stale value")
        d.wait_stderr("serving a stale value of 'app/db'")
        assert vs.secret_count("secret/app/db", "read") == reads + 1


def test_handle_cap_per_uid(vs, vmount, workdir, bob_alice):
    bob, alice = bob_alice
    sock = workdir / "ctl.sock"
    cap = 16
    d = policy_mount(vs, vmount, workdir, ROOT,
                     ["-o", "ttl=1", "-o", f"max_handles_per_uid={cap}",
                      "-o", f"control={sock}", "-o", "max_attempts=1"])
    with Agent(alice) as a:
        assert a.read(d.path("app/db/password")) == b"s3cr3t-pa55word"
        p = as_user(bob, HOLD_DIRS, d.path("app"), 3 * cap, stdin=subprocess.PIPE)
        try:
            got = json.loads(p.stdout.readline())
            assert got == {"open": cap, "errors": {str(errno.EMFILE): 2 * cap}}

            # bob is at his cap for files too
            p.stdin.write(f"open {d.path('app/db/password')}\n")
            p.stdin.flush()
            assert json.loads(p.stdout.readline()) == {"errno": errno.EMFILE}

            m, _ = metrics(sock)
            assert m.get("secretfs_handles_refused_total") == 2 * cap + 1
            assert m.get("secretfs_open_handles") >= cap

            # alice is not bob: under an outage she still opens and reads
            vs.add_fault(kind="status", status=503, path="/v1/secret/")
            time.sleep(1.2)
            assert a.read(d.path("app/db/password")) == b"s3cr3t-pa55word"
            assert "password" in a.listdir(d.path("app/db"))
            vs.clear_faults()

            # bob closes a few and gets that many back
            p.stdin.write("close 3\n")
            p.stdin.flush()
            assert json.loads(p.stdout.readline()) == {"open": cap - 3}
            p.stdin.write(f"open {d.path('app/db/password')}\n")
            p.stdin.flush()
            assert json.loads(p.stdout.readline()) == {"ok": True}
        finally:
            p.stdin.close()
            p.wait(timeout=CMD_TIMEOUT)
    # every handle was released: the gauge is back to zero
    wait_until(lambda: metrics(sock)[0].get("secretfs_open_handles") == 0,
               timeout=POLL_TIMEOUT, what="open handles back to 0")


def test_handle_cap_option_checked(workdir):
    store = workdir / "s.json"
    store.write_text("{}")
    os.chmod(store, 0o600)
    (workdir / "m").mkdir()
    r = run_secretfs(["-f", "-o", "max_handles_per_uid=lots", f"file:{store}",
                      str(workdir / "m")])
    assert r.returncode != 0
    assert "max_handles_per_uid" in r.stderr and "whole number" in r.stderr


def test_shared_listing_is_still_filtered_per_caller(policy_fs, bob_alice):
    """Handles of one directory share its listing; each caller still sees only its own."""
    from policy_env import POLICY
    bob, alice = bob_alice
    fs = policy_fs(POLICY)
    p = as_user(bob, HOLD_DIRS, fs.path("team"), 5, stdin=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline()) == {"open": 5, "errors": {}}
        with Agent(alice) as a:
            # bob's five handles are open on "team" while alice opens hers
            assert a.listdir(fs.path("team")) == ["alice"]
        with Agent(bob) as b:
            assert b.listdir(fs.path("team")) == ["bob"]
    finally:
        p.stdin.close()
        p.wait(timeout=CMD_TIMEOUT)


def test_readdir_offsets_stay_put_across_a_store_change(secretfs):
    """A handle keeps the listing it opened with, at stable offsets, while the node's changes."""
    doc = {f"d/name-{i:04d}": f"v{i}" for i in range(2000)}
    fs = secretfs(doc)
    it = os.scandir(fs.path("d"))
    first = [next(it).name for _ in range(100)]  # several readdir replies' worth: still mid-way
    new = {f"d/other-{i:04d}": f"w{i}" for i in range(1500)}
    fs.replace_store(new)
    wait_until(lambda: "other-0000" in os.listdir(fs.path("d")), what="the new listing")
    rest = [e.name for e in it]
    it.close()
    got = first + rest
    assert len(got) == len(set(got)) == 2000
    assert set(got) == {f"name-{i:04d}" for i in range(2000)}
    assert sorted(os.listdir(fs.path("d"))) == sorted(f"other-{i:04d}" for i in range(1500))
