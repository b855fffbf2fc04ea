"""
Runs secretfs with -o audit=syslog against a private /dev/log and prints what
arrived there, as JSON on stdout.  Not a test module: test_audit.py runs it as

    unshare -m --propagation private /usr/bin/python3 syslog_capture.py CONFIG_JSON

Inside that private mount namespace a tmpfs replaces /dev (with bind mounts
of the few devices needed) so that /dev/log can be our own datagram socket;
nothing outside the namespace changes, and the namespace (the FUSE mount
included) ends with this process and the daemon.

CONFIG_JSON: {"bin", "env", "store", "policy", "mnt", "scratch", "host_mntns",
"timeout", "actions": [{"user": null | {"uid", "gid", "groups"}, "op":
"read" | "list", "path"}]}.  Every action opens or lists once, so each must
produce exactly one record.
Output: {"results": [{"pid", "outcome"}], "messages": [str], "extra": [str],
"stderr": str, "rc": int}.
"""

import base64
import errno
import json
import os
import socket
import subprocess
import sys
import time

DEVICES = ["null", "zero", "full", "random", "urandom", "tty", "fuse"]


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def mounted(mnt):
    with open("/proc/self/mountinfo") as f:
        return any(line.split(" ")[4] == mnt and " - fuse.secretfs " in line for line in f)


def private_dev(scratch):
    """A tmpfs on /dev with the devices we need; /dev/log is left free for us."""
    old = os.path.join(scratch, "olddev")
    os.makedirs(old, exist_ok=True)
    run("mount", "--rbind", "/dev", old)
    run("mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "secretfs-test-dev", "/dev")
    for name in DEVICES:
        src = os.path.join(old, name)
        if os.path.exists(src):
            open(os.path.join("/dev", name), "w").close()
            run("mount", "--bind", src, os.path.join("/dev", name))
    for name in ("shm", "pts"):
        os.mkdir(os.path.join("/dev", name))
        run("mount", "--bind", os.path.join(old, name), os.path.join("/dev", name))
    os.symlink("/proc/self/fd", "/dev/fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", os.path.join("/dev", name))


def act(action):
    """Runs one action in a child with the action's credentials; returns (pid, outcome)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(r)
            u = action["user"]
            if u:
                os.setgroups(u["groups"])
                os.setgid(u["gid"])
                os.setuid(u["uid"])
            try:
                if action["op"] == "read":
                    fd = os.open(action["path"], os.O_RDONLY)
                    try:
                        out = {"data": base64.b64encode(os.read(fd, 1 << 20)).decode()}
                    finally:
                        os.close(fd)
                else:
                    out = {"names": sorted(os.listdir(action["path"]))}
            except OSError as e:
                out = {"errno": errno.errorcode.get(e.errno, str(e.errno))}
            os.write(w, json.dumps(out).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = json.loads(f.read() or b"{}")
    os.waitpid(pid, 0)
    return pid, out


def main():
    cfg = json.loads(sys.argv[1])
    if os.readlink("/proc/self/ns/mnt") == cfg["host_mntns"]:
        sys.exit("not in a private mount namespace: refusing to touch /dev")
    deadline = time.monotonic() + cfg["timeout"]
    private_dev(cfg["scratch"])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/dev/log")
    os.chmod("/dev/log", 0o666)

    errpath = os.path.join(cfg["scratch"], "syslog-daemon.stderr")
    args = [cfg["bin"], "-f", "-o", f"policy={cfg['policy']}", "-o", "audit=syslog",
            f"file:{cfg['store']}", cfg["mnt"]]
    with open(errpath, "wb") as errf:
        daemon = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                  env=cfg["env"])
    out = {"results": [], "messages": [], "extra": [], "rc": None}
    try:
        while not mounted(cfg["mnt"]):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"secretfs did not mount: {open(errpath).read()}")
            time.sleep(0.01)
        for a in cfg["actions"]:
            pid, res = act(a)
            out["results"].append({"pid": pid, "outcome": res})
        while len(out["messages"]) < len(cfg["actions"]):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                out["messages"].append(sock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                break
        # Anything more that has already arrived is one record too many.
        sock.setblocking(False)
        try:
            while True:
                out["extra"].append(sock.recv(65536).decode(errors="replace"))
        except BlockingIOError:
            pass
    finally:
        subprocess.run(["fusermount3", "-u", "-q", cfg["mnt"]], stderr=subprocess.DEVNULL)
        try:
            daemon.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        out["rc"] = daemon.returncode
        with open(errpath, "rb") as f:
            out["stderr"] = f.read().decode(errors="replace")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
