"""
What the policy and audit tests share: a store, a policy whose line numbers
the tests name, and two fixtures, policy_fs (a mount with -o policy=) and
agents (one Agent per test user, and root), registered in conftest.py.
"""

import os

import pytest

from users import Agent, RootAgent

DOC = {
    "app/db": {"password": "pol-db-password-7", "user": "pol-db-user-7"},
    "app/token": "pol-app-token-7",
    "team/alice": "alice-only-secret-7",
    "team/bob": "bob-only-secret-7",
    "ops/root-key": "root-only-key-7",
    "public/motd": "hello-public-motd-7",
    "tools/cat-only": "cat-only-value-7",
}
VALUES = {
    "app/db/password": b"pol-db-password-7",
    "app/db/user": b"pol-db-user-7",
    "app/token": b"pol-app-token-7",
    "team/alice": b"alice-only-secret-7",
    "team/bob": b"bob-only-secret-7",
    "ops/root-key": b"root-only-key-7",
    "public/motd": b"hello-public-motd-7",
    "tools/cat-only": b"cat-only-value-7",
}

# Line numbers matter: the audit tests and the messages name them.
POLICY = """\
# secretfs integration test policy
permit *                public/*
permit group:sfst-app   app/**             owner=sfst-alice group=sfst-app mode=0440
deny   user:sfst-carol  app/db/password
permit user:sfst-alice  team/alice
permit user:sfst-bob    team/bob           owner=sfst-bob mode=0400
permit user:root        ops/**
permit user:sfst-bob    tools/cat-only     exe=/usr/bin/cat
permit user:sfst-alice  tools/cat-only
"""

EACCES = "EACCES"


def write_policy(path, text, mode=0o644, owner=0):
    """Atomically replaces @path (rename over it, as editors and config managers do)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.chown(tmp, owner, -1)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


@pytest.fixture
def policy_fs(secretfs, workdir, sfs_users):
    """Factory: mounts DOC with -o policy=<workdir>/policy.conf holding @text."""
    counter = [0]

    def start(text=POLICY, options=(), doc=DOC, prefix=()):
        counter[0] += 1
        policy = workdir / f"policy{counter[0]}.conf"
        write_policy(policy, text)
        fs = secretfs(doc, options=["-o", f"policy={policy}", *options], prefix=prefix)
        fs.policy = policy
        return fs

    return start


@pytest.fixture
def agents(sfs_users):
    """One agent per test user, and root (the test process); all closed at the end."""
    started = {}
    try:
        for u in sfs_users.all():
            started[u.name.removeprefix("sfst-")] = Agent(u)
        started["root"] = RootAgent()
        yield started
    finally:
        for a in started.values():
            if isinstance(a, Agent):
                a.close()
