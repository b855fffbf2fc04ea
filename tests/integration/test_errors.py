"""errno values: missing names, every write-type call, directories, mmap, page cache."""

import ctypes
import errno
import mmap
import os
import time
import platform
import struct

import pytest

from helpers import EXPECTED_FILES, STORE, read_file


@pytest.fixture
def fs(secretfs):
    return secretfs(STORE)


def errno_of(fn, *args, **kw):
    """The errno @fn fails with; fails the test if it succeeds."""
    try:
        fn(*args, **kw)
    except OSError as e:
        return e.errno
    pytest.fail(f"{getattr(fn, '__name__', fn)}{args} succeeded, expected an error")


@pytest.mark.parametrize(
    "rel",
    [
        "nope",
        "prod/nope",
        "prod/db/nope",
        "intl/obj/nope",
        "prod/db/nope/deeper",
        ".hidden",
        "日本",
    ],
)
def test_missing_is_enoent(fs, rel):
    assert errno_of(os.stat, fs.path(rel)) == errno.ENOENT
    assert errno_of(os.open, fs.path(rel), os.O_RDONLY) == errno.ENOENT


def test_path_under_a_file_is_enotdir(fs):
    assert errno_of(os.stat, fs.path("prod/api-key/x")) == errno.ENOTDIR
    assert errno_of(os.open, fs.path("prod/db/password/x"), os.O_RDONLY) == errno.ENOTDIR
    assert errno_of(os.listdir, fs.path("prod/api-key")) == errno.ENOTDIR
    assert errno_of(os.stat, fs.path("prod/db/password/../username")) == errno.ENOTDIR


@pytest.mark.parametrize("rel", ["", "prod", "prod/db", "intl/obj"])
def test_reading_a_directory_is_eisdir(fs, rel):
    fd = os.open(fs.path(rel), os.O_RDONLY)
    try:
        assert errno_of(os.read, fd, 100) == errno.EISDIR
    finally:
        os.close(fd)
    assert errno_of(os.open, fs.path(rel), os.O_WRONLY) == errno.EISDIR


def _p(fs, rel="prod/api-key"):
    return str(fs.path(rel))


# Each takes the Daemon; the mount is read-only and every write-type request gets EROFS.
WRITE_CALLS = {
    "open O_WRONLY": lambda fs: os.open(_p(fs, "prod/db/password"), os.O_WRONLY),
    "open O_RDWR": lambda fs: os.open(_p(fs), os.O_RDWR),
    "open O_RDONLY|O_TRUNC": lambda fs: os.open(_p(fs), os.O_RDONLY | os.O_TRUNC),
    "open O_WRONLY|O_APPEND": lambda fs: os.open(_p(fs), os.O_WRONLY | os.O_APPEND),
    "open O_CREAT new": lambda fs: os.open(_p(fs, "prod/new"), os.O_WRONLY | os.O_CREAT, 0o600),
    "open O_CREAT|O_EXCL new": lambda fs: os.open(
        _p(fs, "prod/new"), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600
    ),
    "mkdir": lambda fs: os.mkdir(_p(fs, "prod/new")),
    "mkfifo": lambda fs: os.mkfifo(_p(fs, "prod/new")),
    "unlink": lambda fs: os.unlink(_p(fs, "prod/db/password")),
    "rmdir": lambda fs: os.rmdir(_p(fs, "prod/db")),
    "rename": lambda fs: os.rename(_p(fs), _p(fs, "prod/new")),
    "rename dir": lambda fs: os.rename(_p(fs, "prod/db"), _p(fs, "prod/new")),
    "chmod": lambda fs: os.chmod(_p(fs, "prod/db/password"), 0o644),
    "chown": lambda fs: os.chown(_p(fs, "prod/db/password"), 1, 1),
    "truncate": lambda fs: os.truncate(_p(fs), 0),
    "utime": lambda fs: os.utime(_p(fs), (1, 1)),
    "setxattr": lambda fs: os.setxattr(_p(fs), "user.test", b"v"),
    "removexattr": lambda fs: os.removexattr(_p(fs), "user.test"),
    "symlink": lambda fs: os.symlink("/etc/passwd", _p(fs, "prod/new")),
    "link": lambda fs: os.link(_p(fs), _p(fs, "prod/new")),
}


