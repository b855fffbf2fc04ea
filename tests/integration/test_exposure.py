"""
Issue 9, item 7: what the kernel still does with a secret, and what stat tells.

- Page cache, per syscall: direct_io keeps read(2) and pread(2) out of it, but
  sendfile(2), splice(2), a private mmap(2), posix_fadvise(WILLNEED) and
  readahead(2) still fill it while the file is open.  The daemon drops the
  pages when the file is closed.  The table below is what the README
  documents; the test measures it (cachestat(2)) and fails when the kernel
  and the documentation disagree.
- stat: without -o hide_denied_size a caller the policy refuses still learns
  that a secret exists and its exact length; with it, such a caller sees a
  size of 0 and a permitted one the real size, whoever asked first.  A
  denied lookup is audited once per (uid, path) per ttl.
"""

import ctypes
import json
import mmap
import os
import time

import pytest

from helpers import POLL_TIMEOUT, wait_until
from policy_env import VALUES
from test_errors import cachestat

# syscall -> whether it puts a secret's pages in the page cache while the file is open
# (kernel 6.x, direct_io files).  Keep in step with the README ("What the kernel still does").
PAGE_CACHE = {
    "read": False,
    "pread": False,
    "sendfile": True,
    "splice": True,
    "mmap_private": True,
    "fadvise_willneed": True,
    "readahead": True,
}

_libc = ctypes.CDLL(None, use_errno=True)


def _read(fd, tmp):
    while os.read(fd, 65536):
        pass


def _pread(fd, tmp):
    os.pread(fd, 1 << 20, 0)


def _sendfile(fd, tmp):
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.sendfile(out, fd, 0, 1 << 20)
    finally:
        os.close(out)
        os.unlink(tmp)  # the copy is the test's, not the mount's: gone at once


def _splice(fd, tmp):
    r, w = os.pipe()
    try:
        os.splice(fd, w, 65536)
    finally:
        os.close(r)
        os.close(w)


def _mmap_private(fd, tmp):
    m = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    try:
        assert len(m[:]) > 0
    finally:
        m.close()


def _fadvise(fd, tmp):
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)


def _readahead(fd, tmp):
    if _libc.readahead(fd, ctypes.c_long(0), ctypes.c_size_t(1 << 20)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


CALLS = {
    "read": _read,
    "pread": _pread,
    "sendfile": _sendfile,
    "splice": _splice,
    "mmap_private": _mmap_private,
    "fadvise_willneed": _fadvise,
    "readahead": _readahead,
}


@pytest.fixture
def big(secretfs):
    return secretfs({"big": "p" * 20000, "small": "page-cache-small-value-7f"})


@pytest.mark.parametrize("call", sorted(CALLS))
def test_page_cache_per_syscall_and_dropped_at_close(big, workdir, call):
    """A watcher opened first sees the inode's pages without opening it again."""
    watcher = os.open(big.path("big"), os.O_RDONLY)
    try:
        fd = os.open(big.path("big"), os.O_RDONLY)
        try:
            CALLS[call](fd, workdir / "copy.out")
            while_open = cachestat(watcher)[0]
        finally:
            os.close(fd)
        # release answers first, then drops the pages: wait for the notification
        deadline = time.monotonic() + POLL_TIMEOUT
        while cachestat(watcher)[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        after = cachestat(watcher)[0]
    finally:
        os.close(watcher)
    print(f"{call}: {while_open} pages while open, {after} after close")
    assert after == 0, f"{call}: {after} secret pages still in the page cache after close"
    assert (while_open > 0) == PAGE_CACHE[call], (
        f"{call}: {while_open} pages while open; the README says "
        f"{'it does' if PAGE_CACHE[call] else 'it does not'} fill the page cache")


# ---------------------------------------------------------------- stat and lookups

def lookup_records(audit):
    if not audit.exists():
        return []
    recs = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    return [r for r in recs if r["op"] == "lookup"]


def test_stat_shows_the_exact_size_of_a_denied_secret_without_the_option(policy_fs, agents,
                                                                          workdir):
    """The trade-off hide_denied_size exists for; and the denied lookup is audited once."""
    audit = workdir / "audit.log"
    fs = policy_fs(options=["-o", f"audit={audit}"])
    bob, alice = agents["bob"], agents["alice"]
    for _ in range(3):
        assert bob.size(fs.path("team/alice")) == len(VALUES["team/alice"])
    assert bob.read(fs.path("team/alice")) == "EACCES"
    assert alice.size(fs.path("team/alice")) == len(VALUES["team/alice"])
    recs = lookup_records(audit)
    assert [(r["uid"], r["path"], r["decision"]) for r in recs] == [
        (bob.user.uid, "team/alice", "deny")], recs


def test_hide_denied_size(policy_fs, agents, workdir):
    audit = workdir / "audit.log"
    fs = policy_fs(options=["-o", "hide_denied_size", "-o", f"audit={audit}",
                            "-o", "attr_timeout=1h"])
    bob, alice, carol = agents["bob"], agents["alice"], agents["carol"]
    alice_len = len(VALUES["team/alice"])
    # in every order, each caller sees its own answer, despite attr_timeout=1h
    assert bob.size(fs.path("team/alice")) == 0
    assert alice.size(fs.path("team/alice")) == alice_len
    assert bob.size(fs.path("team/alice")) == 0
    assert alice.read(fs.path("team/alice")) == VALUES["team/alice"]
    assert bob.size(fs.path("team/alice")) == 0
    assert alice.size(fs.path("team/alice")) == alice_len
    # a key file of an object secret; carol is denied app/db/password, permitted app/db/user
    assert carol.size(fs.path("app/db/password")) == 0
    assert carol.size(fs.path("app/db/user")) == len(VALUES["app/db/user"])
    assert alice.size(fs.path("app/db/password")) == len(VALUES["app/db/password"])
    # directories are not secrets: their attributes are the same for everyone
    assert bob.stat(fs.path("app")) == alice.stat(fs.path("app"))
    # one lookup record per (uid, path) within the ttl, however often it is asked
    for _ in range(5):
        assert bob.size(fs.path("team/alice")) == 0
    recs = lookup_records(audit)
    got = sorted((r["uid"], r["path"]) for r in recs)
    assert got == sorted([(bob.user.uid, "team/alice"), (carol.user.uid, "app/db/password")]), recs
    assert all(r["decision"] == "deny" and r["errno"] == 0 for r in recs), recs  # answered


def test_denied_lookup_is_audited_again_after_the_window(policy_fs, agents, workdir):
    audit = workdir / "audit.log"
    fs = policy_fs(options=["-o", "hide_denied_size", "-o", f"audit={audit}", "-o", "ttl=1s"])
    bob = agents["bob"]
    assert bob.size(fs.path("team/alice")) == 0
    assert len(lookup_records(audit)) == 1
    time.sleep(1.2)  # the window is ttl; this waits it out, it times nothing
    wait_until(lambda: bob.size(fs.path("team/alice")) == 0 and len(lookup_records(audit)) == 2,
               what="a second lookup record after the window")
