"""
Integration test fixtures: mount the real secretfs daemon on a throwaway
store, read through the kernel, and always clean up.

Environment:
  SECRETFS_BIN        the daemon to test (default: <repo>/build/secretfs)
  SECRETFS_SANITIZER  the -fsanitize= list the daemon was built with, if any;
                      timeouts are stretched and sanitizer options are set.

Every daemon started through the `secretfs` fixture is unmounted, terminated
and reaped in teardown, even when the test fails; teardown then fails the
test if the daemon's stderr holds a sanitizer report or any secret value of
its store.  At the end of the session no fuse.secretfs mount may be left
under the session's sandbox directory.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from helpers import (
    FSTYPE,
    MIN_LEAK_CHECK_LEN,
    MOUNT_TIMEOUT,
    POLL_TIMEOUT,
    REPO,
    SECRETFS_BIN,
    SKIP_REASON,
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    mounts,
    sanitizer_env,
    sanitizer_reports,
    secret_values,
    try_read,
    wait_until,
    write_store,
)
# the sfst-* test accounts (session), and the policy tests' mount and agents
from policy_env import agents, policy_fs  # noqa: F401
from users import sfs_users  # noqa: F401


def pytest_collection_modifyitems(config, items):
    if SKIP_REASON:
        mark = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            item.add_marker(mark)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A test PKI (tests/servers/certs.py) for a module's TLS test servers."""
    sys.path.insert(0, str(REPO / "tests" / "servers"))
    from certs import generate_certs

    d = tmp_path_factory.mktemp("certs")
    os.chmod(d, 0o755)
    return generate_certs(str(d))


