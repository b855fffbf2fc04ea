"""
Issue 9, item 1: a node whose path changed kind must never be opened under
another path.

An attacker keeps an O_PATH descriptor of a secret it may not read; the store
is edited so that the path comes back as another kind of node (a secret file
becomes a folder as well, an object secret becomes a plain file) and the next
lookup of that path replaces the node.  The old inode lives on as long as the
descriptor does.  Everything done through /proc/self/fd/N then reaches the
old node: it must be refused with ESTALE (open, opendir, getattr, getxattr,
access, a lookup below it), never decided against another path, and no audit
record may name an empty path.
"""

import json

import pytest

from helpers import POLL_TIMEOUT, wait_until

# alice may read everything but prod/**: a detached prod/db must stay denied.
POLICY = """\
permit user:sfst-alice  **
deny   user:sfst-alice  prod/**
"""

VALUE_A = "detached-file-value-91a7"
VALUE_B = "detached-plain-value-44c2"
PASSWORD = "detached-key-password-3e0d"
MOTD = "detached-public-motd-58f1"


def records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def replace_and_relookup(fs, doc, want_dir, rel="prod/db"):
    """Rewrites the store, then looks @rel up as root until it has the new kind."""
    fs.replace_store(doc)
    p = fs.path(rel)

    def kind_changed():
        try:
            return p.is_dir() == want_dir and (want_dir or p.is_file())
        except OSError:
            return False

    wait_until(kind_changed, POLL_TIMEOUT, what=f"{p} to become a {'dir' if want_dir else 'file'}")


def no_empty_or_leaking_records(audit):
    recs = records(audit)
    assert recs, "the audit log recorded nothing: the test did not exercise the daemon"
    empty = [r for r in recs if r.get("path", None) == "" and r["op"] != "list"]
    assert not empty, f"audit records with an empty path: {empty}"
    # the root listing is the only record that may name ""; none of ours is a root listing
    assert not [r for r in recs if r.get("path") == ""], recs
    leaked = [r for r in recs if r["decision"] == "permit" and r["path"].startswith("prod")]
    assert not leaked, f"permitted under prod/: {leaked}"
    return recs


@pytest.fixture
def fs_factory(policy_fs, workdir):
    def start(doc):
        audit = workdir / "audit.log"
        fs = policy_fs(text=POLICY, doc=doc,
                       options=["-o", f"audit={audit}", "-o", "attr_timeout=0"])
        fs.audit = audit
        return fs

    return start


def test_control_a_kept_descriptor_reads_through_proc(fs_factory, agents):
    """Without any store edit the /proc/self/fd route works and is decided by the real path."""
    fs = fs_factory({"prod/db": VALUE_A, "public/motd": MOTD})
    alice = agents["alice"]
    pub = alice.opath(fs.path("public/motd"))
    sec = alice.opath(fs.path("prod/db"))
    assert isinstance(pub, int) and isinstance(sec, int)
    assert alice.fdop(pub, "read") == MOTD.encode()
    assert alice.fdop(pub, "getxattr") == "ENODATA"  # answered, not ENOSYS for the whole mount
    assert alice.fdop(pub, "access") is True
    assert alice.fdop(sec, "read") == "EACCES"
    assert alice.fdop(sec, "stat")["size"] == len(VALUE_A)
    recs = no_empty_or_leaking_records(fs.audit)
    opens = [(r["path"], r["decision"]) for r in recs if r["op"] == "open"]
    assert opens == [("public/motd", "permit"), ("prod/db", "deny")], recs


def test_file_that_becomes_a_folder_is_stale_not_the_mount_root(fs_factory, agents):
    fs = fs_factory({"prod/db": VALUE_A, "public/motd": MOTD})
    alice = agents["alice"]
    fd = alice.opath(fs.path("prod/db"))
    assert isinstance(fd, int), fd
    assert alice.fdop(fd, "read") == "EACCES"

    # prod/db is now a folder as well: the folder is shown, the old file node is detached
    replace_and_relookup(fs, {"prod/db": VALUE_A, "prod/db/extra": "x-extra-0001",
                              "public/motd": MOTD}, want_dir=True)

    assert alice.fdop(fd, "read") == "ESTALE"
    assert alice.fdop(fd, "stat") == "ESTALE"
    assert alice.fdop(fd, "getxattr") == "ESTALE"
    assert alice.fdop(fd, "access") == "ESTALE"
    # by its path, prod/db is the new folder and still denied
    assert alice.listdir(fs.path("prod/db")) == "EACCES"
    assert alice.read(fs.path("prod/db/extra")) == "EACCES"
    no_empty_or_leaking_records(fs.audit)


def test_object_that_becomes_a_file_is_stale(fs_factory, agents):
    fs = fs_factory({"prod/db": {"password": PASSWORD}, "public/motd": MOTD})
    alice = agents["alice"]
    dfd = alice.opath(fs.path("prod/db"))
    kfd = alice.opath(fs.path("prod/db/password"))
    assert isinstance(dfd, int) and isinstance(kfd, int), (dfd, kfd)
    assert alice.fdop(dfd, "list") == "EACCES"

    replace_and_relookup(fs, {"prod/db": VALUE_B, "public/motd": MOTD}, want_dir=False)

    assert alice.fdop(dfd, "list") == "ESTALE"
    assert alice.fdop(dfd, "stat") == "ESTALE"
    assert alice.fdop(dfd, "getxattr") == "ESTALE"
    assert alice.fdop(dfd, "access") == "ESTALE"
    assert alice.fdop(dfd, "lookup", name="password") == "ESTALE"
    # the key node was not replaced by a lookup: it is decided by its own path
    assert alice.fdop(kfd, "read") == "EACCES"
    assert alice.read(fs.path("prod/db")) == "EACCES"
    no_empty_or_leaking_records(fs.audit)


def test_folder_that_becomes_a_file_and_back(fs_factory, agents):
    """Both ways in a row: every node a descriptor kept is stale, each new one decided by path."""
    fs = fs_factory({"prod/db/password": PASSWORD, "public/motd": MOTD})
    alice = agents["alice"]
    folder = alice.opath(fs.path("prod/db"))
    key = alice.opath(fs.path("prod/db/password"))
    assert isinstance(folder, int) and isinstance(key, int)

    replace_and_relookup(fs, {"prod/db": VALUE_B, "public/motd": MOTD}, want_dir=False)
    as_file = alice.opath(fs.path("prod/db"))
    assert isinstance(as_file, int)
    assert alice.fdop(folder, "list") == "ESTALE"
    assert alice.fdop(as_file, "read") == "EACCES"

    replace_and_relookup(fs, {"prod/db/password": PASSWORD, "public/motd": MOTD}, want_dir=True)
    assert alice.fdop(as_file, "read") == "ESTALE"
    assert alice.fdop(as_file, "stat") == "ESTALE"
    assert alice.fdop(folder, "list") == "ESTALE"  # the first folder node stays detached
    assert alice.fdop(key, "read") == "EACCES"
    assert alice.read(fs.path("public/motd")) == MOTD.encode()
    no_empty_or_leaking_records(fs.audit)
