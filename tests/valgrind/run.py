#!/usr/bin/python3
"""
`make valgrind`: one integration scenario with the daemon under valgrind
(memcheck), failing on any memory error or definite leak.

Two daemons, each `valgrind --error-exitcode=1 --leak-check=full
--errors-for-leak-kinds=definite secretfs -f ...`, run at the same time:
  - the file store, with a policy (-o policy=), an audit log (-o audit=) and
    the control socket (-o control=): every secret is read and every folder
    listed; the store is rewritten (the reload picks it up; the new value is
    read), the policy is changed and SIGHUP reloads it and reopens the audit
    log; `secretfs ctl` asks for a status and a refresh; read again;
  - a Vault source (tests/servers/vault_server.py, in this process, TLS):
    every secret read and listed, a value rotated and read after the TTL,
    a 503 and a dropped connection on the way (retries, stale serving),
    SIGHUP, read again.
Both are then unmounted (fusermount3 -u) and must exit 0 with valgrind's
"ERROR SUMMARY: 0 errors" and no definite leak in their logs.

Suppressions (tests/valgrind/secretfs.supp) only for documented third-party
noise, each with a comment.  Exit status: 0 clean, 1 otherwise.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "servers"))
from certs import generate_certs  # noqa: E402
from vault_server import VaultServer  # noqa: E402

BIN = os.environ.get("SECRETFS_BIN") or str(REPO / "build" / "secretfs")
SUPP = REPO / "tests" / "valgrind" / "secretfs.supp"
ROOT = "hvs.ValgrindRootToken0000001"
TIMEOUT = 60  # valgrind is slow: 20-50x for the first calls into OpenSSL
VALGRIND = ["valgrind", "--error-exitcode=1", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--num-callers=40", f"--suppressions={SUPP}", "--child-silent-after-fork=yes"]


def log(msg):
    print(f"[valgrind] {msg}", flush=True)


def is_mounted(mnt):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(mnt) for line in f)


def wait_until(cond, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def walk(root):
    """Every file under @root, read; every folder listed."""
    out = {}
    for d, dirs, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            out[str(p.relative_to(root))] = read(p)
    return out


class Daemon:
    def __init__(self, name, work, args, env=None):
        self.name, self.mnt = name, work / f"mnt-{name}"
        self.mnt.mkdir()
        self.vglog = work / f"valgrind-{name}.log"
        self.stderr = open(work / f"daemon-{name}.stderr", "wb")
        cmd = [*VALGRIND, f"--log-file={self.vglog}", BIN, "-f", *args, str(self.mnt)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, env=env)

    def wait_mounted(self):
        wait_until(lambda: is_mounted(self.mnt) or self.proc.poll() is not None,
                   f"{self.name} to mount")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name}: exited {self.proc.returncode} before mounting:\n"
                                 + Path(self.stderr.name).read_text(errors="replace"))

    def unmount(self):
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False)
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", str(self.mnt)], check=False)
            self.proc.kill()
            self.proc.wait()
            return [f"{self.name}: still running {TIMEOUT}s after its unmount"]
        return []

    def verdict(self):
        problems = []
        text = self.vglog.read_text(errors="replace") if self.vglog.exists() else ""
        if self.proc.returncode != 0:
            problems.append(f"{self.name}: exit status {self.proc.returncode} (valgrind's "
                            "--error-exitcode is 1)")
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if not m or m.group(1) != "0":
            problems.append(f"{self.name}: valgrind: {m.group(0) if m else 'no ERROR SUMMARY'}")
        m = re.search(r"definitely lost: ([\d,]+) bytes", text)
        if m and m.group(1) != "0":
            problems.append(f"{self.name}: definitely lost {m.group(1)} bytes")
        return problems, text


def main():
    if os.geteuid() != 0:
        sys.exit("valgrind scenario: needs root (FUSE mounts)")
    if not shutil.which("valgrind"):
        sys.exit("valgrind scenario: valgrind is missing (Debian package valgrind)")
    work = Path(tempfile.mkdtemp(prefix="secretfs-valgrind-", dir="/tmp"))
    os.chmod(work, 0o755)
    certs = generate_certs(str(work))
    daemons = []
    vs = None
    problems = []
    try:
        # ---- the file store, with policy, audit and control socket
        store = work / "store.json"
        store.write_text('{"prod/db": {"user": "vg-user-1", "password": "vg-password-1"},'
                         ' "prod/api": "vg-api-1", "single": "vg-single-1"}')
        os.chmod(store, 0o600)
        policy = work / "policy.conf"
        policy.write_text("permit user:root **\n")
        os.chmod(policy, 0o644)
        audit, sock = work / "audit.log", work / "control.sock"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AWS_"))}
        f = Daemon("file", work, ["-o", f"policy={policy}", "-o", f"audit={audit}",
                                  "-o", f"control={sock}", f"file:{store}"], env=env)
        daemons.append(f)

        # ---- Vault
        vs = VaultServer(certs.server, certs.server_key, config={
            "root_token": ROOT,
            "secrets": [{"mount": "secret", "path": "app/db", "data": {"password": "vg-vpw-1",
                                                                        "user": "vg-vuser-1"}},
                        {"mount": "secret", "path": "app/key", "data": {"value": "vg-vkey-1"}},
                        {"mount": "secret", "path": "other/x", "data": {"v": "vg-vother-1"}}]})
        vs.start()
        v = Daemon("vault", work, ["-o", f"ca_file={certs.ca}", "-o", "ttl=1s",
                                   "-o", "max_attempts=3", f"vault:{vs.url}/secret"],
                   env={**env, "VAULT_TOKEN": ROOT, "HOME": str(work)})
        daemons.append(v)

        for d in daemons:
            d.wait_mounted()
        log("both mounted")

        got = walk(f.mnt)
        assert got["prod/db/password"] == b"vg-password-1" and got["single"] == b"vg-single-1", got
        store.write_text('{"prod/db": {"user": "vg-user-2", "password": "vg-password-2"},'
                         ' "prod/api": "vg-api-2", "new/x": "vg-new-1"}')
        wait_until(lambda: os.path.exists(f.mnt / "new" / "x")
                   and read(f.mnt / "new" / "x") == b"vg-new-1", "the store reload")
        policy.write_text("permit user:root prod/**\npermit user:root new/**\n")
        f.proc.send_signal(signal.SIGHUP)
        ctl = [BIN, "ctl", "--socket", str(sock)]
        for c in (["status"], ["metrics"], ["refresh", "prod/api"], ["reload"]):
            r = subprocess.run([*ctl, *c], capture_output=True, text=True, timeout=TIMEOUT)
            assert r.returncode == 0, f"secretfs ctl {' '.join(c)}: {r.returncode} {r.stderr}"
        wait_until(lambda: read(f.mnt / "prod" / "api") == b"vg-api-2", "prod/api after reload")
        walk(f.mnt)
        log("file store: read, listed, reloaded")

        got = walk(v.mnt)
        assert got["app/db/password"] == b"vg-vpw-1" and got["other/x/v"] == b"vg-vother-1", got
        vs.put_secret("secret", "app/key", {"value": "vg-vkey-2"})
        wait_until(lambda: read(v.mnt / "app" / "key" / "value") == b"vg-vkey-2", "the rotation")
        vs.add_fault(kind="status", status=503, count=2)
        vs.add_fault(kind="drop", count=1)
        time.sleep(1.2)
        walk(v.mnt)
        vs.clear_faults()
        v.proc.send_signal(signal.SIGHUP)
        time.sleep(1.2)
        walk(v.mnt)
        log("vault: read, listed, rotated, faults, reloaded")
    except Exception as e:  # noqa: BLE001 - reported, then the daemons are still checked
        problems.append(f"scenario: {type(e).__name__}: {e}")
    finally:
        for d in daemons:
            problems += d.unmount()
        if vs:
            vs.stop()
    for d in daemons:
        p, text = d.verdict()
        problems += p
        if p:
            print(f"---- {d.vglog}\n{text[-12000:]}")
            print(f"---- stderr of {d.name}\n"
                  + Path(d.stderr.name).read_text(errors="replace")[-4000:])
        else:
            log(f"{d.name}: " + " ".join(re.findall(r"ERROR SUMMARY: .*|definitely lost: .*"
                                                    r"|All heap blocks were freed.*", text)))
        d.stderr.close()
    if problems:
        print("FAIL:\n  " + "\n  ".join(problems))
        print(f"(kept {work})")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("PASS: no memory errors, no definite leaks")


if __name__ == "__main__":
    main()