@pytest.mark.parametrize("call", WRITE_CALLS)
def test_write_type_calls_are_erofs(fs, call):
    assert errno_of(WRITE_CALLS[call], fs) == errno.EROFS
    # and nothing changed
    assert read_file(fs.path("prod/api-key")) == EXPECTED_FILES["prod/api-key"]
    assert read_file(fs.path("prod/db/password")) == EXPECTED_FILES["prod/db/password"]
    assert "new" not in os.listdir(fs.path("prod"))


def test_ftruncate_and_write_on_a_read_only_fd(fs):
    fd = os.open(fs.path("prod/api-key"), os.O_RDONLY)
    try:
        assert errno_of(os.write, fd, b"x") == errno.EBADF
        assert errno_of(os.ftruncate, fd, 0) == errno.EINVAL
    finally:
        os.close(fd)
    assert read_file(fs.path("prod/api-key")) == EXPECTED_FILES["prod/api-key"]


def test_shared_mmap_of_a_secret_fails_enodev(fs):
    fd = os.open(fs.path("prod/big"), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as exc:
            mmap.mmap(fd, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        assert exc.value.errno == errno.ENODEV
    finally:
        os.close(fd)


# ---- page cache (cachestat(2), Linux 6.5+) ----

_CACHESTAT_NR = {"x86_64": 451, "aarch64": 451, "riscv64": 451}.get(platform.machine(), 451)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def cachestat(fd):
    """(nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted) for the whole file."""
    rng = ctypes.create_string_buffer(struct.pack("QQ", 0, 0), 16)  # off 0, len 0: to EOF
    out = ctypes.create_string_buffer(40)
    r = _libc.syscall(ctypes.c_long(_CACHESTAT_NR), ctypes.c_long(fd), rng, out, ctypes.c_long(0))
    if r < 0:
        e = ctypes.get_errno()
        if e == errno.ENOSYS:
            pytest.skip("cachestat(2) is not available on this kernel (needs Linux 6.5+)")
        raise OSError(e, os.strerror(e))
    return struct.unpack("5Q", out.raw)


def test_secret_reads_stay_out_of_the_page_cache(fs, workdir):
    # Control first, so a broken cachestat call cannot make the test pass.
    control = workdir / "control.bin"
    control.write_bytes(os.urandom(64 * 1024))
    cfd = os.open(control, os.O_RDONLY)
    try:
        while os.read(cfd, 65536):
            pass
        assert cachestat(cfd)[0] > 0, "control: a file just read should be in the page cache"
    finally:
        os.close(cfd)

    for rel in ("prod/big", "bin/all-bytes", "prod/db/password"):
        fd = os.open(fs.path(rel), os.O_RDONLY)
        try:
            data = b"".join(iter(lambda: os.read(fd, 65536), b""))
            assert data == EXPECTED_FILES[rel]
            assert cachestat(fd)[0] == 0, f"{rel}: secret pages in the page cache"
        finally:
            os.close(fd)


def test_private_mmap_pages_are_dropped_on_close(fs):
    """
    The kernel refuses MAP_SHARED on direct_io files but serves MAP_PRIVATE
    through the page cache.  The daemon drops those pages when the mapping's
    file is closed.  A second descriptor, opened before, observes the inode
    without an open of its own (every open already drops the pages).
    """
    watcher = os.open(fs.path("prod/big"), os.O_RDONLY)
    try:
        fd = os.open(fs.path("prod/big"), os.O_RDONLY)
        try:
            m = mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
            try:
                assert m[:] == EXPECTED_FILES["prod/big"]
                assert cachestat(watcher)[0] > 0, "control: a private mapping is page-cached"
            finally:
                m.close()
        finally:
            os.close(fd)
        deadline = time.monotonic() + 5
        while cachestat(watcher)[0] != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cachestat(watcher)[0] == 0, "secret pages still cached after close"
    finally:
        os.close(watcher)
