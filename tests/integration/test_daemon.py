"""Daemon mode, signals, kill -9, and the config file as the source of settings."""

import os
import signal
import time

import pytest

from helpers import (
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    pid_alive,
    pids_serving,
    read_file,
    run_secretfs,
    stop_daemons,
    try_read,
    wait_until,
    write_store,
)

STORE = {"app/token": "daemon-token-value", "app/db": {"password": "daemon-db-pass"}}


@pytest.fixture
def daemonize(workdir):
    """Factory: starts `secretfs [args] file:STORE MNT` without -f; cleans up in teardown."""
    started = []

    def start(extra_args=(), doc=STORE, name="d"):
        store = workdir / f"{name}.json"
        write_store(store, doc)
        mnt = workdir / f"{name}-mnt"
        mnt.mkdir()
        started.append(mnt)
        r = run_secretfs([*extra_args, f"file:{store}", str(mnt)])
        return r, store, mnt

    yield start

    left = []
    for mnt in started:
        if not force_unmount(mnt):
            left.append(str(mnt))
        killed = stop_daemons(mnt)
        if killed:
            left.append(f"daemon pids {killed} still running after {mnt} was unmounted")
    assert not left, f"left behind: {left}"


def the_daemon(mnt):
    pids = wait_until(lambda: pids_serving(str(mnt)), what=f"the daemon serving {mnt}")
    assert len(pids) == 1, pids
    return pids[0]


def test_daemon_returns_only_once_the_mount_is_served(daemonize):
    for i in range(5):
        r, store, mnt = daemonize(name=f"d{i}")
        assert r.returncode == 0, r.stderr
        # No polling: the command returned, so the mount must answer now.
        assert is_mounted(mnt)
        assert read_file(mnt / "app" / "token") == b"daemon-token-value"
        assert read_file(mnt / "app" / "db" / "password") == b"daemon-db-pass"
        pid = the_daemon(mnt)
        assert pid_alive(pid)
        assert "daemon-token-value" not in r.stderr + r.stdout
        assert "daemon-db-pass" not in r.stderr + r.stdout
        assert force_unmount(mnt)
        wait_until(lambda: not pid_alive(pid), what="the daemon to exit after the unmount")


def test_store_errors_after_the_fork_reach_the_terminal(daemonize):
    """The store is read after daemonizing (the locked heap must exist first): its
    errors still come back on the terminal with a failing status, and nothing mounts."""
    bad_key = "store-error-value-91"
    r, store, mnt = daemonize(doc={"ok": bad_key, "../up": "x"}, name="bad")
    assert r.returncode == 1, r.stderr
    assert f"{store}: secret path '../up' is not usable" in r.stderr, r.stderr
    assert bad_key not in r.stderr
    assert not is_mounted(mnt)
    assert not pids_serving(str(mnt))


def test_daemon_detaches_from_the_terminal(daemonize):
    r, store, mnt = daemonize()
    assert r.returncode == 0, r.stderr
    pid = the_daemon(mnt)
    assert os.getsid(pid) == pid, "the daemon should lead its own session (setsid)"
    assert os.readlink(f"/proc/{pid}/fd/2") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/cwd") == "/"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_signal_unmounts_and_exits(daemonize, sig):
    r, store, mnt = daemonize()
    assert r.returncode == 0, r.stderr
    pid = the_daemon(mnt)
    assert try_read(mnt / "app" / "token") == b"daemon-token-value"
    os.kill(pid, sig)
    wait_until(lambda: not is_mounted(mnt), what=f"the mount to go away after {sig.name}")
    wait_until(lambda: not pid_alive(pid), what=f"the daemon to exit after {sig.name}")
    assert os.listdir(mnt) == []


def test_sighup_reloads_and_keeps_serving(daemonize):
    """SIGHUP means reload (policy, audit file), never stop."""
    r, store, mnt = daemonize()
    assert r.returncode == 0, r.stderr
    pid = the_daemon(mnt)
    for _ in range(3):
        os.kill(pid, signal.SIGHUP)
    # A SIGHUP that ended the session would unmount within milliseconds.
    time.sleep(0.5)
    assert pid_alive(pid) and is_mounted(mnt)
    assert try_read(mnt / "app" / "token") == b"daemon-token-value"


