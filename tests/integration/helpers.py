"""
Helpers shared by the integration tests: mount table, polling, stores,
running the daemon, process lookup.  See conftest.py for the fixtures.
"""

import base64
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRETFS_BIN = os.path.abspath(os.environ.get("SECRETFS_BIN") or REPO / "build" / "secretfs")
SANITIZER = os.environ.get("SECRETFS_SANITIZER", "").strip()
TIME_SCALE = 4 if SANITIZER else 1

MOUNT_TIMEOUT = 10.0 * TIME_SCALE  # daemon start until the mount is live
POLL_TIMEOUT = 10.0 * TIME_SCALE  # any other "until" condition
STOP_TIMEOUT = 10.0 * TIME_SCALE  # SIGTERM until the daemon is gone
CMD_TIMEOUT = 20.0 * TIME_SCALE  # a command that must return by itself

NOBODY = 65534
FSTYPE = "fuse.secretfs"

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ThreadSanitizer",
)

# Secret values shorter than this are not searched for in the daemon's
# stderr: "app" or "5432" may appear there innocently (a path, a pid).
MIN_LEAK_CHECK_LEN = 6

# ---------------------------------------------------------------- skipping


def _skip_reason():
    if os.geteuid() != 0:
        return "integration tests need root (mounting, chown, setuid to nobody)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: load the fuse module or pass the device to the container"
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"/dev/fuse cannot be opened: {e}"
    if not shutil.which("fusermount3"):
        return "fusermount3 is missing (Debian package fuse3)"
    return None


SKIP_REASON = _skip_reason()


# ---------------------------------------------------------------- mounts


def _unescape(s):
    """/proc/self/mountinfo escapes blanks, tabs, newlines and backslashes as \\ooo."""
    out, i, b = bytearray(), 0, s.encode(errors="surrogateescape")
    while i < len(b):
        octal = b[i + 1 : i + 4]
        if b[i] == 0x5C and len(octal) == 3 and all(0x30 <= c <= 0x37 for c in octal):
            out.append(int(octal, 8))
            i += 4
        else:
            out.append(b[i])
            i += 1
    return out.decode(errors="surrogateescape")


def mounts():
    """The mounts of our namespace: a list of dicts (mountpoint, fstype, source, options)."""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            lf, rf = left.split(" "), right.split(" ")
            res.append(
                {
                    "mountpoint": _unescape(lf[4]),
                    "options": set(lf[5].split(",")),
                    "fstype": rf[0],
                    "source": _unescape(rf[1]),
                    "super_options": set(rf[2].split(",")) if len(rf) > 2 else set(),
                }
            )
    return res


def mount_of(mountpoint):
    """The mount at @mountpoint (the topmost), or None."""
    mp = os.path.realpath(mountpoint)
    found = [m for m in mounts() if m["mountpoint"] == mp]
    return found[-1] if found else None


def session_mounts(path):
    """The secretfs mounts of this test session: under (or served from) the
    session's sandbox that holds @path (its secretfs-it-* ancestor), so that a
    test comparing them before and after is not upset by another test run's
    mounts on the same machine."""
    path = Path(path)
    scope = next((p for p in (path, *path.parents) if p.name.startswith("secretfs-it-")), path.parent)
    return {
        (m["mountpoint"], m["source"])
        for m in mounts()
        if m["fstype"] == FSTYPE and (m["mountpoint"].startswith(f"{scope}/") or str(scope) in m["source"])
    }


def is_mounted(mountpoint, fstype=FSTYPE):
    m = mount_of(mountpoint)
    return m is not None and (fstype is None or m["fstype"] == fstype)


