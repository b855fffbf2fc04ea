"""Checks the Google Secret Manager test server against Google's own clients:
Debian's python3-google-auth (service-account JWT grant, authorized_user
refresh, metadata server) and npm @google-cloud/secret-manager with its REST
fallback (tests/node, installed by `make node-deps`), and against the
documented wire format in tests/data/fixtures/gcp and crc32c.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_gcp_server.py
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

google_auth = pytest.importorskip("google.auth")
pytest.importorskip("cryptography")
import google.auth.exceptions  # noqa: E402
import google.auth.transport.requests as gtr  # noqa: E402
import google.oauth2.credentials  # noqa: E402
import google.oauth2.service_account  # noqa: E402
import requests  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from certs import generate_certs  # noqa: E402
from gcp_server import SCOPE, AdminClient, GcpServer, crc32c, spawn_cli  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "data", "fixtures")
NODE_CLIENT = os.path.join(HERE, "gcp_node_client.js")
NODE_MODULES = os.path.join(HERE, "..", "node", "node_modules", "@google-cloud", "secret-manager")
PROJECT = "secretfs-test"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("gcp-certs")))


@pytest.fixture
def srv(certs):
    s = GcpServer(certs.server, certs.server_key)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def session(certs):
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    s.verify = certs.ca
    return s


def _get(session, srv, path, token):
    return session.get(srv.url + path, headers={"Authorization": f"Bearer {token}"})


# ------------------------------------------------------------ documented wire format


def test_crc32c_matches_every_vector():
    with open(os.path.join(FIXTURES, "crc32c", "crc32c-vectors.json")) as f:
        vectors = json.load(f)["vectors"]
    assert len(vectors) >= 8
    for v in vectors:
        assert crc32c(bytes.fromhex(v["input_hex"])) == v["crc32c"], v["name"]


def test_access_reproduces_the_documented_response(srv, session):
    with open(os.path.join(FIXTURES, "gcp", "access-secret-version.json")) as f:
        doc = json.load(f)["response_body"]
    srv.put_secret(PROJECT, "doc", value_b64=doc["payload"]["data"])
    tok = srv.add_token()["access_token"]
    r = _get(session, srv, f"/v1/projects/{PROJECT}/secrets/doc/versions/latest:access", tok)
    assert r.status_code == 200
    body = r.json()
    assert body["payload"] == doc["payload"]  # dataCrc32c is the documented decimal string
    num = srv.project_number(PROJECT)
    assert body["name"] == f"projects/{num}/secrets/doc/versions/1"


def test_errors_use_the_documented_envelope(srv, session):
    with open(os.path.join(FIXTURES, "gcp", "error-envelope.json")) as f:
        keys = set(json.load(f)["example_from_aip_193"]["error"]) - {"details"}
    tok = srv.add_token(deny=["secret"])["access_token"]
    srv.put_secret(PROJECT, "secret", "x")
    srv.put_secret(PROJECT, "off", "x", state="DISABLED")
    cases = [
        ("/secrets/missing/versions/latest:access", tok, 404, "NOT_FOUND"),
        ("/secrets/secret/versions/latest:access", tok, 403, "PERMISSION_DENIED"),
        ("/secrets/off/versions/latest:access", tok, 400, "FAILED_PRECONDITION"),
        ("/secrets/off/versions/7:access", tok, 404, "NOT_FOUND"),
        ("/secrets/secret/versions/latest:access", "ya29.forged", 401, "UNAUTHENTICATED"),
    ]
    for path, t, code, status in cases:
        r = _get(session, srv, f"/v1/projects/{PROJECT}{path}", t)
        assert r.status_code == code, path
        err = r.json()["error"]
        assert set(err) == keys and err["code"] == code and err["status"] == status, path


def test_version_metadata_has_no_payload_and_tracks_latest(srv, session):
    srv.put_secret(PROJECT, "rot", "one")
    tok = srv.add_token()["access_token"]
    base = f"/v1/projects/{PROJECT}/secrets/rot/versions/latest"
    first = _get(session, srv, base, tok).json()
    assert "payload" not in first and first["name"].endswith("/versions/1")
    srv.put_secret(PROJECT, "rot", "two")
    assert _get(session, srv, base, tok).json()["name"].endswith("/versions/2")
    assert srv.secret_count(PROJECT, "rot", "get_version") == 2
    assert srv.secret_count(PROJECT, "rot", "access") == 0


def test_listing_pages_with_next_page_token(srv, session):
    for i in range(23):
        srv.put_secret(PROJECT, f"k{i:02d}", str(i))
    srv.put_secret("other", "not-mine", "x")
    tok = srv.add_token()["access_token"]
    names, token, pages = [], "", 0
    while True:
        r = _get(session, srv, f"/v1/projects/{PROJECT}/secrets?pageSize=5&pageToken={token}",
                 tok).json()
        pages += 1
        names += [s["name"].rsplit("/", 1)[1] for s in r.get("secrets", [])]
        token = r.get("nextPageToken")
        if not token:
            break
    assert pages == 5 and names == [f"k{i:02d}" for i in range(23)]


# ------------------------------------------------------------ google-auth flows


def test_service_account_jwt_grant_with_google_auth(srv, session):
    key = srv.add_service_account()
    creds = google.oauth2.service_account.Credentials.from_service_account_info(
        key, scopes=[SCOPE])
    creds.refresh(gtr.Request(session=session))
    assert creds.token and creds.valid
    srv.put_secret(PROJECT, "sa", "from-sa")
    r = _get(session, srv, f"/v1/projects/{PROJECT}/secrets/sa/versions/latest:access",
             creds.token)
    assert base64.b64decode(r.json()["payload"]["data"]) == b"from-sa"
    assert srv.counts()["grants"] == {"urn:ietf:params:oauth:grant-type:jwt-bearer": 1}


def test_jwt_signed_by_another_key_is_refused(srv, session):
    key = srv.add_service_account()
    forger = srv.add_service_account()
    forged = dict(key, private_key=forger["private_key"], private_key_id=key["private_key_id"])
    creds = google.oauth2.service_account.Credentials.from_service_account_info(
        forged, scopes=[SCOPE])
    with pytest.raises(google.auth.exceptions.RefreshError, match="Invalid JWT Signature"):
        creds.refresh(gtr.Request(session=session))


def test_jwt_for_another_audience_is_refused(srv, session):
    key = srv.add_service_account()
    key["token_uri"] = srv.url + "/token?elsewhere"
    creds = google.oauth2.service_account.Credentials.from_service_account_info(
        key, scopes=[SCOPE])
    with pytest.raises(google.auth.exceptions.RefreshError, match="audience"):
        creds.refresh(gtr.Request(session=session))


def test_jwt_from_the_far_past_is_refused(srv, session):
    key = srv.add_service_account()
    creds = google.oauth2.service_account.Credentials.from_service_account_info(
        key, scopes=[SCOPE])
    srv.advance_clock(7200)  # the server's clock: the client's iat is now 2 h old
    with pytest.raises(google.auth.exceptions.RefreshError, match="iat and exp"):
        creds.refresh(gtr.Request(session=session))


def test_authorized_user_refresh_with_google_auth(srv, session):
    info = srv.add_authorized_user()
    creds = google.oauth2.credentials.Credentials(
        None, refresh_token=info["refresh_token"], client_id=info["client_id"],
        client_secret=info["client_secret"], token_uri=info["token_uri"])
    creds.refresh(gtr.Request(session=session))
    assert creds.token.startswith("ya29.")
    bad = google.oauth2.credentials.Credentials(
        None, refresh_token=info["refresh_token"], client_id=info["client_id"],
        client_secret="wrong", token_uri=info["token_uri"])
    with pytest.raises(google.auth.exceptions.RefreshError):
        bad.refresh(gtr.Request(session=session))


def test_expired_token_is_unauthenticated(srv, session):
    srv.put_secret(PROJECT, "e", "x")
    tok = srv.add_token(ttl=60)["access_token"]
    path = f"/v1/projects/{PROJECT}/secrets/e/versions/latest:access"
    assert _get(session, srv, path, tok).status_code == 200
    srv.advance_clock(61)
    assert _get(session, srv, path, tok).status_code == 401
    tok2 = srv.add_token()["access_token"]
    assert srv.expire_tokens(tok2) == 1
    assert _get(session, srv, path, tok2).status_code == 401


def test_metadata_server_with_google_auth(certs, session):
    from google.auth import compute_engine
    from google.auth.compute_engine import _metadata

    with GcpServer(certs.server, certs.server_key, metadata_port=0) as s:
        root = f"http://127.0.0.1:{s.metadata_port}/computeMetadata/v1/"
        old = _metadata.get.__defaults__  # the root is bound when google-auth is imported
        _metadata.get.__defaults__ = (root,) + old[1:]
        try:
            creds = compute_engine.Credentials()
            creds.refresh(gtr.Request(session=requests.Session()))
        finally:
            _metadata.get.__defaults__ = old
        assert creds.token in s.tokens
        no_flavor = requests.get(root + "instance/service-accounts/default/token")
        assert no_flavor.status_code == 403
        assert s.counts()["grants"] == {"metadata": 1}


# ------------------------------------------------------------ the npm client


def _node(srv, certs, ops):
    if shutil.which("node") is None or not os.path.isdir(NODE_MODULES):
        pytest.skip("npm @google-cloud/secret-manager not installed (run `make node-deps`)")
    args = {"port": srv.port, "token_uri": srv.token_uri,
            "credentials": srv.add_authorized_user(), "ops": ops}
    r = subprocess.run(["node", NODE_CLIENT, json.dumps(args)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca,
                                             NODE_NO_WARNINGS="1"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["results"]


def test_npm_client_reads_versions_and_lists(srv, certs):
    srv.put_secret(PROJECT, "db", '{"user":"app","password":"pw"}')
    srv.put_secret(PROJECT, "db", "second")
    srv.put_secret(PROJECT, "bin", value_b64=base64.b64encode(bytes(range(256))).decode())
    for i in range(30):
        srv.put_secret(PROJECT, f"many{i}", "x")
    p = f"projects/{PROJECT}"
    res = _node(srv, certs, [
        {"op": "access", "name": f"{p}/secrets/db/versions/latest"},
        {"op": "access", "name": f"{p}/secrets/db/versions/1"},
        {"op": "access", "name": f"{p}/secrets/bin/versions/latest"},
        {"op": "version", "name": f"{p}/secrets/db/versions/latest"},
        {"op": "list", "parent": p, "pageSize": 7},
        {"op": "access", "name": f"{p}/secrets/absent/versions/latest"},
    ])
    assert base64.b64decode(res[0]["data_b64"]) == b"second"
    assert res[0]["crc"] == str(crc32c(b"second"))
    assert base64.b64decode(res[1]["data_b64"]) == b'{"user":"app","password":"pw"}'
    assert base64.b64decode(res[2]["data_b64"]) == bytes(range(256))
    assert res[3]["name"].endswith("/secrets/db/versions/2") and res[3]["state"] == "ENABLED"
    assert len(res[4]["names"]) == 32 and len(set(res[4]["names"])) == 32
    assert srv.endpoint_count("list") == 5  # 32 secrets in pages of 7
    assert "NOT_FOUND" in res[5]["error"]["message"]
    assert srv.counts()["grants"] == {"refresh_token": 1}


# ------------------------------------------------------------ faults and counters


def test_faults_status_bad_crc_drop(srv, session):
    srv.put_secret(PROJECT, "f", "value")
    tok = srv.add_token()["access_token"]
    path = f"/v1/projects/{PROJECT}/secrets/f/versions/latest:access"
    srv.add_fault("status", status=429, retry_after=2, count=1)
    r = _get(session, srv, path, tok)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    srv.add_fault("bad_crc", secret="^f$", count=1)
    bad = _get(session, srv, path, tok).json()["payload"]
    assert int(bad["dataCrc32c"]) != crc32c(base64.b64decode(bad["data"]))
    good = _get(session, srv, path, tok).json()["payload"]
    assert int(good["dataCrc32c"]) == crc32c(base64.b64decode(good["data"]))
    srv.add_fault("drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(session, srv, path, tok)
    srv.add_fault("malformed", count=1)
    with pytest.raises(ValueError):
        _get(session, srv, path, tok).json()
    assert srv.counts()["faults_fired"] == 4


def test_hold_shows_requests_in_flight(srv, session):
    import threading

    srv.put_secret(PROJECT, "h", "v")
    tok = srv.add_token()["access_token"]
    fid = srv.add_fault("hold")
    got = []
    t = threading.Thread(target=lambda: got.append(_get(
        session, srv, f"/v1/projects/{PROJECT}/secrets/h/versions/latest:access", tok)))
    t.start()
    for _ in range(500):
        if srv.counts()["in_flight"] == 1:
            break
        t.join(0.01)
    assert srv.counts()["in_flight"] == 1 and not got
    srv.clear_faults(fid)
    t.join(10)
    assert got[0].status_code == 200


def test_cli_and_admin_api(certs, tmp_path):
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path),
                           config={"secrets": [{"project": "p", "id": "s", "value": "v"}]})
    try:
        assert open(tmp_path / "gcp.port").read().strip() == str(info["port"])
        admin = AdminClient(info["url"], info["admin_token"], cafile=certs.ca)
        assert admin.post("/_test/secret", {"project": "p", "id": "s", "value": "w"}) == \
            {"version": 2}
        tok = admin.post("/_test/token", {})["access_token"]
        req = urllib.request.Request(info["url"] + "/v1/projects/p/secrets/s/versions/1:access",
                                     headers={"Authorization": "Bearer " + tok})
        import ssl
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=certs.ca)) as r:
            assert base64.b64decode(json.load(r)["payload"]["data"]) == b"v"
        with pytest.raises(RuntimeError, match="401"):
            AdminClient(info["url"], "wrong", cafile=certs.ca).get("/_test/info")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
