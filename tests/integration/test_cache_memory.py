"""
The locked heap against what any permitted reader can ask for (issue 10,
items 1 and 3), through the kernel, against tests/servers/vault_server.py
(plain HTTP with -o insecure: the point is the daemon's memory, not TLS):

- walking a tree of 10,000 folders on a default mount, then reading a
  secret: listings used to be tables in the locked heap, bounded by count
  only, and a walk filled the heap so that every read failed with ENOMEM;
- a value larger than cache_max_bytes is read whole, and so is a folder
  whose listing is larger than it: an oversized answer is handed to its
  readers and not kept.

The fake server's LIST scans every path; the tests give it an index of
their own tree so that 10,000 listings cost milliseconds, not minutes.
"""

import os

import pytest

from helpers import read_file
from test_vault import ROOT, vault_env, vmount  # noqa: F401
from vault_server import VaultServer

FOLDERS = 10_000
# Two names of 240 bytes make each folder's listing a little over 512
# bytes, which the locked heap's buddy allocator rounds up to 1 KiB: 10,000
# listings are more than the default 8 MiB heap.
LONG = "n" * 236


def leaf_names(i):
    return [f"{LONG}{i % 10}{k:03d}"[:240] for k in range(2)]


@pytest.fixture
def tree_server(monkeypatch):
    """A Vault server with FOLDERS folders of two secrets each, and app/db."""
    vs = VaultServer(tls=False, config={"root_token": ROOT})
    vs.add_mount("secret", version=2)
    index = {"": set()}
    for i in range(FOLDERS):
        folder = f"f{i:05d}"
        index[""].add(folder + "/")
        index[folder + "/"] = set(leaf_names(i))
        for name in leaf_names(i):
            vs.put_secret("secret", f"{folder}/{name}", {"v": f"value-{i}"})
    vs.put_secret("secret", "app/db", {"password": "walk-then-read-pw"})
    index[""].add("app/")
    index["app/"] = {"db"}
    original = VaultServer._list_keys

    def indexed(paths, prefix):
        keys = index.get(prefix)
        return sorted(keys) if keys is not None else original(paths, prefix)

    monkeypatch.setattr(VaultServer, "_list_keys", staticmethod(indexed))
    vs.start()
    yield vs
    vs.stop()


def walk_listings(root):
    """Lists every folder below @root (readdir only: no value is fetched)."""
    folders = 0
    with os.scandir(root) as it:
        tops = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    for top in tops:
        names = os.listdir(top)
        assert names, top
        folders += 1
    return folders


def test_walking_ten_thousand_folders_leaves_room_for_values(tree_server, vmount):
    d = vmount(tree_server, ca=False, options=["-o", "insecure"],
               secrets=["walk-then-read-pw"])
    assert walk_listings(d.mnt) == FOLDERS + 1
    # Before: OSError ENOMEM here, and for every other read until the
    # listings expired.
    assert read_file(d.path("app", "db", "password")) == b"walk-then-read-pw"
    assert read_file(d.path("f00007", leaf_names(7)[1], "v")) == b"value-7"
    # And a walk again, from the cache or the store, still works.
    assert walk_listings(d.mnt) == FOLDERS + 1


@pytest.fixture
def big_server():
    vs = VaultServer(tls=False, config={"root_token": ROOT})
    vs.add_mount("secret", version=2)
    vs.start()
    yield vs
    vs.stop()


def test_value_larger_than_the_cache_is_read_whole(big_server, vmount):
    big = ("0123456789abcdef" * (100 * 1024 // 16))[: 100 * 1024]
    big_server.put_secret("secret", "big", {"blob": big})
    big_server.put_secret("secret", "small", {"v": "small-value-1"})
    d = vmount(big_server, ca=False, options=["-o", "insecure", "-o", "cache_max_bytes=64K"],
               secrets=["small-value-1"])
    for _ in range(3):
        assert read_file(d.path("big", "blob")) == big.encode()
    assert read_file(d.path("small", "v")) == b"small-value-1"


def test_listing_larger_than_the_cache_lists(big_server, vmount):
    names = [f"entry-{i:05d}-with-a-longer-name" for i in range(5000)]
    for n in names:
        big_server.put_secret("secret", f"wide/{n}", {"v": "x"})
    big_server.put_secret("secret", "small", {"v": "small-value-2"})
    d = vmount(big_server, ca=False, options=["-o", "insecure", "-o", "cache_max_bytes=64K"],
               secrets=["small-value-2"])
    for _ in range(2):
        assert sorted(os.listdir(d.path("wide"))) == names
    assert read_file(d.path("wide", names[4321], "v")) == b"x"
    assert read_file(d.path("small", "v")) == b"small-value-2"
