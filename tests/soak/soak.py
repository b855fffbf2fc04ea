#!/usr/bin/python3
"""
Soak test (issue 10, item 5): N readers read secrets through a real secretfs
mount of the Vault or the AWS test server while the server's values rotate
and a sequence of faults plays, for a configurable time.  Run by `make soak`,
not by `make check`.

    tests/soak/soak.py --backend vault|aws [--seconds 60] [--readers 64] ...
    make soak SOAK_SECONDS=60 [SOAK_BACKENDS="vault aws"] [SOAK_STRICT=0]

What it does:
  - starts the test server (tests/servers/*_server.py) as a child process,
    with SECRETS secrets soak/gNN/sNNN, and mounts `secretfs -f` on it
    (ttl 2s, stale_ttl 1h, fetch_timeout 2s unless told otherwise);
  - READERS threads open, read to EOF and close a random secret file, and
    now and then list a random folder, timing each operation from open()
    to close();
  - a rotator writes a new value to a random secret ROTATE times a second
    through the server's admin API.  Every value is recorded *before* it is
    written, and carries its own path, so a read is checked exactly: it must
    equal one of the values that path ever had; a value of another path is
    "other-path", anything else "torn";
  - after a warm-up of SETTLE seconds the fault sequence plays, each fault
    for an equal share of SECONDS: latency 0.4 s, latency 3 s, 429s (AWS:
    ThrottlingException) at 50%, 500s at 50%, the server stopped (SIGTERM)
    and restarted, killed (SIGKILL) and restarted, dropped connections,
    truncated bodies, malformed bodies; then SETTLE seconds of a healthy
    server again;
  - it samples the daemon's RSS, open fds and threads every second.

The report (stdout, and --json FILE) gives reads and listings, wrong values
by kind, errors by errno (overall and by phase; a listing's as list:ERRNO), p50/p99/max wait (overall
and by phase), and RSS, fds and threads at start (after the warm-up), at the
end (after the final settle) and at their peak.

It fails (exit 1) on:
  - any wrong value or wrong listing;
  - any operation that waited more than fetch_timeout + MARGIN (default 1 s);
  - RSS growth from start to end above max(20%, 8 MiB), or fd growth above 16;
  - the daemon dying, the mount going away, or a secret value in its stderr.
With --no-strict (SOAK_STRICT=0) it reports the same but exits 0, for local
investigation.  Errors (EAGAIN when nothing can be served, say) are reported
but are not failures.

The daemon is always unmounted and reaped, and the server stopped, even when
the run fails or is interrupted.
"""

import argparse
import errno
import json
import os
import random
import secrets as pysecrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "servers"))
from aws_server import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY  # noqa: E402
from certs import generate_certs  # noqa: E402
from vault_server import AdminClient  # noqa: E402

PYTHON = "/usr/bin/python3"
ROOT_TOKEN = "hvs.SoakRootToken" + pysecrets.token_hex(6)
MIB = 1024 * 1024

# Growth allowed from the start sample (after the warm-up) to the end sample
# (after the final settle).  RSS: the larger of 20% and 8 MiB, since a small
# daemon's allocator arenas and TLS session caches move by a few MiB.
RSS_GROWTH_FRACTION = 0.20
RSS_GROWTH_MIN = 8 * MIB
FD_GROWTH = 16


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- the server


