"""Checks the Doppler test server against Doppler's own npm client,
@dopplerhq/node-sdk (tests/node, installed by `make node-deps`, pointed at the
server with setBaseUrl), and against the documented wire format in
tests/data/fixtures/doppler.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_doppler_server.py
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from certs import generate_certs  # noqa: E402
from doppler_server import AdminClient, DopplerServer, spawn_cli  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "data", "fixtures", "doppler")
NODE_CLIENT = os.path.join(HERE, "doppler_node_client.js")
NODE_MODULES = os.path.join(HERE, "..", "node", "node_modules", "@dopplerhq", "node-sdk")
DOWNLOAD = "/v3/configs/config/secrets/download"


def _fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


# The documented example config: raw values, so that DATABASE is computed from USER.
DOC_SECRETS = {"STRIPE": "sk_test_9YxLnoLDdvOPn2dfjBVPB", "ALGOLIA": "N9TOPUCTO",
               "DATABASE": "${USER}@aws.dynamodb.com:9876", "USER": "brian"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("doppler-certs")))


@pytest.fixture
def srv(certs):
    s = DopplerServer(certs.server, certs.server_key)
    s.put_config("shop", "prd", DOC_SECRETS, environment="prd")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def session(certs):
    s = requests.Session()
    s.trust_env = False
    s.verify = certs.ca
    return s


def _get(session, srv, path, token, **kw):
    return session.get(srv.url + path, headers={"Authorization": f"Bearer {token}"}, **kw)


# ------------------------------------------------------------ documented wire format


def test_download_reproduces_the_documented_response(srv, session):
    tok = srv.add_token("shop", "prd")["token"]
    r = _get(session, srv, DOWNLOAD, tok,
             params={"format": "json", "project": "shop", "config": "prd"})
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in DOC_SECRETS} == _fixture("secrets-download.json")["response_body"]
    assert (body["DOPPLER_PROJECT"], body["DOPPLER_CONFIG"]) == ("shop", "prd")


def test_list_and_get_reproduce_the_documented_values(srv, session):
    tok = srv.add_token("shop", "prd")["token"]
    r = _get(session, srv, "/v3/configs/config/secrets", tok)
    want = _fixture("secrets-list.json")["response_body"]["secrets"]
    got = r.json()["secrets"]
    for name, v in want.items():
        assert (got[name]["raw"], got[name]["computed"]) == (v["raw"], v["computed"])
    r = _get(session, srv, "/v3/configs/config/secret", tok, params={"name": "DATABASE"})
    doc = _fixture("secret-get.json")["response_body"]
    assert r.json()["name"] == doc["name"]
    assert r.json()["value"]["computed"] == doc["value"]["computed"]
    assert r.json()["value"]["raw"] == doc["value"]["raw"]


def test_etag_and_if_none_match(srv, session):
    tok = srv.add_token("shop", "prd")["token"]
    r1 = _get(session, srv, DOWNLOAD, tok)
    etag = r1.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    r2 = session.get(srv.url + DOWNLOAD,
                     headers={"Authorization": f"Bearer {tok}", "If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b""
    srv.put_secret("shop", "prd", "USER", "carol")
    r3 = session.get(srv.url + DOWNLOAD,
                     headers={"Authorization": f"Bearer {tok}", "If-None-Match": etag})
    assert r3.status_code == 200 and r3.headers["ETag"] != etag
    assert r3.json()["DATABASE"] == "carol@aws.dynamodb.com:9876"
    assert srv.counts()["statuses"]["304"] == 1


def test_errors_have_doppler_shape(srv, session):
    want_shape = set(_fixture("errors.json")["error_shape"])
    tok = srv.add_token("shop", "prd")["token"]
    cases = [
        (session.get(srv.url + DOWNLOAD), 401),
        (_get(session, srv, DOWNLOAD, "dp.st.prd.nope"), 401),
        (_get(session, srv, DOWNLOAD, tok, params={"project": "shop", "config": "dev"}), 403),
        (_get(session, srv, "/v3/configs/config/secret", tok, params={"name": "NOPE"}), 404),
    ]
    for r, status in cases:
        assert r.status_code == status
        assert set(r.json()) == want_shape and r.json()["success"] is False
        assert r.json()["messages"] and all(isinstance(m, str) for m in r.json()["messages"])
    assert cases[0][0].json() == _fixture("errors.json")["example"]["body"]


def test_basic_auth_form_is_accepted(srv, session):
    tok = srv.add_token("shop", "prd")["token"]
    basic = base64.b64encode(f"{tok}:".encode()).decode()
    r = session.get(srv.url + DOWNLOAD, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200 and r.json()["USER"] == "brian"
    assert srv.counts()["auth_forms"] == {"basic": 1}


def test_faults(srv, session):
    tok = srv.add_token("shop", "prd")["token"]
    srv.add_fault("status", status=429, retry_after=1, count=1)
    r = _get(session, srv, DOWNLOAD, tok)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.headers["x-ratelimit-remaining"] == "0" and r.json()["success"] is False
    srv.add_fault("malformed", count=1)
    r = _get(session, srv, DOWNLOAD, tok)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.content)
    srv.add_fault("drop", count=1)
    with pytest.raises(requests.ConnectionError):
        _get(session, srv, DOWNLOAD, tok)
    assert _get(session, srv, DOWNLOAD, tok).status_code == 200
    assert srv.counts()["faults_fired"] == 3


def test_cli_and_admin_client(certs, tmp_path):
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path),
                           config={"configs": [{"project": "p", "config": "c",
                                                "secrets": {"A": "1"}}],
                                   "tokens": [{"project": "p", "config": "c", "token": "dp.st.c.x"}]})
    try:
        r = requests.get(info["url"] + DOWNLOAD, verify=certs.ca,
                         headers={"Authorization": "Bearer dp.st.c.x"})
        assert r.json()["A"] == "1"
        admin = AdminClient(info["url"], info["admin_token"], cafile=certs.ca)
        assert admin.get("/_test/counts")["endpoints"] == {"download": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------ the npm client


def _node_run(srv, certs, token, ops):
    if shutil.which("node") is None or not os.path.isdir(NODE_MODULES):
        pytest.skip("npm @dopplerhq/node-sdk not installed (run `make node-deps`)")
    args = {"url": srv.url, "token": token, "ops": ops}
    return subprocess.run(["node", NODE_CLIENT, json.dumps(args)], capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca, NODE_NO_WARNINGS="1"))


def _node(srv, certs, token, ops):
    r = _node_run(srv, certs, token, ops)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["results"]


def test_npm_sdk_lists_gets_and_downloads(srv, certs):
    tok = srv.add_token("shop", "prd")["token"]
    srv.put_secret("shop", "prd", "APP_JSON", '{"a": 1, "b": [true]}')
    res = _node(srv, certs, tok, [
        {"op": "download", "project": "shop", "config": "prd"},
        {"op": "list", "project": "shop", "config": "prd"},
        {"op": "get", "project": "shop", "config": "prd", "name": "DATABASE"},
        {"op": "get", "project": "shop", "config": "prd", "name": "APP_JSON"},
    ])
    assert all(r.get("ok") for r in res), res
    download, listing, db, app = (r["data"] for r in res)
    assert download["DATABASE"] == "brian@aws.dynamodb.com:9876"
    assert download["APP_JSON"] == '{"a": 1, "b": [true]}'
    assert listing["secrets"]["STRIPE"]["computed"] == "sk_test_9YxLnoLDdvOPn2dfjBVPB"
    assert listing["secrets"]["DATABASE"]["raw"] == "${USER}@aws.dynamodb.com:9876"
    assert db["value"]["computed"] == "brian@aws.dynamodb.com:9876"
    assert app["value"]["raw"] == '{"a": 1, "b": [true]}'
    log = srv.requests_log()
    assert [r["endpoint"] for r in log] == ["download", "list", "get", "get"]
    assert all(r["auth_form"] == "bearer" for r in log)
    assert all("DopplerSDK/1.3.0" in (r["user_agent"] or "") for r in log)


def test_npm_sdk_sees_errors(srv, certs):
    tok = srv.add_token("shop", "prd")["token"]
    res = _node(srv, certs, "dp.st.prd.wrong", [
        {"op": "download", "project": "shop", "config": "prd"}])
    assert res[0]["error"]["status"] == 401
    assert res[0]["error"]["detail"] == {"messages": ["Invalid Auth token"], "success": False}
    res = _node(srv, certs, tok, [{"op": "get", "project": "shop", "config": "prd",
                                   "name": "NOPE"}])
    assert res[0]["error"]["status"] == 404


def test_npm_sdk_rejects_a_malformed_answer(srv, certs):
    """The check has teeth: what the vendor's client cannot read fails."""
    tok = srv.add_token("shop", "prd")["token"]
    srv.add_fault("malformed", body="{not json", count=1)
    r = _node_run(srv, certs, tok, [{"op": "download", "project": "shop", "config": "prd"}])
    # The SDK's JSON.parse throws inside its response callback: the process dies.
    assert r.returncode != 0 and "SyntaxError" in r.stderr
