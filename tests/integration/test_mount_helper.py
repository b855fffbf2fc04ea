"""
Mounting the way admins do: mount(8) -> mount.fuse3 -> secretfs, with the
hardened defaults kept and fstab options (policy, audit) passed through; and
a mount made by a privileged helper, served through /dev/fd/N by an
unprivileged daemon.
"""

import ctypes
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import (
    CMD_TIMEOUT,
    MOUNT_TIMEOUT,
    NOBODY,
    SECRETFS_BIN,
    STOP_TIMEOUT,
    mount_of,
    mounts,
    sanitizer_env,
    sanitizer_reports,
    stop_daemons,
    wait_until,
    write_store,
)

STORE = {"app/token": "helper-token-value", "app/db": {"password": "helper-db-pass"}}

# Runs in a private mount namespace (unshare -m): nothing here reaches the host's mounts.
# mount(8) drops PATH from the environment of its helpers, so mount.fuse3's
# `/bin/sh -c 'secretfs ...'` searches the shell's default PATH, which starts
# with /usr/local/sbin: our symlink is bind-mounted there, in the namespace only.
SCRIPT = r"""
set -u
bindir=$1 mnt=$2 out=$3
shift 3
mount --bind "$bindir" /usr/local/sbin || exit 90
trap 'umount -l "$mnt" 2>/dev/null' EXIT
PATH="$bindir:$PATH" "$@"
echo $? > "$out/mount-status"
grep -F " $mnt " /proc/self/mounts > "$out/mounts"
cat "$mnt/app/token" > "$out/token"
cat "$mnt/app/db/password" > "$out/password"
umount "$mnt"
echo $? > "$out/umount-status"
grep -c -F " $mnt " /proc/self/mounts > "$out/mounts-after"
exit 0
"""


@pytest.fixture
def via_mount(workdir):
    """Factory: runs one mount(8) command line in a namespace; returns what it saw."""
    for tool in ("unshare", "mount", "mount.fuse3"):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            pytest.skip(f"{tool} is missing (packages util-linux, fuse3)")
    bindir = workdir / "bin"
    bindir.mkdir()
    os.symlink(SECRETFS_BIN, bindir / "secretfs")
    store = workdir / "store.json"
    write_store(store, STORE)
    mnt = workdir / "mnt"
    mnt.mkdir()
    out = workdir / "out"
    out.mkdir()
    ran = []

    def run(make_cmd):
        cmd = make_cmd(store, mnt, workdir)
        r = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--",
             "/bin/sh", "-c", SCRIPT, "sh", str(bindir), str(mnt), str(out), *cmd],
            stdin=subprocess.DEVNULL, capture_output=True, errors="replace",
            timeout=CMD_TIMEOUT,
        )
        ran.append(r)

        def get(name):
            p = out / name
            return p.read_bytes() if p.exists() else None

        return r, get

    yield run

    # The namespace is gone with its last process; make sure no daemon lingers in it.
    killed = stop_daemons(mnt, binary="secretfs")
    problems = [f"daemon pids still running after the unmount: {killed}"] if killed else []
    for r in ran:
        text = r.stdout + r.stderr
        problems += [f"sanitizer report: {m}" for m in sanitizer_reports(text)]
        problems += [f"secret {v!r} printed" for v in ("helper-token-value", "helper-db-pass")
                     if v in text]
    if problems:
        pytest.fail("\n".join(problems + [r.stderr for r in ran]), pytrace=False)


def mount_t(store, mnt, workdir):
    return ["mount", "-t", "fuse.secretfs", f"file:{store}", str(mnt)]


def mount_fstab(store, mnt, workdir):
    fstab = workdir / "fstab"
    fstab.write_text(f"# test fstab\nfile:{store} {mnt} fuse.secretfs defaults 0 0\n")
    return ["mount", "-T", str(fstab), str(mnt)]


