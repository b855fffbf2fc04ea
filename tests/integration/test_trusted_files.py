"""
Files that decide what the daemon does (the config file, the policy, the
file store; the Vault and AWS credential files and the CA file are in
test_vault.py and test_aws.py) are checked like OpenSSH's safe_path: the
file and every directory above it (of the path reached after symlinks)
belong to root or the daemon's user and are not writable by group or
others, except a sticky directory whose entry belongs to root or the
daemon's user; regular files only; nothing on procfs or sysfs.  Each
check is made through a real daemon start, which must fail before
mounting and name the file and the reason, or, for the accepted layouts,
mount and serve.
"""

import ctypes
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import (
    CMD_TIMEOUT,
    MOUNT_TIMEOUT,
    NOBODY,
    SECRETFS_BIN,
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    kill_pids,
    pids_serving,
    read_file,
    run_secretfs,
    sanitizer_env,
    sanitizer_reports,
    write_store,
)

DOC = {"app/token": "trusted-token-value", "app/db": {"password": "trusted-db-pass"}}
VALUES = ["trusted-token-value", "trusted-db-pass"]
POLICY = "permit user:root **\n"


def expect_refused(workdir, args, needles):
    """secretfs @args (daemonizing) must exit non-zero before mounting and say every @needle."""
    mnt = workdir / f"mnt-fail-{time.monotonic_ns()}"
    mnt.mkdir()
    r = run_secretfs([*[a.replace("MNT", str(mnt)) for a in args]], timeout=CMD_TIMEOUT)
    mounted = is_mounted(mnt)
    if mounted or r.returncode == 0:
        force_unmount(mnt)
        kill_pids(pids_serving(str(mnt)))
    assert not mounted and r.returncode != 0, f"secretfs started:\n{r.stderr}"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr:\n{r.stderr}"
    for v in VALUES:
        assert v not in r.stderr + r.stdout
    return r.stderr


def put(path, text, mode=0o600, owner=0):
    path.write_text(text)
    os.chmod(path, mode)
    os.chown(path, owner, owner)
    return path


# ---------------------------------------------------------------- the three kinds


def config_args(workdir, path, store):
    """The config file at @path names the store."""
    put(path, f"[secretfs]\nsource = file:{store}\n")
    return ["--config", str(path), "MNT"]


def policy_args(workdir, path, store):
    put(path, POLICY)
    return ["-o", f"policy={path}", f"file:{store}", "MNT"]


def store_args(workdir, path, store):
    write_store(path, DOC)
    return [f"file:{path}", "MNT"]


KINDS = {"config": config_args, "policy": policy_args, "store": store_args}


@pytest.fixture
def good_store(workdir):
    store = workdir / "good-store.json"
    write_store(store, DOC)
    return store


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return KINDS[request.param]


# ---------------------------------------------------------------- hostile places


def test_directory_writable_by_others_is_refused(workdir, good_store, kind):
    d = workdir / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    f = d / "file"
    expect_refused(workdir, kind(workdir, f, good_store),
                   [str(f), f"directory {d} is writable by group or others"])


def test_directory_writable_by_group_is_refused(workdir, good_store, kind):
    d = workdir / "grp"
    d.mkdir()
    os.chmod(d, 0o775)
    f = d / "file"
    expect_refused(workdir, kind(workdir, f, good_store),
                   [str(f), f"directory {d} is writable by group or others"])


def test_directory_of_another_user_is_refused(workdir, good_store, kind):
    d = workdir / "theirs"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    f = d / "file"
    expect_refused(workdir, kind(workdir, f, good_store),
                   [str(f), f"directory {d} is owned by uid {NOBODY}"])


def test_hostile_directory_higher_up_is_refused(workdir, good_store, kind):
    top = workdir / "top"
    (top / "a" / "b").mkdir(parents=True)
    os.chmod(top, 0o777)
    f = top / "a" / "b" / "file"
    expect_refused(workdir, kind(workdir, f, good_store),
                   [str(f), f"directory {top} is writable by group or others"])


def test_symlink_into_a_hostile_directory_is_refused(workdir, good_store, kind):
    """The path reached after symlinks is what is checked, not the link's own directory."""
    d = workdir / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    target = d / "file"
    args = kind(workdir, target, good_store)
    link = workdir / "link"
    link.symlink_to(target)
    args = [str(link) if a == str(target) else a.replace(str(target), str(link)) for a in args]
    expect_refused(workdir, args, [str(link), f"directory {d} is writable by group or others"])


@pytest.mark.parametrize("target, fs", [("/proc/1/comm", "procfs"),
                                         ("/proc/self/comm", "procfs"),
                                         ("/sys/kernel/profiling", "sysfs")])
def test_symlink_into_proc_or_sys_is_refused(workdir, good_store, kind, target, fs):
    """/proc/PID/comm of a non-dumpable process is root-owned and holds text its owner chose."""
    if not os.path.exists(target):
        pytest.skip(f"{target} does not exist here")
    link = workdir / "file"
    args = kind(workdir, workdir / "unused", good_store)
    args = [a.replace(str(workdir / "unused"), str(link)) for a in args]
    link.symlink_to(target)
    expect_refused(workdir, args, [str(link), f"is on {fs}"])


def test_file_writable_by_others_is_refused(workdir, good_store, kind):
    f = workdir / "file"
    args = kind(workdir, f, good_store)
    os.chmod(f, 0o666)
    expect_refused(workdir, args, [str(f), "writable by group or others"])