def wait_until(cond, timeout=POLL_TIMEOUT, interval=0.02, what="condition"):
    """Polls @cond until it returns a true value, which is returned; fails on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def force_unmount(mountpoint):
    """fusermount3 -u, then umount -l; True if no secretfs is mounted there any more."""
    mp = os.path.realpath(mountpoint)
    for cmd in (["fusermount3", "-u", "-q", mp], ["umount", "-l", mp]):
        if not is_mounted(mp):
            return True
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return not is_mounted(mp)


def pids_serving(mountpoint, binary=SECRETFS_BIN):
    """Pids of daemons (argv[0] == @binary) with @mountpoint among their arguments."""
    want = str(mountpoint).encode()
    res = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == os.path.basename(
            binary
        ) and want in argv:
            res.append(int(d))
    return res


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def kill_pids(pids, timeout=STOP_TIMEOUT):
    """SIGTERM, wait, SIGKILL: for processes that are not our children (daemonized)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in pids:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_daemons(mountpoint, binary=SECRETFS_BIN, grace=STOP_TIMEOUT):
    """
    Daemons serving @mountpoint get @grace seconds to exit by themselves (after an
    unmount they do), then SIGTERM and SIGKILL.  Returns the pids that had to be killed.
    """
    pids = pids_serving(str(mountpoint), binary)
    deadline = time.monotonic() + grace
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    still = [p for p in pids if pid_alive(p)]
    kill_pids(still)
    return still


# ---------------------------------------------------------------- stores


def secret_values(doc):
    """Every secret value in a store document, as bytes (for the leak checks)."""
    vals = []

    def leaf(v):
        if isinstance(v, str):
            vals.append(v.encode())
        elif isinstance(v, dict) and set(v) == {"$base64"}:
            vals.append(base64.b64decode(v["$base64"]))
        else:
            vals.append(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())

    for v in doc.values():
        if isinstance(v, dict) and set(v) != {"$base64"}:
            for kv in v.values():
                leaf(kv)
        else:
            leaf(v)
    return vals


def write_store(path, doc=None, *, raw=None, mode=0o600):
    """Atomically replaces @path with @doc (JSON) or @raw (bytes/str), chmod @mode first."""
    path = Path(path)
    data = raw if raw is not None else json.dumps(doc, ensure_ascii=False, indent=1)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".store-")
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        os.close(fd)


def try_read(path):
    try:
        return read_file(path)
    except OSError:
        return None


def read_err(path):
    """The errno of reading @path, 0 when it reads."""
    try:
        read_file(path)
    except OSError as e:
        return e.errno
    return 0


def timed_read(path):
    """(the bytes read or the errno, seconds the open and read took)."""
    t0 = time.monotonic()
    try:
        got = read_file(path)
    except OSError as e:
        got = e.errno
    return got, time.monotonic() - t0


# The errors a reader may get when a network store cannot be reached (docs/design.md
# section 4: EIO or EAGAIN; the transport errors pass as the backend contract names them).
UNREACHABLE = (errno.EIO, errno.EAGAIN, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.ECONNRESET)


def parallel_reads(paths, timeout=POLL_TIMEOUT):
    """Reads each of @paths in a thread of its own, all released at once: bytes or errno."""
    results, barrier = [None] * len(paths), threading.Barrier(len(paths))

    def reader(i):
        barrier.wait()
        try:
            results[i] = read_file(paths[i])
        except OSError as e:
            results[i] = e.errno

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a reader hung"
    return results


def sanitizer_env():
    env = dict(os.environ)
    if SANITIZER:
        # See the file for why: a false positive of ASan's writev interceptor on FUSE replies.
        supp = REPO / "tests" / "data" / "asan-integration.supp"
        env.setdefault(
            "ASAN_OPTIONS",
            f"detect_leaks=1:abort_on_error=0:print_stacktrace=1:suppressions={supp}",
        )
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.setdefault("LSAN_OPTIONS", "print_suppressions=0")
        env.setdefault("TSAN_OPTIONS", "halt_on_error=1")
    return env


def sanitizer_reports(text):
    """The sanitizer markers found in @text."""
    return [m for m in SANITIZER_MARKERS if m in text]


