"""
Running under systemd: the units in systemd/ and the sd_notify protocol.

There is no systemd as PID 1 here, so the tests play its part:

  - the units as installed by `make install` pass `systemd-analyze verify`
    without a warning, and `systemd-analyze security --offline` gives the
    exposure score the README quotes;
  - no unit setting gives the service a mount namespace (the FUSE mount
    would then be invisible outside the service);
  - a unix datagram socket stands in for $NOTIFY_SOCKET: READY=1 comes from
    the daemon's own pid once a read through the mount works, RELOADING=1
    with MONOTONIC_USEC and READY=1 around SIGHUP, STOPPING=1 on SIGTERM,
    each with its STATUS= line;
  - the unit's own ExecStart= and ExecReload= command lines are run the way
    systemd runs them;
  - a reload re-reads the config file's policy and audit settings and nothing
    else; log lines carry sd-daemon priority prefixes for the journal.

With SECRETFS_TEST_SYSTEMD_BOOT=1 the real thing runs too: systemd boots as
PID 1 of a private pid and mount namespace, starts both units with their
sandbox (capabilities, seccomp, no_new_privs), reloads and stops them, and
shows that a mount namespace setting (ProtectHome=) would hide the mount.
"""

import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers import (
    CMD_TIMEOUT,
    MOUNT_TIMEOUT,
    POLL_TIMEOUT,
    REPO,
    SANITIZER,
    SECRETFS_BIN,
    STOP_TIMEOUT,
    force_unmount,
    is_mounted,
    sanitizer_env,
    sanitizer_reports,
    try_read,
    wait_until,
    write_store,
)

UNITS = ["secretfs.service", "secretfs@.service"]
STORE = {"app/token": "notify-token-value", "app/db": {"password": "notify-db-password"}}

# Each of these makes systemd run the service in its own mount namespace whose
# mounts are slaves of the host's (systemd.exec(5), PrivateMounts=): the FUSE
# mount would be seen by the service alone.
NAMESPACE_SETTINGS = {
    "PrivateMounts", "PrivateTmp", "PrivateDevices", "PrivateIPC", "ProtectSystem",
    "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectProc", "ProcSubset", "ReadWritePaths", "ReadOnlyPaths",
    "InaccessiblePaths", "ExecPaths", "NoExecPaths", "BindPaths", "BindReadOnlyPaths",
    "TemporaryFileSystem", "RootDirectory", "RootImage", "MountImages", "ExtensionImages",
    "ExtensionDirectories", "LogNamespace", "PrivateUsers", "DynamicUser",
}


def systemd_analyze():
    path = shutil.which("systemd-analyze")
    if not path:
        pytest.skip("systemd-analyze is missing (Debian package systemd)")
    return path


def unit_settings(path):
    """[(section, key, value)] of a unit file, comments and blank lines left out."""
    out, section = [], None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def setting(path, key):
    vals = [v for _, k, v in unit_settings(path) if k == key]
    assert len(vals) == 1, f"{path}: {key}= given {len(vals)} times"
    return vals[0]


def make_install(dest, *, prefix, destdir=None):
    """`make install` with the binary under test (no rebuild with other flags)."""
    build = Path(SECRETFS_BIN).parent
    args = ["make", "-s", "-C", str(REPO), "install", f"PREFIX={prefix}",
            f"BUILD={build}", f"SANITIZER={SANITIZER}"]
    if destdir:
        args.append(f"DESTDIR={destdir}")
    r = subprocess.run(args, capture_output=True, text=True, timeout=CMD_TIMEOUT * 6)
    assert r.returncode == 0, f"make install failed:\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def installed_prefix():
    """`make install PREFIX=TMP`: the units' ExecStart= names TMP/bin/secretfs, which exists."""
    if not os.access(SECRETFS_BIN, os.X_OK):
        pytest.skip(f"{SECRETFS_BIN} is not built")
    d = Path(tempfile.mkdtemp(prefix="secretfs-units-"))
    try:
        make_install(d, prefix=str(d))
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def installed_unit(prefix, name):
    return prefix / "lib" / "systemd" / "system" / name


# ---------------------------------------------------------------- the unit files


