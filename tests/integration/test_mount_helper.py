"""Mounting the fstab way: mount(8) -> mount.fuse3 -> secretfs."""

import os
import shutil
import subprocess

import pytest

from helpers import (
    CMD_TIMEOUT,
    SECRETFS_BIN,
    mount_of,
    sanitizer_reports,
    stop_daemons,
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