@pytest.mark.parametrize("make_cmd", [mount_t, mount_fstab], ids=["mount -t", "mount -T fstab"])
def test_mount_helper_serves_and_unmounts(via_mount, make_cmd):
    r, get = via_mount(make_cmd)
    assert r.returncode == 0, r.stderr
    assert get("mount-status") == b"0\n", r.stderr
    line = (get("mounts") or b"").decode()
    assert " fuse.secretfs " in line, line
    assert get("token") == b"helper-token-value"
    assert get("password") == b"helper-db-pass"
    assert get("umount-status") == b"0\n", r.stderr
    assert get("mounts-after") == b"0\n"


@pytest.mark.parametrize("make_cmd", [mount_t, mount_fstab], ids=["mount -t", "mount -T fstab"])
def test_mount_helper_keeps_the_hardened_defaults(via_mount, make_cmd):
    # mount(8) hands "-o rw" (and mount.fuse3 "dev,suid") to the daemon; the
    # documented defaults ro,nosuid,nodev,noexec must still hold.
    r, get = via_mount(make_cmd)
    assert get("mount-status") == b"0\n", r.stderr
    line = (get("mounts") or b"").decode()
    opts = set(line.split()[3].split(",")) if line else set()
    assert {"ro", "nosuid", "nodev", "noexec"} <= opts, f"mount options: {sorted(opts)}"


@pytest.mark.parametrize(
    "options",
    [["-o", "rw"], ["-o", "rw,suid,dev,exec"], ["-o", "rw", "-o", "exec"]],
    ids=lambda o: " ".join(o),
)
def test_command_line_cannot_weaken_the_defaults(secretfs, options):
    fs = secretfs(STORE, options=options)
    m = mount_of(fs.mnt)
    assert {"ro", "nosuid", "nodev", "noexec"} <= m["options"], sorted(m["options"])
    assert fs.path("app/token").read_bytes() == b"helper-token-value"


# ---------------------------------------------------------------- the issue's fstab line


def policy_file(workdir):
    """Root may read app/token and nothing else (root is not exempt from a policy)."""
    p = workdir / "policy"
    p.write_text("permit user:root app/token\n")
    p.chmod(0o644)
    return p


def mount_fstab_issue_line(store, mnt, workdir):
    # The form an admin writes, with test paths.  There is no syslog daemon (no
    # /dev/log) here: syslog(3) then drops the records and the daemon serves on.
    fstab = workdir / "fstab"
    fstab.write_text(
        f"file:{store} {mnt} fuse.secretfs policy={policy_file(workdir)},audit=syslog 0 0\n")
    return ["mount", "-T", str(fstab), str(mnt)]


def mount_fstab_audit_file(store, mnt, workdir):
    # The same with a file target, so the records through mount.fuse3 can be read back.
    fstab = workdir / "fstab"
    fstab.write_text(f"file:{store} {mnt} fuse.secretfs "
                     f"policy={policy_file(workdir)},audit={workdir}/audit.log 0 0\n")
    return ["mount", "-T", str(fstab), str(mnt)]


@pytest.mark.parametrize("make_cmd", [mount_fstab_issue_line, mount_fstab_audit_file],
                         ids=["policy+audit=syslog", "policy+audit=FILE"])
def test_fstab_line_with_policy_and_audit(via_mount, workdir, make_cmd):
    r, get = via_mount(make_cmd)
    assert r.returncode == 0, r.stderr
    assert get("mount-status") == b"0\n", r.stderr
    line = (get("mounts") or b"").decode()
    opts = set(line.split()[3].split(",")) if line else set()
    # the policy reached the daemon: it turned allow_other on, and it decides
    assert "allow_other" in opts, sorted(opts)
    assert {"ro", "nosuid", "nodev", "noexec"} <= opts, sorted(opts)
    assert get("token") == b"helper-token-value"
    assert get("password") == b"", "the policy should have denied app/db/password"
    assert get("umount-status") == b"0\n", r.stderr
    assert get("mounts-after") == b"0\n"
    audit = workdir / "audit.log"
    if make_cmd is mount_fstab_audit_file:
        recs = [json.loads(x) for x in audit.read_text().splitlines()]
        opens = [(x["path"], x["decision"], x["rule"]) for x in recs if x["op"] == "open"]
        assert opens == [("app/token", "permit", f"{workdir}/policy:1"),
                         ("app/db/password", "deny", None)], opens
    else:
        assert not audit.exists()


