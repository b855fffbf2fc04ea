"""
Real test users for the access-policy tests, and ways to act as them.

The `sfs_users` session fixture (registered in conftest.py) creates

  sfst-alice  own group sfst-alice, supplementary group sfst-app
  sfst-bob    own group sfst-bob, in no other group
  sfst-carol  primary group sfst-app, no own group

with useradd/groupadd and deletes them (and any sfst-* user or group left by
a crashed earlier run) with userdel/groupdel, before and after the session.

An Agent is a forked child that has dropped to one user (setgroups from
getgrouplist, setgid, setuid) and then runs requests from the test one at a
time, so a test can switch between users with no fork in between and knows
the pid every audit record must name.
"""

import base64
import ctypes
import errno
import fcntl
import grp
import json
import os
import pwd
import signal
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass, field

import pytest

from helpers import CMD_TIMEOUT, POLL_TIMEOUT

PREFIX = "sfst-"
APP_GROUP = PREFIX + "app"
LOCK_PATH = "/tmp/secretfs-it-users.lock"
LOCK_TIMEOUT = 600


@dataclass
class User:
    name: str
    uid: int
    gid: int
    groups: list = field(default_factory=list)  # getgrouplist(): primary + supplementary

    def setpriv(self):
        """argv prefix that runs a command as this user with its groups."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]

    def drop(self):
        """For preexec_fn and forked children: become this user, groups included."""
        os.setgroups(self.groups)
        os.setgid(self.gid)
        os.setuid(self.uid)


@dataclass
class Users:
    alice: User
    bob: User
    carol: User
    app_gid: int

    def all(self):
        return [self.alice, self.bob, self.carol]


def _run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT)


def _ours(names):
    return sorted(n for n in names if n.startswith(PREFIX))


def remove_test_accounts():
    """Deletes every sfst-* user, then every sfst-* group.  Returns what could not be deleted."""
    problems = []
    for name in _ours(p.pw_name for p in pwd.getpwall()):
        r = _run(["userdel", name])
        if r.returncode != 0:
            # e.g. a zombie of a crashed run still counts as the user's process
            r = _run(["userdel", "-f", name])
        if r.returncode != 0 and name in {p.pw_name for p in pwd.getpwall()}:
            problems.append(f"userdel {name}: {r.stderr.strip()}")
    for name in _ours(g.gr_name for g in grp.getgrall()):
        r = _run(["groupdel", name])
        if r.returncode != 0 and name in {g.gr_name for g in grp.getgrall()}:
            problems.append(f"groupdel {name}: {r.stderr.strip()}")
    return problems


def _user(name):
    pw = pwd.getpwnam(name)
    return User(name, pw.pw_uid, pw.pw_gid, sorted(os.getgrouplist(name, pw.pw_gid)))


def create_test_accounts():
    cmds = [
        ["groupadd", APP_GROUP],
        # -M: no home, -U: a group of its own, -G: supplementary
        ["useradd", "-M", "-s", "/usr/sbin/nologin", "-U", "-G", APP_GROUP, PREFIX + "alice"],
        ["useradd", "-M", "-s", "/usr/sbin/nologin", "-U", PREFIX + "bob"],
        # -N -g: the shared group is the primary one, no group of its own
        ["useradd", "-M", "-s", "/usr/sbin/nologin", "-N", "-g", APP_GROUP, PREFIX + "carol"],
    ]
    for cmd in cmds:
        r = _run(cmd)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    app_gid = grp.getgrnam(APP_GROUP).gr_gid
    u = Users(_user(PREFIX + "alice"), _user(PREFIX + "bob"), _user(PREFIX + "carol"), app_gid)
    # What the tests rely on: check it here rather than in every test.
    assert app_gid in u.alice.groups and u.alice.gid != app_gid, u.alice
    assert app_gid not in u.bob.groups, u.bob
    assert u.carol.gid == app_gid and u.carol.groups == [app_gid], u.carol
    assert len({u.alice.uid, u.bob.uid, u.carol.uid, 0}) == 4
    return u


@pytest.fixture(scope="session")
def sfs_users():
    if os.geteuid() != 0:
        pytest.skip("creating test users needs root")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "setpriv"):
        if not any(
            os.access(os.path.join(d, tool), os.X_OK) for d in ("/usr/sbin", "/usr/bin", "/sbin")
        ):
            pytest.skip(f"{tool} is missing (Debian packages passwd, util-linux)")
    # Two sessions on one machine would delete each other's accounts: take turns.
    lock = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{LOCK_PATH}: another test session kept the test accounts "
                                f"for {LOCK_TIMEOUT}s")
                time.sleep(0.1)
        leftovers = remove_test_accounts()  # a crashed earlier run
        if leftovers:
            pytest.fail("cannot remove test accounts of an earlier run: " + "; ".join(leftovers))
        try:
            users = create_test_accounts()
        except BaseException:
            remove_test_accounts()
            raise
        try:
            yield users
        finally:
            problems = remove_test_accounts()
            if problems:
                pytest.fail("test accounts left behind: " + "; ".join(problems), pytrace=False)
    finally:
        os.close(lock)  # releases the flock


# ---------------------------------------------------------------- acting as a user


def errname(e):
    return errno.errorcode.get(e, str(e))


def _serve(rfd, wfd):
    """The agent's loop, in the child: one JSON request per line, one JSON reply per line."""
    rf = os.fdopen(rfd, "rb", buffering=0)
    wf = os.fdopen(wfd, "wb", buffering=0)
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = rf.read(65536)
            if not chunk:
                return
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        req = json.loads(line)
        op, path = req["op"], req.get("path")
        try:
            if op == "read":
                fd = os.open(path, os.O_RDONLY)
                try:
                    chunks = []
                    while c := os.read(fd, 1 << 20):
                        chunks.append(c)
                finally:
                    os.close(fd)
                res = {"data": base64.b64encode(b"".join(chunks)).decode()}
            elif op == "open":  # open and close, nothing read
                os.close(os.open(path, os.O_RDONLY))
                res = {"ok": True}
            elif op == "thread_read":  # from a second thread: the request names its tid
                box = {}

                def run():
                    box["tid"] = threading.get_native_id()
                    try:
                        fd = os.open(path, os.O_RDONLY)
                        try:
                            box["data"] = base64.b64encode(os.read(fd, 1 << 20)).decode()
                        finally:
                            os.close(fd)
                    except OSError as e:
                        box["errno"] = errname(e.errno)

                t = threading.Thread(target=run)
                t.start()
                t.join()
                res = box
            elif op == "list":
                res = {"names": sorted(os.listdir(path))}
            elif op == "stat":
                st = os.stat(path)
                res = {"uid": st.st_uid, "gid": st.st_gid, "mode": st.st_mode}
            elif op == "access":
                res = {"ok": os.access(path, os.R_OK)}
            elif op == "size":
                res = {"size": os.stat(path).st_size}
            elif op == "opath":  # a descriptor kept open in the agent, as an attacker keeps one
                res = {"fd": os.open(path, os.O_PATH | os.O_CLOEXEC | req.get("flags", 0))}
            elif op == "fdop":  # what a holder of that descriptor can do through /proc/self/fd
                fdpath = f"/proc/self/fd/{req['fd']}"
                what = req["what"]
                if what == "read":
                    fd = os.open(fdpath, os.O_RDONLY)
                    try:
                        res = {"data": base64.b64encode(os.read(fd, 1 << 20)).decode()}
                    finally:
                        os.close(fd)
                elif what == "list":
                    res = {"names": sorted(os.listdir(fdpath))}
                elif what == "stat":
                    st = os.stat(fdpath)
                    res = {"mode": st.st_mode, "size": st.st_size}
                elif what == "getxattr":
                    res = {"value": os.getxattr(fdpath, "user.secretfs").decode(errors="replace")}
                elif what == "access":  # os.access() hides the errno: call access(2) itself
                    libc = ctypes.CDLL(None, use_errno=True)
                    if libc.access(fdpath.encode(), os.R_OK) == 0:
                        res = {"ok": True}
                    else:
                        res = {"errno": errname(ctypes.get_errno())}
                elif what == "lookup":  # a name looked up below the descriptor, not through its path
                    st = os.stat(req["name"], dir_fd=req["fd"])
                    res = {"mode": st.st_mode, "size": st.st_size}
                else:
                    res = {"bad request": what}
            elif op == "closefd":
                os.close(req["fd"])
                res = {"ok": True}
            elif op == "ids":
                res = {
                    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                    "groups": sorted(os.getgroups()), "pid": os.getpid(),
                }
            else:
                res = {"bad request": op}
        except OSError as e:
            res = {"errno": errname(e.errno)}
        wf.write(json.dumps(res).encode() + b"\n")


