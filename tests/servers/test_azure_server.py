"""Checks the Azure Key Vault test server against @azure/keyvault-secrets
(Azure's own JavaScript client, pinned in tests/node and installed by
`make node-deps`) and against the recorded shapes in
tests/data/fixtures/azure.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_azure_server.py
Needs nodejs and openssl (Debian), and tests/node/node_modules.
"""

import base64
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from azure_server import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    FEDERATED_CLIENT_ID,
    FEDERATED_TOKEN,
    MI_CLIENT_ID,
    TENANT,
    AdminClient,
    AzureServer,
    spawn_cli,
    vendor_client,
    vendor_client_missing,
)
from certs import generate_certs  # noqa: E402

FIXTURES = HERE.parent / "data" / "fixtures" / "azure"
SCOPE = "https://vault.azure.net/.default"
NAMES = [f"page-{i:02d}" for i in range(30)]  # more than one 25-name page
CONFIG = {"secrets": [{"name": n, "value": f"value-of-{n}"} for n in NAMES] + [
    {"name": "db-password", "value": "hunter2-kv"},
    {"name": "off", "value": "disabled-value", "enabled": False},
    {"name": "cert", "value": base64.b64encode(b"\x30\x82pkcs12").decode(),
     "content_type": "application/x-pkcs12"}]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("azure-certs")))


@pytest.fixture
def srv(certs):
    s = AzureServer(certs.server, certs.server_key, config=CONFIG)
    s.start()
    yield s
    s.stop()


