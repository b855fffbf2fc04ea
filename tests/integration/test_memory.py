"""
Secret memory (docs/design.md section 7), seen from outside the daemon: the secure
heap is locked and excluded from core dumps, core dumps are off, and a
process that cannot lock memory says so in one line with the fix.
"""

import subprocess

import pytest

from helpers import (
    SECRETFS_BIN,
    STORE,
    force_unmount,
    mappings,
    read_file,
    sanitizer_env,
    stop_daemons,
    write_store,
)


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)




def test_secure_heap_is_locked_and_not_dumped(secretfs):
    fs = secretfs(STORE)
    assert read_file(fs.path("prod/api-key")) == b"abc-api-key-123"
    # The heap is twice cache_max_bytes (default 4 MiB), rounded to a power of two.
    locked_kib = int(_status(fs.pid)["VmLck"].split()[0])
    assert locked_kib >= 8192, f"VmLck {locked_kib} kB: the secret heap is not locked"
    heaps = [
        m for m in mappings(fs.pid)
        if m["end"] - m["start"] == 8 << 20 and "dd" in m["flags"] and ({"lo", "lf"} & m["flags"])
    ]
    assert heaps, "no 8 MiB mapping that is both locked and MADV_DONTDUMP"
    with open(f"/proc/{fs.pid}/limits") as f:
        core = next(line for line in f if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core


def test_cache_max_bytes_sizes_the_heap(secretfs):
    fs = secretfs(STORE, options=["-o", "cache_max_bytes=3M"])
    read_file(fs.path("prod/api-key"))
    assert any(
        m["end"] - m["start"] == 8 << 20 and "dd" in m["flags"] for m in mappings(fs.pid)
    ), "3M of values should get a heap of 8 MiB (6 MiB rounded up)"
    locked_kib = int(_status(fs.pid)["VmLck"].split()[0])
    assert locked_kib == 8192, f"VmLck {locked_kib} kB"


def test_unlockable_heap_is_a_one_line_warning_with_the_fix(workdir):
    """Without CAP_IPC_LOCK and with a 64 KiB memlock limit the heap cannot be locked."""
    store = workdir / "store.json"
    write_store(store, STORE)
    mnt = workdir / "mnt"
    mnt.mkdir()
    cmd = (
        "ulimit -l 64 && exec setpriv --bounding-set -ipc_lock "
        f"\"$0\" file:{store} {mnt}"
    )
    try:
        r = subprocess.run(
            ["bash", "-c", cmd, SECRETFS_BIN],
            capture_output=True, text=True, timeout=60, env=sanitizer_env(),
        )
        assert r.returncode == 0, r.stderr
        warnings = [l for l in r.stderr.splitlines() if l.startswith("secretfs: warning:")]
        assert len(warnings) == 1, r.stderr
        assert "cannot lock" in warnings[0] and "ulimit -l" in warnings[0], warnings[0]
        assert "CAP_IPC_LOCK" in warnings[0], warnings[0]
        # It still serves; values are then merely unlocked, not lost.
        assert read_file(mnt / "prod/api-key") == b"abc-api-key-123"
    finally:
        force_unmount(mnt)
        stop_daemons(mnt)


def test_a_store_larger_than_the_value_budget_loads(secretfs):
    """
    The file store keeps every value in the locked heap, so the heap grows
    with the store: 6 MiB of values under the default 4 MiB budget load, are
    read exactly, and the heap is locked and undumpable.
    """
    doc = {f"big/s{i:03d}": f"{i:03d}" + "v" * (60 * 1024 - 3) for i in range(100)}
    fs = secretfs(doc)
    for i in (0, 57, 99):
        assert read_file(fs.path(f"big/s{i:03d}")) == doc[f"big/s{i:03d}"].encode()
    heaps = [m for m in mappings(fs.pid) if m["end"] - m["start"] >= 16 << 20
             and "dd" in m["flags"] and ({"lo", "lf"} & m["flags"])]
    assert heaps, "no locked, undumpable heap of at least 16 MiB for a 6 MiB store"
    assert "locked heap was full" not in fs.stderr(), fs.stderr()


def test_a_store_of_many_small_keys_loads(secretfs):
    """
    60,000 keys of a few bytes each (about 1.5 MB of JSON): the parse tree is
    a transient copy and stays out of the locked heap, which the converted
    values need (before: "out of memory" at about 30,000 keys on a default
    mount).
    """
    doc = {f"f{i:05d}/k{j:02d}": f"v{i}-{j}" for i in range(12000) for j in range(5)}
    fs = secretfs(doc)
    for key in ("f00000/k00", "f07001/k03", "f11999/k04"):
        assert read_file(fs.path(key)) == doc[key].encode()
    assert "locked heap was full" not in fs.stderr(), fs.stderr()
