"""
--ready-file PATH: readiness for supervisors without systemd.

The file appears (atomically, holding the daemon's pid) only once a read
through the mount works, is gone once the daemon has stopped, replaces a
stale file at start (also when the start then fails), and a directory that
cannot take it is a start-up error before anything is mounted.  Both in the
foreground and when the daemon detaches.
"""

import os
import signal
import stat
import subprocess
import time

import pytest

from helpers import (
    MOUNT_TIMEOUT,
    NOBODY,
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    pid_alive,
    run_secretfs,
    try_read,
    wait_until,
    write_store,
)

STORE = {"app/token": "ready-token-value"}


def poll_ready_file(path, proc=None, timeout=MOUNT_TIMEOUT):
    """Polls without sleeping much, so that we look right after the file appears."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"secretfs exited with {proc.returncode} before the ready file appeared")
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout}s")
        time.sleep(0.001)


def test_ready_file_appears_with_the_mount_and_goes_at_stop(secretfs, workdir):
    ready = workdir / "run" / "secretfs.ready"
    ready.parent.mkdir()
    fs = secretfs(STORE, options=["--ready-file", str(ready)], wait=False)
    poll_ready_file(ready, fs.proc)
    # The moment it exists, the mount is served.
    assert is_mounted(fs.mnt)
    assert try_read(fs.path("app/token")) == b"ready-token-value"
    assert ready.read_text() == f"{fs.pid}\n"
    st = os.lstat(ready)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
    # Written through a temporary file and a rename: nothing else is left in the directory.
    assert os.listdir(ready.parent) == ["secretfs.ready"]

    fs.proc.send_signal(signal.SIGTERM)
    assert fs.proc.wait(timeout=STOP_TIMEOUT) == 0, fs.stderr()
    assert not ready.exists()
    assert not is_mounted(fs.mnt)


def test_ready_file_equals_form_and_relative_path(secretfs, workdir):
    # --ready-file=PATH works too, and a relative path is taken from the start directory.
    rel = os.path.relpath(workdir / "ready", os.getcwd())
    fs = secretfs(STORE, options=[f"--ready-file={rel}"], wait=False)
    poll_ready_file(workdir / "ready", fs.proc)
    assert try_read(fs.path("app/token")) == b"ready-token-value"
    fs.proc.send_signal(signal.SIGTERM)
    assert fs.proc.wait(timeout=STOP_TIMEOUT) == 0
    assert not (workdir / "ready").exists()


def test_ready_file_goes_when_the_mount_is_removed(secretfs, workdir):
    ready = workdir / "ready"
    fs = secretfs(STORE, options=["--ready-file", str(ready)])
    poll_ready_file(ready, fs.proc)
    assert force_unmount(fs.mnt)
    assert fs.proc.wait(timeout=STOP_TIMEOUT) == 0
    assert not ready.exists()


def test_stale_ready_file_is_replaced(secretfs, workdir):
    ready = workdir / "ready"
    ready.write_text("99999\n")
    fs = secretfs(STORE, options=["--ready-file", str(ready)])
    wait_until(lambda: ready.exists() and ready.read_text() == f"{fs.pid}\n",
               what="the ready file to name the new daemon")


def test_stale_ready_file_is_removed_when_the_start_fails(workdir):
    ready = workdir / "ready"
    ready.write_text("99999\n")
    mnt = workdir / "mnt"
    mnt.mkdir()
    store = workdir / "store.json"
    write_store(store, raw="{ broken", mode=0o600)
    r = run_secretfs(["-f", "--ready-file", str(ready), f"file:{store}", str(mnt)])
    assert r.returncode != 0
    assert not ready.exists(), "a stale ready file survived a failed start"
    assert not is_mounted(mnt)


@pytest.mark.parametrize("where", ["missing directory", "unwritable directory", "a directory"])
def test_unusable_ready_file_is_a_startup_error(workdir, where):
    mnt = workdir / "mnt"
    mnt.mkdir()
    store = workdir / "store.json"
    write_store(store, STORE)
    prefix = ()
    if where == "missing directory":
        ready = workdir / "no-such-dir" / "ready"
    elif where == "unwritable directory":
        d = workdir / "ro"
        d.mkdir(mode=0o555)
        ready = d / "ready"
        # root ignores the mode: check as the user who owns nothing here
        store.chmod(0o600)
        os.chown(store, NOBODY, NOBODY)
        prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    else:
        ready = workdir / "is-a-dir"
        ready.mkdir()
    r = run_secretfs(["-f", "--ready-file", str(ready), f"file:{store}", str(mnt)],
                     prefix=prefix)
    assert r.returncode != 0, r.stderr
    assert "--ready-file" in r.stderr and str(ready) in r.stderr, r.stderr
    assert not is_mounted(mnt)


def test_ready_file_when_the_daemon_detaches(workdir):
    # Without -f the command returns after readiness: the file is there, naming the daemon.
    ready = workdir / "ready"
    mnt = workdir / "mnt"
    mnt.mkdir()
    store = workdir / "store.json"
    write_store(store, STORE)
    r = run_secretfs(["--ready-file", str(ready), f"file:{store}", str(mnt)])
    try:
        assert r.returncode == 0, r.stderr
        assert is_mounted(mnt)
        pid = int(ready.read_text())
        assert pid_alive(pid)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert str(mnt).encode() in f.read().split(b"\0")
        assert try_read(mnt / "app/token") == b"ready-token-value"
    finally:
        force_unmount(mnt)
    wait_until(lambda: not ready.exists(), what="the ready file to go after the unmount")
    wait_until(lambda: not pid_alive(pid), what="the daemon to exit")
