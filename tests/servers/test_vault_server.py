"""Checks the Vault test server against hvac (Vault's Python client) and the
documented wire formats in /work/shared/fixtures/vault.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_vault_server.py
Needs Debian packages python3-hvac (0.11.x), python3-pytest and openssl.
"""

import glob
import http.client
import json
import os
import random
import signal
import socket
import ssl
import sys
import time

import pytest

hvac = pytest.importorskip("hvac")
import requests  # noqa: E402  (installed with python3-hvac)
from hvac import exceptions as hx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from certs import generate_certs  # noqa: E402
from vault_server import (  # noqa: E402
    ENVELOPE_KEYS,
    AdminClient,
    VaultServer,
    go_duration,
    parse_duration,
    spawn_cli,
)

FIXTURES = os.environ.get(
    "VAULT_FIXTURES",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "fixtures", "vault"),
)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("certs")))


BASE_CONFIG = {
    "namespaces": ["ns1", "ns1/team"],
    "mounts": [
        {"path": "kvshort", "version": 1, "default_lease_ttl": 600},
        {"path": "secret", "version": 2, "namespace": "ns1"},
        {"path": "other", "version": 2, "namespace": "ns1/team"},
        {"path": "hidden", "version": 2, "hide_from_ui_mounts": True},
    ],
}


@pytest.fixture(scope="module")
def server(certs):
    vs = VaultServer(certs.server, certs.server_key, config=BASE_CONFIG)
    vs.start()
    yield vs
    vs.stop()


@pytest.fixture
def vs(server):
    server.reset()
    return server


@pytest.fixture
def client(vs, certs):
    def make(token=None, namespace=None, **kw):
        kw.setdefault("timeout", 5)
        return hvac.Client(url=vs.url, token=vs.root_token if token is None else token,
                           verify=certs.ca, namespace=namespace, **kw)
    return make


