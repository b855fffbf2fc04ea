"""Checks the 1Password Connect test server against 1Password's own client,
npm @1password/connect (tests/node, installed by `make node-deps`), and
against the documented wire format in tests/data/fixtures/1password.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_op_connect_server.py
"""

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
from op_connect_server import OpConnectServer, new_id, spawn_cli  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "data", "fixtures", "1password")
NODE_CLIENT = os.path.join(HERE, "op_node_client.js")
NODE_MODULES = os.path.join(HERE, "..", "node", "node_modules", "@1password", "connect")


def _doc_item():
    with open(os.path.join(FIXTURES, "get-item.json")) as f:
        return json.load(f)["response_body"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("op-certs")))


@pytest.fixture
def srv(certs):
    s = OpConnectServer(certs.server, certs.server_key)
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


def _seed(srv):
    """The documented item, in a vault named Demo; returns (vault id, item id, token)."""
    doc = _doc_item()
    vid = srv.add_vault("Demo", doc["vault"]["id"])
    srv.add_vault("Other")
    srv.put_item("Demo", doc["title"], fields=doc["fields"], sections=doc["sections"],
                 id=doc["id"], category=doc["category"], tags=doc["tags"])
    return vid, doc["id"], srv.add_token()["token"]


# ------------------------------------------------------------ documented wire format


def test_item_reproduces_the_documented_item(srv, session):
    vid, iid, tok = _seed(srv)
    doc = _doc_item()
    body = _get(session, srv, f"/v1/vaults/{vid}/items/{iid}", tok).json()
    for k in ("id", "title", "tags", "vault", "category", "sections", "fields"):
        assert body[k] == doc[k], k
    assert body["version"] == 1


def test_errors_use_the_documented_document(srv, session):
    with open(os.path.join(FIXTURES, "errors.json")) as f:
        keys = set(json.load(f)["error_schema"])
    vid, iid, tok = _seed(srv)
    scoped = srv.add_token(vaults=["Other"])["token"]
    cases = [(f"/v1/vaults/{vid}/items/{new_id()}", tok, 404),
             (f"/v1/vaults/{new_id()}/items", tok, 404),
             (f"/v1/vaults/{vid}/items/{iid}", scoped, 403),
             (f"/v1/vaults/{vid}/items/{iid}", "forged", 401),
             ("/v1/vaults?filter=name%20is%20x", tok, 400)]
    for path, t, code in cases:
        r = _get(session, srv, path, t)
        assert r.status_code == code, path
        assert set(r.json()) == keys and r.json()["status"] == code, path
    assert "Invalid token signature" in _get(session, srv, "/v1/vaults", "forged").text


def test_listing_is_summaries_with_versions_and_filters(srv, session):
    vid, iid, tok = _seed(srv)
    srv.put_item("Demo", "db", fields=[{"label": "password", "value": "one"}])
    again = srv.put_item("Demo", "db", id=srv.put_item("Demo", "x")["id"])
    assert again["version"] == 2
    items = _get(session, srv, f"/v1/vaults/{vid}/items", tok).json()
    assert len(items) == 3
    assert all("fields" not in i and "sections" not in i and "version" in i for i in items)
    only = _get(session, srv, f"/v1/vaults/{vid}/items", tok,
                params={"filter": 'title eq "db"'}).json()
    assert len(only) == 2 and {i["version"] for i in only} == {1, 2}
    vaults = _get(session, srv, "/v1/vaults/", tok, params={"filter": 'title eq "Demo"'}).json()
    assert [v["id"] for v in vaults] == [vid]


# ------------------------------------------------------------ the npm client


def _node(srv, certs, token, ops):
    if shutil.which("node") is None or not os.path.isdir(NODE_MODULES):
        pytest.skip("npm @1password/connect not installed (run `make node-deps`)")
    args = {"url": srv.url, "token": token, "ops": ops}
    r = subprocess.run(["node", NODE_CLIENT, json.dumps(args)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, NODE_EXTRA_CA_CERTS=certs.ca,
                                             NODE_NO_WARNINGS="1"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["results"]


def test_npm_client_finds_vault_lists_and_reads_items(srv, certs):
    vid, iid, tok = _seed(srv)
    doc = _doc_item()
    res = _node(srv, certs, tok, [
        {"op": "vault_by_title", "title": "Demo"},
        {"op": "get_vault", "vault": vid},
        {"op": "list_items", "vault": vid},
        {"op": "get_item", "vault": vid, "item": iid},
        {"op": "get_item_by_title", "vault": vid, "title": doc["title"]},
        {"op": "get_item", "vault": vid, "item": new_id()},
    ])
    assert all(r.get("ok") for r in res[:5]), res
    assert res[0]["vaults"] == [{"id": vid, "name": "Demo"}]
    assert res[1]["name"] == "Demo"
    assert res[2]["items"] == [{"id": iid, "title": doc["title"], "version": 1}]
    for r in res[3:5]:
        assert r["id"] == iid and r["version"] == 1
        assert r["sections"] == doc["sections"]
        want = [{"id": f["id"], "label": f.get("label"), "value": f.get("value"),
                 "section": f["section"]["id"] if "section" in f else None}
                for f in doc["fields"]]
        assert r["fields"] == want
    assert res[5]["error"]["status"] == 404
    assert srv.endpoint_count("list_items") == 2  # listItems, then getItemByTitle's filter
    assert all(r["bearer_present"] for r in srv.requests_log())


def test_npm_client_refuses_duplicate_titles_and_forged_tokens(srv, certs):
    vid, _, tok = _seed(srv)
    srv.put_item("Demo", "twin")
    srv.put_item("Demo", "twin")
    res = _node(srv, certs, tok, [{"op": "get_item_by_title", "vault": vid, "title": "twin"}])
    assert "error" in res[0] and "ok" not in res[0]
    res = _node(srv, certs, "forged", [{"op": "list_items", "vault": vid}])
    assert res[0]["error"]["status"] == 401


# ------------------------------------------------------------ faults and the CLI


def test_faults_status_drop_malformed(srv, session):
    vid, iid, tok = _seed(srv)
    path = f"/v1/vaults/{vid}/items/{iid}"
    srv.add_fault("status", status=429, retry_after=1, count=1)
    r = _get(session, srv, path, tok)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert set(r.json()) == {"status", "message"} and r.json()["status"] == 429
    srv.add_fault("drop", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(session, srv, path, tok)
    srv.add_fault("malformed", secret=f"^{iid}$", count=1)
    with pytest.raises(ValueError):
        _get(session, srv, path, tok).json()
    assert _get(session, srv, path, tok).json()["id"] == iid
    assert srv.counts()["faults_fired"] == 3
    assert srv.item_count(iid) == 4


def test_cli_serves_config_and_admin(certs, tmp_path):
    cfg = {"vaults": [{"name": "V", "items": [{"title": "t", "fields": [
        {"label": "k", "value": "v"}]}]}], "tokens": [{"token": "tok"}]}
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path), config=cfg)
    try:
        s = requests.Session()
        s.trust_env = False
        s.verify = certs.ca
        h = {"Authorization": "Bearer tok"}
        vid = s.get(info["url"] + "/v1/vaults", headers=h).json()[0]["id"]
        items = s.get(f"{info['url']}/v1/vaults/{vid}/items", headers=h).json()
        assert [i["title"] for i in items] == ["t"]
        r = s.get(info["url"] + "/_test/counts", headers={"X-Test-Admin": info["admin_token"]})
        assert r.json()["endpoints"] == {"list_vaults": 1, "list_items": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
