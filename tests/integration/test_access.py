"""Who may read, and many readers at once."""

import errno
import json
import os
import threading

from helpers import EXPECTED_FILES, NOBODY, STORE, read_file


def as_user(uid, gid, probe):
    """
    Runs @probe() in a forked child after setgroups([]), setgid(@gid), setuid(@uid);
    @probe returns a JSON-able dict, which is returned here.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            out = json.dumps(probe()).encode()
            status = 0
        except BaseException as e:  # noqa: BLE001 - report anything to the parent
            out = json.dumps({"child exception": repr(e)}).encode()
        finally:
            try:
                os.write(w, out)
            finally:
                os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    res = json.loads(data or b"{}")
    assert os.waitstatus_to_exitcode(status) == 0, res
    return res


def outcome(fn, *args):
    """'ok' or the errno name @fn(*args) failed with."""
    try:
        fn(*args)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def _open_read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    finally:
        os.close(fd)


def test_other_uid_is_denied_by_the_kernel(secretfs):
    fs = secretfs(STORE)
    secret = str(fs.path("prod/db/password"))

    def probe():
        return {
            "ids": [os.getuid(), os.geteuid(), os.getgid()],
            "stat parent": outcome(os.stat, str(fs.mnt.parent)),  # control: reachable
            "stat mnt": outcome(os.stat, str(fs.mnt)),
            "open": outcome(_open_read, secret),
            "stat secret": outcome(os.stat, secret),
            "list root": outcome(os.listdir, str(fs.mnt)),
            "list dir": outcome(os.listdir, str(fs.path("prod"))),
        }

    res = as_user(NOBODY, NOBODY, probe)
    assert res == {
        "ids": [NOBODY, NOBODY, NOBODY],
        "stat parent": "ok",
        "stat mnt": "EACCES",
        "open": "EACCES",
        "stat secret": "EACCES",
        "list root": "EACCES",
        "list dir": "EACCES",
    }
    # The owner still reads.
    assert read_file(secret) == EXPECTED_FILES["prod/db/password"]


def test_other_uid_is_denied_by_the_daemon_with_allow_other(secretfs):
    # With allow_other the kernel lets nobody through; the daemon's own check must refuse.
    fs = secretfs(STORE, options=["-o", "allow_other"])
    secret = str(fs.path("prod/db/password"))

    def probe():
        return {
            "stat parent": outcome(os.stat, str(fs.mnt.parent)),
            "stat mnt": outcome(os.stat, str(fs.mnt)),  # control: the kernel let us in
            "open": outcome(_open_read, secret),
            "open other": outcome(_open_read, str(fs.path("prod/big"))),
            "list root": outcome(os.listdir, str(fs.mnt)),
            "list dir": outcome(os.listdir, str(fs.path("prod/db"))),
        }

    res = as_user(NOBODY, NOBODY, probe)
    assert res == {
        "stat parent": "ok",
        "stat mnt": "ok",
        "open": "EACCES",
        "open other": "EACCES",
        "list root": "EACCES",
        "list dir": "EACCES",
    }
    assert read_file(secret) == EXPECTED_FILES["prod/db/password"]


def test_concurrent_readers_get_exact_bytes(secretfs):
    fs = secretfs(STORE)
    rels = ["prod/db/password", "prod/api-key", "bin/all-bytes", "intl/obj/clé-ß", "prod/db/port"]
    want = {r: EXPECTED_FILES[r] for r in rels}
    paths = {r: str(fs.path(r)) for r in rels}
    nthreads, rounds = 32, 200
    errors = []
    counts = [0] * nthreads
    start = threading.Barrier(nthreads)

    def reader(i):
        try:
            start.wait()
            for n in range(rounds):
                for r in rels[(i + n) % len(rels) :] + rels[: (i + n) % len(rels)][:2]:
                    fd = os.open(paths[r], os.O_RDONLY)
                    try:
                        got = os.read(fd, 4096)
                    finally:
                        os.close(fd)
                    if got != want[r]:
                        errors.append((i, n, r, got[:40]))
                        return
                    counts[i] += 1
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "readers hung"
    assert errors == []
    assert sum(counts) >= nthreads * rounds * 3


def test_readers_during_rotation_never_mix_versions(secretfs):
    # Each open sees one version from its first byte to its last, even
    # while the store is being rewritten under it.
    a = "A" * 40000 + "-version-a-tail"
    b = "B" * 50000 + "-version-b-tail"
    fs = secretfs({"rot": a, "other": "other-value-1"}, secrets=[b])
    docs = [{"rot": b, "other": "other-value-1"}, {"rot": a, "other": "other-value-1"}]
    path = str(fs.path("rot"))
    stop = threading.Event()
    errors, seen = [], set()

    def reader():
        try:
            while not stop.is_set():
                fd = os.open(path, os.O_RDONLY)
                try:
                    chunks = []
                    while chunk := os.read(fd, 4096):
                        chunks.append(chunk)
                finally:
                    os.close(fd)
                got = b"".join(chunks)
                if got not in (a.encode(), b.encode()):
                    errors.append(got[:20] + b"..." + got[-20:])
                    return
                seen.add(got[:1])
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            fs.replace_store(docs[i % 2])
            # let the readers see this version before the next one
            fs.wait_value("rot", docs[i % 2]["rot"].encode())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert seen == {b"A", b"B"}