class Server:
    """vault_server.py or aws_server.py as a child process; admin API on a plain-HTTP listener."""

    def __init__(self, kind, certs, workdir, config):
        self.kind, self.certs, self.dir, self.config = kind, certs, Path(workdir), config
        self.script = REPO / "tests" / "servers" / f"{kind}_server.py"
        self.admin_token = pysecrets.token_hex(16)
        self.proc = self.port = self.url = self.admin = None
        self.logf = open(self.dir / f"{kind}-server.log", "ab")
        self.lock = threading.Lock()  # start/stop against the rotator

    def _spawn(self):
        info_file = self.dir / "info.json"
        for f in ("port", "admin.port", "metadata.port", "info.json"):
            (self.dir / f).unlink(missing_ok=True)
        cmd = [PYTHON, str(self.script), "--cert", self.certs.server, "--key", self.certs.server_key,
               "--port-file", str(self.dir / "port"), "--info-file", str(info_file),
               "--admin-token", self.admin_token, "--admin-port-file", str(self.dir / "admin.port"),
               "--config", json.dumps(self.config)]
        if self.kind == "aws":
            cmd += ["--metadata-port-file", str(self.dir / "metadata.port")]
        if self.port:
            cmd += ["--port", str(self.port)]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf,
                                stderr=self.logf)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if info_file.exists():
                return proc, json.loads(info_file.read_text())
            if proc.poll() is not None:
                return None, None
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        return None, None

    def start(self):
        deadline = time.monotonic() + 20
        while True:
            proc, info = self._spawn()
            if proc:
                break
            if not self.port or time.monotonic() > deadline:  # else: the port not free yet
                raise RuntimeError(f"{self.script.name} did not start; see {self.logf.name}")
            time.sleep(0.2)
        self.proc, self.port, self.url = proc, info["port"], info["url"]
        self.admin = AdminClient(f"http://127.0.0.1:{info['admin_port']}", self.admin_token,
                                 timeout=10)

    def stop(self, sig=signal.SIGTERM):
        with self.lock:
            if self.proc is None:
                return
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.admin = None

    def restart(self):
        with self.lock:
            self.start()

    def call(self, method, path, body=None):
        with self.lock:
            admin = self.admin
        if admin is None:
            raise ConnectionError("server down")
        return admin.call(method, path, body)

    def put(self, name, value):
        if self.kind == "vault":
            self.call("POST", "/_test/kv", {"mount": "secret", "path": name, "data": {"value": value}})
        else:
            self.call("POST", "/_test/secret", {"name": name, "secret_string": value})

    def fault(self, **kw):
        self.call("POST", "/_test/fault", kw)

    def clear_faults(self):
        self.call("POST", "/_test/faults/clear", {})


# ---------------------------------------------------------------- the daemon


def proc_sample(pid):
    """{rss, fds, threads} of @pid, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "fds": fds,
            "threads": int(fields["Threads"])}


def is_mounted(mnt):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(mnt) for line in f)


def unmount(mnt):
    for args in (["-u"], ["-uz"]):
        if not is_mounted(mnt):
            return
        subprocess.run(["fusermount3", *args, str(mnt)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        for _ in range(50):
            if not is_mounted(mnt):
                return
            time.sleep(0.1)


# ---------------------------------------------------------------- the run


class Stats:
    """Counters shared by the readers; one lock, taken once per operation."""

    def __init__(self):
        self.lock = threading.Lock()
        self.phase = "warm-up"
        self.phases = {}

    def _ph(self, name):
        p = self.phases.get(name)
        if p is None:
            p = self.phases[name] = {"reads": 0, "lists": 0, "errors": {}, "wrong": {},
                                     "waits": [], "max_wait": 0.0, "max_wait_op": None}
        return p

    def record(self, phase, op, what, wait, err=None, wrong=None):
        """One operation, counted in the @phase it started in."""
        with self.lock:
            p = self._ph(phase)
            p["reads" if op == "read" else "lists"] += 1
            p["waits"].append(wait)
            if wait > p["max_wait"]:
                p["max_wait"], p["max_wait_op"] = wait, f"{op} {what}"
            if err is not None:
                name = errno.errorcode.get(err, str(err))
                if op != "read":
                    name = f"{op}:{name}"  # a listing's error, apart from the reads'
                p["errors"][name] = p["errors"].get(name, 0) + 1
            if wrong is not None:
                p["wrong"][wrong[0]] = p["wrong"].get(wrong[0], 0) + 1
                if len(WRONG_EXAMPLES) < 20:
                    WRONG_EXAMPLES.append(wrong)


WRONG_EXAMPLES = []


def growth_failures(st, en):
    """What is wrong with the daemon's growth from sample @st to sample @en."""
    out = []
    rss_allowed = max(st["rss"] * RSS_GROWTH_FRACTION, RSS_GROWTH_MIN)
    if en["rss"] - st["rss"] > rss_allowed:
        out.append(f"RSS grew from {st['rss'] / MIB:.1f} MiB to {en['rss'] / MIB:.1f} MiB "
                   f"(allowed +{rss_allowed / MIB:.1f} MiB)")
    if en["fds"] - st["fds"] > FD_GROWTH:
        out.append(f"open fds grew from {st['fds']} to {en['fds']} (allowed +{FD_GROWTH})")
    return out