class Agent:
    """A child process acting as @user; see the module docstring."""

    def __init__(self, user):
        self.user = user
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            status = 1
            try:
                # Only our two pipe ends: another agent's request pipe held open
                # here would keep that agent from ever seeing EOF.
                keep = sorted((req_r, rep_w))
                os.closerange(3, keep[0])
                os.closerange(keep[0] + 1, keep[1])
                os.closerange(keep[1] + 1, os.sysconf("SC_OPEN_MAX"))
                user.drop()
                _serve(req_r, rep_w)
                status = 0
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            finally:
                os._exit(status)
        os.close(req_r)
        os.close(rep_w)
        self.pid = pid
        self._w = os.fdopen(req_w, "wb", buffering=0)
        self._r = os.fdopen(rep_r, "rb", buffering=0)
        self._buf = b""
        try:
            ids = self.call("ids")
            assert ids == {
                "uid": user.uid, "euid": user.uid, "gid": user.gid,
                "groups": sorted(user.groups), "pid": pid,
            }, ids
        except BaseException:
            self.close()
            raise

    def call(self, op, path=None, **kw):
        self._w.write(json.dumps({"op": op, "path": None if path is None else str(path), **kw}).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = self._r.read(65536)
            if not chunk:
                raise RuntimeError(f"agent {self.user.name} (pid {self.pid}) died")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def read(self, path):
        """The bytes of @path, or the errno name the open/read failed with."""
        r = self.call("read", path)
        return base64.b64decode(r["data"]) if "data" in r else r["errno"]

    def thread_read(self, path):
        """read() from a second thread: (bytes or errno name, that thread's tid)."""
        r = self.call("thread_read", path)
        return (base64.b64decode(r["data"]) if "data" in r else r["errno"]), r["tid"]

    def listdir(self, path):
        """The sorted names in @path, or the errno name."""
        r = self.call("list", path)
        return r["names"] if "names" in r else r["errno"]

    def stat(self, path):
        r = self.call("stat", path)
        return (r["uid"], r["gid"], r["mode"]) if "mode" in r else r["errno"]

    def size(self, path):
        """st_size of @path as this user sees it, or the errno name."""
        r = self.call("size", path)
        return r["size"] if "size" in r else r["errno"]

    def access(self, path):
        r = self.call("access", path)
        return r["ok"] if "ok" in r else r["errno"]

    def opath(self, path):
        """An O_PATH descriptor of @path, kept open in the agent: its number, or the errno name."""
        r = self.call("opath", path)
        return r["fd"] if "fd" in r else r["errno"]

    def fdop(self, fd, what, **kw):
        """@what (read, list, stat, getxattr, access, lookup) through /proc/self/fd/@fd."""
        r = self.call("fdop", fd=fd, what=what, **kw)
        if "errno" in r:
            return r["errno"]
        if "data" in r:
            return base64.b64decode(r["data"])
        return r.get("names", r.get("ok", r))

    def closefd(self, fd):
        self.call("closefd", fd=fd)

    def close(self):
        """Ends the child (EOF on its requests) and reaps it, killing it if it hangs."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        for f in (self._w, self._r):
            try:
                f.close()
            except OSError:
                pass
        _, status = _waitpid_timeout(pid, POLL_TIMEOUT)
        assert os.waitstatus_to_exitcode(status) == 0, f"agent {self.user.name}: {status}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _waitpid_timeout(pid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        p, status = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            return p, status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)
        time.sleep(0.005)


class RootAgent:
    """The same interface for the test process itself (root): no fork, pid is ours."""

    def __init__(self):
        self.pid = os.getpid()
        self.user = User("root", 0, 0, sorted(os.getgroups()))

    def read(self, path):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            return errname(e.errno)
        try:
            chunks = []
            while c := os.read(fd, 1 << 20):
                chunks.append(c)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def listdir(self, path):
        try:
            return sorted(os.listdir(path))
        except OSError as e:
            return errname(e.errno)

    def stat(self, path):
        try:
            st = os.stat(path)
        except OSError as e:
            return errname(e.errno)
        return (st.st_uid, st.st_gid, st.st_mode)

    def access(self, path):
        return os.access(path, os.R_OK)


def run_as(user, argv, **kw):
    """Runs @argv as @user (setpriv, groups included), capturing text output."""
    return subprocess.run(
        [*user.setpriv(), *argv], capture_output=True, text=True, timeout=CMD_TIMEOUT, **kw
    )


# Run as its own process, so that it has exactly the credentials and
# capabilities its setpriv prefix leaves it.  For each pid: can it open
# /proc/PID/mem, read /proc/PID/environ, PTRACE_ATTACH (then detach at once)?
_PROC_PROBE = r"""
import ctypes, errno, json, os, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
name = lambda e: errno.errorcode.get(e, str(e))
with open("/proc/self/status") as f:
    caps = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
out = {"uid": os.getuid(), "cap_sys_ptrace": bool(caps & (1 << 19)), "pids": {}}
for pid in map(int, sys.argv[1:]):
    r = {}
    try:
        os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))
        r["mem"] = "opened"
    except OSError as e:
        r["mem"] = name(e.errno)
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            f.read()
        r["environ"] = "read"
    except OSError as e:
        r["environ"] = name(e.errno)
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        os.waitpid(pid, 0x40000000)  # __WALL: the stop that the attach causes
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
        r["ptrace"] = "attached"
    else:
        r["ptrace"] = name(ctypes.get_errno())
    out["pids"][str(pid)] = r
print(json.dumps(out))
"""


def probe_processes(pids, prefix=()):
    """What a process run under @prefix (setpriv ...) can do to each of @pids; see above."""
    r = subprocess.run(
        [*prefix, "/usr/bin/python3", "-c", _PROC_PROBE, *map(str, pids)],
        capture_output=True, text=True, timeout=CMD_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def own_exe():
    """What /proc/PID/exe shows for this interpreter and for its forked agents."""
    return os.readlink("/proc/self/exe")


__all__ = [
    "APP_GROUP", "Agent", "RootAgent", "User", "Users", "errname", "own_exe", "probe_processes",
    "run_as",
    "sfs_users",
]
