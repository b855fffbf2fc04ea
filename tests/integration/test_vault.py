"""
The Vault backend against tests/servers/vault_server.py (in this process,
over TLS on 127.0.0.1, certificates from certs.py made once per module):
KV v2 and v1 reads and listings through the kernel, the version in the
audit log, deleted versions, ACL denials, single-flight, retries, stale
values over errors, token renewal, AppRole and Kubernetes logins and
re-logins, namespaces, TLS and mTLS settings, startup errors, and where the
token must never appear (/proc/PID/environ, stderr, the audit log).

Counts come from the server's own request counters.  Cache TTLs are kept
at a second or two, since the cache runs on the real monotonic clock.
"""

import errno
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import (
    POLL_TIMEOUT,
    REPO,
    TIME_SCALE,
    is_mounted,
    read_file,
    run_secretfs,
    sanitizer_env,
    try_read,
    wait_until,
)

sys.path.insert(0, str(REPO / "tests" / "servers"))
from certs import generate_certs  # noqa: E402
from vault_server import VaultServer  # noqa: E402

ROOT = "hvs.R00tTokenForSecretfsTests01"
SECRETS = [
    {"mount": "secret", "path": "app/db", "data": {"password": "s3cr3t-pa55word", "user": "app-user-77",
                                                   "port": 5432}},
    {"mount": "secret", "path": "app/api-key", "data": {"value": "abc-api-key-123"}},
    {"mount": "secret", "path": "foo", "data": {"self": "foo-itself-value"}},
    {"mount": "secret", "path": "foo/bar", "data": {"child": "foo-bar-child-value"}},
    {"mount": "secret", "path": "team/svc/cfg", "data": {"url": "https://svc.internal.example"}},
    {"mount": "secret", "path": "other/x", "data": {"v": "other-denied-value"}},
    {"mount": "kv", "path": "short", "data": {"k": "kv1-short-lease", "ttl": "1s"}},
    {"mount": "kv", "path": "long", "data": {"k": "kv1-default-lease"}},
]
VALUES = [v.encode() for s in SECRETS for v in s["data"].values() if isinstance(v, str)]


def counted(vs, key, op="read"):
    return vs.secret_count(key, op)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("vault-certs")
    os.chmod(d, 0o755)
    return generate_certs(str(d))


@pytest.fixture(scope="module")
def vault_server(certs):
    vs = VaultServer(certs.server, certs.server_key,
                     config={"root_token": ROOT, "secrets": SECRETS})
    vs.start()
    yield vs
    vs.stop()


@pytest.fixture
def vs(vault_server):
    """The module's server, back to its starting state for each test."""
    vault_server.reset()
    yield vault_server