def pct(sorted_waits, q):
    if not sorted_waits:
        return 0.0
    return sorted_waits[min(len(sorted_waits) - 1, int(q * len(sorted_waits)))]


def run(args):
    work = Path(tempfile.mkdtemp(prefix=f"secretfs-soak-{args.backend}-", dir="/tmp"))
    os.chmod(work, 0o755)
    certs = generate_certs(str(work))
    mnt = work / "mnt"
    mnt.mkdir()
    paths = [f"soak/g{g:02d}/s{s:03d}" for g in range(args.folders)
             for s in range(args.secrets // args.folders)]
    folders = sorted({p.rsplit("/", 1)[0] for p in paths})
    names_in = {f: {p.rsplit("/", 1)[1] for p in paths if p.startswith(f + "/")} for f in folders}
    values = {p: set() for p in paths}  # every value each path ever had (written or not yet)
    owner = {}  # value -> path
    seq = [0]

    def new_value(p):
        seq[0] += 1
        v = f"{p}|{seq[0]}|{pysecrets.token_hex(12)}"
        values[p].add(v)
        owner[v] = p
        return v

    initial = {p: new_value(p) for p in paths}
    if args.backend == "vault":
        config = {"root_token": ROOT_TOKEN,
                  "secrets": [{"mount": "secret", "path": p, "data": {"value": v}}
                              for p, v in initial.items()]}
    else:
        config = {"secrets": [{"name": p, "secret_string": v} for p, v in initial.items()]}
    server = Server(args.backend, certs, work, config)
    daemon = None
    errf = None
    stop = threading.Event()
    stats = Stats()
    failures = []
    samples = []
    threads = []
    start_sample = end_sample = None
    report = {"backend": args.backend, "seconds": args.seconds, "readers": args.readers,
              "secrets": len(paths), "rotate_per_s": args.rotate, "options": args.options}

    def sample():
        s = proc_sample(daemon.pid)
        if s:
            samples.append(s)
        return s

    try:
        server.start()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAULT_", "AWS_")) and k != "CREDENTIALS_DIRECTORY"}
        env["HOME"] = str(work)
        opts = ["-o", f"ttl={args.ttl}", "-o", f"stale_ttl={args.stale_ttl}",
                "-o", f"fetch_timeout={args.fetch_timeout}"]
        for o in args.options:
            opts += ["-o", o]
        if args.backend == "vault":
            env["VAULT_TOKEN"] = ROOT_TOKEN
            opts += ["-o", f"ca_file={certs.ca}"]
            source = f"vault:{server.url}/secret"
        else:
            env.update(AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=certs.ca,
                       AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY,
                       AWS_SECRET_ACCESS_KEY=DEFAULT_SECRET_KEY)
            source = "aws-sm:us-east-1"
        errpath = work / "daemon.stderr"
        errf = open(errpath, "wb")
        argv = [args.binary, "-f", *opts, source, str(mnt)]
        report["argv"] = " ".join(argv[2:])
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                  env=env)
        deadline = time.monotonic() + 20
        while not is_mounted(mnt):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"secretfs did not mount:\n{errpath.read_text(errors='replace')}")
            time.sleep(0.02)
        log(f"{args.backend}: mounted {source} on {mnt} (pid {daemon.pid}); {len(paths)} secrets, "
            f"{args.readers} readers, {args.rotate} rotations/s, faults for {args.seconds}s")

        file_of = (lambda p: mnt / p / "value") if args.backend == "vault" else (lambda p: mnt / p)

        def reader(i):
            rnd = random.Random(i)
            while not stop.is_set():
                if rnd.random() < args.list_fraction:
                    f = rnd.choice(folders)
                    ph = stats.phase
                    t0 = time.monotonic()
                    try:
                        got = set(os.listdir(mnt / f))
                    except OSError as e:
                        stats.record(ph, "list", f, time.monotonic() - t0, err=e.errno)
                        continue
                    wait = time.monotonic() - t0
                    extra = got - names_in[f]
                    stats.record(ph, "list", f, wait,
                                 wrong=("listing", f, sorted(extra)[:3]) if extra else None)
                    continue
                p = rnd.choice(paths)
                ph = stats.phase
                t0 = time.monotonic()
                try:
                    fd = os.open(file_of(p), os.O_RDONLY)
                    try:
                        chunks = []
                        while True:
                            b = os.read(fd, 65536)
                            if not b:
                                break
                            chunks.append(b)
                    finally:
                        os.close(fd)
                except OSError as e:
                    stats.record(ph, "read", p, time.monotonic() - t0, err=e.errno)
                    continue
                wait = time.monotonic() - t0
                v = b"".join(chunks).decode(errors="replace")
                wrong = None
                if args.self_check:  # check against the wrong path: every read must be caught
                    p = paths[(paths.index(p) + 1) % len(paths)]
                if v not in values[p]:
                    other = owner.get(v)
                    wrong = ("other-path" if other else "torn", p, v[:48])
                stats.record(ph, "read", p, wait, wrong=wrong)

        def rotator():
            rnd = random.Random(12345)
            period = 1.0 / args.rotate if args.rotate > 0 else None
            nxt = time.monotonic()
            writes = fails = 0
            while period and not stop.is_set():
                p = rnd.choice(paths)
                v = new_value(p)  # recorded before the server has it
                try:
                    server.put(p, v)
                    writes += 1
                except Exception:  # server down or restarting: the value is simply never served
                    fails += 1
                nxt += period
                stop.wait(max(0.0, nxt - time.monotonic()))
            report["rotations"] = {"written": writes, "failed": fails}

        def sampler():
            while not stop.wait(1.0):
                sample()

        for i in range(args.readers):
            threads.append(threading.Thread(target=reader, args=(i,), daemon=True))
        threads.append(threading.Thread(target=rotator, daemon=True))
        threads.append(threading.Thread(target=sampler, daemon=True))
        for t in threads:
            t.start()

        def alive():
            if daemon.poll() is not None:
                failures.append(f"the daemon exited with status {daemon.returncode}")
                return False
            if not is_mounted(mnt):
                failures.append("the mount went away")
                return False
            return True

        # ---- warm-up, then the start sample
        time.sleep(args.settle)
        start_sample = sample()

        # ---- the fault sequence
        if args.backend == "vault":
            throttle = {"kind": "status", "status": 429, "retry_after": 1}
            err500 = {"kind": "status", "status": 500}
        else:
            throttle = {"kind": "throttle"}
            err500 = {"kind": "error", "status": 500}
        half = {"probability": 0.5, "seed": 7}
        sequence = [
            ("latency 0.4s", "fault", {"kind": "latency", "latency_ms": 400}),
            ("latency 3s", "fault", {"kind": "latency", "latency_ms": 3000}),
            ("429 at 50%" if args.backend == "vault" else "throttled at 50%", "fault",
             {**throttle, **half}),
            ("500 at 50%", "fault", {**err500, **half}),
            ("server stopped", "stop", signal.SIGTERM),
            ("server killed", "stop", signal.SIGKILL),
            ("dropped connections", "fault", {"kind": "drop", **half}),
            ("truncated bodies", "fault", {"kind": "truncate", **half}),
            ("malformed bodies", "fault", {"kind": "malformed", **half}),
        ]
        share = args.seconds / len(sequence)
        with stats.lock:  # the report lists the phases in this order
            for name in ["warm-up", *(n for n, _, _ in sequence), "recovered"]:
                stats._ph(name)
        for name, how, arg in sequence:
            if not alive():
                break
            with stats.lock:
                stats.phase = name
            log(f"phase: {name} ({share:.1f}s)")
            try:
                if how == "fault":
                    server.fault(**arg)
                    time.sleep(share)
                    server.clear_faults()
                else:
                    server.stop(arg)
                    time.sleep(share)
                    server.restart()
            except Exception as e:  # the test server itself failed: report, end the run
                failures.append(f"phase {name}: the test server: {type(e).__name__}: {e}")
                break
        # ---- healthy again, then the end sample
        with stats.lock:
            stats.phase = "recovered"
        log(f"phase: recovered ({args.settle:.1f}s)")
        time.sleep(args.settle)
        end_sample = sample()
        alive()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        stuck = sum(t.is_alive() for t in threads)
        if stuck:
            failures.append(f"{stuck} threads still blocked 15 s after the end")
        if daemon is not None:
            unmount(mnt)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.terminate()
                try:
                    daemon.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
                failures.append("the daemon did not exit after its unmount")
        if errf:
            errf.close()
        server.stop()
        server.logf.close()

    # ---- the report
    stderr = (work / "daemon.stderr").read_bytes()
    leaked = [v for vs in values.values() for v in vs if v.encode() in stderr]
    if leaked:
        failures.append(f"{len(leaked)} secret values appear in the daemon's stderr")
    if daemon.returncode not in (0, None):
        failures.append(f"the daemon exited with status {daemon.returncode}")

    bound = args.fetch_timeout_s + args.margin
    all_waits = []
    total = {"reads": 0, "lists": 0, "errors": {}, "wrong": {}, "max_wait": 0.0,
             "max_wait_op": None, "over_bound": 0}
    report["phases"] = {}
    for name, p in stats.phases.items():
        w = sorted(p["waits"])
        all_waits += w
        over = sum(1 for x in w if x > bound)
        report["phases"][name] = {"reads": p["reads"], "lists": p["lists"], "errors": p["errors"],
                                  "wrong": p["wrong"], "p50": round(pct(w, 0.5), 4),
                                  "p99": round(pct(w, 0.99), 4), "max": round(p["max_wait"], 3),
                                  "max_op": p["max_wait_op"], "over_bound": over}
        total["reads"] += p["reads"]
        total["lists"] += p["lists"]
        total["over_bound"] += over
        for k in ("errors", "wrong"):
            for e, n in p[k].items():
                total[k][e] = total[k].get(e, 0) + n
        if p["max_wait"] > total["max_wait"]:
            total["max_wait"], total["max_wait_op"] = p["max_wait"], p["max_wait_op"]
    all_waits.sort()
    total["p50"], total["p99"] = round(pct(all_waits, 0.5), 4), round(pct(all_waits, 0.99), 4)
    total["max_wait"] = round(total["max_wait"], 3)
    total["wait_bound"] = bound
    report["total"] = total
    report["wrong_examples"] = WRONG_EXAMPLES
    report["daemon"] = {"start": start_sample, "end": end_sample,
                        "peak": {k: max((s[k] for s in samples), default=None)
                                 for k in ("rss", "fds", "threads")}}

    nwrong = sum(total["wrong"].values())
    if nwrong:
        failures.append(f"{nwrong} wrong values or listings: {total['wrong']}")
    if total["over_bound"]:
        failures.append(f"{total['over_bound']} operations waited longer than fetch_timeout "
                        f"{args.fetch_timeout_s:g}s + margin {args.margin:g}s (max "
                        f"{total['max_wait']:.3f}s: {total['max_wait_op']})")
    st, en = report["daemon"]["start"], report["daemon"]["end"]
    if st and en:
        failures += growth_failures(st, en)
    elif not failures:
        failures.append("no start or end sample of the daemon")
    report["failures"] = failures
    report["workdir"] = str(work)

    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if failures and args.keep:
        log(f"kept {work} (daemon.stderr, the server's log)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return report


def print_report(r):
    t = r["total"]
    print(f"\n==== soak {r['backend']}: {r['seconds']}s of faults, {r['readers']} readers, "
          f"{r['secrets']} secrets, {r['rotate_per_s']} rotations/s")
    print(f"     secretfs {r.get('argv', '')}")
    print(f"{'phase':<22}{'reads':>9}{'lists':>7}{'p50 s':>9}{'p99 s':>9}{'max s':>9}"
          f"{'>bound':>8}  errors / wrong")
    for name, p in r["phases"].items():
        extra = " ".join(f"{k}={v}" for k, v in {**p["errors"], **p["wrong"]}.items())
        print(f"{name:<22}{p['reads']:>9}{p['lists']:>7}{p['p50']:>9.4f}{p['p99']:>9.4f}"
              f"{p['max']:>9.3f}{p['over_bound']:>8}  {extra}")
    print(f"{'total':<22}{t['reads']:>9}{t['lists']:>7}{t['p50']:>9.4f}{t['p99']:>9.4f}"
          f"{t['max_wait']:>9.3f}{t['over_bound']:>8}")
    print(f"wrong values: {sum(t['wrong'].values())} {t['wrong'] or ''}")
    for ex in r["wrong_examples"][:5]:
        print(f"  e.g. {ex}")
    print(f"errors by errno: {t['errors'] or 'none'}")
    print(f"max wait: {t['max_wait']:.3f}s ({t['max_wait_op']}); bound {t['wait_bound']:g}s")
    if r.get("rotations"):
        print(f"rotations: {r['rotations']}")
    d = r["daemon"]

    def fmt(s):
        return "-" if not s else (f"RSS {s['rss'] / MIB:.1f} MiB, {s['fds']} fds, "
                                  f"{s['threads']} threads")

    peak = d["peak"]
    print(f"daemon at start: {fmt(d['start'])}")
    print(f"daemon at end:   {fmt(d['end'])}")
    if peak["rss"] is not None:
        print(f"daemon peak:     {fmt(peak)}")
    if r["failures"]:
        print("FAIL:\n  " + "\n  ".join(r["failures"]))
    else:
        print("PASS")


def duration_s(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if text.endswith(u):
            return float(text[:-len(u)]) * units[u]
    return float(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    ap.add_argument("--backend", choices=("vault", "aws"), required=True)
    ap.add_argument("--binary", default=env("SECRETFS_BIN", str(REPO / "build" / "secretfs")))
    ap.add_argument("--seconds", type=float, default=float(env("SOAK_SECONDS", "60")),
                    help="length of the fault sequence (SOAK_SECONDS, default 60)")
    ap.add_argument("--settle", type=float, default=float(env("SOAK_SETTLE", "8")),
                    help="healthy seconds before the start sample and before the end sample")
    ap.add_argument("--readers", type=int, default=int(env("SOAK_READERS", "64")))
    ap.add_argument("--secrets", type=int, default=int(env("SOAK_SECRETS", "200")))
    ap.add_argument("--folders", type=int, default=8)
    ap.add_argument("--rotate", type=float, default=float(env("SOAK_ROTATE", "20")),
                    help="rotations per second")
    ap.add_argument("--list-fraction", type=float, default=0.05)
    ap.add_argument("--ttl", default="2s")
    ap.add_argument("--stale-ttl", default="1h")
    ap.add_argument("--fetch-timeout", default=env("SOAK_FETCH_TIMEOUT", "2s"))
    ap.add_argument("--margin", type=float, default=float(env("SOAK_MARGIN", "1")),
                    help="seconds allowed over fetch_timeout (SOAK_MARGIN, default 1)")
    ap.add_argument("-o", dest="options", action="append", default=[],
                    help="another -o NAME=VALUE for the daemon")
    ap.add_argument("--strict", dest="strict", action="store_true",
                    default=env("SOAK_STRICT", "1") != "0")
    ap.add_argument("--no-strict", dest="strict", action="store_false",
                    help="report, but exit 0 on failures (SOAK_STRICT=0)")
    ap.add_argument("--self-check", action="store_true",
                    help="check each read against the next path's values, to see the check fail")
    ap.add_argument("--json", help="also write the report as JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory on failure")
    args = ap.parse_args()
    args.fetch_timeout_s = duration_s(args.fetch_timeout)
    if os.geteuid() != 0:
        sys.exit("soak: needs root (FUSE mounts)")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"soak: {args.binary}: not an executable; run make first")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    report = run(args)
    if report["failures"]:
        if args.strict:
            sys.exit(1)
        log("failures reported, not failing (SOAK_STRICT=0)")


if __name__ == "__main__":
    main()