@pytest.mark.parametrize("unit", UNITS + ["secretfs@example.service"])
def test_units_pass_systemd_analyze_verify(installed_prefix, unit):
    exe = systemd_analyze()
    unitdir = installed_unit(installed_prefix, "")
    # An instance is verified from its template in the same directory.
    r = subprocess.run([exe, "verify", "--man=no", str(unitdir / unit)],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    # verify exits 0 on unknown keys and bad values; it only warns
    assert r.stderr.strip() == "", f"systemd-analyze verify {unit}:\n{r.stderr}"


def test_installed_units_run_the_installed_binary(installed_prefix):
    for unit in UNITS:
        start = setting(installed_unit(installed_prefix, unit), "ExecStart")
        assert shlex.split(start)[0] == str(installed_prefix / "bin" / "secretfs"), start


def exposure(exe, unit_path):
    r = subprocess.run([exe, "security", "--offline=true", "--no-pager", str(unit_path)],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout)
    assert m, f"no exposure level in:\n{r.stdout[-2000:]}\n{r.stderr}"
    return m.group(1)


def test_security_exposure_is_the_one_the_readme_quotes(installed_prefix):
    exe = systemd_analyze()
    scores = {u: exposure(exe, installed_unit(installed_prefix, u)) for u in UNITS}
    assert len(set(scores.values())) == 1, f"the units differ in exposure: {scores}"
    score = scores["secretfs.service"]
    readme = (REPO / "README.md").read_text()
    m = re.search(r"exposure level of (\d+\.\d)", readme)
    assert m, "README.md does not quote the systemd-analyze security exposure level"
    assert m.group(1) == score, (
        f"README.md quotes exposure {m.group(1)}, systemd-analyze security says {score}"
    )


@pytest.mark.parametrize("unit", UNITS)
def test_units_keep_the_mount_visible_to_the_host(unit):
    present = sorted({k for _, k, _ in unit_settings(REPO / "systemd" / unit)}
                     & NAMESPACE_SETTINGS)
    assert not present, (
        f"{unit}: {present} give the service a mount namespace; the FUSE mount would "
        "not propagate to the host"
    )
    flags = [v for _, k, v in unit_settings(REPO / "systemd" / unit) if k == "MountFlags"]
    assert flags in ([], ["shared"]), flags


@pytest.mark.parametrize("unit", UNITS)
def test_unit_settings(unit):
    path = REPO / "systemd" / unit
    conf = "/etc/secretfs/%i.conf" if "@" in unit else "/etc/secretfs/secretfs.conf"
    assert setting(path, "Type") == "notify"
    assert setting(path, "NotifyAccess") == "main"
    argv = shlex.split(setting(path, "ExecStart"))
    assert argv == ["/usr/bin/secretfs", "-f", "--config", conf], argv
    assert setting(path, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert set(setting(path, "CapabilityBoundingSet").split()) == {
        "CAP_SYS_ADMIN", "CAP_IPC_LOCK", "CAP_SYS_PTRACE"}
    assert setting(path, "NoNewPrivileges") == "yes"
    assert setting(path, "DevicePolicy") == "closed"
    assert setting(path, "DeviceAllow") == "/dev/fuse rw"
    assert setting(path, "LimitCORE") == "0"
    assert setting(path, "LoadCredential").startswith("vault-token:")
    assert setting(path, "RuntimeDirectory").startswith("secretfs")
    assert setting(path, "SystemCallFilter") == "@system-service @mount"
    for key in ("LockPersonality", "MemoryDenyWriteExecute", "RestrictNamespaces",
                "RestrictRealtime", "RestrictSUIDSGID", "ProtectClock", "ProtectHostname"):
        assert setting(path, key) == "yes", key
    assert setting(path, "SystemCallArchitectures") == "native"
    assert set(setting(path, "RestrictAddressFamilies").split()) == {
        "AF_UNIX", "AF_INET", "AF_INET6"}


def test_memlock_limit_fits_the_default_heap():
    # main.c: the heap is twice cache_max_bytes rounded up to a power of two.
    m = re.search(r"\.cache_max_bytes = (\d+) \* 1024 \* 1024", (REPO / "src/config.c").read_text())
    assert m, "the cache_max_bytes default was not found in src/config.c"
    want, heap = 2 * int(m.group(1)) << 20, 1
    while heap < want:
        heap <<= 1
    for unit in UNITS:
        assert setting(REPO / "systemd" / unit, "LimitMEMLOCK") == f"{heap >> 20}M"


# ---------------------------------------------------------------- sd_notify


class NotifySocket:
    """What systemd listens on: a datagram socket that learns each sender's pid."""

    def __init__(self):
        # Short: sun_path holds 108 bytes, and the workdir is deep.
        self.dir = tempfile.mkdtemp(prefix="sfs-notify-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def env(self, **extra):
        return {**sanitizer_env(), "NOTIFY_SOCKET": self.path, **extra}

    def recv(self, timeout=POLL_TIMEOUT):
        """The next message as (fields, sender pid)."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            pytest.fail(f"no notification within {timeout:.1f}s")
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        fields = {}
        for line in data.decode().split("\n"):
            if line:
                k, sep, v = line.partition("=")
                assert sep and k not in fields, f"malformed notification {data!r}"
                fields[k] = v
        return fields, pid

    def nothing_more(self, wait=0.3):
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return
        pytest.fail(f"unexpected notification {data!r}")

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    n = NotifySocket()
    yield n
    n.close()


def serving(fs):
    return f"Serving file:{fs.store} at {fs.mnt}"


def wait_ready(notify, fs, timeout=MOUNT_TIMEOUT):
    """The first message must be READY=1 from the daemon itself, with the mount live."""
    msg, pid = notify.recv(timeout)
    # At this very moment a read must work: no polling here.
    assert is_mounted(fs.mnt), "READY=1 before the mount exists"
    assert try_read(fs.path("app/token")) == b"notify-token-value"
    assert msg == {"READY": "1", "STATUS": serving(fs), "MAINPID": str(fs.pid)}, msg
    assert pid == fs.pid, f"sent by pid {pid}, the daemon is {fs.pid}"
    return msg


def sighup_reload(notify, fs):
    """SIGHUP: RELOADING=1 stamped with CLOCK_MONOTONIC, then READY=1; returns the READY."""
    before = time.monotonic_ns() // 1000
    fs.proc.send_signal(signal.SIGHUP)
    msg, pid = notify.recv()
    after = time.monotonic_ns() // 1000
    assert pid == fs.pid
    assert set(msg) == {"RELOADING", "STATUS", "MONOTONIC_USEC"}, msg
    assert msg["RELOADING"] == "1" and msg["STATUS"] == "Reloading", msg
    assert before <= int(msg["MONOTONIC_USEC"]) <= after, (before, msg, after)
    msg, pid = notify.recv()
    assert pid == fs.pid
    assert msg["READY"] == "1", msg
    return msg


def sigterm_stop(notify, fs):
    fs.proc.send_signal(signal.SIGTERM)
    msg, pid = notify.recv()
    assert msg == {"STOPPING": "1", "STATUS": "Stopping"}, msg
    assert pid == fs.pid
    assert fs.proc.wait(timeout=STOP_TIMEOUT) == 0, fs.stderr()
    assert not is_mounted(fs.mnt)
    notify.nothing_more()


def test_notify_ready_reload_stop(secretfs, notify):
    fs = secretfs(STORE, env=notify.env(), wait=False)
    wait_ready(notify, fs)

    msg = sighup_reload(notify, fs)
    assert msg == {"READY": "1", "STATUS": serving(fs)}, msg
    assert try_read(fs.path("app/db/password")) == b"notify-db-password"
    msg = sighup_reload(notify, fs)  # again: every reload is announced
    assert msg == {"READY": "1", "STATUS": serving(fs)}, msg

    sigterm_stop(notify, fs)
    # Under systemd stderr is the journal: sd-daemon priority prefixes, no name.
    err = fs.stderr()
    assert f"<6>serving file:{fs.store} at {fs.mnt}\n" in err, err
    assert f"<6>unmounting {fs.mnt}\n" in err, err
    assert "secretfs: serving" not in err


def test_notify_a_failed_reload_still_says_ready(secretfs, notify, workdir):
    policy = workdir / "policy"
    policy.write_text("permit user:root app/**\n")
    fs = secretfs(STORE, options=["-o", f"policy={policy}"], env=notify.env(), wait=False)
    wait_ready(notify, fs)

    policy.write_text("permit user:root app/**\nallow everyone everything\n")
    msg = sighup_reload(notify, fs)
    assert msg == {"READY": "1",
                   "STATUS": serving(fs) + "; reload failed: the policy (see the log)"}, msg
    # The previous policy stays in force, and the error is logged at LOG_ERR.
    assert try_read(fs.path("app/token")) == b"notify-token-value"
    err = fs.wait_stderr("keeping the previous policy")
    assert re.search(rf"^<3>{re.escape(str(policy))}:2: .*keeping the previous policy$", err,
                     re.M), err

    policy.write_text("permit user:root app/token\n")
    msg = sighup_reload(notify, fs)
    assert msg == {"READY": "1", "STATUS": serving(fs)}, msg
    assert try_read(fs.path("app/db/password")) is None  # EACCES now
    sigterm_stop(notify, fs)


def test_notify_status_is_one_line(secretfs, notify, workdir):
    # A newline in the mountpoint would start a new variable in the message.
    odd = workdir / "mnt\nREADY=0"
    odd.mkdir()
    fs = secretfs(STORE, env=notify.env(), wait=False,
                  argv=lambda store, mnt: [f"file:{store}", str(odd)])
    try:
        msg, pid = notify.recv(MOUNT_TIMEOUT)
        assert pid == fs.pid
        assert msg == {"READY": "1", "MAINPID": str(fs.pid),
                       "STATUS": f"Serving file:{fs.store} at {workdir}/mnt?READY=0"}, msg
        assert try_read(odd / "app/token") == b"notify-token-value"
        fs.proc.send_signal(signal.SIGTERM)
        assert notify.recv()[0]["STOPPING"] == "1"
        assert fs.proc.wait(timeout=STOP_TIMEOUT) == 0
    finally:
        force_unmount(odd)


def test_unit_command_lines_as_systemd_runs_them(installed_prefix, notify, workdir):
    """ExecStart= with its config file, ExecReload= with $MAINPID, then a stop."""
    unit = installed_unit(installed_prefix, "secretfs.service")
    store, mnt = workdir / "store.json", workdir / "mnt"
    mnt.mkdir()
    write_store(store, STORE)
    conf = workdir / "secretfs.conf"
    conf.write_text(f"[secretfs]\nsource = file:{store}\nmountpoint = {mnt}\n")
    argv = [conf if a == "/etc/secretfs/secretfs.conf" else a
            for a in shlex.split(setting(unit, "ExecStart"))]
    assert str(conf) in map(str, argv), argv
    errpath = workdir / "daemon.stderr"
    with open(errpath, "wb") as errf:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=errf,
                                stderr=errf, env=notify.env())
    try:
        msg, pid = notify.recv(MOUNT_TIMEOUT)
        assert msg["READY"] == "1" and pid == proc.pid, msg
        assert try_read(mnt / "app/token") == b"notify-token-value"
        reload_cmd = setting(unit, "ExecReload").replace("$MAINPID", str(proc.pid))
        subprocess.run(shlex.split(reload_cmd), check=True, timeout=CMD_TIMEOUT)
        assert notify.recv()[0]["RELOADING"] == "1"
        assert notify.recv()[0] == {"READY": "1",
                                    "STATUS": f"Serving file:{store} at {mnt}"}
        proc.send_signal(signal.SIGTERM)  # what systemctl stop sends (KillSignal=)
        assert notify.recv()[0]["STOPPING"] == "1"
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
        assert not is_mounted(mnt)
    finally:
        force_unmount(mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = errpath.read_text(errors="replace")
    assert not sanitizer_reports(err), err


# ---------------------------------------------------------------- journal prefixes


def run_with_stderr_env(workdir, make_env):
    """Mounts with stderr in a file whose identity make_env(dev, ino) may put in the env."""
    store, mnt = workdir / "store.json", workdir / "mnt"
    mnt.mkdir()
    write_store(store, STORE)
    errpath = workdir / "daemon.stderr"
    with open(errpath, "wb") as errf:
        st = os.fstat(errf.fileno())
        env = {k: v for k, v in sanitizer_env().items()
               if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        env.update(make_env(st.st_dev, st.st_ino))
        proc = subprocess.Popen([SECRETFS_BIN, "-f", f"file:{store}", str(mnt)],
                                stdin=subprocess.DEVNULL, stdout=errf, stderr=errf, env=env)
    try:
        wait_until(lambda: is_mounted(mnt) or proc.poll() is not None, MOUNT_TIMEOUT,
                   what="the mount")
        assert is_mounted(mnt), errpath.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT) == 0
    finally:
        force_unmount(mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = errpath.read_text(errors="replace")
    assert not sanitizer_reports(err), err
    return err, mnt


def test_journal_stream_naming_stderr_gives_priority_prefixes(workdir):
    err, mnt = run_with_stderr_env(workdir, lambda dev, ino: {"JOURNAL_STREAM": f"{dev}:{ino}"})
    assert f"<6>unmounting {mnt}\n" in err, err


def test_journal_stream_naming_another_file_is_ignored(workdir):
    # Inherited from a shell in a service, but our stderr is a file: plain lines.
    err, mnt = run_with_stderr_env(workdir, lambda dev, ino: {"JOURNAL_STREAM": f"{dev}:{ino + 1}"})
    assert f"secretfs: unmounting {mnt}\n" in err, err
    assert "<6>" not in err


# ---------------------------------------------------------------- reload re-reads the config


def audit_paths(path):
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(r["path"], r["decision"]) for r in map(json.loads, lines) if r["op"] == "open"]


def test_reload_rereads_policy_and_audit_from_the_config(secretfs, notify, workdir):
    p1, p2 = workdir / "policy1", workdir / "policy2"
    p1.write_text("permit user:root app/token\n")
    p2.write_text("permit user:root app/**\n")
    a1, a2 = workdir / "audit1.log", workdir / "audit2.log"
    conf = workdir / "secretfs.conf"

    def write_conf(extra):
        conf.write_text(f"[secretfs]\nsource = file:{fs_paths['store']}\n\n{extra}")

    fs_paths = {}

    def argv(store, mnt):
        fs_paths["store"] = store
        write_conf(f"[access]\npolicy = {p1}\naudit = {a1}\n")
        return ["--config", str(conf), str(mnt)]

    fs = secretfs(STORE, argv=argv, env=notify.env(), wait=False)
    wait_ready(notify, fs)
    assert try_read(fs.path("app/db/password")) is None  # policy1: token only
    assert ("app/db/password", "deny") in audit_paths(a1)

    # New paths for both: the policy comes from policy2, records go to audit2.
    write_conf(f"[access]\npolicy = {p2}\naudit = {a2}\n")
    assert sighup_reload(notify, fs) == {"READY": "1", "STATUS": serving(fs)}
    n1 = len(audit_paths(a1))
    assert try_read(fs.path("app/db/password")) == b"notify-db-password"
    assert audit_paths(a2) == [("app/db/password", "permit")]
    assert len(audit_paths(a1)) == n1

    # Settings a reload cannot apply are kept, with a warning, not a failure.
    write_conf(f"[access]\npolicy = {p2}\n")
    assert sighup_reload(notify, fs) == {"READY": "1", "STATUS": serving(fs)}
    err = fs.wait_stderr("turning off the audit log needs a restart")
    assert f"keeping {a2}" in err
    assert try_read(fs.path("app/token")) == b"notify-token-value"
    assert audit_paths(a2)[-1] == ("app/token", "permit")

    # A broken file changes nothing and says so.
    conf.write_text("[access]\npolicy = \n")
    msg = sighup_reload(notify, fs)
    assert msg["STATUS"] == serving(fs) + "; reload failed: the config file (see the log)"
    err = fs.wait_stderr("keeping the previous settings")
    assert re.search(rf"^<3>{re.escape(str(conf))}:2: .*keeping the previous settings$", err,
                     re.M), err
    assert try_read(fs.path("app/db/password")) == b"notify-db-password"  # still policy2
    sigterm_stop(notify, fs)


def test_reload_keeps_command_line_settings_on_top(secretfs, notify, workdir):
    # -o policy= wins over the file at start, and again at every reload.
    p_cmd, p_file = workdir / "policy-cmd", workdir / "policy-file"
    p_cmd.write_text("permit user:root app/token\n")
    p_file.write_text("permit user:root app/**\n")
    conf = workdir / "secretfs.conf"

    def argv(store, mnt):
        conf.write_text(f"[secretfs]\nsource = file:{store}\n\n[access]\npolicy = {p_file}\n")
        return ["--config", str(conf), "-o", f"policy={p_cmd}", str(mnt)]

    fs = secretfs(STORE, argv=argv, env=notify.env(), wait=False)
    wait_ready(notify, fs)
    assert try_read(fs.path("app/db/password")) is None
    sighup_reload(notify, fs)
    assert try_read(fs.path("app/db/password")) is None
    assert f"{p_cmd}: policy reloaded" in fs.wait_stderr("policy reloaded")
    sigterm_stop(notify, fs)


# ---------------------------------------------------------------- under a real systemd


BOOT_ENV = "SECRETFS_TEST_SYSTEMD_BOOT"
BOOT_SCRIPT = r"""
set -e
# Copies of other FUSE mounts would keep their daemons alive after the host unmounts them.
awk '$0 ~ / - fuse/ {print $5}' /proc/self/mountinfo | while read -r m; do umount -l "$m" || true; done
mount -t tmpfs -o mode=755 secretfs-test-run /run
mkdir -p /run/systemd/system
cp -a "$1"/. /run/systemd/system/
exec env -i container=secretfs-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=secretfs-test.target --log-target=console
"""
CGROUP_DIRS = [f"/sys/fs/cgroup/{h}/{d}" for h in
               ("systemd", "unified", "devices", "memory", "pids", "cpu", "cpuacct", "cpuset",
                "blkio", "freezer", "")
               for d in ("init.scope", "system.slice")]


@pytest.fixture
def booted_systemd(installed_prefix, workdir):
    """
    systemd as PID 1 of a private pid and mount namespace, with the installed units
    and drop-ins that point them at test configs.  Opt-in ($SECRETFS_TEST_SYSTEMD_BOOT=1):
    it creates init.scope and system.slice cgroups, which it removes again.
    """
    if os.environ.get(BOOT_ENV) != "1":
        pytest.skip(f"booting systemd in a namespace is opt-in: set {BOOT_ENV}=1")
    for tool in ("unshare", "nsenter"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is missing (util-linux)")
    if not os.access("/lib/systemd/systemd", os.X_OK):
        pytest.skip("/lib/systemd/systemd is missing (Debian package systemd)")
    units = workdir / "units"
    units.mkdir()
    for u in UNITS:
        shutil.copy(installed_unit(installed_prefix, u), units / u)
    (units / "secretfs-test.target").write_text("[Unit]\nDefaultDependencies=no\n")
    os.symlink("/dev/null", units / "network-online.target")  # nothing to wait for here
    exe = installed_prefix / "bin" / "secretfs"
    for u, conf in (("secretfs.service", workdir / "secretfs.conf"),
                    ("secretfs@.service", f"{workdir}/%i.conf")):
        (units / f"{u}.d").mkdir()
        # Only the config path and the log file change; the sandbox is the unit's.
        (units / f"{u}.d" / "test.conf").write_text(
            f"[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=\n"
            f"ExecStart={exe} -f --config {conf}\n"
            f"StandardError=append:{workdir}/%n.stderr\n"
            # LeakSanitizer needs ptrace, which the unit's seccomp filter refuses;
            # the other tests check for leaks.
            + ("Environment=ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1\n"
               if SANITIZER else ""))
    before = {d for d in CGROUP_DIRS if os.path.isdir(d)}
    console = open(workdir / "console.log", "wb")
    boot = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--uts", "--ipc",
         "--cgroup", "--mount-proc", "/bin/sh", "-c", BOOT_SCRIPT, "sh", str(units)],
        stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True)
    init = None
    try:
        def find_init():
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and open(f"/proc/{pid}/status").read().count(
                            f"PPid:\t{boot.pid}\n") and os.readlink(
                            f"/proc/{pid}/exe") == os.path.realpath("/lib/systemd/systemd"):
                        return int(pid)
                except OSError:
                    pass
            return None

        init = wait_until(lambda: find_init() or boot.poll() is not None, POLL_TIMEOUT,
                          what="systemd to start in the namespace")
        if init is True:
            pytest.skip("systemd did not start in a namespace here: "
                        + (workdir / "console.log").read_text()[-500:])

        def ns(*cmd, check=True):
            r = subprocess.run(["nsenter", "-t", str(init), "-m", "-p", *cmd],
                               capture_output=True, text=True, timeout=CMD_TIMEOUT)
            assert not check or r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
            return r

        if not wait_until(lambda: ns("systemctl", "is-system-running", check=False)
                          .stdout.strip() in ("running", "degraded"), POLL_TIMEOUT,
                          what="systemd to finish starting"):
            pytest.skip("systemd did not come up in a namespace here")
        yield ns, init
    finally:
        if init:
            os.kill(init, signal.SIGKILL)
        try:
            os.killpg(boot.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        boot.wait()
        console.close()
        # The namespace's processes die after their init: until then the cgroups are busy.
        deadline = time.monotonic() + STOP_TIMEOUT
        left = [d for d in CGROUP_DIRS if d not in before and os.path.isdir(d)]
        while left and time.monotonic() < deadline:
            for d in left:
                for sub, _, _ in sorted(os.walk(d), key=lambda x: -len(x[0])):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
            left = [d for d in left if os.path.isdir(d)]
            time.sleep(0.05)
        assert not left, f"cgroups left behind by the booted systemd: {left}"


def unit_show(ns, unit, *props):
    r = ns("systemctl", "show", unit, *[f"-p{p}" for p in props])
    return dict(line.split("=", 1) for line in r.stdout.splitlines())


def test_units_under_a_real_systemd(booted_systemd, workdir):
    """Type=notify, reload and stop with the units' sandbox; the mount reaches the host."""
    ns, init = booted_systemd
    store, mnt = workdir / "store.json", workdir / "mnt"
    mnt.mkdir()
    write_store(store, STORE)
    policy = workdir / "policy"
    policy.write_text("permit user:root app/**\n")
    for name in ("secretfs", "t1"):
        (workdir / f"{name}.conf").write_text(
            f"[secretfs]\nsource = file:{store}\nmountpoint = {mnt}\n\n[access]\n"
            f"policy = {policy}\n")

    def ns_mounted():
        with open(f"/proc/{init}/mountinfo") as f:
            return sum(line.split()[4] == str(mnt) for line in f)

    for unit in ("secretfs.service", "secretfs@t1.service"):
        ns("systemctl", "start", unit)  # returns once READY=1 arrived
        st = unit_show(ns, unit, "ActiveState", "SubState", "StatusText", "MainPID")
        assert (st["ActiveState"], st["SubState"]) == ("active", "running"), st
        assert st["StatusText"] == f"Serving file:{store} at {mnt}"
        # In the service manager's namespace, i.e. the host's: not hidden in the service's.
        assert ns_mounted() == 1
        assert ns("cat", str(mnt / "app/token")).stdout == "notify-token-value"
        status = ns("cat", f"/proc/{st['MainPID']}/status").stdout
        fields = dict(ln.split(":\t", 1) for ln in status.splitlines() if ":\t" in ln)
        # CAP_IPC_LOCK (14), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21); no_new_privs; seccomp
        assert int(fields["CapBnd"], 16) == (1 << 14) | (1 << 19) | (1 << 21), fields["CapBnd"]
        assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"

        policy.write_text("permit user:root app/db/**\n")
        ns("systemctl", "reload", unit)
        wait_until(lambda: ns("cat", str(mnt / "app/token"), check=False).returncode != 0,
                   what="the reloaded policy to deny app/token")
        assert ns("cat", str(mnt / "app/db/password")).stdout == "notify-db-password"
        policy.write_text("permit user:root app/**\n")

        ns("systemctl", "stop", unit)
        st = unit_show(ns, unit, "ActiveState", "Result", "ExecMainStatus")
        err = (workdir / f"{unit}.stderr").read_text(errors="replace")
        assert st == {"ActiveState": "inactive", "Result": "success",
                      "ExecMainStatus": "0"}, f"{st}\n{err}"
        assert ns_mounted() == 0
        assert not sanitizer_reports(err), err
        assert f"<6>serving file:{store} at {mnt}\n" in err, err
        assert f"<6>{policy}: policy reloaded\n" in err, err
        assert "notify-token-value" not in err


def test_a_mount_namespace_setting_hides_the_mount(booted_systemd, workdir):
    """Why the units have no ProtectHome= and the like: the host would not see the mount."""
    ns, init = booted_systemd
    store, mnt = workdir / "store.json", workdir / "mnt"
    mnt.mkdir()
    write_store(store, STORE)
    (workdir / "secretfs.conf").write_text(
        f"[secretfs]\nsource = file:{store}\nmountpoint = {mnt}\n")
    ns("sh", "-c", "mkdir -p /run/systemd/system/secretfs.service.d && printf "
       "'[Service]\\nProtectHome=yes\\n' > /run/systemd/system/secretfs.service.d/ns.conf "
       "&& systemctl daemon-reload")
    ns("systemctl", "start", "secretfs.service")
    pid = unit_show(ns, "secretfs.service", "MainPID")["MainPID"]
    try:
        theirs = ns("grep", "-c", f" {mnt} ", f"/proc/{pid}/mountinfo").stdout.strip()
        with open(f"/proc/{init}/mountinfo") as f:
            ours = sum(line.split()[4] == str(mnt) for line in f)
        assert (theirs, ours) == ("1", 0), "ProtectHome=yes: mounted for the service only"
    finally:
        ns("systemctl", "stop", "secretfs.service", check=False)
