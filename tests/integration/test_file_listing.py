"""
Listings of the file store through the kernel, where names sort around '/'
('-' and '.' before it, '0' after it): the store answers a listing from a
range of its sorted ids and skips each child folder's ids by binary search
(issue 10), so a sibling that sorts inside a folder's range, a secret that is
also a folder, and nested folders must all still show, and a rewrite of the
store must show in the next listing.
"""

import os

from helpers import read_file, wait_until

DOC = {
    "a": "a-itself",
    "a/b": {"k": "a-b-key"},
    "a-b": "a-dash-b",
    "a/b/c": "a-b-c",
    "a/b/c/d": "a-b-c-d",
    "a/b-c": "a-b-dash-c",
    "a/b.x": "a-b-dot-x",
    "a/b0": "a-b-zero",
    "a0": "a-zero",
    "a.b/c": "a-dot-b-c",
    "ab/c/d/e/f": "deep",
}


def ls(fs, rel=""):
    return sorted(os.listdir(fs.path(rel)))


def test_listings_around_slash(secretfs):
    fs = secretfs(DOC)
    # "a" is a secret and a folder: the folder shows (docs/design.md section 2).
    assert ls(fs) == ["a", "a-b", "a.b", "a0", "ab"]
    assert ls(fs, "a") == ["b", "b-c", "b.x", "b0"]
    # "a/b" is an object secret and a folder: its key and its children.
    assert ls(fs, "a/b") == ["c", "k"]
    assert ls(fs, "a/b/c") == ["d"]
    assert ls(fs, "a.b") == ["c"]
    assert ls(fs, "ab/c/d") == ["e"]
    assert ls(fs, "ab/c/d/e") == ["f"]
    assert read_file(fs.path("a/b0")) == b"a-b-zero"
    assert read_file(fs.path("a/b/k")) == b"a-b-key"
    assert read_file(fs.path("a/b/c/d")) == b"a-b-c-d"
    assert read_file(fs.path("ab/c/d/e/f")) == b"deep"
    for missing in ("a/nope", "a-b/x", "a0/x", "ab/c/x"):
        assert not os.path.exists(fs.path(missing)), missing


def test_a_rewritten_store_lists_anew(secretfs):
    fs = secretfs(DOC)
    assert ls(fs, "a") == ["b", "b-c", "b.x", "b0"]
    doc = {k: v for k, v in DOC.items() if k != "a/b0"}
    fs.replace_store({**doc, "a/b+": "a-b-plus", "a/c/d": "a-c-d"})
    wait_until(lambda: ls(fs, "a") == ["b", "b+", "b-c", "b.x", "c"], what="the new listing")