def test_file_of_another_user_is_refused(workdir, good_store, kind):
    f = workdir / "file"
    args = kind(workdir, f, good_store)
    os.chown(f, NOBODY, NOBODY)
    expect_refused(workdir, args, [str(f), f"owned by uid {NOBODY}"])


def test_fifo_is_refused_without_hanging(workdir, good_store, kind):
    f = workdir / "file"
    args = kind(workdir, workdir / "unused", good_store)
    args = [a.replace(str(workdir / "unused"), str(f)) for a in args]
    os.mkfifo(f, 0o600)
    expect_refused(workdir, args, [str(f), "not a regular file"])


def test_sticky_directory_with_an_entry_of_another_user_is_refused(workdir, good_store, kind):
    d = workdir / "sticky"
    d.mkdir()
    os.chmod(d, 0o1777)
    f = d / "file"
    args = kind(workdir, f, good_store)
    os.chown(f, NOBODY, NOBODY)
    expect_refused(workdir, args, [str(f), f"owned by uid {NOBODY}"])


def test_file_on_a_fuse_mount_is_refused(secretfs, workdir, good_store, kind):
    """
    A FUSE server chooses the owner and mode it shows: here a mount (secretfs
    itself) presents the file as root's, mode 0400, in root's 0500
    directories, which every other check accepts.  A user allowed to mount
    FUSE could do the same over a directory of theirs in /tmp.
    """
    args = kind(workdir, workdir / "unused", good_store)
    content = (workdir / "unused").read_text()
    fuse = secretfs({"cfg/file": content})
    f = fuse.path("cfg", "file")
    st = os.stat(f)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o400)  # what the other checks see
    args = [a.replace(str(workdir / "unused"), str(f)) for a in args]
    expect_refused(workdir, args, [str(f), "on a FUSE filesystem"])


# ---------------------------------------------------------------- accepted layouts


def serve(secretfs, args):
    """Mounts with @args (MNT replaced) and reads a value through the kernel."""
    d = secretfs(None, argv=lambda store, mnt: [a.replace("MNT", str(mnt)) for a in args],
                 secrets=VALUES)
    assert read_file(d.path("app/token")) == b"trusted-token-value"
    return d


def test_entry_of_root_in_tmp_is_accepted(secretfs, good_store, kind):
    """/tmp is writable by all but sticky: nobody else can rename or replace root's entry."""
    fd, name = tempfile.mkstemp(prefix="secretfs-trusted-", dir="/tmp")
    os.close(fd)
    try:
        serve(secretfs, kind(None, Path(name), good_store))
    finally:
        os.unlink(name)


def test_sticky_directory_with_an_entry_of_root_is_accepted(secretfs, workdir, good_store, kind):
    d = workdir / "sticky"
    d.mkdir()
    os.chmod(d, 0o1777)
    serve(secretfs, kind(workdir, d / "file", good_store))


def test_configmap_style_symlinks_are_accepted(secretfs, workdir, good_store, kind):
    """Kubernetes mounts a ConfigMap as NAME -> ..data/NAME, ..data -> ..TIMESTAMP/."""
    cm = workdir / "cm"
    ts = cm / "..2026_01_02_03_04_05.123456789"
    ts.mkdir(parents=True)
    args = kind(workdir, ts / "file", good_store)
    (cm / "..data").symlink_to(ts.name)
    (cm / "file").symlink_to("..data/file")
    args = [a.replace(str(ts / "file"), str(cm / "file")) for a in args]
    serve(secretfs, args)


def test_files_of_the_daemons_user_are_accepted(workdir):
    """
    An unprivileged daemon (nobody) trusts what nobody owns: a config and a
    store in a directory of nobody's.  The mount is made by a privileged
    helper (this test) and served through /dev/fd/N, as in test_mount_helper.py.
    """
    home = workdir / "nobody-home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    store = home / "store.json"
    write_store(store, DOC)
    os.chown(store, NOBODY, NOBODY)
    conf = put(home / "secretfs.conf", f"[secretfs]\nsource = file:{store}\n", owner=NOBODY)
    mnt = workdir / "mnt"
    mnt.mkdir()
    errpath = workdir / "daemon.stderr"
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    proc = None
    try:
        if libc.mount(b"secretfs", str(mnt).encode(), b"fuse.secretfs",
                      ctypes.c_ulong(1 | 2 | 4 | 8),  # ro, nosuid, nodev, noexec
                      f"fd={fd},rootmode=40000,user_id={NOBODY},group_id={NOBODY}".encode()):
            pytest.fail(f"mount: {os.strerror(ctypes.get_errno())}")
        with open(errpath, "wb") as errf:
            proc = subprocess.Popen([SECRETFS_BIN, "-f", "--config", str(conf), f"/dev/fd/{fd}"],
                                    pass_fds=[fd], user=NOBODY, group=NOBODY, extra_groups=[],
                                    stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                    env=sanitizer_env())
        os.close(fd)
        fd = -1
        r = subprocess.run([sys.executable, "-c",
                            "import sys; sys.stdout.write(open(sys.argv[1]).read())",
                            str(mnt / "app/token")],
                           user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                           timeout=MOUNT_TIMEOUT, text=True)
        assert proc.poll() is None, errpath.read_text()
        assert r.stdout == "trusted-token-value", r.stderr + errpath.read_text()
        libc.umount2(str(mnt).encode(), 2)  # MNT_DETACH
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, errpath.read_text()
    finally:
        if fd >= 0:
            os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if is_mounted(mnt):
            libc.umount2(str(mnt).encode(), 2)
    err = errpath.read_text(errors="replace")
    assert not sanitizer_reports(err), err
    assert not any(v in err for v in VALUES)