def raw(vs, certs, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token is not False:
        headers.setdefault("X-Vault-Token", token or vs.root_token)
    return requests.request(method, vs.url + path, headers=headers, verify=certs.ca,
                            timeout=5, **kw)


# ---------------------------------------------------------------- KV v2


def test_kv2_write_read_versions(client, vs, certs):
    c = client()
    w1 = c.secrets.kv.v2.create_or_update_secret("app/db", secret={"user": "u", "pw": "1"})
    assert list(w1) == list(ENVELOPE_KEYS)
    assert w1["data"]["version"] == 1 and w1["data"]["destroyed"] is False
    assert w1["data"]["deletion_time"] == "" and w1["data"]["custom_metadata"] is None
    assert w1["mount_type"] == "kv" and w1["lease_id"] == "" and w1["renewable"] is False
    w2 = c.secrets.kv.v2.create_or_update_secret("app/db", secret={"user": "u", "pw": "2"})
    assert w2["data"]["version"] == 2

    latest = c.secrets.kv.v2.read_secret_version("app/db")
    assert latest["data"]["data"] == {"pw": "2", "user": "u"}
    assert latest["data"]["metadata"]["version"] == 2
    assert latest["lease_duration"] == 0 and latest["auth"] is None
    v1 = c.secrets.kv.v2.read_secret_version("app/db", version=1)
    assert v1["data"]["data"]["pw"] == "1" and v1["data"]["metadata"]["version"] == 1
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_version("app/db", version=7)
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_version("app/nothing")

    md = c.secrets.kv.v2.read_secret_metadata("app/db")["data"]
    assert md["current_version"] == 2 and md["oldest_version"] == 0
    assert sorted(md["versions"]) == ["1", "2"]
    assert md["delete_version_after"] == "0s" and md["max_versions"] == 0

    # data members are sorted like Go's encoding/json; body ends with newline
    r = raw(vs, certs, "GET", "/v1/secret/data/app/db")
    assert r.headers["Content-Type"] == "application/json"
    assert r.text.endswith("\n") and '"data":{"pw":"2","user":"u"}' in r.text
    st = vs.get_secret_state("secret", "app/db")
    assert st["current_version"] == 2 and st["data"] == {"user": "u", "pw": "2"}


def test_kv2_cas_and_errors(client, vs, certs):
    c = client()
    c.secrets.kv.v2.create_or_update_secret("cas", secret={"a": "1"}, cas=0)
    with pytest.raises(hx.InvalidRequest) as ei:
        c.secrets.kv.v2.create_or_update_secret("cas", secret={"a": "2"}, cas=0)
    assert ei.value.errors == ["check-and-set parameter did not match the current version"]
    assert c.secrets.kv.v2.create_or_update_secret("cas", secret={"a": "2"}, cas=1)["data"][
        "version"] == 2
    r = raw(vs, certs, "POST", "/v1/secret/data/cas", json={"nodata": 1})
    assert r.status_code == 400 and r.json() == {"errors": ["no data provided"]}
    r = raw(vs, certs, "POST", "/v1/secret/data/cas", data=b"{not json")
    assert r.status_code == 400 and r.json()["errors"][0].startswith("failed to parse JSON input")
    # v1-style path on a v2 mount: 404 with Vault's warning
    r = raw(vs, certs, "GET", "/v1/secret/cas")
    assert r.status_code == 404
    assert "Invalid path for a versioned K/V secrets engine" in r.json()["warnings"][0]
    # unknown mount
    r = raw(vs, certs, "GET", "/v1/nomount/x")
    assert r.status_code == 404
    assert r.json() == {"errors": ['no handler for route "nomount/x". route entry not found.']}


def test_kv2_list(client, vs, certs):
    c = client()
    for p in ("foo", "foo/bar", "foo/baz/qux", "zed"):
        c.secrets.kv.v2.create_or_update_secret(p, secret={"k": p})
    root = c.secrets.kv.v2.list_secrets("")
    assert root["data"]["keys"] == ["foo", "foo/", "zed"]
    assert c.secrets.kv.v2.list_secrets("foo")["data"]["keys"] == ["bar", "baz/"]
    assert c.secrets.kv.v2.list_secrets("foo/baz/")["data"]["keys"] == ["qux"]
    with pytest.raises(hx.InvalidPath) as ei:
        c.secrets.kv.v2.list_secrets("missing")
    assert ei.value.errors == []
    # GET ?list=true (what the Vault CLI and strict HTTP clients send) and LIST with a slash
    r1 = raw(vs, certs, "GET", "/v1/secret/metadata/foo/?list=true")
    r2 = raw(vs, certs, "LIST", "/v1/secret/metadata/foo/")
    assert r1.status_code == r2.status_code == 200
    assert r1.json()["data"] == r2.json()["data"] == {"keys": ["bar", "baz/"]}
    r = raw(vs, certs, "GET", "/v1/secret/metadata/missing?list=true")
    assert r.status_code == 404 and r.text == '{"errors":[]}\n'
    # a soft-deleted secret stays listed (metadata still exists)
    c.secrets.kv.v2.delete_latest_version_of_secret("zed")
    assert "zed" in c.secrets.kv.v2.list_secrets("")["data"]["keys"]


def test_kv2_soft_delete_undelete(client, vs, certs):
    c = client()
    c.secrets.kv.v2.create_or_update_secret("sd", secret={"v": "1"})
    c.secrets.kv.v2.create_or_update_secret("sd", secret={"v": "2"})
    c.secrets.kv.v2.delete_latest_version_of_secret("sd")
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_version("sd")
    r = raw(vs, certs, "GET", "/v1/secret/data/sd")
    body = r.json()
    assert r.status_code == 404 and list(body) == list(ENVELOPE_KEYS)
    assert body["data"]["data"] is None
    md = body["data"]["metadata"]
    assert md["version"] == 2 and md["deletion_time"] != "" and md["destroyed"] is False
    # older version is still readable
    assert c.secrets.kv.v2.read_secret_version("sd", version=1)["data"]["data"] == {"v": "1"}
    c.secrets.kv.v2.undelete_secret_versions("sd", versions=[2])
    assert c.secrets.kv.v2.read_secret_version("sd")["data"]["data"] == {"v": "2"}
    c.secrets.kv.v2.delete_secret_versions("sd", versions=[1])
    r = raw(vs, certs, "GET", "/v1/secret/data/sd?version=1")
    assert r.status_code == 404 and r.json()["data"]["metadata"]["deletion_time"]
    r = raw(vs, certs, "POST", "/v1/secret/delete/sd", json={})
    assert r.status_code == 400 and r.json() == {"errors": ["no version number provided"]}


def test_kv2_destroy_and_metadata_delete(client, vs, certs):
    c = client()
    c.secrets.kv.v2.create_or_update_secret("ds", secret={"v": "1"})
    c.secrets.kv.v2.destroy_secret_versions("ds", versions=[1])
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_version("ds")
    r = raw(vs, certs, "GET", "/v1/secret/data/ds")
    assert r.status_code == 404
    assert r.json()["data"] == {"data": None, "metadata": {
        "created_time": r.json()["data"]["metadata"]["created_time"],
        "custom_metadata": None, "deletion_time": "", "destroyed": True, "version": 1}}
    # undelete cannot resurrect a destroyed version
    c.secrets.kv.v2.undelete_secret_versions("ds", versions=[1])
    assert raw(vs, certs, "GET", "/v1/secret/data/ds").status_code == 404
    assert c.secrets.kv.v2.read_secret_metadata("ds")["data"]["versions"]["1"]["destroyed"]
    c.secrets.kv.v2.delete_metadata_and_all_versions("ds")
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_metadata("ds")


def test_kv2_max_versions_and_config(client, vs):
    c = client()
    c.secrets.kv.v2.configure(max_versions=3)
    cfg = c.secrets.kv.v2.read_configuration()["data"]
    assert cfg == {"cas_required": False, "delete_version_after": "0s", "max_versions": 3}
    for i in range(5):
        c.secrets.kv.v2.create_or_update_secret("mv", secret={"i": i})
    md = c.secrets.kv.v2.read_secret_metadata("mv")["data"]
    assert md["current_version"] == 5 and md["oldest_version"] == 3
    assert sorted(md["versions"]) == ["3", "4", "5"]
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v2.read_secret_version("mv", version=1)


def test_admin_seeded_secret_and_both_names(client, vs):
    vs.put_secret("secret", "dup", {"a": "file"})
    vs.put_secret("secret", "dup/child", {"a": "dir"})
    c = client()
    assert c.secrets.kv.v2.list_secrets("")["data"]["keys"] == ["dup", "dup/"]
    assert c.secrets.kv.v2.read_secret_version("dup")["data"]["data"] == {"a": "file"}
    assert c.secrets.kv.v2.read_secret_version("dup/child")["data"]["data"] == {"a": "dir"}


# ---------------------------------------------------------------- KV v1


def test_kv1(client, vs, certs):
    c = client()
    c.secrets.kv.v1.create_or_update_secret("app/one", secret={"a": "b"}, mount_point="kv")
    r = c.secrets.kv.v1.read_secret("app/one", mount_point="kv")
    assert list(r) == list(ENVELOPE_KEYS)
    assert r["data"] == {"a": "b"} and r["lease_duration"] == 2764800
    assert r["renewable"] is False and r["lease_id"] == "" and r["mount_type"] == "kv"
    c.secrets.kv.v1.create_or_update_secret("app/ttl", secret={"a": "b", "ttl": "1h"},
                                            mount_point="kv")
    assert c.secrets.kv.v1.read_secret("app/ttl", mount_point="kv")["lease_duration"] == 3600
    c.secrets.kv.v1.create_or_update_secret("x", secret={"ttl": 90}, mount_point="kv")
    assert c.secrets.kv.v1.read_secret("x", mount_point="kv")["lease_duration"] == 90
    # per-mount default lease TTL
    c.secrets.kv.v1.create_or_update_secret("s", secret={"a": "b"}, mount_point="kvshort")
    assert c.secrets.kv.v1.read_secret("s", mount_point="kvshort")["lease_duration"] == 600
    assert c.secrets.kv.v1.list_secrets("", mount_point="kv")["data"]["keys"] == ["app/", "x"]
    assert c.secrets.kv.v1.list_secrets("app", mount_point="kv")["data"]["keys"] == ["one", "ttl"]
    c.secrets.kv.v1.delete_secret("app/one", mount_point="kv")
    with pytest.raises(hx.InvalidPath):
        c.secrets.kv.v1.read_secret("app/one", mount_point="kv")
    r = raw(vs, certs, "PUT", "/v1/kv/empty", json={})
    assert r.status_code == 400 and r.json() == {"errors": ["missing data fields"]}


# ---------------------------------------------------------------- sys


def test_ui_mounts(client, vs, certs):
    c = client()
    d = c.adapter.get("/v1/sys/internal/ui/mounts/secret/some/path")
    assert d["data"]["type"] == "kv" and d["data"]["options"] == {"version": "2"}
    assert d["data"]["path"] == "secret/" and d["mount_type"] == "system"
    assert c.adapter.get("/v1/sys/internal/ui/mounts/kv")["data"]["options"] == {"version": "1"}
    with pytest.raises(hx.Forbidden) as ei:
        c.adapter.get("/v1/sys/internal/ui/mounts/nope/x")
    assert ei.value.errors == ['preflight capability check returned 403, please ensure '
                               'client\'s policies grant access to path "nope/x/"']
    with pytest.raises(hx.Forbidden):
        c.adapter.get("/v1/sys/internal/ui/mounts/hidden")
    # a restricted token only sees mounts it has some access to
    tok = vs.create_token(acl=["secret/data/app/"])["token"]
    rc = client(tok)
    assert rc.adapter.get("/v1/sys/internal/ui/mounts/secret")["data"]["type"] == "kv"
    with pytest.raises(hx.Forbidden):
        rc.adapter.get("/v1/sys/internal/ui/mounts/kv")
    # invalid token -> permission denied
    with pytest.raises(hx.Forbidden) as ei:
        client("hvs.bogus").adapter.get("/v1/sys/internal/ui/mounts/secret")
    assert ei.value.errors == ["permission denied"]
    assert raw(vs, certs, "GET", "/v1/sys/health", token=False).json()["sealed"] is False


# ---------------------------------------------------------------- tokens


def test_token_lookup_renew_ttl(client, vs):
    info = vs.create_token(policies=["app"], ttl="10m", explicit_max_ttl="30m",
                           meta={"who": "test"})
    c = client(info["token"])
    d = c.auth.token.lookup_self()["data"]
    assert d["id"] == info["token"] and d["accessor"] == info["accessor"]
    assert d["ttl"] == 600 and d["creation_ttl"] == 600 and d["renewable"] is True
    assert d["explicit_max_ttl"] == 1800 and d["policies"] == ["app", "default"]
    assert d["meta"] == {"who": "test"} and d["expire_time"].endswith("Z")
    vs.advance_clock(100)
    assert c.auth.token.lookup_self()["data"]["ttl"] == 500
    r = c.auth.token.renew_self(increment="5m")
    assert r["auth"]["lease_duration"] == 300 and r["auth"]["renewable"] is True
    assert r["auth"]["client_token"] == info["token"] and r["warnings"] is None
    assert c.auth.token.lookup_self()["data"]["ttl"] == 300
    # asking past the explicit max TTL is capped with Vault's warning (Vault truncates
    # issue time and now to whole seconds, so the cap may come out one second lower)
    r = c.auth.token.renew_self(increment="1h")
    capped = r["auth"]["lease_duration"]
    assert capped in (1699, 1700)
    assert r["warnings"] == [f'TTL of "1h0m0s" exceeded the effective max_ttl of '
                             f'"{go_duration(capped)}"; TTL value is capped accordingly']
    d = c.auth.token.lookup_self()["data"]
    assert d["ttl"] == capped and "last_renewal_time" in d
    # without increment the last TTL is reused (and capped again near the max)
    vs.advance_clock(1000)
    assert c.auth.token.renew_self()["auth"]["lease_duration"] in (699, 700)


def test_token_not_renewable_and_root(client, vs):
    tok = vs.create_token(ttl=300, renewable=False)["token"]
    with pytest.raises(hx.InvalidRequest) as ei:
        client(tok).auth.token.renew_self()
    assert ei.value.errors == ["lease is not renewable"]
    assert client(tok).auth.token.lookup_self()["data"]["renewable"] is False
    with pytest.raises(hx.InvalidRequest) as ei:
        client().auth.token.renew_self()
    assert ei.value.errors == ["lease is not renewable"]
    root = client().auth.token.lookup_self()["data"]
    assert root["policies"] == ["root"] and root["expire_time"] is None and root["ttl"] == 0


def test_token_expiry_and_revoke(client, vs):
    tok = vs.create_token(ttl=60)["token"]
    c = client(tok)
    assert c.is_authenticated()
    vs.advance_clock(61)
    with pytest.raises(hx.Forbidden) as ei:
        c.auth.token.lookup_self()
    assert ei.value.errors == ["permission denied"]
    assert not c.is_authenticated()
    tok2 = vs.create_token()["token"]
    c2 = client(tok2)
    c2.auth.token.revoke_self()
    with pytest.raises(hx.Forbidden):
        c2.secrets.kv.v2.read_secret_version("x")
    with pytest.raises(hx.Forbidden):
        client(False).secrets.kv.v2.read_secret_version("x")  # no token at all


def test_token_num_uses_and_create(client, vs):
    tok = vs.create_token(num_uses=2)["token"]
    c = client(tok)
    c.auth.token.lookup_self()
    c.auth.token.lookup_self()
    with pytest.raises(hx.Forbidden):
        c.auth.token.lookup_self()
    r = client().auth.token.create(policies=["web"], ttl="1h", meta={"user": "x"})
    assert r["auth"]["policies"] == ["default", "web"] and r["auth"]["lease_duration"] == 3600
    assert r["warnings"] == ['Policy "web" does not exist'] and r["auth"]["orphan"] is False
    assert client(r["auth"]["client_token"]).auth.token.lookup_self()["data"]["meta"] == {
        "user": "x"}


def test_acl(client, vs, certs):
    tok = vs.create_token(acl=[
        "secret/data/app/",
        {"path": "secret/metadata/app/*", "capabilities": ["list"]},
        {"prefix": "secret/data/ro/", "capabilities": ["read"]},
    ])["token"]
    vs.put_secret("secret", "app/x", {"k": "v"})
    vs.put_secret("secret", "ro/x", {"k": "v"})
    vs.put_secret("secret", "other", {"k": "v"})
    c = client(tok)
    assert c.secrets.kv.v2.read_secret_version("app/x")["data"]["data"] == {"k": "v"}
    c.secrets.kv.v2.create_or_update_secret("app/y", secret={"n": 1})
    assert c.secrets.kv.v2.list_secrets("app")["data"]["keys"] == ["x", "y"]
    assert c.secrets.kv.v2.read_secret_version("ro/x")["data"]["data"] == {"k": "v"}
    for f in (lambda: c.secrets.kv.v2.read_secret_version("other"),
              lambda: c.secrets.kv.v2.create_or_update_secret("ro/x", secret={"a": 1}),
              lambda: c.secrets.kv.v2.list_secrets(""),
              lambda: c.secrets.kv.v2.read_secret_metadata("app/x")):
        with pytest.raises(hx.Forbidden) as ei:
            f()
        assert ei.value.errors == ["permission denied"]
    # named policies defined on the server, Vault glob semantics
    vs.add_policy("team", [{"path": "secret/data/team/+/cfg", "capabilities": ["read"]}])
    vs.put_secret("secret", "team/a/cfg", {"x": 1})
    t2 = client(vs.create_token(policies=["team"])["token"])
    assert t2.secrets.kv.v2.read_secret_version("team/a/cfg")["data"]["data"] == {"x": 1}
    with pytest.raises(hx.Forbidden):
        t2.secrets.kv.v2.read_secret_version("team/a/b/cfg")
    # Vault >= 1.16-style multierror messages
    vs.configure(error_style="multierror")
    with pytest.raises(hx.Forbidden) as ei:
        c.secrets.kv.v2.read_secret_version("other")
    assert ei.value.errors == ["1 error occurred:\n\t* permission denied\n\n"]
    r = raw(vs, certs, "GET", "/v1/secret/data/other", token="hvs.nope")
    assert r.json() == {"errors": ["2 errors occurred:\n\t* permission denied\n\t* "
                                   "invalid token\n\n"]}


# ---------------------------------------------------------------- auth methods


def test_approle_login(client, vs):
    vs.add_approle_role("app", role_id="rid-1", secret_id="sid-1", secret_id_num_uses=2,
                        token_ttl="20m", token_max_ttl="1h", token_policies=["app"],
                        acl=["secret/data/app/"])
    vs.put_secret("secret", "app/x", {"k": "v"})
    c = client(token="")
    r = c.auth.approle.login("rid-1", "sid-1")
    a = r["auth"]
    assert list(r) == list(ENVELOPE_KEYS) and r["data"] is None and r["mount_type"] == "approle"
    assert a["policies"] == ["app", "default"] == a["token_policies"]
    assert a["lease_duration"] == 1200 and a["renewable"] is True
    assert a["metadata"] == {"role_name": "app"} and a["token_type"] == "service"
    assert set(a) >= {"client_token", "accessor", "entity_id", "orphan", "mfa_requirement",
                      "num_uses"}
    assert c.token == a["client_token"]  # hvac adopts the token
    assert c.secrets.kv.v2.read_secret_version("app/x")["data"]["data"] == {"k": "v"}
    with pytest.raises(hx.Forbidden):
        c.secrets.kv.v2.read_secret_version("elsewhere")
    d = c.auth.token.lookup_self()["data"]
    assert d["path"] == "auth/approle/login" and d["ttl"] == 1200
    # renewals are capped by the role's token_max_ttl
    vs.advance_clock(600)
    assert c.auth.token.renew_self(increment="2h")["auth"]["lease_duration"] == 3000
    # secret_id_num_uses=2: second login works, third fails
    client(token="").auth.approle.login("rid-1", "sid-1")
    with pytest.raises(hx.InvalidRequest) as ei:
        client(token="").auth.approle.login("rid-1", "sid-1")
    assert ei.value.errors == ["invalid role or secret ID"]
    with pytest.raises(hx.InvalidRequest) as ei:
        client(token="").auth.approle.login("wrong", "sid-1")
    assert ei.value.errors == ["invalid role or secret ID"]
    with pytest.raises(hx.InvalidRequest) as ei:
        client(token="").auth.approle.login("rid-1")
    assert ei.value.errors == ["missing secret_id"]
    # custom mount path
    vs.add_approle_role("alt", role_id="r2", secret_id="s2", mount="approle-alt")
    assert client(token="").auth.approle.login("r2", "s2", mount_point="approle-alt")["auth"]
    with pytest.raises(hx.InvalidRequest):
        client(token="").auth.approle.login("r2", "s2")


def test_approle_role_endpoints(client, vs):
    vs.add_approle_role("gen", token_ttl=300)
    c = client()
    role_id = c.auth.approle.read_role_id("gen")["data"]["role_id"]
    sec = c.auth.approle.generate_secret_id("gen", metadata={"tag": "t"})["data"]
    assert set(sec) == {"secret_id", "secret_id_accessor", "secret_id_ttl", "secret_id_num_uses"}
    look = c.auth.approle.read_secret_id("gen", sec["secret_id"])["data"]
    assert look["metadata"] == {"tag": "t"} and look["secret_id_accessor"] == sec[
        "secret_id_accessor"]
    r = client(token="").auth.approle.login(role_id, sec["secret_id"])
    assert r["auth"]["metadata"] == {"role_name": "gen", "tag": "t"}
    assert r["auth"]["lease_duration"] == 300
    assert c.auth.approle.list_roles()["data"]["keys"] == ["gen"]
    assert c.auth.approle.read_role("gen")["data"]["token_ttl"] == 300


def test_kubernetes_login(client, vs):
    vs.add_kubernetes_role("web", jwt="jwt-web", token_policies=["web"], token_ttl=900,
                           acl=["secret/data/web/"])
    vs.put_secret("secret", "web/cfg", {"a": "1"})
    c = client(token="")
    r = c.auth.kubernetes.login("web", "jwt-web")
    a = r["auth"]
    assert a["policies"] == ["default", "web"] and a["lease_duration"] == 900
    assert a["metadata"]["role"] == "web" and a["metadata"]["service_account_name"] == "vault-auth"
    assert r["mount_type"] == "kubernetes"
    assert c.secrets.kv.v2.read_secret_version("web/cfg")["data"]["data"] == {"a": "1"}
    with pytest.raises(hx.Forbidden) as ei:
        client(token="").auth.kubernetes.login("web", "not-the-jwt")
    assert ei.value.errors == ["permission denied"]
    with pytest.raises(hx.InvalidRequest) as ei:
        client(token="").auth.kubernetes.login("nope", "jwt-web")
    assert ei.value.errors == ['invalid role name "nope"']
    vs.add_kubernetes_role("r", jwt="j2", mount="k8s-alt")
    assert client(token="").auth.kubernetes.login("r", "j2", mount_point="k8s-alt")["auth"]
    assert client().auth.kubernetes.list_roles()["keys"] == ["web"]  # hvac unwraps data


# ---------------------------------------------------------------- namespaces


def test_namespaces(client, vs, certs):
    vs.put_secret("secret", "app", {"where": "ns1"}, namespace="ns1")
    vs.put_secret("secret", "app", {"where": "root"})
    vs.put_secret("other", "x", {"where": "team"}, namespace="ns1/team")
    assert client(namespace="ns1").secrets.kv.v2.read_secret_version("app")["data"]["data"] == {
        "where": "ns1"}
    assert client().secrets.kv.v2.read_secret_version("app")["data"]["data"] == {"where": "root"}
    # mount exists only inside the namespace
    with pytest.raises(hx.InvalidPath):
        client().secrets.kv.v2.read_secret_version("x", mount_point="other")
    assert client(namespace="ns1/team").secrets.kv.v2.read_secret_version(
        "x", mount_point="other")["data"]["data"] == {"where": "team"}
    # namespace in the path, and header + path combined
    r = raw(vs, certs, "GET", "/v1/ns1/secret/data/app")
    assert r.json()["data"]["data"] == {"where": "ns1"}
    r = raw(vs, certs, "GET", "/v1/team/other/data/x", headers={"X-Vault-Namespace": "ns1"})
    assert r.json()["data"]["data"] == {"where": "team"}
    assert client(namespace="ns1").adapter.get(
        "/v1/sys/internal/ui/mounts/secret")["data"]["path"] == "secret/"
    # a token made in ns1 works there and below, not in the root namespace
    nst = vs.create_token(namespace="ns1")["token"]
    assert client(nst, namespace="ns1").secrets.kv.v2.read_secret_version("app")
    assert client(nst, namespace="ns1/team").secrets.kv.v2.read_secret_version(
        "x", mount_point="other")
    with pytest.raises(hx.Forbidden):
        client(nst).secrets.kv.v2.read_secret_version("app")
    # logins inside a namespace
    vs.add_approle_role("nsrole", role_id="nr", secret_id="ns", namespace="ns1")
    c = client(token="", namespace="ns1")
    c.auth.approle.login("nr", "ns")
    assert c.auth.token.lookup_self()["data"]["namespace_path"] == "ns1/"
    with pytest.raises(hx.InvalidRequest):
        client(token="").auth.approle.login("nr", "ns")
    counts = vs.counts()
    assert counts["namespaces"]["ns1"] >= 4 and counts["namespaces"]["ns1/team"] >= 2
    assert counts["secrets"]["ns1/secret/app"]["read"] >= 3
    r = raw(vs, certs, "GET", "/v1/secret/data/app", headers={"X-Vault-Namespace": "nope"})
    assert r.status_code == 404
    assert r.json() == {"errors": ['no handler for route "nope/secret/data/app". '
                                   'route entry not found.']}


# ---------------------------------------------------------------- headers & counters


def test_x_vault_request_header_and_counters(client, vs, certs):
    vs.put_secret("secret", "cnt", {"a": 1})
    vs.reset_counts()
    c = client()
    for _ in range(3):
        c.secrets.kv.v2.read_secret_version("cnt")
    c.secrets.kv.v2.list_secrets("")
    raw(vs, certs, "GET", "/v1/secret/data/cnt")
    counts = vs.counts()
    assert counts["total"] == 5
    assert counts["with_x_vault_request"] == 4 and counts["without_x_vault_request"] == 1
    assert counts["endpoints"]["GET /v1/secret/data/*"] == 4
    assert counts["endpoints"]["LIST /v1/secret/metadata/*"] == 1
    assert counts["secrets"]["secret/cnt"] == {"read": 4}
    assert vs.secret_count("secret/cnt", "read") == 4 and counts["statuses"]["200"] == 5
    log = vs.requests_log()
    assert [e["x_vault_request"] for e in log] == [True, True, True, True, False]
    assert log[0]["x_vault_request_value"] == "true" and log[0]["token_present"]
    assert log[3]["method"] == "LIST" and log[3]["op"] == "list"
    # optional enforcement (Vault Agent's require_request_header behaviour)
    vs.configure(require_request_header=True)
    r = raw(vs, certs, "GET", "/v1/secret/data/cnt")
    assert r.status_code == 412 and r.json() == {"errors": ["missing 'X-Vault-Request' header"]}
    assert c.secrets.kv.v2.read_secret_version("cnt")["data"]["data"] == {"a": 1}
    vs.reset_counts()
    assert vs.counts()["total"] == 0


# ---------------------------------------------------------------- faults


def test_fault_statuses(client, vs, certs):
    vs.put_secret("secret", "f", {"a": 1})
    c = client()
    vs.add_fault(kind="status", status=500, count=2, path=r"/data/f$")
    for _ in range(2):
        with pytest.raises(hx.InternalServerError) as ei:
            c.secrets.kv.v2.read_secret_version("f")
        assert ei.value.errors == ["internal error"]
    assert c.secrets.kv.v2.read_secret_version("f")["data"]["data"] == {"a": 1}
    vs.add_fault(kind="status", status=503, count=1)
    with pytest.raises(hx.VaultDown) as ei:
        c.secrets.kv.v2.read_secret_version("f")
    assert ei.value.errors == ["Vault is sealed"]
    vs.add_fault(kind="status", status=429, retry_after=7, count=1)
    with pytest.raises(hx.RateLimitExceeded):
        c.secrets.kv.v2.read_secret_version("f")
    vs.add_fault(kind="status", status=429, count=1)
    r = raw(vs, certs, "GET", "/v1/secret/data/f")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json() == {"errors": ['request path "secret/data/f": rate limit quota exceeded']}
    # skip: let the first request through, fail the second
    vs.add_fault(kind="status", status=502, skip=1, count=1, method="GET")
    c.secrets.kv.v2.read_secret_version("f")
    with pytest.raises(hx.BadGateway):
        c.secrets.kv.v2.read_secret_version("f")
    assert vs.counts()["faults_fired"] == 6
    assert {f["id"]: f["fired"] for f in vs.list_faults()} == {1: 2, 2: 1, 3: 1, 4: 1, 5: 1}


def test_fault_probability_is_seeded(client, vs):
    vs.put_secret("secret", "p", {"a": 1})
    c = client()
    vs.add_fault(kind="status", status=500, probability=0.5, seed=1234)
    outcome = []
    for _ in range(20):
        try:
            c.secrets.kv.v2.read_secret_version("p")
            outcome.append(True)
        except hx.InternalServerError:
            outcome.append(False)
    rng = random.Random(1234)
    assert outcome == [not (rng.random() < 0.5) for _ in range(20)]
    assert 0 < outcome.count(False) < 20


def test_fault_latency(client, vs):
    vs.put_secret("secret", "slow", {"a": 1})
    vs.put_secret("secret", "fast", {"a": 1})
    vs.add_fault(kind="latency", latency_ms=300, path=r"/slow$")
    c = client()
    t0 = time.monotonic()
    c.secrets.kv.v2.read_secret_version("fast")
    t1 = time.monotonic()
    c.secrets.kv.v2.read_secret_version("slow")
    t2 = time.monotonic()
    assert t1 - t0 < 0.25 and t2 - t1 >= 0.3
    # a client timeout shorter than the injected latency
    vs.add_fault(kind="latency", latency_ms=1500, path=r"/fast$", count=1)
    with pytest.raises(requests.exceptions.Timeout):
        client(timeout=0.3).secrets.kv.v2.read_secret_version("fast")


def test_fault_drop_truncate(client, vs, certs):
    vs.put_secret("secret", "d", {"a": "x" * 200})
    c = client()
    vs.add_fault(kind="drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        c.secrets.kv.v2.read_secret_version("d")
    vs.add_fault(kind="drop", count=1, rst=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        c.secrets.kv.v2.read_secret_version("d")
    # truncated body: full Content-Length announced, half the body sent, then FIN.
    # urllib3 1.26 does not enforce Content-Length, so hvac ends up with an
    # unparsable 200 (JSONAdapter returns the raw Response); http.client raises.
    vs.add_fault(kind="truncate", count=1)
    res = c.secrets.kv.v2.read_secret_version("d")
    assert isinstance(res, requests.Response) and len(res.content) < int(
        res.headers["Content-Length"])
    vs.add_fault(kind="truncate", count=1, truncate_at=10)
    conn = http.client.HTTPSConnection("127.0.0.1", vs.port, timeout=5,
                                       context=ssl.create_default_context(cafile=certs.ca))
    conn.request("GET", "/v1/secret/data/d", headers={"X-Vault-Token": vs.root_token})
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as ei:
        resp.read()
    assert len(ei.value.partial) == 10
    conn.close()
    assert c.secrets.kv.v2.read_secret_version("d")["data"]["data"]["a"] == "x" * 200
    assert [e["fault"] for e in vs.requests_log()] == ["drop", "drop", "truncate", "truncate",
                                                       None]
    assert vs.requests_log()[0]["status"] == "dropped"


def test_fault_oversize_and_malformed(client, vs, certs):
    vs.put_secret("secret", "o", {"a": 1})
    vs.add_fault(kind="oversize", size_mib=2, count=1)
    r = raw(vs, certs, "GET", "/v1/secret/data/o")
    assert int(r.headers["Content-Length"]) == 2 * 1024 * 1024 == len(r.content)
    assert len(r.json()["data"]["data"]["padding"]) > 2_000_000
    vs.add_fault(kind="oversize", size_mib=1.5, chunked=True, count=1)
    r = raw(vs, certs, "GET", "/v1/secret/data/o")
    assert "Content-Length" not in r.headers and r.headers["Transfer-Encoding"] == "chunked"
    assert len(r.content) == int(1.5 * 1024 * 1024)
    vs.add_fault(kind="malformed", count=1)
    res = client().secrets.kv.v2.read_secret_version("o")
    # hvac's JSONAdapter hands back the raw Response when the 200 body is not JSON
    assert isinstance(res, requests.Response) and res.status_code == 200
    with pytest.raises(ValueError):
        res.json()
    vs.add_fault(kind="malformed", body="<html>proxy error</html>", content_type="text/html",
                 count=1)
    r = raw(vs, certs, "GET", "/v1/secret/data/o")
    assert r.text == "<html>proxy error</html>" and r.headers["Content-Type"] == "text/html"
    assert client().secrets.kv.v2.read_secret_version("o")["data"]["data"] == {"a": 1}


# ---------------------------------------------------------------- TLS


def test_mtls_required(certs):
    vs = VaultServer(certs.server, certs.server_key, client_ca=certs.ca,
                     require_client_cert=True)
    vs.start()
    try:
        vs.put_secret("secret", "m", {"a": 1})
        ok = hvac.Client(url=vs.url, token=vs.root_token, verify=certs.ca,
                         cert=(certs.client, certs.client_key), timeout=5)
        assert ok.secrets.kv.v2.read_secret_version("m")["data"]["data"] == {"a": 1}
        assert vs.requests_log()[-1]["client_cert"] is True
        no_cert = hvac.Client(url=vs.url, token=vs.root_token, verify=certs.ca, timeout=5)
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            no_cert.secrets.kv.v2.read_secret_version("m")
        rogue = hvac.Client(url=vs.url, token=vs.root_token, verify=certs.ca, timeout=5,
                            cert=(certs.rogue_client, certs.rogue_client_key))
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            rogue.secrets.kv.v2.read_secret_version("m")
        deadline = time.time() + 2
        while vs.counts()["tls_handshake_failures"] < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert vs.counts()["tls_handshake_failures"] >= 2
        assert vs.counts()["total"] == 1
    finally:
        vs.stop()


def test_tls_verification(certs, vs):
    # the CA-signed server cert is accepted; untrusted CA and wrong host are not
    with pytest.raises(requests.exceptions.SSLError):
        hvac.Client(url=vs.url, token=vs.root_token, verify=certs.rogue_ca,
                    timeout=5).auth.token.lookup_self()
    wh = VaultServer(certs.wronghost, certs.wronghost_key)
    wh.start()
    try:
        with pytest.raises(requests.exceptions.SSLError):
            hvac.Client(url=wh.url, token=wh.root_token, verify=certs.ca,
                        timeout=5).auth.token.lookup_self()
    finally:
        wh.stop()
    ctx = ssl.create_default_context(cafile=certs.ca)
    with socket.create_connection(("127.0.0.1", vs.port)) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as ts:
            assert ts.version() in ("TLSv1.2", "TLSv1.3")


# ---------------------------------------------------------------- CLI + admin API


def test_cli_subprocess_and_admin_api(certs, tmp_path):
    cfg = {
        "namespaces": ["ns1"],
        "mounts": [{"path": "kv1", "version": 1, "ttl": 120}],
        "secrets": [{"mount": "secret", "path": "seed", "data": {"s": 1}}],
        "approle": [{"role_name": "r", "role_id": "rid", "secret_id": "sid"}],
        "kubernetes": [{"role": "k", "jwt": "jwt"}],
        "tokens": [{"id": "hvs.fixedtoken", "ttl": 600, "acl": ["secret/"]}],
    }
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path), config=cfg,
                           extra_args=["--admin-port-file", str(tmp_path / "admin.port")])
    try:
        assert int((tmp_path / "vault.port").read_text()) == info["port"]
        adm = AdminClient(info["url"], info["admin_token"], cafile=certs.ca)
        assert adm.get("/_test/health")["ok"]
        c = hvac.Client(url=info["url"], token=info["root_token"], verify=certs.ca, timeout=5)
        assert c.secrets.kv.v2.read_secret_version("seed")["data"]["data"] == {"s": 1}
        adm.post("/_test/kv", {"mount": "kv1", "path": "a", "data": {"x": "y"}})
        assert c.secrets.kv.v1.read_secret("a", mount_point="kv1")["lease_duration"] == 120
        assert adm.post("/_test/kv", {"mount": "secret", "path": "seed", "data": {"s": 2}})[
            "version"] == 2
        c.secrets.kv.v2.create_or_update_secret("written", secret={"by": "client"})
        st = adm.get("/_test/kv?mount=secret&path=written")
        assert st["data"] == {"by": "client"} and st["current_version"] == 1
        tok = adm.post("/_test/token", {"ttl": "1m", "renewable": False})["token"]
        assert hvac.Client(url=info["url"], token=tok, verify=certs.ca).auth.token.lookup_self()[
            "data"]["renewable"] is False
        assert hvac.Client(url=info["url"], token="hvs.fixedtoken", verify=certs.ca
                           ).secrets.kv.v2.read_secret_version("seed")
        assert hvac.Client(url=info["url"], verify=certs.ca).auth.approle.login("rid", "sid")
        assert hvac.Client(url=info["url"], verify=certs.ca).auth.kubernetes.login("k", "jwt")
        fid = adm.post("/_test/fault", {"kind": "status", "status": 503, "count": 1})["id"]
        with pytest.raises(hx.VaultDown):
            c.secrets.kv.v2.read_secret_version("seed")
        assert adm.get("/_test/faults")["faults"][0]["id"] == fid
        counts = adm.get("/_test/counts")
        assert counts["endpoints"]["GET /v1/secret/data/*"] >= 3
        assert counts["secrets"]["secret/seed"]["read"] >= 3
        adm.post("/_test/reset-counts")
        assert adm.get("/_test/counts")["total"] == 0
        adm.post("/_test/clock", {"advance": 120})
        with pytest.raises(hx.Forbidden):
            hvac.Client(url=info["url"], token=tok, verify=certs.ca).auth.token.lookup_self()
        # admin auth and the plain-HTTP admin listener
        with pytest.raises(RuntimeError, match="401"):
            AdminClient(info["url"], "wrong", cafile=certs.ca).get("/_test/counts")
        aport = int((tmp_path / "admin.port").read_text())
        plain = AdminClient(f"http://127.0.0.1:{aport}", info["admin_token"])
        assert plain.get("/_test/counts")["total"] >= 1
        with pytest.raises(RuntimeError, match="404"):
            plain.get("/v1/secret/data/seed")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    out = proc.stdout.read().decode()
    assert json.loads(out.splitlines()[0])["port"] == info["port"]


def test_durations():
    assert parse_duration("1h30m") == 5400 and parse_duration(90) == 90
    assert parse_duration("3600") == 3600 and parse_duration("2d") == 172800
    assert go_duration(3600) == "1h0m0s" and go_duration(1700) == "28m20s"
    assert go_duration(5) == "5s" and go_duration(12319) == "3h25m19s"
    with pytest.raises(ValueError):
        parse_duration("soon")


# ---------------------------------------------------------------- fixtures


def _load_fixtures():
    out = {}
    for f in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        with open(f) as fh:
            out[os.path.basename(f)[:-5]] = json.load(fh)
    return out


# members whose content is free-form (only dict/null is compared)
FREEFORM = {"data.custom_metadata", "data.metadata.custom_metadata", "auth.metadata"}
# The docs sample for kubernetes "Read role" predates list-typed bound_* fields;
# current Vault returns arrays (the plugin's role storage is []string).
ALLOWED = {
    "kubernetes-read-role": {"data.bound_service_account_names",
                             "data.bound_service_account_namespaces"},
}


def _shape(fix, ours, path, problems, allowed):
    if path in allowed:
        return
    if path in FREEFORM:
        if not (fix is None or isinstance(fix, dict)) or not (
                ours is None or isinstance(ours, dict)):
            problems.append(f"{path}: expected object or null")
        return
    if fix is None:
        if ours is not None:
            problems.append(f"{path}: fixture null, ours {ours!r}")
        return
    if isinstance(fix, bool) or isinstance(ours, bool):
        if type(fix) is not type(ours):
            problems.append(f"{path}: {type(fix).__name__} vs {type(ours).__name__}")
        return
    if isinstance(fix, (int, float)):
        if not isinstance(ours, (int, float)):
            problems.append(f"{path}: number vs {type(ours).__name__}")
        return
    if isinstance(fix, str):
        if not isinstance(ours, str):
            problems.append(f"{path}: string vs {type(ours).__name__}")
        return
    if isinstance(fix, list):
        if not isinstance(ours, list):
            problems.append(f"{path}: list vs {type(ours).__name__}")
        elif fix and ours:
            _shape(fix[0], ours[0], path + "[]", problems, allowed)
        return
    if isinstance(fix, dict):
        if not isinstance(ours, dict):
            problems.append(f"{path}: object vs {type(ours).__name__}")
            return
        for k, v in fix.items():
            p = f"{path}.{k}" if path else k
            if k not in ours:
                problems.append(f"{p}: missing")
            else:
                _shape(v, ours[k], p, problems, allowed)


def _replay(vs, certs, fx, name, token, body=None, path=None):
    f = fx[name]
    headers = {k: v for k, v in (f.get("request_headers") or {}).items()
               if k != "X-Vault-Token"}
    if token:
        headers["X-Vault-Token"] = token
    b = f["request_body"] if body is None else body
    r = requests.request(f["method"], vs.url + (path or f["path"]), headers=headers,
                         data=json.dumps(b) if b is not None else None, verify=certs.ca,
                         timeout=5)
    assert r.status_code == f["response_status"], (name, r.status_code, r.text)
    if f["response_body"] is None:
        assert r.content == b"", name
        return None
    ours = r.json()
    expect = f["response_body"]
    problems = []
    top = set(expect)
    if top & set(ENVELOPE_KEYS) or "errors" in top:
        _shape(expect, ours, "", problems, ALLOWED.get(name, set()))
        if "errors" not in top:
            assert list(ours) == list(ENVELOPE_KEYS), (name, list(ours))
        else:
            assert set(ours) == {"errors"}, name
    else:  # docs sample shows only the inner data object (kv2-read-subkeys)
        assert list(ours) == list(ENVELOPE_KEYS), name
        _shape(expect, ours["data"], "data", problems, ALLOWED.get(name, set()))
    assert not problems, (name, problems)
    return ours


def test_fixture_envelopes(certs, vs):
    fx = _load_fixtures()
    assert len(fx) >= 30, f"fixtures not found in {FIXTURES}"
    done = set()
    root = vs.root_token

    def rp(name, token=root, **kw):
        done.add(name)
        return _replay(vs, certs, fx, name, token, **kw)

    # --- KV v2 (mount secret/)
    vs.put_secret("secret", "my-secret", {"foo": "abc", "bar": {"baz": "def"}, "quux": {}})
    sk = rp("kv2-read-subkeys")
    assert sk["data"]["subkeys"] == fx["kv2-read-subkeys"]["response_body"]["subkeys"]
    vs.reset()
    root = vs.root_token
    rp("kv2-configure", root)
    cfg = rp("kv2-read-config", root)
    assert cfg["data"]["delete_version_after"] == "3h25m19s"
    rp("kv2-create-update-metadata", root)
    w = rp("kv2-create-update-secret", root)
    assert w["data"]["version"] == 1 and w["data"]["custom_metadata"]["foo"] == "abc"
    p = rp("kv2-patch-secret", root)
    assert p["data"]["version"] == 2
    rv = rp("kv2-read-secret-version", root)
    assert rv["data"]["data"] == {"bar": {"baz": "b"}, "foo": "a", "zip": "zap"}
    vs.put_secret("secret", "my-secret", {"foo": "bar"})
    md = rp("kv2-read-metadata", root)
    assert sorted(md["data"]["versions"]) == ["1", "2", "3"]
    vs.put_secret("secret", "my-secret/foo", {"a": 1})
    vs.put_secret("secret", "my-secret/foo/bar", {"a": 1})
    ls = rp("kv2-list-secrets", root)
    assert ls["data"]["keys"] == fx["kv2-list-secrets"]["response_body"]["data"]["keys"]
    rp("kv2-patch-metadata", root)
    for n in ("kv2-delete-versions", "kv2-undelete-versions", "kv2-delete-latest-version",
              "kv2-destroy-versions", "kv2-delete-metadata"):
        rp(n, root)
    vs.delete_secret("secret", "my-secret/foo", mode="metadata")
    vs.delete_secret("secret", "my-secret/foo/bar", mode="metadata")
    # the docs' empty LIST is on a KV v1 style path (replayed below on the v1 server);
    # on KV v2 the equivalent empty list is LIST metadata/
    r = rp("error-list-empty-404", root, path="/v1/secret/metadata/")
    assert r == fx["error-list-empty-404"]["response_body"]
    # generic error shape
    f = fx["error-response"]
    r = requests.post(vs.url + "/v1/secret/data/x", headers={"X-Vault-Token": root},
                      json={}, verify=certs.ca)
    assert r.status_code == 400
    probs = []
    _shape(f["response_body"], r.json(), "", probs, set())
    assert not probs and set(r.json()) == {"errors"}
    done.add("error-response")

    # --- tokens
    tc = rp("token-create", root)
    exp = fx["token-create"]["response_body"]
    assert tc["warnings"] == exp["warnings"]
    for k in ("policies", "token_policies", "metadata", "lease_duration", "renewable",
              "entity_id", "token_type", "orphan", "num_uses"):
        assert tc["auth"][k] == exp["auth"][k], k
    tesla = vs.create_token(policies=["default", "testgroup2-policy"], meta={"username": "tesla"},
                            entity_id="7d2e3179-f69b-450c-7179-ac8ee8bd8ca9",
                            identity_policies=["dev-group-policy"], display_name="ldap2-tesla",
                            path="auth/ldap2/login/tesla")["token"]
    ls = rp("token-lookup-self", tesla)
    assert ls["data"]["identity_policies"] == ["dev-group-policy"]
    lk = rp("token-lookup", root, body={"token": tesla})
    assert lk["data"]["id"] == tesla and lk["data"]["meta"] == {"username": "tesla"}
    armon = vs.create_token(policies=["web", "stage"], meta={"user": "armon"}, ttl="10m")["token"]
    rn = rp("token-renew-self", armon)
    assert rn["auth"]["lease_duration"] == 3600 and rn["auth"]["metadata"] == {"user": "armon"}
    rp("token-revoke-self", armon)

    # --- AppRole
    for r_ in ("dev", "prod", "test"):
        vs.add_approle_role(r_)
    lr = rp("approle-list-roles", root)
    assert lr["data"]["keys"] == ["dev", "prod", "test"]
    vs.add_approle_role("application1", token_ttl=1200, token_max_ttl=1800, secret_id_ttl=600,
                        secret_id_num_uses=40, token_policies=["default"])
    rr = rp("approle-read-role", root)
    for k, v in fx["approle-read-role"]["response_body"]["data"].items():
        assert rr["data"][k] == v, k
    role_id = rp("approle-read-role-id", root)["data"]["role_id"]
    gen = rp("approle-generate-secret-id", root)
    assert gen["data"]["secret_id_ttl"] == 600 and gen["data"]["secret_id_num_uses"] == 50
    sid = gen["data"]["secret_id"]
    look = rp("approle-lookup-secret-id", root, body={"secret_id": sid})
    assert look["data"]["metadata"] == {"tag1": "production"}
    lg = rp("approle-login", None, body={"role_id": role_id, "secret_id": sid})
    assert lg["auth"]["lease_duration"] == 1200 and lg["auth"]["token_policies"] == ["default"]

    # --- Kubernetes
    jwt = fx["kubernetes-login"]["request_body"]["jwt"]
    vs.add_kubernetes_role("dev-role", jwt=jwt, token_policies=["dev", "prod"],
                           token_max_ttl=1800000)
    vs.add_kubernetes_role("prod-role", jwt="other")
    kl = rp("kubernetes-list-roles", root)
    assert kl["data"]["keys"] == ["dev-role", "prod-role"]
    kr = rp("kubernetes-read-role", root)
    for k in ("max_ttl", "ttl", "period", "policies"):
        assert kr["data"][k] == fx["kubernetes-read-role"]["response_body"]["data"][k], k
    klg = rp("kubernetes-login", None)
    assert klg["auth"]["renewable"] is True

    # --- KV v1 (a server whose secret/ mount is KV v1, as in the docs)
    v1 = VaultServer(certs.server, certs.server_key,
                     config={"default_mounts": False,
                             "mounts": [{"path": "secret", "version": 1}]})
    v1.start()
    try:
        def rp1(name, **kw):
            done.add(name)
            return _replay(v1, certs, fx, name, v1.root_token, **kw)
        rp1("kv1-create-update-secret")
        v1.put_secret("secret", "my-secret", {"foo": "bar", "ttl": "1h"})
        r1 = rp1("kv1-read-secret")
        exp = fx["kv1-read-secret"]["response_body"]
        assert {k: r1[k] for k in exp} == exp  # exact, incl. lease_duration 3600
        v1.put_secret("secret", "my-secret/foo", {"a": 1})
        v1.put_secret("secret", "my-secret/foo/bar", {"a": 1})
        l1 = rp1("kv1-list-secrets")
        assert l1["data"]["keys"] == ["foo", "foo/"]
        rp1("kv1-delete-secret")
        v1.delete_secret("secret", "my-secret/foo")
        v1.delete_secret("secret", "my-secret/foo/bar")
        assert rp1("error-list-empty-404") == fx["error-list-empty-404"]["response_body"]
    finally:
        v1.stop()

    missing = set(fx) - done
    assert not missing, f"fixtures not exercised: {sorted(missing)}"
