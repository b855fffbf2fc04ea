"""
One slow fetch stalls neither its folder nor the daemon (issue 10, item 2),
against tests/servers/vault_server.py with a "hold" fault: the server keeps
the matching GETs unanswered until the test clears the rule, so that what is
in flight at once is counted from the server's own gauge, never timed.

- Lookups of distinct cold names in one folder reach the store together
  (FUSE_CAP_PARALLEL_DIROPS): without it the kernel sends them one by one.
- With more readers parked on a slow store than libfuse's default pool of
  10 workers, a cached value is still read (the pool is 64 by default).
"""

import os
import threading

import pytest

from helpers import POLL_TIMEOUT, read_file, wait_until
from test_vault import ROOT, SECRETS, vault_server, vmount, vs  # noqa: F401

FOLDER = "par"
N_DIR = 8  # cold lookups in one folder
N_PARKED = 16  # more than libfuse's default of 10 workers


def put_cold(vs, n):
    for i in range(n):
        vs.put_secret("secret", f"{FOLDER}/s{i}", {"k": f"cold-value-{i}"})


def start_lookups(d, n):
    """@n threads each stat one cold name of FOLDER; returns (threads, results)."""
    results = [None] * n

    def lookup(i):
        try:
            results[i] = os.stat(d.path(FOLDER, f"s{i}")).st_mode
        except OSError as e:
            results[i] = e

    threads = [threading.Thread(target=lookup, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def finish(vs, threads):
    vs.clear_faults()  # lets the held GETs go
    for t in threads:
        t.join(timeout=POLL_TIMEOUT)
    assert not any(t.is_alive() for t in threads)


def test_lookups_in_one_folder_reach_the_store_together(vs, vmount):
    put_cold(vs, N_DIR)
    d = vmount(vs, options=["-o", "fetch_timeout=120s", "-o", "ttl=60"])
    assert sorted(os.listdir(d.path(FOLDER))) == sorted(f"s{i}" for i in range(N_DIR))
    vs.add_fault(kind="hold", path=rf"/data/{FOLDER}/s[0-9]+$")
    vs.reset_counts()
    threads, results = start_lookups(d, N_DIR)
    try:
        # Serialized lookups would leave one GET in flight, the others queued in the kernel.
        wait_until(lambda: vs.counts()["in_flight"] >= N_DIR,
                   what=f"{N_DIR} lookups of one folder in flight at once")
    finally:
        finish(vs, threads)
    assert all(isinstance(r, int) for r in results), results
    gets = [r for r in vs.requests_log()
            if r["secret_op"] == "read" and r["secret"].startswith(f"secret/{FOLDER}/")]
    assert len(gets) == N_DIR
    # Each GET arrived before any of them was answered.
    assert max(r["time"] for r in gets) <= min(r["end"] for r in gets)


def test_cached_read_while_workers_wait_on_the_store(vs, vmount):
    put_cold(vs, N_PARKED)
    d = vmount(vs, options=["-o", "fetch_timeout=120s", "-o", "ttl=60"])
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"  # now cached
    os.listdir(d.path(FOLDER))  # the folder's listing too: only the values are cold
    vs.add_fault(kind="hold", path=rf"/data/{FOLDER}/s[0-9]+$")
    vs.reset_counts()
    threads, results = start_lookups(d, N_PARKED)
    try:
        wait_until(lambda: vs.counts()["in_flight"] >= N_PARKED,
                   what=f"{N_PARKED} readers parked on the store")
        got = []
        reader = threading.Thread(target=lambda: got.append(read_file(d.path("app/db/password"))),
                                  daemon=True)
        reader.start()
        wait_until(lambda: got, what="a cached read while the store holds every fetch")
        # It returned while all of the slow fetches were still outstanding.
        c = vs.counts()
        assert c["in_flight"] == N_PARKED
        assert c["secrets"].get("secret/app/db") is None  # and it needed nothing from the store
        assert got == [b"s3cr3t-pa55word"]
    finally:
        finish(vs, threads)
    assert all(isinstance(r, int) for r in results), results

