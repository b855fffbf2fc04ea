#!/usr/bin/env python3
"""1Password Connect server test double (in memory).

One HTTPS listener (127.0.0.1, TLS, HTTP/1.1 keep-alive) with the part of
the Connect server REST API that secretfs' op-connect backend and the
`@1password/connect` npm client use:

  GET /v1/vaults[/]?filter=title eq "T"    [Vault]            (filter optional)
  GET /v1/vaults/V                         Vault
  GET /v1/vaults/V/items?filter=title eq "T"   [Item summary]  (no fields, no sections)
  GET /v1/vaults/V/items/ITEM              the full Item: sections, fields (label, value,
                                           section {id}), version
  errors are {"status": N, "message": "..."} (docs/openapi/spec.yaml's ErrorResponse)

Requests need `Authorization: Bearer TOKEN` with a token the server knows
(401 "Invalid token signature" otherwise); a token may be limited to some
vaults (403 "vault V is not in scope").  Every change of an item adds 1 to
its `version`, as Connect does.

The server is a GcpServer (gcp_server.py) with its own state, request
classes and answers: the HTTP plumbing and the admin client (aws_server.py's),
the request path, faults, counters and the request log are shared rather than
copied.  In the shared counters an item is a "secret" of "project" VAULT.  The
control API is under /_test/ (header X-Test-Admin); see _ADMIN_HELP.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets as _secrets
import sys
import time
from urllib.parse import unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aws_server import AdminClient, Resp, _admin_json, serve_cli  # noqa: E402
from gcp_server import GcpError, GcpServer, _rfc3339, spawn_server  # noqa: E402

__all__ = ["OpConnectServer", "AdminClient", "spawn_cli", "new_id"]

JSON_CT = "application/json"
ID_RE = re.compile(r"^[a-z0-9]{26}$")
FILTER_RE = re.compile(r'^\s*title\s+eq\s+"(.*)"\s*$', re.S)


def new_id():
    """A 1Password id: 26 characters of [a-z0-9]."""
    return "".join(_secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(26))


class OpError(GcpError):
    """An error answer, {"status": N, "message": "..."}."""


class OpConnectServer(GcpServer):
    """In-memory 1Password Connect server."""

    def __init__(self, cert=None, key=None, *, host="127.0.0.1", port=0, config=None,
                 admin_token=None, admin_port=None, verbose=False, tls=True):
        super().__init__(cert, key, host=host, port=port, metadata_port=None, config=config,
                         admin_token=admin_token, admin_port=admin_port, verbose=verbose,
                         tls=tls)

    # ------------------------------------------------------------------ state

    def _apply_config(self, cfg):
        self.vaults = {}   # vault id -> {"name", "items": {item id: item}, "created", "version"}
        self.tokens = {}   # token -> {"vaults": None (all) or [vault ids or names]}
        self.project_numbers = {}  # GcpServer's counters key items by "project/secret"
        for v in cfg.get("vaults", []):
            self.add_vault(v["name"], v.get("id"))
            for it in v.get("items", []):
                self.put_item(v["name"], **it)
        for t in cfg.get("tokens", []):
            self.add_token(**t)

    def add_vault(self, name, id=None):
        vid = id or new_id()
        with self._lock:
            self.vaults[vid] = {"name": name, "items": {}, "created": time.time(),
                                "content_version": 1}
        return vid

    def _vault(self, query):
        """A vault by id or (unique) name, for the admin side."""
        if query in self.vaults:
            return query
        ids = [i for i, v in self.vaults.items() if v["name"] == query]
        if len(ids) != 1:
            raise KeyError(f"no single vault {query!r}")
        return ids[0]

    def put_item(self, vault, title, fields=(), sections=(), id=None, category="LOGIN",
                 tags=()):
        """Create item `id` (new id when None) or replace it (version + 1); returns
        {id, version}.  fields: [{label, value, section (an id), id, type, purpose}]."""
        with self._lock:
            vid = self._vault(vault)
            items = self.vaults[vid]["items"]
            iid = id or new_id()
            old = items.get(iid)
            now = time.time()
            out_fields = []
            for n, f in enumerate(fields):
                f = dict(f)
                f.setdefault("id", new_id() if "label" in f else f"field{n}")
                f.setdefault("type", "STRING")
                if isinstance(f.get("section"), str):
                    f["section"] = {"id": f["section"]}
                out_fields.append(f)
            item = {"id": iid, "title": title, "tags": list(tags), "vault": {"id": vid},
                    "category": category, "sections": [dict(s) for s in sections],
                    "fields": out_fields,
                    "version": (old["version"] + 1) if old else 1,
                    "createdAt": old["createdAt"] if old else _rfc3339(now),
                    "updatedAt": _rfc3339(now), "lastEditedBy": "TESTSERVERUSER0000000000AA"}
            items[iid] = item
            self.vaults[vid]["content_version"] += 1
            return {"id": iid, "version": item["version"]}

    def delete_item(self, vault, id):
        with self._lock:
            return self.vaults[self._vault(vault)]["items"].pop(id, None) is not None

    def add_token(self, token=None, vaults=None):
        tok = token or "eyJ" + _secrets.token_urlsafe(90)
        with self._lock:
            self.tokens[tok] = {"vaults": None if vaults is None else list(vaults)}
        return {"token": tok}

    # faults and counters: GcpServer's --------------------------------------------

    FAULT_KINDS = ("status", "latency", "hold", "drop", "truncate", "malformed")

    def item_count(self, item_id):
        """Requests for one item (by id) since the last reset_counts()."""
        with self._lock:
            return sum(sum(d.values()) for k, d in self._counts["secrets"].items()
                       if k.rsplit("/", 1)[1] == item_id)

    def info(self):
        return {"port": self.port, "url": self.url, "admin_port": self.admin_port,
                "admin_url": self.admin_url, "admin_token": self.admin_token,
                "pid": os.getpid()}

    # ---------------------------------------------------------- request path

    _RE = re.compile(r"^/v1/vaults(?:/([^/]+)(?:/(items)(?:/([^/]+))?)?)?/?$")

    def _classify(self, req):
        m = self._RE.match(req.path)
        if not m:
            req.endpoint = f"{req.method} unknown"
            return
        vault, items, item = m.groups()
        req.vault = req.project = unquote(vault) if vault else None
        req.item = req.secret = unquote(item) if item else None
        req.endpoint = ("get_item" if item else "list_items" if items else
                        "get_vault" if vault else "list_vaults")

    @staticmethod
    def _json(code, obj):
        return Resp(code, json.dumps(obj).encode(), {"Content-Type": JSON_CT})

    def _error(self, e):
        r = self._json(e.code, {"status": e.code, "message": e.message})
        r.headers.update(e.headers)
        return r

    @staticmethod
    def _filter_title(req):
        """The title of `filter=title eq "T"`, None without a filter."""
        f = req.query.get("filter")
        if f is None:
            return None
        m = FILTER_RE.match(f)
        if not m:
            raise OpError(400, f"Invalid filter query: {f}")
        return m.group(1)

    def _vault_json(self, vid):
        v = self.vaults[vid]
        return {"id": vid, "name": v["name"], "attributeVersion": 1,
                "contentVersion": v["content_version"], "items": len(v["items"]),
                "type": "USER_CREATED", "createdAt": _rfc3339(v["created"]),
                "updatedAt": _rfc3339(v["created"])}

    @staticmethod
    def _summary(item):
        return {k: copy.deepcopy(item[k]) for k in ("id", "title", "version", "vault",
                                                   "category", "tags", "createdAt",
                                                   "updatedAt", "lastEditedBy")}

    def _dispatch(self, req, bad_crc=False):
        if req.endpoint.endswith("unknown"):
            raise OpError(404, f"Not found: {req.path}")
        if req.method != "GET":
            raise OpError(405, "Only GET is implemented by this test server")
        tok = self.tokens.get(req.bearer or "")
        if tok is None:
            raise OpError(401, "Invalid token signature")
        in_scope = [vid for vid in self.vaults
                    if tok["vaults"] is None or vid in tok["vaults"] or
                    self.vaults[vid]["name"] in tok["vaults"]]
        if req.endpoint == "list_vaults":
            title = self._filter_title(req)
            return self._json(200, [self._vault_json(vid) for vid in in_scope
                                    if title is None or self.vaults[vid]["name"] == title])
        if req.vault not in self.vaults:
            raise OpError(404, f"vault {req.vault} not found")
        if req.vault not in in_scope:
            raise OpError(403, f"vault {req.vault} is not in scope")
        items = self.vaults[req.vault]["items"]
        if req.endpoint == "get_vault":
            return self._json(200, self._vault_json(req.vault))
        if req.endpoint == "list_items":
            title = self._filter_title(req)
            return self._json(200, [self._summary(i) for i in items.values()
                                    if title is None or i["title"] == title])
        item = items.get(req.item)
        if item is None:
            raise OpError(404, f"item {req.item} not found")
        return self._json(200, item)

    # control API ------------------------------------------------------------------

    def _admin_route(self, m, path, a, q):
        if path in ("/_test/health", "/_test/info"):
            return dict(self.info(), ok=True)
        if path == "/_test/help":
            return {"help": _ADMIN_HELP}
        if path == "/_test/reset" and m == "POST":
            self.reset()
            return None
        if path == "/_test/vault" and m == "POST":
            return {"id": self.add_vault(a["name"], a.get("id"))}
        if path == "/_test/item" and m == "POST":
            a = dict(a)
            try:
                return self.put_item(a.pop("vault"), **a)
            except KeyError as e:
                return _admin_json(404, {"error": str(e)})
        if path == "/_test/item/delete" and m == "POST":
            return {"ok": self.delete_item(a["vault"], a["id"])}
        if path == "/_test/token" and m == "POST":
            return self.add_token(**a)
        if path.startswith(("/_test/fault", "/_test/counts", "/_test/reset-counts",
                            "/_test/requests")):
            return GcpServer._admin_route(self, m, path, a, q)  # faults and counters
        return _admin_json(404, {"error": f"no admin endpoint {m} {path}", "help": _ADMIN_HELP})


_ADMIN_HELP = """\
All requests need header X-Test-Admin: <admin token>; JSON bodies.
GET  /_test/health | /_test/info  -> {ok, port, url, admin_token}
POST /_test/reset                 -> back to the startup config
POST /_test/vault {name, id?}     -> {id}
POST /_test/item {vault (id or name), title, fields:[{label, value, section, id, type}],
                  sections:[{id, label}], id?, category, tags}  -> {id, version}
                  (an existing id is replaced and its version goes up by one)
POST /_test/item/delete {vault, id}
POST /_test/token {token?, vaults?: [ids or names in scope]}  -> {token}
POST /_test/fault {kind: status|latency|hold|drop|truncate|malformed, path (regex), method,
                   secret (regex on the item id), count, skip, probability, seed, status,
                   message, headers, retry_after, latency_ms, body, content_type, rst,
                   truncate_at}  -> {id}
GET  /_test/faults | DELETE /_test/faults | POST /_test/faults/clear {id?}
GET  /_test/counts (endpoints: list_vaults get_vault list_items get_item; items: GETs by id)
POST /_test/reset-counts | GET /_test/requests?since=SEQ
Config (--config): {"vaults": [{"name", "id"?, "items": [put_item arguments]}],
                    "tokens": [{"token", "vaults"?}]}
"""


def spawn_cli(cert, key, workdir, config=None, extra_args=(), python=None, timeout=10):
    """Start op_connect_server.py as a subprocess; returns (Popen, info dict)."""
    return spawn_server(os.path.abspath(__file__), "op", cert, key, workdir, config,
                        extra_args, python, timeout)


def main(argv=None):
    return serve_cli(OpConnectServer, "1Password Connect test server, in memory", argv)


if __name__ == "__main__":
    sys.exit(main())
