"""Reading through the kernel: exact bytes, listings, sizes, types."""

import os
import stat

import pytest

from helpers import EXPECTED_FILES, STORE, read_file


@pytest.fixture
def fs(secretfs):
    return secretfs(STORE)


@pytest.mark.parametrize("rel", sorted(EXPECTED_FILES), ids=lambda r: r.replace("\n", "\\n"))
def test_read_exact_bytes(fs, rel):
    # What cat(1) would print: the value, no newline added, nothing dropped.
    assert read_file(fs.path(rel)) == EXPECTED_FILES[rel]


def test_listings(fs):
    def ls(rel=""):
        return set(os.listdir(fs.path(rel)))

    assert ls() == {"prod", "bin", "intl", "top", "single"}
    assert ls("prod") == {"db", "api-key", "empty", "big"}
    assert ls("prod/db") == {"username", "password", "port", "tls", "hosts", "nested", "empty"}
    assert ls("bin") == {"all-bytes", "keys"}
    assert ls("bin/keys") == {"blob"}
    assert ls("intl") == {"日本語", "obj"}
    assert ls("intl/obj") == {"clé-ß", "emoji-🔑"}
    assert ls("top") == {"number", "bool", "multi\nline"}


def test_listing_with_scandir_types(fs):
    # d_type from readdir: folders and object secrets are directories.
    with os.scandir(fs.path("prod")) as it:
        kinds = {e.name: e.is_dir() for e in it}
    assert kinds == {"db": True, "api-key": False, "empty": False, "big": False}


def test_file_and_directory_attributes(fs):
    d = os.stat(fs.path("prod/db"))
    assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o500
    f = os.stat(fs.path("prod/db/password"))
    assert stat.S_ISREG(f.st_mode) and stat.S_IMODE(f.st_mode) == 0o400
    assert (f.st_uid, f.st_gid) == (os.getuid(), os.getgid())
    root = os.stat(fs.mnt)
    assert stat.S_ISDIR(root.st_mode)


@pytest.mark.parametrize("rel", sorted(EXPECTED_FILES), ids=lambda r: r.replace("\n", "\\n"))
def test_st_size_is_true_length(fs, rel):
    assert os.stat(fs.path(rel)).st_size == len(EXPECTED_FILES[rel])


@pytest.mark.parametrize("rel", ["prod/big", "bin/all-bytes", "intl/日本語", "prod/db/nested"])
def test_one_read_of_st_size_bytes_gets_everything(fs, rel):
    fd = os.open(fs.path(rel), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        assert os.read(fd, size) == EXPECTED_FILES[rel]
        assert os.read(fd, 4096) == b""  # then end of file
    finally:
        os.close(fd)


def test_reads_at_offsets(fs):
    want = EXPECTED_FILES["prod/big"]
    fd = os.open(fs.path("prod/big"), os.O_RDONLY)
    try:
        assert os.pread(fd, 10, 0) == want[:10]
        assert os.pread(fd, 100, 4090) == want[4090:4190]
        assert os.pread(fd, 100, len(want) - 5) == want[-5:]
        assert os.pread(fd, 100, len(want)) == b""
        assert os.pread(fd, 100, len(want) + 12345) == b""
        # small sequential reads put the whole value back together
        os.lseek(fd, 0, os.SEEK_SET)
        parts = []
        while chunk := os.read(fd, 777):
            parts.append(chunk)
        assert b"".join(parts) == want
    finally:
        os.close(fd)


def test_statvfs_is_read_only(fs):
    sv = os.statvfs(fs.mnt)
    assert sv.f_flag & os.ST_RDONLY
    assert sv.f_flag & os.ST_NOSUID


def test_large_listing_and_long_names(secretfs):
    # Many entries: the kernel reads the listing in several readdir calls.
    long_name = "L" * 255
    doc = {f"many/secret-{i:05d}": f"value-{i:05d}" for i in range(3000)}
    doc[f"many/{long_name}"] = "long-name-value"
    fs = secretfs(doc)
    names = set(os.listdir(fs.path("many")))
    assert names == {f"secret-{i:05d}" for i in range(3000)} | {long_name}
    assert read_file(fs.path("many", long_name)) == b"long-name-value"
    assert read_file(fs.path("many/secret-02999")) == b"value-02999"


def test_debug_mode_does_not_log_values(secretfs):
    # -d logs every request; the teardown fails the test if any value reaches stderr.
    fs = secretfs(STORE, options=["-d"])
    for rel, want in EXPECTED_FILES.items():
        assert read_file(fs.path(rel)) == want
    for rel in ("", "prod", "prod/db", "intl/obj"):
        os.listdir(fs.path(rel))
    assert "opcode" in fs.stderr() or "unique:" in fs.stderr(), "control: -d logged nothing"