def vault_env(workdir, **extra):
    """The daemon's environment: no VAULT_* from ours, HOME without a ~/.vault-token."""
    env = {k: v for k, v in sanitizer_env().items() if not k.startswith("VAULT_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env["HOME"] = str(workdir)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def vmount(secretfs, workdir, certs):
    """
    Factory: mounts SOURCE (default vault:URL/secret of @server) with -o
    ca_file=CA and VAULT_TOKEN=ROOT unless told otherwise; returns the Daemon.
    """

    def start(server, path="secret", *, options=(), env=None, token=ROOT, ca=True,
              secrets=(), source=None):
        e = vault_env(workdir, **(env or {}))
        if token is not None:
            e["VAULT_TOKEN"] = token
        opts = [*(["-o", f"ca_file={certs.ca}"] if ca else []), *options]
        src = source or f"vault:{server.url}/{path}"
        leak = [*VALUES, ROOT.encode(), *(s.encode() for s in secrets)]
        if token:
            leak.append(token.encode())
        return secretfs(None, argv=lambda store, mnt: [*opts, src, str(mnt)], env=e,
                        secrets=leak)

    return start


def start_failure(workdir, source, *, options=(), env=None, token=ROOT):
    """Runs the daemon on @source, which must fail before mounting; returns its stderr."""
    mnt = workdir / f"mnt-fail-{time.monotonic_ns()}"
    mnt.mkdir()
    e = vault_env(workdir, **(env or {}))
    if token is not None:
        e["VAULT_TOKEN"] = token
    r = run_secretfs(["-f", *options, source, str(mnt)], env=e)
    assert r.returncode != 0, f"secretfs started:\n{r.stderr}"
    assert not is_mounted(mnt)
    assert ROOT not in r.stderr and (token is None or token not in r.stderr)
    return r.stderr


def read_err(path):
    try:
        read_file(path)
    except OSError as e:
        return e.errno
    return 0


def logins(vs, mount="approle"):
    return vs.endpoint_count(f"POST /v1/auth/{mount}/login")


# ---------------------------------------------------------------- KV v2


def test_kv2_reads_lists_and_audit(vs, vmount, workdir):
    audit = workdir / "audit.log"
    d = vmount(vs, options=["-o", f"audit={audit}"])

    assert sorted(os.listdir(d.mnt)) == ["app", "foo", "other", "team"]
    assert sorted(os.listdir(d.path("app"))) == ["api-key", "db"]
    assert sorted(os.listdir(d.path("app", "db"))) == ["password", "port", "user"]
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    assert read_file(d.path("app/db/port")) == b"5432"
    assert os.stat(d.path("app/db/user")).st_size == len("app-user-77")
    # foo is a secret and a folder: one directory with its key and its child
    assert sorted(os.listdir(d.path("foo"))) == ["bar", "self"]
    assert read_file(d.path("foo/self")) == b"foo-itself-value"
    assert read_file(d.path("foo/bar/child")) == b"foo-bar-child-value"
    assert read_err(d.path("app/nope")) == errno.ENOENT

    # the version of each value is in its audit record
    vs.put_secret("secret", "app/api-key", {"value": "abc-api-key-123"})  # version 2
    assert read_file(d.path("app/api-key/value")) == b"abc-api-key-123"
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    opens = {r["path"]: r for r in recs if r["op"] == "open"}
    pw = next(r for p, r in opens.items() if p.endswith("app/db/password"))
    key = next(r for p, r in opens.items() if p.endswith("app/api-key/value"))
    assert pw["version"] == "1" and pw["decision"] == "permit"
    assert key["version"] == "2"

    c = vs.counts()
    assert c["without_x_vault_request"] == 0 and c["with_x_vault_request"] > 0
    assert c["endpoints"].get("GET /v1/sys/internal/ui/mounts/*") == 1
    assert c["endpoints"].get("GET /v1/auth/token/lookup-self") == 1
    assert c["endpoints"].get("LIST /v1/secret/metadata/*", 0) >= 1
    # the token left the environment the daemon was started with
    environ = Path(f"/proc/{d.pid}/environ").read_bytes()
    assert ROOT.encode() not in environ and b"VAULT_TOKEN=" not in environ
    text = audit.read_bytes()
    assert ROOT.encode() not in text
    assert not [v for v in VALUES if v in text]


def test_prefix_and_vault_addr(vs, vmount):
    # MOUNT/SUBPATH: the mount comes from ui/mounts, the rest is a prefix
    d = vmount(vs, "secret/team")
    assert os.listdir(d.mnt) == ["svc"]
    assert read_file(d.path("svc/cfg/url")) == b"https://svc.internal.example"
    assert vs.secret_count("secret/team/svc/cfg", "read") == 1
    # vault:MOUNT with the server from VAULT_ADDR
    d2 = vmount(vs, source="vault:secret/app", env={"VAULT_ADDR": vs.url})
    assert sorted(os.listdir(d2.mnt)) == ["api-key", "db"]
    assert read_file(d2.path("db/user")) == b"app-user-77"
    # an empty mount is an empty directory (Vault answers its LIST with 404)
    vs.add_mount("empty", version=2)
    d3 = vmount(vs, "empty")
    assert os.listdir(d3.mnt) == []


def test_deleted_and_destroyed_versions(vs, vmount):
    vs.put_secret("secret", "gone/soft", {"k": "soft-deleted-value"})
    vs.delete_secret("secret", "gone/soft", mode="soft")
    vs.put_secret("secret", "gone/hard", {"k": "destroyed-value1"})
    vs.delete_secret("secret", "gone/hard", mode="destroy", versions=[1])
    vs.put_secret("secret", "gone/older", {"k": "older-version-value"})
    vs.put_secret("secret", "gone/older", {"k": "newer-version-value"})
    vs.delete_secret("secret", "gone/older", mode="soft")  # the latest (2) only
    d = vmount(vs, secrets=["soft-deleted-value", "destroyed-value1", "older-version-value",
                            "newer-version-value"])
    # still listed (the metadata exists), but not readable
    assert sorted(os.listdir(d.path("gone"))) == ["hard", "older", "soft"]
    for name in ("soft", "hard", "older"):
        assert read_err(d.path("gone", name, "k")) == errno.ENOENT, name
        with pytest.raises(FileNotFoundError):
            os.stat(d.path("gone", name))
    # a 404 with metadata is not an error worth a warning
    assert "warning" not in d.stderr().lower()


def test_acl_denial_is_eacces_and_the_daemon_keeps_working(vs, vmount):
    tok = vs.create_token(acl=[{"prefix": "secret/data/app/", "capabilities": ["read"]},
                               {"prefix": "secret/metadata/", "capabilities": ["list"]}],
                          ttl="1h")["token"]
    d = vmount(vs, token=tok)
    assert read_err(d.path("other/x/v")) == errno.EACCES
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    assert read_err(d.path("other/x/v")) == errno.EACCES
    assert read_file(d.path("app/api-key/value")) == b"abc-api-key-123"
    assert "permission denied (403)" in d.stderr()


def test_single_flight(vs, vmount):
    d = vmount(vs, options=["-o", "ttl=60"])
    vs.add_fault(kind="latency", path="/data/app/db$", latency_ms=300)
    results, barrier = [], threading.Barrier(16)

    def reader():
        barrier.wait()
        results.append(try_read(d.path("app/db/password")))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=POLL_TIMEOUT)
    assert results == [b"s3cr3t-pa55word"] * 16
    assert vs.secret_count("secret/app/db", "read") == 1


# ---------------------------------------------------------------- KV v1, TTL hint


def test_kv1_lease_duration_is_the_ttl_hint(vs, vmount, workdir):
    vs.add_mount("kv", version=1, default_lease_ttl=3600)
    vs.put_secret("kv", "short", {"k": "kv1-short-lease", "ttl": "1s"})
    vs.put_secret("kv", "long", {"k": "kv1-default-lease"})
    token_file = workdir / "token"
    token_file.write_text(ROOT + "\n")
    token_file.chmod(0o600)
    # The kv version given: no ui/mounts call.  The token from a file.
    d = vmount(vs, "kv", token=None,
               options=["-o", "ttl=2", "-o", "vault_kv_version=1",
                        "-o", f"vault_token_file={token_file}"])
    assert sorted(os.listdir(d.mnt)) == ["long", "short"]
    assert read_file(d.path("short/k")) == b"kv1-short-lease"
    assert read_file(d.path("short/ttl")) == b"1s"
    assert read_file(d.path("long/k")) == b"kv1-default-lease"
    assert vs.endpoint_count("GET /v1/sys/internal/ui/mounts/*") == 0
    # lease_duration 1 s beats ttl=2: refetched after a second
    wait_until(lambda: read_file(d.path("short/k")) and
               vs.secret_count("kv/short", "read") >= 2, 1.9 * TIME_SCALE,
               what="a refetch of kv/short after its 1 s lease")
    # the mount's 1 h default does not stretch ttl=2
    assert vs.secret_count("kv/long", "read") == 1
    time.sleep(2.2)
    read_file(d.path("long/k"))
    assert vs.secret_count("kv/long", "read") == 2


def test_token_sources(vs, vmount, workdir):
    """vault_token_file, VAULT_TOKEN, $CREDENTIALS_DIRECTORY/vault-token, ~/.vault-token."""
    toks = {n: vs.create_token(ttl="1h")["token"] for n in ("file", "env", "cred", "home")}
    creds = workdir / "creds"
    creds.mkdir()
    (creds / "vault-token").write_text(toks["cred"] + "\n")
    (workdir / ".vault-token").write_text(toks["home"])
    (workdir / "tokfile").write_text(toks["file"] + "\n")
    leak = list(toks.values())

    def used(d):
        read_file(d.path("app/db/user"))
        acc = {r["token_accessor"] for r in vs.requests_log() if r["token_present"]}
        return [n for n, t in toks.items() if vs.token_info(t)["accessor"] in acc]

    vs.reset_counts()
    d = vmount(vs, token=toks["env"], secrets=leak,
               env={"CREDENTIALS_DIRECTORY": creds},
               options=["-o", f"vault_token_file={workdir / 'tokfile'}"])
    assert used(d) == ["file"]  # the setting wins over the environment
    vs.reset_counts()
    d = vmount(vs, token=toks["env"], secrets=leak, env={"CREDENTIALS_DIRECTORY": creds})
    assert used(d) == ["env"]
    vs.reset_counts()
    d = vmount(vs, token=None, secrets=leak, env={"CREDENTIALS_DIRECTORY": creds})
    assert used(d) == ["cred"]
    vs.reset_counts()
    d = vmount(vs, token=None, secrets=leak)
    assert used(d) == ["home"]


# ---------------------------------------------------------------- failures


def test_retries_on_503_and_429(vs, vmount):
    d = vmount(vs)
    vs.add_fault(kind="status", status=503, path="/data/app/db$", count=2)
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    assert vs.secret_count("secret/app/db", "read") == 3
    vs.add_fault(kind="status", status=429, path="/data/app/api-key$", count=1, retry_after=1)
    t0 = time.monotonic()
    assert read_file(d.path("app/api-key/value")) == b"abc-api-key-123"
    assert time.monotonic() - t0 >= 0.9  # Retry-After: 1 honoured
    assert vs.secret_count("secret/app/api-key", "read") == 2


def test_stale_value_over_errors_and_no_hang_when_down(vs, vmount, certs):
    d = vmount(vs, options=["-o", "ttl=1", "-o", "max_attempts=2"])
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    vs.add_fault(kind="status", status=500, path="/data/")
    time.sleep(1.2)
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"  # stale
    wait_until(lambda: vs.secret_count("secret/app/db", "read") >= 2, what="a refetch")

    # A server that goes away: stale values still served, uncached ones fail fast.
    down = VaultServer(certs.server, certs.server_key,
                       config={"root_token": ROOT, "secrets": SECRETS})
    down.start()
    d2 = vmount(down, options=["-o", "ttl=1", "-o", "fetch_timeout=2", "-o", "max_attempts=2",
                               "-o", "connect_timeout=1"])
    assert read_file(d2.path("app/db/password")) == b"s3cr3t-pa55word"
    os.listdir(d2.path("app", "api-key"))
    down.stop()
    time.sleep(1.2)
    assert read_file(d2.path("app/db/password")) == b"s3cr3t-pa55word"
    t0 = time.monotonic()
    err = read_err(d2.path("foo/self"))
    assert err in (errno.EIO, errno.EAGAIN, errno.ECONNREFUSED, errno.ETIMEDOUT), err
    assert time.monotonic() - t0 < 5 * TIME_SCALE


# ---------------------------------------------------------------- tokens and logins


def test_token_is_renewed(vs, vmount):
    tok = vs.create_token(ttl=3, renewable=True)["token"]
    d = vmount(vs, token=tok, options=["-o", "ttl=1"])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.5:
        assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
        time.sleep(0.5)
    assert vs.endpoint_count("POST /v1/auth/token/renew-self") >= 1
    assert vs.token_info(tok)["ttl"] >= 1  # alive past its first 3 s
    assert vs.secret_count("secret/app/db", "read") >= 3


def test_approle_relogin_near_max_ttl_and_secret_id_removal(vs, vmount, workdir):
    vs.add_approle_role("app", role_id="role-id-0001", secret_id="secret-id-value-0001",
                        token_ttl=3, token_max_ttl=3)
    role_id, secret_id = workdir / "role_id", workdir / "secret_id"
    role_id.write_text("role-id-0001\n")
    secret_id.write_text("secret-id-value-0001\n")
    d = vmount(vs, token=None, secrets=["secret-id-value-0001"],
               options=["-o", "ttl=1", "-o", "vault_auth=approle",
                        "-o", f"vault_role_id_file={role_id}",
                        "-o", f"vault_secret_id_file={secret_id}",
                        "-o", "vault_remove_secret_id_file=1"])
    assert not secret_id.exists()  # read, then removed, as Vault Agent does
    assert logins(vs) == 1
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.5:
        assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
        time.sleep(0.5)
    # renewal came back capped by the max TTL, so it logged in again (same secret_id)
    assert logins(vs) >= 2
    assert vs.endpoint_count("POST /v1/auth/token/renew-self") >= 1
    assert "failed" not in d.stderr()


def test_approle_403_relogin_and_acl_denial(vs, vmount, workdir):
    vs.add_approle_role("app", role_id="role-id-0002", secret_id="secret-id-value-0002",
                        token_ttl="1h", acl=[{"prefix": "secret/data/app/",
                                              "capabilities": ["read"]},
                                             {"prefix": "secret/metadata/",
                                              "capabilities": ["list"]}])
    (workdir / "rid").write_text("role-id-0002")
    (workdir / "sid").write_text("secret-id-value-0002")
    d = vmount(vs, token=None, secrets=["secret-id-value-0002"],
               options=["-o", "ttl=1", "-o", "vault_auth=approle",
                        "-o", f"vault_role_id_file={workdir / 'rid'}",
                        "-o", f"vault_secret_id_file={workdir / 'sid'}"])
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    # a path the role may not read: lookup-self says the token is fine, so EACCES
    assert read_err(d.path("other/x/v")) == errno.EACCES
    assert logins(vs) == 1
    # the token disappears: the next read logs in again and succeeds
    for t in [t for t, v in vs.tokens.items() if t != ROOT]:
        vs.revoke_token(t)
    time.sleep(1.1)
    assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
    assert logins(vs) == 2
    assert (workdir / "sid").exists()  # not removed unless asked


def test_kubernetes_login_rereads_the_jwt(vs, vmount, workdir):
    vs.add_kubernetes_role("reader", jwt="jwt-one-eyJhbGciOi.first", token_ttl="1h")
    jwt = workdir / "jwt"
    jwt.write_text("jwt-one-eyJhbGciOi.first\n")
    d = vmount(vs, token=None, secrets=["jwt-one-eyJhbGciOi.first", "jwt-two-eyJhbGciOi.second"],
               options=["-o", "ttl=1", "-o", "vault_auth=kubernetes", "-o", "vault_role=reader",
                        "-o", f"vault_jwt_file={jwt}"])
    assert read_file(d.path("app/db/user")) == b"app-user-77"
    assert logins(vs, "kubernetes") == 1
    # the service account token rotates; the old one stops working
    vs.add_kubernetes_role("reader", jwt="jwt-two-eyJhbGciOi.second", token_ttl="1h")
    jwt.write_text("jwt-two-eyJhbGciOi.second\n")
    for t in [t for t in vs.tokens if t != ROOT]:
        vs.revoke_token(t)
    time.sleep(1.1)
    assert read_file(d.path("app/db/user")) == b"app-user-77"
    assert logins(vs, "kubernetes") == 2
    assert vs.counts()["statuses"].get("403", 0) >= 1


def test_namespace(vs, vmount):
    vs.add_namespace("ns1")
    vs.add_mount("nskv", version=2, namespace="ns1")
    vs.put_secret("nskv", "db", {"password": "ns1-only-password"}, namespace="ns1")
    for how in ({"options": ["-o", "vault_namespace=ns1"]}, {"env": {"VAULT_NAMESPACE": "ns1"}}):
        vs.reset_counts()
        d = vmount(vs, "nskv", secrets=["ns1-only-password"], **how)
        assert read_file(d.path("db/password")) == b"ns1-only-password"
        log = vs.requests_log()
        assert log and all(r["namespace_header"] == "ns1" for r in log)
    # the option wins over the environment
    d = vmount(vs, "nskv", options=["-o", "vault_namespace=ns1"], env={"VAULT_NAMESPACE": "nope"},
               secrets=["ns1-only-password"])
    assert os.listdir(d.mnt) == ["db"]


# ---------------------------------------------------------------- TLS


def test_tls_settings(vs, vmount, workdir, certs):
    src = f"vault:{vs.url}/secret"
    err = start_failure(workdir, src, options=["-o", f"ca_file={certs.rogue_ca}"])
    assert "TLS" in err and "token lookup failed" in err
    # VAULT_CACERT is read as the vault CLI reads it; the option wins over it
    d = vmount(vs, ca=False, env={"VAULT_CACERT": certs.ca})
    assert read_file(d.path("app/db/user")) == b"app-user-77"
    err = start_failure(workdir, src, options=["-o", f"ca_file={certs.rogue_ca}"],
                        env={"VAULT_CACERT": certs.ca})
    assert "TLS" in err
    # VAULT_SKIP_VERIFY alone is refused; with -o insecure it works and warns
    err = start_failure(workdir, src, env={"VAULT_SKIP_VERIFY": "true"})
    assert "VAULT_SKIP_VERIFY" in err and "-o insecure" in err
    d = vmount(vs, ca=False, options=["-o", "insecure"], env={"VAULT_SKIP_VERIFY": "1"})
    assert read_file(d.path("app/db/user")) == b"app-user-77"
    assert "secretfs: warning: vault" in d.stderr() and "verification is off" in d.stderr()


def test_mtls(certs, vmount, workdir):
    vs = VaultServer(certs.server, certs.server_key, config={"root_token": ROOT, "secrets": SECRETS},
                     client_ca=certs.ca, require_client_cert=True)
    vs.start()
    try:
        err = start_failure(workdir, f"vault:{vs.url}/secret", options=["-o", f"ca_file={certs.ca}"])
        assert "token lookup failed" in err
        d = vmount(vs, options=["-o", f"client_cert={certs.client}",
                                "-o", f"client_key={certs.client_key}"])
        assert read_file(d.path("app/db/password")) == b"s3cr3t-pa55word"
        assert any(r["client_cert"] for r in vs.requests_log())
        d2 = vmount(vs, env={"VAULT_CLIENT_CERT": certs.client, "VAULT_CLIENT_KEY": certs.client_key})
        assert read_file(d2.path("app/db/user")) == b"app-user-77"
    finally:
        vs.stop()


# ---------------------------------------------------------------- startup errors


def test_startup_errors(vs, workdir, certs):
    ca = ["-o", f"ca_file={certs.ca}"]
    src = f"vault:{vs.url}/secret"
    err = start_failure(workdir, src, options=ca, token="hvs.NotAValidTokenAtAll123")
    assert f"vault: {vs.url}: token lookup failed (token from VAULT_TOKEN): " \
           "permission denied (403)" in err
    err = start_failure(workdir, src, options=ca, token=None)
    assert "no token" in err and "vault_token_file" in err
    err = start_failure(workdir, f"vault:{vs.url}/nosuchmount", options=ca)
    assert "nosuchmount" in err and "vault_kv_version" in err
    err = start_failure(workdir, "vault:secret", options=ca)
    assert "VAULT_ADDR" in err
    err = start_failure(workdir, f"vault:http://127.0.0.1:{vs.port}/secret", options=ca)
    assert "plain HTTP" in err
    (workdir / "rid").write_text("role-id-none")
    (workdir / "sid").write_text("secret-id-wrong-value")
    err = start_failure(workdir, src, token=None,
                        options=[*ca, "-o", "vault_auth=approle",
                                 "-o", f"vault_role_id_file={workdir / 'rid'}",
                                 "-o", f"vault_secret_id_file={workdir / 'sid'}"])
    assert "AppRole login at auth/approle failed" in err and "invalid role or secret ID" in err
    assert "secret-id-wrong-value" not in err
    err = start_failure(workdir, src, options=[*ca, "-o", "vault_auth=ldap"])
    assert "vault_auth 'ldap' is not known" in err
    err = start_failure(workdir, src, options=[*ca, "-o", "vault_auth=kubernetes"], token=None)
    assert "vault_role" in err