# ---------------------------------------------------------------- /dev/fd/N


MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MNT_DETACH = 2


def libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{name}: {os.strerror(e)}")


READ_AS_CHILD = """
import errno, sys
try:
    sys.stdout.buffer.write(open(sys.argv[1], "rb").read())
except OSError as e:
    sys.stderr.write(errno.errorcode[e.errno])
    sys.exit(3)
"""


def as_nobody_read(path):
    """Reads @path in a child that is nobody: (data, None) or (None, errno name)."""
    r = subprocess.run([sys.executable, "-c", READ_AS_CHILD, str(path)],
                       user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True,
                       timeout=CMD_TIMEOUT)
    return (r.stdout, None) if r.returncode == 0 else (None, r.stderr.decode())


def test_dev_fd_mountpoint_from_a_privileged_helper(workdir):
    """
    The helper (this test, as root) opens /dev/fuse and mounts it; the daemon runs
    as nobody with only the descriptor, and serves through it.
    """
    store = workdir / "store.json"
    write_store(store, STORE)
    os.chown(store, NOBODY, NOBODY)  # it must belong to the user running secretfs
    mnt = workdir / "mnt"
    mnt.mkdir()
    run = workdir / "run"
    run.mkdir()
    os.chown(run, NOBODY, NOBODY)
    ready = run / "ready"
    errpath = workdir / "daemon.stderr"

    fd = os.open("/dev/fuse", os.O_RDWR)  # inheritable by the daemon as /dev/fd/N
    proc = None
    try:
        libc_call("mount", b"secretfs", str(mnt).encode(), b"fuse.secretfs",
                  ctypes.c_ulong(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC),
                  f"fd={fd},rootmode=40000,user_id={NOBODY},group_id={NOBODY},"
                  "allow_other".encode())
        # Nothing may touch the mount until the daemon serves it: we hold the
        # only descriptor, so a stat (even realpath's) would wait forever.
        assert [m["fstype"] for m in mounts() if m["mountpoint"] == str(mnt)] == \
            ["fuse.secretfs"]
        with open(errpath, "wb") as errf:
            proc = subprocess.Popen(
                [SECRETFS_BIN, "-f", "--ready-file", str(ready), f"file:{store}",
                 f"/dev/fd/{fd}"],
                pass_fds=[fd], user=NOBODY, group=NOBODY, extra_groups=[],
                stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=sanitizer_env())
        os.close(fd)  # the daemon holds the only descriptor now
        fd = -1
        wait_until(lambda: ready.exists() or proc.poll() is not None, MOUNT_TIMEOUT,
                   what="the daemon to be ready")
        assert proc.poll() is None, errpath.read_text()

        # The daemon is nobody: nobody reads; root is let in by allow_other and
        # then refused by secretfs itself, as without a policy only its user reads.
        assert as_nobody_read(mnt / "app/token") == (b"helper-token-value", None)
        assert as_nobody_read(mnt / "app/db/password") == (b"helper-db-pass", None)
        with pytest.raises(PermissionError):
            open(mnt / "app/token", "rb").read()
        with open(f"/proc/{proc.pid}/status") as f:
            ids = {k: v.split() for k, _, v in (ln.partition(":\t") for ln in f)}
        assert ids["Uid"][:3] == [str(NOBODY)] * 3, ids["Uid"]

        # The helper unmounts; the daemon sees the session end and exits cleanly.
        libc_call("umount2", str(mnt).encode(), MNT_DETACH)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0, errpath.read_text()
        assert not ready.exists()
    finally:
        # Abort before unmounting: with no reader left, nothing can block on the mount.
        if fd >= 0:
            os.close(fd)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if any(m["mountpoint"] == str(mnt) for m in mounts()):
            libc_call("umount2", str(mnt).encode(), MNT_DETACH)
    err = errpath.read_text(errors="replace")
    assert not sanitizer_reports(err), err
    assert "helper-token-value" not in err and "helper-db-pass" not in err
