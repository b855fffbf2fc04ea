"""
Every copy of a secret in a running daemon, found by reading its memory
(/proc/PID/mem, as root) and placed by /proc/PID/smaps: each occurrence of a
known value, Vault token or AWS secret key must be in a mapping whose VmFlags
has `lo` (locked: never swapped) and `dd` (left out of core dumps), and after
`secretfs ctl flush` and the stale window, the values are gone from memory
altogether.  Scenarios: the file store after mounting and reading; Vault and
AWS after reads; Vault after a token renewal; each after a flush.

The values are long random strings, so a hit is never a coincidence.
"""

import base64
import json
import os
import secrets as pysecrets
import sys
import time

import pytest

from helpers import (
    POLL_TIMEOUT,
    REPO,
    SANITIZER,
    SECRETFS_BIN,
    mappings,
    read_file,
    run_secretfs,
    sanitizer_env,
    wait_until,
)

sys.path.insert(0, str(REPO / "tests" / "servers"))
from aws_server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY  # noqa: E402
from aws_server import spawn_cli as spawn_aws  # noqa: E402
from vault_server import VaultServer  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        bool(SANITIZER),
        reason=f"built with -fsanitize={SANITIZER}: ASan replaces malloc with its own "
        "allocator (quarantined frees, shadow memory), so where copies live is ASan's "
        "doing, not secretfs's; this scan runs on the plain build",
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="reading /proc/PID/mem needs root"),
]

CHUNK = 4 << 20
SKIP_NAMES = {"[vvar]", "[vsyscall]", "[vvar_vclock]"}


def rnd(tag):
    return f"{tag}-{pysecrets.token_hex(24)}"




def scan(pid, needles):
    """{label: [mapping, ...]} for every occurrence of each needle ({label: bytes})."""
    hits = {label: [] for label in needles}
    longest = max(len(n) for n in needles.values())
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for m in mappings(pid):
            # Pages never touched hold nothing; unreadable ones are guard pages.
            if "r" not in m["perms"] or m["name"] in SKIP_NAMES or not m["resident"]:
                continue
            addr = m["start"]
            tail = b""
            while addr < m["end"]:
                n = min(CHUNK, m["end"] - addr)
                try:
                    mem.seek(addr)
                    data = tail + mem.read(n)
                except OSError:
                    data, tail = b"", b""
                    addr += n
                    continue
                base = addr - len(tail)
                for label, needle in needles.items():
                    i = data.find(needle)
                    while i >= 0:
                        hits[label].append(dict(m, at=base + i))
                        i = data.find(needle, i + 1)
                tail = data[-(longest - 1):] if longest > 1 else b""
                addr += n
    return hits


def describe(m):
    return f"{m['start']:x}-{m['end']:x} {m['perms']} {m['name']} VmFlags: " + " ".join(
        sorted(m["flags"]))


def assert_only_locked(pid, needles, when):
    """Every occurrence is in a mapping that is locked and MADV_DONTDUMP."""
    hits = scan(pid, needles)
    bad = [f"{label} at {h['at']:x} in {describe(h)}"
           for label, hs in hits.items() for h in hs if not {"lo", "dd"} <= h["flags"]]
    assert not bad, f"{when}: copies outside locked, undumpable memory:\n" + "\n".join(bad)
    return hits


def assert_gone(pid, needles, when):
    """Polls until no needle is anywhere in the daemon's memory (expiry is asynchronous)."""
    deadline = time.monotonic() + POLL_TIMEOUT
    while True:
        hits = {k: v for k, v in scan(pid, needles).items() if v}
        if not hits:
            return
        if time.monotonic() > deadline:
            lines = [f"{label} at {h['at']:x} in {describe(h)}"
                     for label, hs in hits.items() for h in hs]
            pytest.fail(f"{when}: still in memory:\n" + "\n".join(lines))
        time.sleep(0.2)


def ctl_flush(sock):
    r = run_secretfs(["ctl", "--socket", str(sock), "flush", "/"])
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stdout + r.stderr


# ---------------------------------------------------------------- the file store


def test_file_store_copies_are_locked(secretfs, workdir):
    values = {
        "plain": rnd("file-plain"),
        "obj-pw": rnd("file-obj-password"),
        "obj-user": rnd("file-obj-user"),
        "binary": rnd("file-binary"),
    }
    doc = {
        "prod/plain": values["plain"],
        "prod/db": {"password": values["obj-pw"], "user": values["obj-user"]},
        "prod/bin": {"$base64": base64.b64encode(values["binary"].encode()).decode()},
    }
    sock = workdir / "file.sock"
    d = secretfs(doc, options=["-o", f"control={sock}"])
    needles = {k: v.encode() for k, v in values.items()}

    # Just mounted, nothing read yet: the store itself is in memory.
    assert_only_locked(d.pid, needles, "after mounting the file store")
    assert read_file(d.path("prod/plain")) == needles["plain"]
    assert read_file(d.path("prod/db/password")) == needles["obj-pw"]
    assert read_file(d.path("prod/db/user")) == needles["obj-user"]
    assert read_file(d.path("prod/bin")) == needles["binary"]
    hits = assert_only_locked(d.pid, needles, "after reading the file store")
    assert all(hits.values()), "the scan found no copy at all: it cannot see the heap"
    ctl_flush(sock)
    # The store is the source: its values stay, but only in locked memory.
    assert_only_locked(d.pid, needles, "after ctl flush of the file store")