def run_secretfs(args, *, timeout=CMD_TIMEOUT, env=None, prefix=()):
    """Runs the daemon to completion (it must fail or daemonize); captures output as text."""
    try:
        r = subprocess.run(
            [*prefix, SECRETFS_BIN, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=env or sanitizer_env(),
            errors="replace",
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"secretfs {' '.join(args)} did not return within {timeout}s: {e}")
    found = sanitizer_reports(r.stdout + r.stderr)
    assert not found, f"sanitizer report from secretfs {' '.join(args)}:\n{r.stderr}"
    return r


# ---------------------------------------------------------------- data

BINARY_ALL_BYTES = bytes(range(256))
BIG_VALUE = "".join(chr(0x41 + (i * 7) % 26) for i in range(64 * 1024))

STORE = {
    "prod/db": {
        "username": "app-user-77",
        "password": "s3cr3t-pa55word",
        "port": 5432,
        "tls": True,
        "hosts": [1, 2],
        "nested": {"a": 1, "b": [True, None, "x"]},
        "empty": "",
    },
    "prod/api-key": "abc-api-key-123",
    "prod/empty": "",
    "prod/big": BIG_VALUE,
    "bin/all-bytes": {"$base64": base64.b64encode(BINARY_ALL_BYTES).decode()},
    "bin/keys": {"blob": {"$base64": base64.b64encode(b"\x00\xffkey-blob\x00").decode()}},
    "intl/日本語": "パスワード-ü-€-秘密",
    "intl/obj": {"clé-ß": "välue-ñ-Ωmega", "emoji-🔑": "🔐-locked-✓"},
    "top/number": 42,
    "top/bool": False,
    "top/multi\nline": "line1\nline2\n",
    "single": "single-value-xyz",
}

# What each file must read, byte for byte.
EXPECTED_FILES = {
    "prod/db/username": b"app-user-77",
    "prod/db/password": b"s3cr3t-pa55word",
    "prod/db/port": b"5432",
    "prod/db/tls": b"true",
    "prod/db/hosts": b"[1,2]",
    "prod/db/nested": b'{"a":1,"b":[true,null,"x"]}',
    "prod/db/empty": b"",
    "prod/api-key": b"abc-api-key-123",
    "prod/empty": b"",
    "prod/big": BIG_VALUE.encode(),
    "bin/all-bytes": BINARY_ALL_BYTES,
    "bin/keys/blob": b"\x00\xffkey-blob\x00",
    "intl/日本語": "パスワード-ü-€-秘密".encode(),
    "intl/obj/clé-ß": "välue-ñ-Ωmega".encode(),
    "intl/obj/emoji-🔑": "🔐-locked-✓".encode(),
    "top/number": b"42",
    "top/bool": b"false",
    "top/multi\nline": b"line1\nline2\n",
    "single": b"single-value-xyz",
}


def hostile_file(workdir, place, name, text):
    """
    Writes @text (root's, 0600) where another user could replace it, as
    @place says: "open" (a 0777 directory), "other-user" (a directory of
    nobody's), or "proc" (a symlink to /proc/self/comm, which reads
    "secretfs": a well-formed token or id).  Returns (path to give, the
    words a refusal must contain).
    """
    if place == "proc":
        link = workdir / name
        link.symlink_to("/proc/self/comm")
        return link, "is on procfs"
    d = workdir / place[0]  # short: the whole reason must fit a backend's buffer
    d.mkdir()
    if place == "open":
        os.chmod(d, 0o777)
        needle = f"directory {d} is writable by group or others"
    else:
        os.chown(d, NOBODY, NOBODY)
        needle = f"directory {d} is owned by uid {NOBODY}"
    f = d / name
    f.write_text(text)
    os.chmod(f, 0o600)
    return f, needle


def ctl_metric(sock, family, **labels):
    """One sample of `secretfs ctl metrics` (0 when the series is absent)."""
    r = run_secretfs(["ctl", "--socket", str(sock), "metrics"])
    assert r.returncode == 0, r.stderr
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in r.stdout.splitlines():
        name, _, rest = line.partition("{")
        if name == family and ",".join(sorted(rest.rsplit("}", 1)[0].split(","))) == want:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def mappings(pid):
    """Every mapping of @pid, from /proc/PID/smaps: dict(start, end, perms, name, flags (VmFlags), resident KiB)."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16),
                       "perms": m.group(3), "name": m.group(4) or "[anon]",
                       "flags": set(), "resident": 0}
                out.append(cur)
            elif line.startswith(("Rss:", "Swap:")):
                cur["resident"] += int(line.split()[1])
            elif line.startswith("VmFlags:"):
                cur["flags"] = set(line.split()[1:])
    return out
