"""
nginx serves TLS with its certificate and key read from the mount, and picks
up a rotated certificate on `nginx -s reload`.

nginx's master process reads ssl_certificate and ssl_certificate_key, at
start and at every reload; the workers only inherit them.  A master started
as root would read them as root, and the policy would have to let root read
the key.  So the whole nginx runs as one unprivileged user (sfst-alice):
a master without root privileges ignores the `user` directive (there is
none here), listens on a high port on 127.0.0.1 and keeps its pid file,
logs and temporary files in a directory of its own.  The policy then lets
only that user read certs/, and presents the key to it as its own 0400 file:

    permit user:sfst-alice certs/** owner=sfst-alice mode=0400

The test checks that curl and Python's ssl complete a verified handshake
(CA made at test time) and see the expected certificate (its SHA-256 over
the DER), that root and another user may not read the key, that the audit
log names only nginx's user opening the key; then rotates key and
certificate in the store (-o ttl=2s), waits until the mount serves the new
ones, checks that nginx still serves the old certificate until told, runs
`nginx -s reload` and checks that the new certificate is served.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys

import pytest

from helpers import CMD_TIMEOUT, POLL_TIMEOUT, REPO, STOP_TIMEOUT, wait_until
from users import Agent, run_as

sys.path.insert(0, str(REPO / "tests" / "servers"))
from certs import _make_leaf, generate_certs  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                reason="nginx is missing (Debian package nginx; make test-deps)")

HELLO = "served by nginx through secretfs\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pem_fingerprint(pem):
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def served_fingerprint(port, ca):
    """SHA-256 of the certificate the server presents, after a verified handshake."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def curl(port, ca):
    return subprocess.run(
        ["curl", "-sS", "--max-time", "5", "--cacert", ca, "--resolve",
         f"localhost:{port}:127.0.0.1", "-w", "%{ssl_verify_result}", f"https://localhost:{port}/"],
        capture_output=True, text=True, timeout=CMD_TIMEOUT)


NGINX_CONF = """\
# run entirely as the unprivileged user that starts it: no `user` directive
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 32; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate     {mnt}/certs/server.pem;
        ssl_certificate_key {mnt}/certs/server.key;
        location / {{ default_type text/plain; return 200 "served by nginx through secretfs\\n"; }}
    }}
}}
"""


class Nginx:
    def __init__(self, user, prefix, conf):
        self.user, self.prefix, self.conf = user, prefix, conf
        self.argv = [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([*self.user.setpriv(), *self.argv],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def log(self):
        try:
            return (self.prefix / "error.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def reload(self):
        r = run_as(self.user, [*self.argv, "-s", "reload"])
        assert r.returncode == 0, r.stderr + self.log()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its workers
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # workers of an unclean stop would keep the port: none may be left (the
        # user is a test account: every nginx of its is ours)
        r = subprocess.run(["pgrep", "-u", str(self.user.uid), "-x", "nginx"],
                           capture_output=True, text=True)
        leftover = r.stdout.split()
        for pid in leftover:
            os.kill(int(pid), signal.SIGKILL)
        assert not leftover, f"nginx processes left behind: {leftover}"


def test_nginx_serves_and_rotates_a_certificate_from_the_mount(secretfs, workdir, sfs_users):
    nginx_user, other = sfs_users.alice, sfs_users.bob
    pki = workdir / "pki"
    pki.mkdir()
    certs = generate_certs(str(pki), extras=False)
    _make_leaf(str(pki), "server2", "ca", "localhost", 7, "ec",
               ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    cert1, key1 = open(certs.server).read(), open(certs.server_key).read()
    cert2, key2 = open(pki / "server2.pem").read(), open(pki / "server2.key").read()
    assert pem_fingerprint(cert1) != pem_fingerprint(cert2)

    policy = workdir / "policy"
    policy.write_text(f"permit user:{nginx_user.name} certs/** owner={nginx_user.name} mode=0400\n")
    os.chmod(policy, 0o644)
    audit = workdir / "audit.log"
    fs = secretfs({"certs/server.pem": cert1, "certs/server.key": key1},
                  options=["-o", f"policy={policy},audit={audit},ttl=2s"])
    key_path = fs.path("certs/server.key")

    # the key as nginx's user sees it; nobody else may read it, root included
    st = os.stat(key_path)
    assert (st.st_uid, oct(st.st_mode & 0o7777)) == (nginx_user.uid, "0o400")
    with pytest.raises(PermissionError):
        open(key_path).read()
    assert run_as(other, ["cat", str(key_path)]).returncode != 0

    prefix = workdir / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    os.chown(prefix, nginx_user.uid, nginx_user.gid)
    os.chown(prefix / "tmp", nginx_user.uid, nginx_user.gid)
    os.chmod(prefix, 0o700)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, mnt=fs.mnt))
    nginx = Nginx(nginx_user, prefix, conf)
    try:
        nginx.start()

        def up():
            if nginx.proc.poll() is not None:
                pytest.fail(f"nginx exited with {nginx.proc.returncode}:\n{nginx.log()}")
            try:
                return served_fingerprint(port, certs.ca)
            except OSError:
                return None

        assert wait_until(up, POLL_TIMEOUT, what="nginx to serve TLS") == pem_fingerprint(cert1)
        r = curl(port, certs.ca)
        assert r.returncode == 0, r.stderr
        assert r.stdout == HELLO + "0", r.stdout  # the body, then ssl_verify_result 0 (ok)

        # rotate: new key and certificate in the store; the mount serves them
        # (within the TTL of 2s at most), nginx keeps the old ones until a reload
        fs.replace_store({"certs/server.pem": cert2, "certs/server.key": key2})
        with Agent(nginx_user) as agent:
            wait_until(lambda: agent.read(key_path) == key2.encode(), POLL_TIMEOUT,
                       what="the mount to serve the new key")
            assert agent.read(fs.path("certs/server.pem")) == cert2.encode()
        assert served_fingerprint(port, certs.ca) == pem_fingerprint(cert1)

        nginx.reload()
        # old workers finish gracefully; new connections reach the new ones
        wait_until(lambda: served_fingerprint(port, certs.ca) == pem_fingerprint(cert2),
                   POLL_TIMEOUT, what="nginx to serve the new certificate after reload")
        r = curl(port, certs.ca)
        assert r.returncode == 0 and r.stdout == HELLO + "0", r.stderr
        assert "[emerg]" not in nginx.log() and "[crit]" not in nginx.log(), nginx.log()
    finally:
        nginx.stop()

    # who opened the key: nginx's user (the master, at start and at reload), and
    # root and the other user only to be refused
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    opens = [r for r in recs if r["op"] == "open" and r["path"] == "certs/server.key"]
    permitted = {r["uid"] for r in opens if r["decision"] == "permit"}
    denied = {r["uid"] for r in opens if r["decision"] == "deny"}
    assert permitted == {nginx_user.uid}, opens
    assert denied == {0, other.uid}, opens
    # the master itself read the key at start and again at the reload
    assert len([r for r in opens if r["decision"] == "permit"
                and r["pid"] == nginx.proc.pid]) >= 2, opens