@pytest.fixture(scope="session")
def sandbox():
    """A world-traversable directory for the session (mountpoints must be reachable by nobody)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    if not os.access(SECRETFS_BIN, os.X_OK):
        pytest.fail(f"{SECRETFS_BIN}: not an executable; build it with make or set SECRETFS_BIN")
    d = Path(tempfile.mkdtemp(prefix="secretfs-it-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    leftover = [
        m
        for m in mounts()
        if m["fstype"] == FSTYPE
        and (m["mountpoint"].startswith(f"{d}/") or str(d) in m["source"])
    ]
    for m in leftover:
        force_unmount(m["mountpoint"])
    shutil.rmtree(d, ignore_errors=True)
    assert not leftover, "fuse.secretfs mounts left behind by the tests: " + ", ".join(
        m["mountpoint"] for m in leftover
    )


@pytest.fixture
def workdir(sandbox, request):
    # Test ids hold blanks and brackets; keep paths plain (fstab lines, mountinfo escapes).
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:48]
    d = Path(tempfile.mkdtemp(prefix=name + "-", dir=sandbox))
    os.chmod(d, 0o755)
    return d


class Daemon:
    """A running secretfs in the foreground, with its store and stderr."""

    def __init__(self, proc, mountpoint, store, stderr_path, secrets):
        self.proc = proc
        self.pid = proc.pid
        self.mnt = Path(mountpoint)
        self.store = Path(store)
        self.stderr_path = Path(stderr_path)
        self.secrets = secrets  # every value the store ever held, as bytes
        self.expect_exit = None  # set by a test that stops the daemon on purpose

    def path(self, *parts):
        return self.mnt.joinpath(*parts)

    def stderr_bytes(self):
        try:
            return self.stderr_path.read_bytes()
        except FileNotFoundError:
            return b""

    def stderr(self):
        return self.stderr_bytes().decode(errors="replace")

    def wait_stderr(self, needle, count=1, timeout=POLL_TIMEOUT):
        """Waits until @needle appears @count times in stderr; returns the stderr text."""
        return wait_until(
            lambda: self.stderr() if self.stderr().count(needle) >= count else None,
            timeout,
            what=f"{needle!r} (x{count}) in the daemon's stderr:\n{self.stderr()}",
        )

    def replace_store(self, doc=None, *, raw=None, secrets=(), mode=0o600):
        """Atomically rewrites the store; every value is remembered for the leak check."""
        if doc is not None:
            self.secrets.extend(secret_values(doc))
        self.secrets.extend(s.encode() if isinstance(s, str) else s for s in secrets)
        write_store(self.store, doc, raw=raw, mode=mode)

    def wait_value(self, rel, want, timeout=POLL_TIMEOUT):
        """Polls fresh opens of @rel until they read @want."""
        p = self.path(rel)
        seen = []

        def check():
            v = try_read(p)
            seen[:] = [v]
            return v == want

        wait_until(check, timeout, what=f"{p} to read {want!r}, last read {seen!r}")


@pytest.fixture
def secretfs(workdir, request):
    """
    Factory: secretfs(doc, options=[...]) writes @doc to a 0600 store, runs
    `secretfs -f [options] file:STORE MNT` (or `secretfs -f *argv(store, mnt)`),
    after @prefix if given (e.g. `unshare -pf --kill-child`), with stderr in a file, waits until the mount is live and returns a Daemon
    (wait=False: returns at once, for tests that watch the start themselves).
    """
    started = []
    counter = [0]

    def start(doc, *, options=(), argv=None, secrets=(), raw=None, env=None, store_mode=0o600,
              wait=True, prefix=()):
        counter[0] += 1
        n = counter[0]
        store = workdir / f"store{n}.json"
        mnt = workdir / f"mnt{n}"
        mnt.mkdir()
        all_secrets = secret_values(doc) if doc is not None else []
        all_secrets.extend(s.encode() if isinstance(s, str) else s for s in secrets)
        write_store(store, doc, raw=raw, mode=store_mode)
        args = list(argv(store, mnt)) if argv else [*options, f"file:{store}", str(mnt)]
        errpath = workdir / f"daemon{n}.stderr"
        with open(errpath, "wb") as errf:
            proc = subprocess.Popen(
                [*prefix, SECRETFS_BIN, "-f", *args],
                stdin=subprocess.DEVNULL,
                stdout=errf,
                stderr=errf,
                env=env or sanitizer_env(),
            )
        d = Daemon(proc, mnt, store, errpath, all_secrets)
        started.append(d)
        if not wait:
            return d

        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(mnt):
            if proc.poll() is not None:
                pytest.fail(
                    f"secretfs exited with status {proc.returncode} before mounting:\n"
                    + d.stderr()
                )
            if time.monotonic() > deadline:
                pytest.fail(f"secretfs did not mount {mnt} within {MOUNT_TIMEOUT}s:\n{d.stderr()}")
            time.sleep(0.01)
        return d

    yield start

    problems = []
    for d in started:
        mine = []
        if not force_unmount(d.mnt):
            mine.append(f"{d.mnt}: could not be unmounted")
        if d.proc.poll() is None:
            try:
                d.proc.wait(timeout=STOP_TIMEOUT)  # an unmount ends the loop by itself
            except subprocess.TimeoutExpired:
                d.proc.terminate()
                try:
                    d.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait()
                mine.append(f"pid {d.pid}: still running after its mount was removed")
        rc = d.proc.returncode
        want_rc = 0 if d.expect_exit is None else d.expect_exit
        if rc != want_rc:
            mine.append(f"pid {d.pid}: exit status {rc}, expected {want_rc}")

        err = d.stderr_bytes()
        text = err.decode(errors="replace")
        mine += [f"pid {d.pid}: sanitizer report ({m})" for m in sanitizer_reports(text)]
        for s in d.secrets:
            if len(s) >= MIN_LEAK_CHECK_LEN and s in err:
                mine.append(f"pid {d.pid}: a secret value appears in stderr: {s[:12]!r}...")
        if mine and text:
            mine.append(f"--- stderr of pid {d.pid} ---\n{text[-8000:]}")
        problems += mine
    if problems:
        pytest.fail("daemon teardown:\n" + "\n".join(problems), pytrace=False)