def call(url, cafile=None, data=None, headers=None, method=None):
    """(status, headers, parsed JSON body) of one request."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    ctx = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def token(srv, certs, **form):
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "scope": SCOPE, **form}
    return call(f"{srv.url}/{TENANT}/oauth2/v2.0/token", certs.ca,
                urllib.parse.urlencode(form).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"})


def bearer(srv, certs):
    st, _, body = token(srv, certs)
    assert st == 200, body
    return {"Authorization": "Bearer " + body["access_token"]}


def vendor(srv, certs, ops, **extra):
    """Runs @azure/keyvault-secrets; returns (results, token requests)."""
    why = vendor_client_missing()
    if why:
        pytest.skip(why)
    return vendor_client(srv.url, certs.ca, ops, **extra)


# ------------------------------------------------------------ the vendor client


def test_vendor_client_reads_values_versions_and_content_types(srv, certs):
    old = srv.put_secret("db-password", "hunter3-kv")["version"]  # a second version
    res, ntok = vendor(srv, certs, [{"op": "get", "name": "db-password"},
                                    {"op": "get", "name": "page-07"},
                                    {"op": "get", "name": "cert"},
                                    {"op": "get", "name": "db-password", "version": old}])
    assert [r["value"] for r in res] == ["hunter3-kv", "value-of-page-07",
                                         CONFIG["secrets"][-1]["value"], "hunter3-kv"]
    assert res[0]["version"] == old and res[2]["contentType"] == "application/x-pkcs12"
    first = srv.secrets["db-password"][0]["version"]
    res, _ = vendor(srv, certs, [{"op": "get", "name": "db-password", "version": first}])
    assert res[0]["value"] == "hunter2-kv" and res[0]["version"] == first
    # The SDK starts with an unauthenticated request, gets the challenge, then one token.
    assert ntok == 1
    assert srv.counts()["unauthorized"] >= 1


def test_vendor_client_lists_past_one_page(srv, certs):
    srv.configure(page_size=7)
    res, _ = vendor(srv, certs, [{"op": "list"}])
    assert sorted(res[0]["names"]) == sorted(NAMES + ["db-password", "off", "cert"])
    # 33 names at 7 a page: 5 pages, every one asked for (after the SDK's challenge, a 401).
    got = [r["status"] for r in srv.requests_log() if r["op"] == "GetSecrets"]
    assert got == [401] + [200] * 5


def test_vendor_client_errors(srv, certs):
    res, _ = vendor(srv, certs, [{"op": "get", "name": "missing-one"},
                                 {"op": "get", "name": "off"},
                                 {"op": "get", "name": "db-password", "version": "0" * 32}])
    assert [(r["error"]["statusCode"], r["error"]["code"]) for r in res] == [
        (404, "SecretNotFound"), (403, "Forbidden"), (404, "SecretNotFound")]
    assert "disabled" in res[1]["error"]["message"]


def test_vendor_client_writes_what_the_server_then_serves(srv, certs):
    res, _ = vendor(srv, certs, [{"op": "set", "name": "new-one", "value": "fresh-value"},
                                 {"op": "get", "name": "new-one"}])
    assert res[1]["value"] == "fresh-value" and res[1]["version"] == res[0]["version"]
    assert srv.secrets["new-one"][-1]["value"] == "fresh-value"


# ------------------------------------------------------------ wire shapes


def test_shapes_match_the_recorded_fixtures(srv, certs):
    rec = json.loads((FIXTURES / "get-secret.json").read_text())["response_body"]
    st, _, body = call(f"{srv.url}/secrets/db-password?api-version=7.4", certs.ca,
                       headers=bearer(srv, certs))
    assert st == 200
    assert set(rec) <= set(body) and set(rec["attributes"]) <= set(body["attributes"])
    assert body["id"].rsplit("/", 1)[1] == srv.secrets["db-password"][-1]["version"]
    lst = json.loads((FIXTURES / "list-secrets.json").read_text())["response_body"]
    st, _, body = call(f"{srv.url}/secrets?api-version=7.4&maxresults=1", certs.ca,
                       headers=bearer(srv, certs))
    assert set(body) == set(lst) and "value" not in body["value"][0]
    assert body["nextLink"].startswith(srv.url + "/secrets?api-version=7.4&$skiptoken=")
    errs = json.loads((FIXTURES / "errors.json").read_text())["recorded_responses"]
    st, h, body = call(f"{srv.url}/secrets/db-password?api-version=7.4", certs.ca)
    assert st == errs[0]["response_status"] == 401
    assert body == errs[0]["response_body"]
    assert h["WWW-Authenticate"] == (f'Bearer authorization="{srv.url}/{TENANT}", '
                                     'resource="https://vault.azure.net"')
    st, _, body = call(f"{srv.url}/secrets/nope?api-version=7.4", certs.ca,
                       headers=bearer(srv, certs))
    assert (st, body["error"]["code"]) == (404, errs[1]["response_body"]["error"]["code"])


def test_tokens_expire_and_wrong_credentials_are_refused(srv, certs):
    h = bearer(srv, certs)
    url = f"{srv.url}/secrets/db-password?api-version=7.4"
    assert call(url, certs.ca, headers=h)[0] == 200
    srv.expire_tokens()
    st, hd, body = call(url, certs.ca, headers=h)
    assert st == 401 and "WWW-Authenticate" in hd and "expired" in body["error"]["message"]
    st, _, body = token(srv, certs, client_secret="wrong")
    assert st == 401 and body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215")
    st, _, body = token(srv, certs, scope="https://management.azure.com/.default")
    assert (st, body["error"]) == (400, "invalid_scope")
    assert call(url, certs.ca, headers={"Authorization": "Bearer forged"})[0] == 401


def test_workload_identity_assertion(srv, certs):
    form = {"client_id": FEDERATED_CLIENT_ID, "client_assertion": FEDERATED_TOKEN,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    del_secret = {"client_secret": ""}
    st, _, body = token(srv, certs, **form, **del_secret)
    assert st == 200 and body["token_type"] == "Bearer"
    st, _, body = token(srv, certs, **dict(form, client_assertion="other.jwt.x"))
    assert (st, body["error"]) == (401, "invalid_client")


def test_imds_needs_the_metadata_header(srv, certs):
    q = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
    st, _, body = call(srv.metadata_url + q)
    assert st == 400 and "metadata header" in body["error_description"]
    st, _, body = call(srv.metadata_url + q, headers={"Metadata": "true"})
    assert st == 200 and body["expires_in"].isdigit()
    ok = call(f"{srv.url}/secrets/db-password?api-version=7.4", certs.ca,
              headers={"Authorization": "Bearer " + body["access_token"]})
    assert ok[0] == 200 and ok[2]["value"] == "hunter2-kv"
    st, _, body = call(srv.metadata_url + q + "&client_id=" + MI_CLIENT_ID,
                       headers={"Metadata": "true"})
    assert st == 200 and body["client_id"] == MI_CLIENT_ID
    st, _, _ = call(srv.metadata_url + q + "&client_id=someone-else",
                    headers={"Metadata": "true"})
    assert st == 400


def test_faults_and_counters(srv, certs):
    h = bearer(srv, certs)
    url = f"{srv.url}/secrets/db-password?api-version=7.4"
    srv.add_fault(kind="status", status=429, op="GetSecret", count=1)
    srv.add_fault(kind="status", status=503, op="GetSecret", count=1)
    st, hd, body = call(url, certs.ca, headers=h)
    assert (st, hd["Retry-After"], body["error"]["code"]) == (429, "1", "Throttled")
    assert call(url, certs.ca, headers=h)[0] == 503
    assert call(url, certs.ca, headers=h)[0] == 200
    srv.add_fault(kind="malformed", op="GetSecret", count=1)
    with pytest.raises(json.JSONDecodeError):
        call(url, certs.ca, headers=h)
    srv.add_fault(kind="drop", op="GetSecret", count=1)
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        call(url, certs.ca, headers=h)
    c = srv.counts()
    assert c["secrets"]["db-password"]["GetSecret"] == 5 and c["faults_fired"] == 4
    assert c["statuses"] == {"429": 1, "503": 1, "200": 3, "dropped": 1}


def test_next_link_elsewhere_and_bad_requests(srv, certs):
    srv.configure(next_link_base="https://elsewhere.invalid")
    h = bearer(srv, certs)
    _, _, body = call(f"{srv.url}/secrets?api-version=7.4&maxresults=2", certs.ca, headers=h)
    assert body["nextLink"].startswith("https://elsewhere.invalid/secrets?")
    assert call(f"{srv.url}/secrets/x", certs.ca, headers=h)[0] == 400  # no api-version
    assert call(f"{srv.url}/secrets/a_b?api-version=7.4", certs.ca, headers=h)[0] == 400
    assert call(f"{srv.url}/secrets?api-version=7.4&maxresults=26", certs.ca,
                headers=h)[0] == 400


def test_cli_writes_its_files_and_obeys_the_admin_api(certs, tmp_path):
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path), config=CONFIG)
    try:
        assert (tmp_path / "azure.port").read_text().strip() == str(info["port"])
        admin = AdminClient(info["url"], info["admin_token"], cafile=certs.ca)
        admin.post("/_test/secret", {"name": "via-admin", "value": "admin-value"})
        admin.post("/_test/fault", {"kind": "status", "status": 503, "count": 1})
        assert len(admin.get("/_test/faults")["faults"]) == 1
        with pytest.raises(RuntimeError):
            AdminClient(info["url"], "wrong", cafile=certs.ca).get("/_test/counts")
        assert admin.get("/_test/counts")["admin_requests"] >= 3
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
        proc.stderr.close()