def test_kill_9_is_cleaned_up_by_auto_unmount(daemonize):
    r, store, mnt = daemonize()
    assert r.returncode == 0, r.stderr
    pid = the_daemon(mnt)
    assert try_read(mnt / "app" / "token") == b"daemon-token-value"
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), what="the daemon to die")
    wait_until(lambda: not is_mounted(mnt), what="auto_unmount to remove the mount after kill -9")
    assert os.listdir(mnt) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_foreground_signal_exits_0_and_unmounts(secretfs, sig):
    # A requested stop is a success: systemd marks a unit failed on a non-zero status.
    fs = secretfs(STORE)
    assert try_read(fs.path("app/token")) == b"daemon-token-value"
    fs.proc.send_signal(sig)
    fs.proc.wait(timeout=STOP_TIMEOUT)
    fs.expect_exit = fs.proc.returncode  # judged here, not again in teardown
    assert not is_mounted(fs.mnt)
    assert "unmounting" in fs.stderr()
    assert fs.proc.returncode == 0, f"exit status {fs.proc.returncode} after {sig.name}"


def test_clean_run_writes_only_its_own_messages(secretfs):
    fs = secretfs(STORE)
    assert try_read(fs.path("app/token")) == b"daemon-token-value"
    assert force_unmount(fs.mnt)
    fs.proc.wait(timeout=STOP_TIMEOUT)
    lines = fs.stderr().splitlines()
    assert lines == [
        f"secretfs: serving file:{fs.store} at {fs.mnt}",
        f"secretfs: unmounting {fs.mnt}",
    ]


def test_foreground_kill_9_is_cleaned_up_by_auto_unmount(secretfs):
    fs = secretfs(STORE)
    fs.expect_exit = -signal.SIGKILL
    fs.proc.kill()
    fs.proc.wait(timeout=10)
    wait_until(lambda: not is_mounted(fs.mnt), what="auto_unmount after kill -9")


# ---- the config file ----


def _config(path, store, mnt=None, cache=""):
    text = f"[secretfs]\nsource = file:{store}\n"
    if mnt:
        text += f"mountpoint = {mnt}\n"
    path.write_text(text + "\n[cache]\n" + cache)
    return str(path)


@pytest.mark.parametrize("form", ["--config FILE", "--config=FILE", "-o config=FILE"])
def test_config_file_gives_the_source(secretfs, workdir, form):
    conf = workdir / "secretfs.conf"

    def argv(store, mnt):
        _config(conf, store)
        opt = {
            "--config FILE": ["--config", str(conf)],
            "--config=FILE": [f"--config={conf}"],
            "-o config=FILE": ["-o", f"config={conf}"],
        }[form]
        return [*opt, str(mnt)]

    fs = secretfs(STORE, argv=argv)
    assert read_file(fs.path("app/token")) == b"daemon-token-value"
    assert f"file:{fs.store}" in fs.stderr()  # "serving file:... at ..."


def test_config_file_gives_source_and_mountpoint(secretfs, workdir):
    conf = workdir / "secretfs.conf"
    fs = secretfs(STORE, argv=lambda store, mnt: ["--config", _config(conf, store, mnt)])
    assert read_file(fs.path("app/db/password")) == b"daemon-db-pass"


def test_command_line_source_overrides_config(secretfs, workdir):
    conf = workdir / "secretfs.conf"
    other = workdir / "other.json"
    write_store(other, {"app/token": "from-the-config-store"})

    def argv(store, mnt):
        return ["--config", _config(conf, other), f"file:{store}", str(mnt)]

    fs = secretfs(STORE, argv=argv, secrets=["from-the-config-store"])
    assert read_file(fs.path("app/token")) == b"daemon-token-value"


@pytest.mark.parametrize("override", [True, False], ids=["with -o", "config only"])
def test_command_line_option_overrides_config(secretfs, workdir, override):
    """
    attr_timeout (also the entry timeout) is observable: with 1h (the config)
    the kernel keeps a removed file's entry; with -o attr_timeout=0 it asks
    again and gets ENOENT.  The removed file is never opened, so no close
    invalidates its inode.
    """
    conf = workdir / "secretfs.conf"

    def argv(store, mnt):
        extra = ["-o", "attr_timeout=0"] if override else []
        return ["--config", _config(conf, store, cache="attr_timeout = 1h\n"), *extra, str(mnt)]

    fs = secretfs({"k": "short-value", "other": "x1"}, argv=argv, secrets=["x2-rotated"])
    assert os.stat(fs.path("k")).st_size == len("short-value")
    fs.replace_store({"other": "x2-rotated"})
    fs.wait_value("other", b"x2-rotated")
    if override:
        wait_until(
            lambda: not os.path.exists(fs.path("k")),
            what="the removed file to vanish with -o attr_timeout=0",
        )
    else:
        assert os.stat(fs.path("k")).st_size == len("short-value"), (
            "control: attr_timeout=1h not applied?"
        )