# ---------------------------------------------------------------- Vault


def test_vault_token_and_values_are_locked_then_gone(secretfs, workdir, certs):
    root = rnd("hvs.memscan-root")
    values = {"db-pw": rnd("vault-db-password"), "api": rnd("vault-api-key"),
              "v1": rnd("vault-kv1-value")}
    vs = VaultServer(certs.server, certs.server_key, config={
        "root_token": root,
        "secrets": [
            {"mount": "secret", "path": "app/db", "data": {"password": values["db-pw"]}},
            {"mount": "secret", "path": "app/api", "data": {"value": values["api"]}},
        ]})
    vs.start()
    try:
        tok = rnd("hvs.memscan-token")
        vs.create_token(id=tok, policies=["root"], ttl=3, renewable=True)
        sock = workdir / "vault.sock"
        env = {k: v for k, v in sanitizer_env().items() if not k.startswith("VAULT_")}
        env.pop("CREDENTIALS_DIRECTORY", None)
        env.update(HOME=str(workdir), VAULT_TOKEN=tok)
        opts = ["-o", f"ca_file={certs.ca}", "-o", "ttl=1", "-o", "stale_ttl=1",
                "-o", f"control={sock}"]
        d = secretfs(None, argv=lambda store, mnt: [*opts, f"vault:{vs.url}/secret", str(mnt)],
                     env=env, secrets=[*values.values(), tok, root])
        token = {"token": tok.encode()}
        vals = {k: v.encode() for k, v in values.items() if k != "v1"}

        assert_only_locked(d.pid, token, "after mounting Vault (token from VAULT_TOKEN)")
        assert read_file(d.path("app/db/password")) == vals["db-pw"]
        assert read_file(d.path("app/api/value")) == vals["api"]
        hits = assert_only_locked(d.pid, {**token, **vals}, "after Vault reads")
        assert hits["token"] and hits["db-pw"], "the scan found no copy at all"

        # The lifecycle thread renews at about two thirds of the 3 s TTL.
        wait_until(lambda: vs.endpoint_count("POST /v1/auth/token/renew-self") >= 1,
                   what="a token renewal")
        assert read_file(d.path("app/db/password")) == vals["db-pw"]
        assert_only_locked(d.pid, {**token, **vals}, "after a Vault token renewal")

        ctl_flush(sock)
        assert_only_locked(d.pid, token, "after ctl flush (Vault)")
        assert_gone(d.pid, vals, "after ctl flush and expiry (Vault)")
    finally:
        vs.stop()


# ---------------------------------------------------------------- AWS


def test_aws_key_and_values_are_locked_then_gone(secretfs, workdir, certs):
    values = {"sm-plain": rnd("aws-sm-plain"), "sm-json": rnd("aws-sm-json-pw")}
    config = {"secrets": [
        {"name": "prod/plain", "secret_string": values["sm-plain"]},
        {"name": "prod/db", "secret_string": json.dumps({"password": values["sm-json"]})},
    ]}
    proc, info = spawn_aws(certs.server, certs.server_key, str(workdir / "aws"), config=config,
                           python=sys.executable)
    try:
        sock = workdir / "aws.sock"
        env = {k: v for k, v in sanitizer_env().items() if not k.startswith("AWS_")}
        env.update(HOME=str(workdir), AWS_ENDPOINT_URL=info["url"], AWS_CA_BUNDLE=certs.ca,
                   AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY,
                   AWS_SECRET_ACCESS_KEY=DEFAULT_SECRET_KEY)
        opts = ["-o", "ttl=1", "-o", "stale_ttl=1", "-o", f"control={sock}"]
        d = secretfs(None, argv=lambda store, mnt: [*opts, "aws-sm:us-east-1", str(mnt)],
                     env=env, secrets=[*values.values(), DEFAULT_SECRET_KEY])
        key = {"secret-key": DEFAULT_SECRET_KEY.encode()}
        vals = {k: v.encode() for k, v in values.items()}

        assert_only_locked(d.pid, key, "after mounting AWS (key from the environment)")
        assert read_file(d.path("prod/plain")) == vals["sm-plain"]
        assert read_file(d.path("prod/db/password")) == vals["sm-json"]
        hits = assert_only_locked(d.pid, {**key, **vals}, "after AWS reads")
        assert hits["sm-plain"], "the scan found no copy at all"

        ctl_flush(sock)
        assert_only_locked(d.pid, key, "after ctl flush (AWS)")
        assert_gone(d.pid, vals, "after ctl flush and expiry (AWS)")
    finally:
        proc.terminate()
        proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()
