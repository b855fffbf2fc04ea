#!/usr/bin/env python3
"""Azure Key Vault test server (Python standard library only).

One process stands in for what secretfs' azure-kv backend talks to, with
in-memory state:

  HTTPS listener (127.0.0.1, TLS, HTTP/1.1 keep-alive):
    Key Vault data plane, api-version 7.0 .. 7.6 (7.4 is what secretfs sends)
        GET  /secrets/NAME[/VERSION]          SecretBundle
        GET  /secrets?maxresults=N            SecretListResult, paged by nextLink
        PUT  /secrets/NAME {value, contentType, tags}   (for the vendor client)
    Microsoft identity platform v2.0 token endpoint
        POST /TENANT/oauth2/v2.0/token  grant_type=client_credentials with
             client_secret, or client_assertion (workload identity)
  plain-HTTP "metadata" listener (127.0.0.1), as IMDS is plain HTTP:
    GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R
        [&client_id=ID], header Metadata: true

Key Vault requests need `Authorization: Bearer TOKEN` with a token this
server issued for the resource https://vault.azure.net and not yet expired
on its (fake, adjustable) clock.  A request without one gets the 401 and
the WWW-Authenticate challenge the Azure SDKs start from.  Errors are
KeyVaultError `{"error":{"code","message"}}`; token endpoint errors are the
AADSTS shape.  Fault injection, counters and the control API under /_test/
(header X-Test-Admin) follow aws_server.py, whose listeners, lifecycle,
admin front door and CLI this module shares; see README.md in this
directory.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hmac
import json
import os
import random
import re
import secrets as _secrets
import sys
import threading
import time
import uuid
from urllib.parse import parse_qsl, quote, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aws_server import (  # noqa: E402  the shared HTTP plumbing, lifecycle and test client
    AdminClient,
    AwsPlumbing,
    Resp,
    _admin_json,
    load_config_arg,
    serve_until_signalled,
)

__all__ = ["AzureServer", "AdminClient", "spawn_cli", "vendor_client", "vendor_client_missing", "TENANT", "CLIENT_ID", "CLIENT_SECRET",
           "FEDERATED_CLIENT_ID", "FEDERATED_TOKEN", "MI_CLIENT_ID", "VAULT_RESOURCE"]

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "3f4c2b1a-0000-4000-8000-00000000c11e"
CLIENT_SECRET = "test-client-secret-~8Q"
FEDERATED_CLIENT_ID = "3f4c2b1a-0000-4000-8000-00000000f0ed"
FEDERATED_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwIn0."
MI_CLIENT_ID = "3f4c2b1a-0000-4000-8000-0000000000a1"
VAULT_RESOURCE = "https://vault.azure.net"
API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6")
JSON_CT = "application/json; charset=utf-8"
NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,127}$")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class KvError(Exception):
    """A Key Vault error: rendered as {"error":{"code","message"[,"innererror"]}}."""

    def __init__(self, status, code, message, inner=None, headers=None):
        super().__init__(code, message)
        self.status, self.code, self.message = status, code, message
        self.inner, self.headers = inner, headers or {}


def _json(status, obj, headers=None):
    h = {"Content-Type": JSON_CT, "Cache-Control": "no-cache",
         "x-ms-request-id": str(uuid.uuid4()), "x-ms-keyvault-service-version": "1.9.0.0"}
    h.update(headers or {})
    return Resp(status, json.dumps(obj).encode(), h)


def _kv_error(e):
    err = {"code": e.code, "message": e.message}
    if e.inner:
        err["innererror"] = {"code": e.inner}
    return _json(e.status, {"error": err}, e.headers)


def _aad_error(status, error, code, description):
    """What login.microsoftonline.com sends for a refused token request."""
    return _json(status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}",
        "error_codes": [code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4())})


class _Req:
    def __init__(self, method, url, headers, body, listener):
        self.method = method.upper()
        self.path = url.path or "/"
        self.query_string = url.query
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers = headers
        self.body = body or b""
        self.listener = listener
        self.op = "unknown"
        self.name = None
        self.version = None


class AzureServer(AwsPlumbing):
    """In-memory Key Vault, token endpoint and IMDS. See the module docstring."""

    def __init__(self, cert=None, key=None, *, host="127.0.0.1", port=0, metadata_port=0,
                 config=None, admin_token=None, admin_port=None, verbose=False, tls=True):
        if tls and (not cert or not key):
            raise ValueError("cert and key are required unless tls=False")
        self.cert, self.key = cert, key
        self.host, self._want_port = host, port
        self._want_metadata_port = metadata_port
        self._admin_port_wanted = admin_port
        self.tls = tls
        self.admin_token = admin_token or _secrets.token_hex(16)
        self.verbose = verbose
        self._initial_config = copy.deepcopy(config or {})
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)
        self._servers, self._threads = [], []
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.port = self.metadata_port = self.admin_port = None
        self.url = self.metadata_url = self.admin_url = None
        self._apply_config(self._initial_config, fresh=True)

    # ------------------------------------------------------------------ state

    def _apply_config(self, cfg, fresh=False):
        with self._lock:
            if fresh:
                self.clock_offset = 0.0
                self.token_lifetime = 3599
                self.page_size = 25
                self.next_link_base = None
                self.secrets = {}
                self.tokens = {}
                self.clients = {(TENANT, CLIENT_ID): CLIENT_SECRET}
                self.federated = {(TENANT, FEDERATED_CLIENT_ID): FEDERATED_TOKEN}
                self.imds = {"enabled": True, "client_ids": [MI_CLIENT_ID],
                             "default": True}
                self.deny = {}
                self.faults = []
                self._fault_seq = 0
                self.reset_counts()
            self.configure(**{k: cfg[k] for k in ("token_lifetime", "page_size",
                                                  "next_link_base") if k in cfg})
            for c in cfg.get("clients", []):
                self.clients[(c.get("tenant", TENANT), c["client_id"])] = c["client_secret"]
            for c in cfg.get("federated", []):
                self.federated[(c.get("tenant", TENANT), c["client_id"])] = c["assertion"]
            if "imds" in cfg:
                self.imds.update(cfg["imds"])
            for s in cfg.get("secrets", []):
                s = dict(s)
                self.put_secret(s.pop("name"), **s)
            for d in cfg.get("deny", []):
                self.deny_access(**d)
            for f in cfg.get("faults", []):
                self.add_fault(**f)

    def now(self):
        return time.time() + self.clock_offset

    def configure(self, token_lifetime=None, page_size=None, next_link_base=None):
        with self._lock:
            if token_lifetime is not None:
                self.token_lifetime = int(token_lifetime)
            if page_size is not None:
                if not 1 <= int(page_size) <= 25:
                    raise ValueError("page_size must be 1..25, as maxresults")
                self.page_size = int(page_size)
            if next_link_base is not None:
                self.next_link_base = next_link_base or None
            return self.settings()

    def settings(self):
        return {"token_lifetime": self.token_lifetime, "page_size": self.page_size,
                "next_link_base": self.next_link_base}

    def reset(self):
        with self._lock:
            self.clear_faults()
            self._apply_config(self._initial_config, fresh=True)

    def put_secret(self, name, value, content_type=None, enabled=True, version=None,
                   tags=None, nbf=None, exp=None):
        if not NAME_RE.match(name):
            raise ValueError(f"secret name {name!r} is not [0-9A-Za-z-]{{1,127}}")
        if content_type == "application/x-pkcs12" and isinstance(value, bytes):
            value = base64.b64encode(value).decode()
        with self._lock:
            t = int(self.now())
            v = {"version": version or uuid.uuid4().hex, "value": value,
                 "contentType": content_type, "enabled": bool(enabled), "created": t,
                 "updated": t, "tags": dict(tags or {}), "nbf": nbf, "exp": exp}
            self.secrets.setdefault(name, []).append(v)
            return {"name": name, "version": v["version"]}

    def set_enabled(self, name, enabled, version=None):
        with self._lock:
            vs = self.secrets[name]
            v = next((x for x in vs if x["version"] == version), None) if version else vs[-1]
            if v is None:
                raise KeyError(f"{name} has no version {version}")
            v["enabled"] = bool(enabled)
            return {"name": name, "version": v["version"], "enabled": v["enabled"]}

    def delete_secret(self, name):
        with self._lock:
            return self.secrets.pop(name, None) is not None

    def deny_access(self, name, token_kind=None):
        """A 403 Forbidden for reads of NAME (by tokens of token_kind, or every token)."""
        with self._lock:
            self.deny[name] = token_kind
            return {"ok": True}

    def _issue(self, kind, subject, lifetime=None):
        tok = "eyJ0eXAiOiJKV1QifQ." + base64.urlsafe_b64encode(
            _secrets.token_bytes(48)).decode().rstrip("=") + ".sig"
        life = self.token_lifetime if lifetime is None else int(lifetime)
        self.tokens[tok] = {"kind": kind, "subject": subject, "expires": self.now() + life,
                            "resource": VAULT_RESOURCE}
        self._counts["tokens_issued"][kind] = self._counts["tokens_issued"].get(kind, 0) + 1
        return tok, life

    def expire_tokens(self):
        """Every issued token expires now: the next Key Vault request gets a 401."""
        with self._lock:
            for t in self.tokens.values():
                t["expires"] = self.now() - 1
            return {"expired": len(self.tokens)}

    # faults -------------------------------------------------------------------

    def add_fault(self, kind="status", op=None, name=None, path=None, method=None,
                  listener=None, count=None, skip=0, probability=1.0, seed=0, status=None,
                  code=None, message=None, headers=None, retry_after=None, latency_ms=0,
                  truncate_at=None, body=None, content_type=None, rst=False):
        kinds = ("status", "latency", "hold", "drop", "truncate", "malformed")
        if kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}")
        with self._lock:
            self._fault_seq += 1
            rule = {"id": self._fault_seq, "kind": kind, "op": op, "name": name,
                    "_name_re": re.compile(name) if name else None, "path": path,
                    "_re": re.compile(path) if path else None,
                    "method": method.upper() if method else None, "listener": listener,
                    "count": None if count is None else int(count), "skip": int(skip or 0),
                    "probability": float(probability), "_rng": random.Random(seed),
                    "status": None if status is None else int(status), "code": code,
                    "message": message, "headers": dict(headers or {}),
                    "retry_after": retry_after, "latency_ms": float(latency_ms or 0),
                    "truncate_at": truncate_at, "body": body, "content_type": content_type,
                    "rst": bool(rst), "matched": 0, "fired": 0, "removed": False}
            self.faults.append(rule)
            return rule["id"]

    def clear_faults(self, fault_id=None):
        with self._lock:
            keep = [] if fault_id is None else [f for f in self.faults
                                                 if f["id"] != int(fault_id)]
            for f in self.faults:
                if f not in keep:
                    f["removed"] = True
            self.faults = keep
            self._released.notify_all()

    def _match_fault(self, req):
        latency, holds, action = 0.0, [], None
        for f in self.faults:
            if f["op"] and f["op"] != req.op:
                continue
            if f["_name_re"] is not None and not f["_name_re"].search(req.name or ""):
                continue
            if f["_re"] is not None and not f["_re"].search(req.path):
                continue
            if f["method"] and f["method"] != req.method:
                continue
            if f["listener"] and f["listener"] != req.listener:
                continue
            if f["kind"] not in ("latency", "hold") and action is not None:
                continue
            f["matched"] += 1
            if f["matched"] <= f["skip"]:
                continue
            if f["count"] is not None and f["fired"] >= f["count"]:
                continue
            if f["probability"] < 1.0 and f["_rng"].random() >= f["probability"]:
                continue
            f["fired"] += 1
            self._counts["faults_fired"] += 1
            latency += f["latency_ms"] / 1000.0
            if f["kind"] == "hold":
                holds.append(f)
            elif f["kind"] != "latency":
                action = f
        return latency, holds, action

    def _hold(self, holds):
        """Wait until every matched hold rule is removed (at most 120 s each)."""
        with self._lock:
            self._counts["held"] += 1
            for f in holds:
                deadline = time.monotonic() + (f["latency_ms"] / 1000.0 or 120.0)
                while not f["removed"] and time.monotonic() < deadline:
                    self._released.wait(deadline - time.monotonic())
            self._counts["held"] -= 1

    def _fault_resp(self, f, req):
        if f["body"] is not None:
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            r = Resp(f["status"] or 500, body, {"Content-Type": f["content_type"] or JSON_CT})
        else:
            st = f["status"] or 500
            code = f["code"] or {429: "Throttled", 401: "Unauthorized", 403: "Forbidden",
                                 404: "SecretNotFound", 503: "ServiceUnavailable"}.get(
                                     st, "InternalServerError")
            msg = f["message"] or {
                429: "Operations per second exceeded the vault's limit. Please retry later.",
                503: "The service is temporarily unavailable."}.get(st, "Injected fault.")
            r = _kv_error(KvError(st, code, msg))
        ra = f["retry_after"]
        if ra is None and r.status == 429:
            ra = 1
        if ra is not None:
            r.headers["Retry-After"] = str(ra)
        r.headers.update(f["headers"])
        return r

    # counters -----------------------------------------------------------------

    def reset_counts(self):
        with self._lock:
            self._counts = {"total": 0, "connections": 0, "tls_handshake_failures": 0,
                            "admin_requests": 0, "faults_fired": 0, "held": 0,
                            "operations": {}, "secrets": {}, "statuses": {}, "errors": {},
                            "tokens_issued": {}, "authorized": 0, "unauthorized": 0}
            self._log = []
            self._seq = 0

    # ------------------------------------------------------------- lifecycle

    def info(self):
        return {"port": self.port, "url": self.url, "metadata_port": self.metadata_port,
                "metadata_url": self.metadata_url, "admin_port": self.admin_port,
                "admin_url": self.admin_url, "admin_token": self.admin_token,
                "authority_host": self.url, "tenant_id": TENANT, "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET, "federated_client_id": FEDERATED_CLIENT_ID,
                "mi_client_id": MI_CLIENT_ID, "pid": os.getpid()}

    # ---------------------------------------------------------- request path

    def _classify(self, req):
        p = req.path
        if req.listener == "metadata":
            req.op = "imds" if p == "/metadata/identity/oauth2/token" else "metadata-other"
            return
        m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", p)
        if m:
            req.op, req.name = "token", unquote(m.group(1))
            return
        if p.rstrip("/") == "/secrets":
            req.op = "GetSecrets"
            return
        m = re.fullmatch(r"/secrets/([^/]+)(?:/([^/]*))?/?", p)
        if m:
            req.op = {"GET": "GetSecret", "PUT": "SetSecret"}.get(req.method, "unsupported")
            req.name, req.version = unquote(m.group(1)), m.group(2) or None

    def _record(self, req):
        c = self._counts
        c["total"] += 1
        c["operations"][req.op] = c["operations"].get(req.op, 0) + 1
        if req.name and req.op in ("GetSecret", "SetSecret"):
            d = c["secrets"].setdefault(req.name, {})
            d[req.op] = d.get(req.op, 0) + 1
        self._seq += 1
        rec = {"seq": self._seq, "time": time.time(), "listener": req.listener,
               "method": req.method, "path": req.path, "query": req.query_string,
               "op": req.op, "name": req.name, "version": req.version,
               "authorization_sent": req.headers.get("Authorization") is not None,
               "metadata_header": req.headers.get("Metadata"),
               "user_agent": req.headers.get("User-Agent"), "body_len": len(req.body),
               "status": None, "error": None, "fault": None}
        self._log.append(rec)
        del self._log[:-10000]
        return rec

    def _finish(self, rec, resp, error=None):
        with self._lock:
            rec["status"] = resp
            k = str(resp)
            self._counts["statuses"][k] = self._counts["statuses"].get(k, 0) + 1
            if error:
                rec["error"] = error
                self._counts["errors"][error] = self._counts["errors"].get(error, 0) + 1

    def serve(self, method, url, headers, body, peer=None, listener="main"):
        """Handle one non-admin request. Returns (Resp, action_or_None)."""
        req = _Req(method, url, headers, body, listener)
        with self._lock:
            self._classify(req)
            rec = self._record(req)
            latency, holds, fault = self._match_fault(req)
        if holds:
            self._hold(holds)
        if latency > 0:
            time.sleep(latency)
        if fault is not None:
            rec["fault"] = fault["kind"]
            if fault["kind"] == "drop":
                self._finish(rec, "dropped")
                return None, {"drop": True, "rst": fault["rst"]}
            if fault["kind"] == "status":
                resp = self._fault_resp(fault, req)
                self._finish(rec, resp.status, fault["code"])
                return resp, None
        with self._lock:
            err = None
            try:
                resp = self._dispatch(req)
            except KvError as e:
                err, resp = e.code, _kv_error(e)
        self._finish(rec, resp.status, err)
        if fault is not None and fault["kind"] == "truncate":
            body = resp.body or b""
            n = len(body) // 2 if fault["truncate_at"] is None else int(fault["truncate_at"])
            return resp, {"truncate": max(0, min(n, max(len(body) - 1, 0)))}
        if fault is not None and fault["kind"] == "malformed":
            if fault["body"] is not None:
                b = fault["body"].encode() if isinstance(fault["body"], str) else fault["body"]
            else:
                b = (resp.body or b"{}")[: max(1, len(resp.body or b"") // 2)] + b"\x00<<junk"
            h = dict(resp.headers)
            if fault["content_type"]:
                h["Content-Type"] = fault["content_type"]
            return Resp(fault["status"] or resp.status, b, h), None
        return resp, None

    def _dispatch(self, req):
        if req.op == "imds":
            return self._h_imds(req)
        if req.op == "token":
            return self._h_token(req)
        if req.op in ("GetSecret", "GetSecrets", "SetSecret"):
            v = req.query.get("api-version")
            if not v:
                raise KvError(400, "BadParameter", "The 'api-version' query parameter is "
                              "missing.")
            if v not in API_VERSIONS:
                raise KvError(400, "BadParameter", f"The specified version ({v}) is not "
                              "recognized. Consider using the latest supported version "
                              f"({API_VERSIONS[-1]}).")
            tok = self._authorize(req)
            if req.op == "GetSecrets":
                return self._h_list(req)
            if not NAME_RE.match(req.name or ""):
                raise KvError(400, "BadParameter", "The request URI contains an invalid name: "
                              f"{req.name}")
            if req.op == "SetSecret":
                return self._h_set(req)
            return self._h_get(req, tok)
        raise KvError(404, "NotFound", f"The requested path {req.path} was not found.")

    def _challenge(self):
        return {"WWW-Authenticate": f'Bearer authorization="{self.url}/{TENANT}", '
                f'resource="{VAULT_RESOURCE}"'}

    def _authorize(self, req):
        auth = req.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            self._counts["unauthorized"] += 1
            raise KvError(401, "Unauthorized",
                          "AKV10000: Request is missing a Bearer or PoP token.",
                          headers=self._challenge())
        tok = self.tokens.get(auth[7:].strip())
        if tok is None or tok["expires"] <= self.now():
            self._counts["unauthorized"] += 1
            raise KvError(401, "Unauthorized",
                          "AKV10022: Invalid audience or the token has expired."
                          if tok is not None else "AKV10032: Invalid issuer.",
                          headers=self._challenge())
        self._counts["authorized"] += 1
        return tok

    def _bundle(self, name, v, with_value=True):
        base = self.url + f"/secrets/{name}"
        out = {"id": f"{base}/{v['version']}" if with_value else base,
               "attributes": {"enabled": v["enabled"], "created": v["created"],
                              "updated": v["updated"], "recoveryLevel": "Recoverable+Purgeable",
                              "recoverableDays": 90}}
        for k in ("nbf", "exp"):
            if v[k] is not None:
                out["attributes"][k] = v[k]
        if with_value:
            out["value"] = v["value"]
        if v["contentType"] is not None:
            out["contentType"] = v["contentType"]
        if v["tags"]:
            out["tags"] = dict(v["tags"])
        return out

    def _h_get(self, req, tok):
        vs = self.secrets.get(req.name)
        v = None
        if vs:
            v = next((x for x in vs if x["version"] == req.version), None) if req.version \
                else vs[-1]
        if v is None:
            raise KvError(404, "SecretNotFound",
                          f"A secret with (name/id) {req.name}"
                          f"{'/' + req.version if req.version else ''} was not found in this "
                          "key vault. If you recently deleted this secret you may be able to "
                          "recover it using the correct recovery command. For help resolving "
                          "this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
        if req.name in self.deny and self.deny[req.name] in (None, tok["kind"]):
            raise KvError(403, "Forbidden", f"Caller is not authorized to perform action on "
                          f"resource.\r\nIf role assignments, deny assignments or role "
                          f"definitions were changed recently, please observe propagation "
                          f"time.\r\nCaller: appid={tok['subject']}\r\nAction: "
                          f"'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: "
                          f"'/secrets/{req.name.lower()}'", inner="ForbiddenByRbac")
        if not v["enabled"]:
            raise KvError(403, "Forbidden", "Operation get is not allowed on a disabled secret.",
                          inner="SecretDisabled")
        return _json(200, self._bundle(req.name, v))

    def _h_set(self, req):
        try:
            p = json.loads(req.body or b"{}")
        except ValueError:
            raise KvError(400, "BadParameter", "The request body is not valid JSON.") from None
        if not isinstance(p.get("value"), str):
            raise KvError(400, "BadParameter", "Property 'value' is required.")
        self.put_secret(req.name, p["value"], content_type=p.get("contentType"),
                        tags=p.get("tags"))
        return _json(200, self._bundle(req.name, self.secrets[req.name][-1]))

    def _h_list(self, req):
        try:
            n = int(req.query.get("maxresults") or self.page_size)
        except ValueError:
            n = 0
        if not 1 <= n <= 25:
            raise KvError(400, "BadParameter", "invalid maxresults: must be 1..25")
        start = 0
        skip = req.query.get("$skiptoken")
        if skip:
            try:
                start = int(json.loads(base64.b64decode(skip))["NextMarker"])
            except (ValueError, KeyError, TypeError):
                raise KvError(400, "BadParameter", "The $skiptoken is invalid.") from None
        names = sorted(self.secrets, key=str.lower)
        page = names[start:start + n]
        out = {"value": [self._bundle(nm, self.secrets[nm][-1], with_value=False)
                         for nm in page], "nextLink": None}
        if start + n < len(names):
            tokn = base64.b64encode(json.dumps({"NextMarker": start + n,
                                                "TargetLocation": 0}).encode()).decode()
            base = self.next_link_base or self.url
            out["nextLink"] = (f"{base}/secrets?api-version={req.query['api-version']}"
                               f"&$skiptoken={quote(tokn, safe='')}&maxresults={n}")
        return _json(200, out)

    def _token_resp(self, tok, life):
        return _json(200, {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life,
                           "access_token": tok})

    def _h_token(self, req):
        if req.method != "POST":
            return _aad_error(405, "invalid_request", 900561,
                              "The endpoint only accepts POST requests.")
        ct = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        if ct != "application/x-www-form-urlencoded":
            return _aad_error(400, "invalid_request", 900144,
                              "The request body must contain the following parameter: "
                              "'grant_type'.")
        p = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        if p.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003,
                              "The app requested an unsupported grant type.")
        if p.get("scope") != VAULT_RESOURCE + "/.default":
            return _aad_error(400, "invalid_scope", 1002012,
                              f"The provided value for scope {p.get('scope')} is not valid.")
        tenant, cid = req.name, p.get("client_id", "")
        if "client_assertion" in p:
            want = self.federated.get((tenant, cid))
            if p.get("client_assertion_type") != ASSERTION_TYPE:
                return _aad_error(400, "invalid_request", 50027,
                                  "Invalid client_assertion_type.")
            if want is None or not hmac.compare_digest(p["client_assertion"].encode(),
                                                       want.encode()):
                return _aad_error(401, "invalid_client", 700213,
                                  "No matching federated identity record found for presented "
                                  "assertion subject.")
            return self._token_resp(*self._issue("workload", cid))
        want = self.clients.get((tenant, cid))
        if want is None:
            return _aad_error(400, "unauthorized_client", 700016,
                              f"Application with identifier '{cid}' was not found in the "
                              f"directory '{tenant}'.")
        if not hmac.compare_digest(p.get("client_secret", "").encode(), want.encode()):
            return _aad_error(401, "invalid_client", 7000215,
                              "Invalid client secret provided. Ensure the secret being sent "
                              "in the request is the client secret value, not the client "
                              f"secret ID, for a secret added to app '{cid}'.")
        return self._token_resp(*self._issue("client_secret", cid))

    def _h_imds(self, req):
        if req.headers.get("Metadata") != "true":
            return _json(400, {"error": "invalid_request",
                               "error_description": "Required metadata header not specified"})
        if not self.imds["enabled"]:
            return _json(400, {"error": "invalid_request",
                               "error_description": "Identity not found"})
        q = req.query
        if q.get("api-version") != "2018-02-01" and q.get("api-version") != "2019-08-01":
            return _json(400, {"error": "invalid_request",
                               "error_description": "Invalid API version"})
        if q.get("resource") != VAULT_RESOURCE:
            return _json(400, {"error": "invalid_resource",
                               "error_description": "AADSTS500011: The resource principal "
                               f"named {q.get('resource')} was not found."})
        cid = q.get("client_id")
        if (cid is None and not self.imds["default"]) or \
                (cid is not None and cid not in self.imds["client_ids"]):
            return _json(400, {"error": "invalid_request",
                               "error_description": "Identity not found"})
        tok, life = self._issue("imds", cid or "system-assigned")
        now = int(self.now())
        return _json(200, {"access_token": tok, "client_id": cid or MI_CLIENT_ID,
                           "expires_in": str(life), "expires_on": str(now + life),
                           "ext_expires_in": str(life), "not_before": str(now),
                           "resource": VAULT_RESOURCE, "token_type": "Bearer"})

    # ---------------------------------------------------------------- admin

    def _admin_route(self, m, path, a, q):
        if path in ("/_test/health", "/_test/info"):
            return dict(self.info(), ok=True, settings=self.settings())
        if path == "/_test/help":
            return {"help": _ADMIN_HELP}
        if path == "/_test/config" and m == "POST":
            return self.configure(**a)
        if path == "/_test/reset" and m == "POST":
            self.reset()
            return {"ok": True}
        if path == "/_test/secret" and m == "POST":
            a = dict(a)
            if "value_b64" in a:
                a["value"] = base64.b64decode(a.pop("value_b64"))
            return self.put_secret(a.pop("name"), **a)
        if path == "/_test/secret/enabled" and m == "POST":
            return self.set_enabled(a["name"], a["enabled"], a.get("version"))
        if path == "/_test/secret/delete" and m == "POST":
            return {"ok": self.delete_secret(a["name"])}
        if path == "/_test/federated" and m == "POST":  # the assertion a client must send
            with self._lock:
                self.federated[(a.get("tenant", TENANT), a["client_id"])] = a["assertion"]
                return {"ok": True}
        if path == "/_test/client" and m == "POST":  # a client secret the endpoint takes
            with self._lock:
                self.clients[(a.get("tenant", TENANT), a["client_id"])] = a["client_secret"]
                return {"ok": True}
        if path == "/_test/deny" and m == "POST":
            return self.deny_access(**a)
        if path == "/_test/tokens/expire" and m == "POST":
            return self.expire_tokens()
        if path == "/_test/tokens" and m == "GET":  # so tests can search for them in logs
            with self._lock:
                return {"tokens": [dict(v, token=k) for k, v in self.tokens.items()]}
        if path == "/_test/imds" and m == "POST":
            with self._lock:
                self.imds.update(a)
                return dict(self.imds)
        if path == "/_test/clock" and m == "POST":
            with self._lock:
                self.clock_offset += float(a.get("advance", 0))
                return {"offset": self.clock_offset, "now": self.now()}
        if path == "/_test/fault" and m == "POST":
            return {"id": self.add_fault(**a)}
        if path in ("/_test/fault", "/_test/faults") and m == "DELETE":
            self.clear_faults(a.get("id", q.get("id")))
            return {"ok": True}
        if path == "/_test/faults" and m == "GET":
            return {"faults": self.list_faults()}
        if path == "/_test/counts" and m == "GET":
            return self.counts()
        if path == "/_test/reset-counts" and m == "POST":
            self.reset_counts()
            return {"ok": True}
        if path == "/_test/requests" and m == "GET":
            return {"requests": self.requests_log(int(q.get("since", 0)))}
        return _admin_json(404, {"error": f"no admin endpoint {m} {path}", "help": _ADMIN_HELP})


_ADMIN_HELP = """\
All requests need header X-Test-Admin: <admin token>; JSON bodies. Served on every listener.
GET  /_test/health | /_test/info   -> {ok, url, metadata_url, admin_token, tenant_id, client_id,
                                      client_secret, federated_client_id, mi_client_id, settings}
POST /_test/config {token_lifetime, page_size (1..25), next_link_base}
POST /_test/reset                  -> back to the startup config
POST /_test/secret {name, value | value_b64, content_type, enabled, version, tags, nbf, exp}
POST /_test/secret/enabled {name, enabled, version?} | POST /_test/secret/delete {name}
POST /_test/deny {name, token_kind?}   403 Forbidden for reads of name
POST /_test/federated {client_id, assertion, tenant?} | POST /_test/client {client_id,
                   client_secret, tenant?}   what the token endpoint takes from now on
POST /_test/tokens/expire          every issued token expires now
GET  /_test/tokens                 every token issued, with kind, subject and expiry
POST /_test/imds {enabled, client_ids, default} | POST /_test/clock {advance: s}
POST /_test/fault {kind: status|latency|hold|drop|truncate|malformed, op (GetSecret, GetSecrets,
                   token, imds), name, path, method, listener, count, skip, probability, seed,
                   status, code, message, headers, retry_after, latency_ms, truncate_at, body,
                   content_type, rst} -> {id}
GET  /_test/faults | DELETE /_test/faults {id?}
GET  /_test/counts | POST /_test/reset-counts | GET /_test/requests?since=SEQ
"""


NODE_MODULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node",
                            "node_modules")
CLIENT_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "azure_kv_client.js")


def vendor_client_missing():
    """Why @azure/keyvault-secrets cannot run here ("" when it can): for a skip."""
    import shutil

    if not shutil.which("node"):
        return "node (Debian nodejs) is not installed"
    if not os.path.isdir(os.path.join(NODE_MODULES, "@azure", "keyvault-secrets")):
        return f"@azure/keyvault-secrets is not installed in {NODE_MODULES} (make node-deps)"
    return ""


def vendor_client(url, cafile, ops, **extra):
    """
    Runs @azure/keyvault-secrets (azure_kv_client.js) against the server at @url with the
    fixed test client credential: returns (results, token requests).  See
    vendor_client_missing() first.
    """
    import shutil
    import subprocess

    args = {"vault": url, "authority": url, "tenant": TENANT, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "ops": ops, **extra}
    env = dict(os.environ, NODE_PATH=NODE_MODULES, NODE_EXTRA_CA_CERTS=cafile)
    r = subprocess.run([shutil.which("node"), CLIENT_JS, json.dumps(args)], env=env,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"azure_kv_client.js failed:\n{r.stderr}")
    out = json.loads(r.stdout)
    return out["results"], out["token_requests"]


def spawn_cli(cert, key, workdir, config=None, extra_args=(), python=None, timeout=10,
              env=None):
    """Start azure_server.py as a subprocess; returns (Popen, info_dict)."""
    import subprocess

    os.makedirs(workdir, exist_ok=True)
    info_file = os.path.join(workdir, "azure.info.json")
    if os.path.exists(info_file):
        os.unlink(info_file)
    cmd = [python or sys.executable, os.path.abspath(__file__), "--cert", cert, "--key", key,
           "--port-file", os.path.join(workdir, "azure.port"), "--info-file", info_file]
    if config is not None:
        cmd += ["--config", config if isinstance(config, str) else json.dumps(config)]
    cmd += list(extra_args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(info_file):
            with open(info_file) as f:
                return proc, json.load(f)
        if proc.poll() is not None:
            raise RuntimeError("azure_server exited: " +
                               proc.stderr.read().decode(errors="replace"))
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("azure_server did not start in time")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Azure Key Vault, token endpoint and IMDS test "
                                 "server, in-memory")
    ap.add_argument("--cert", help="server certificate (PEM)")
    ap.add_argument("--key", help="server private key (PEM)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port, 0 = ephemeral (default)")
    ap.add_argument("--port-file", help="write the HTTPS port number here (atomically)")
    ap.add_argument("--metadata-port", type=int, default=0, help="plain-HTTP IMDS port")
    ap.add_argument("--metadata-port-file", help="write the IMDS port number here")
    ap.add_argument("--no-metadata", action="store_true", help="no IMDS listener")
    ap.add_argument("--info-file", help="write JSON {port,url,metadata_url,admin_token,...} here")
    ap.add_argument("--config", help="JSON text, or @FILE / FILE with JSON")
    ap.add_argument("--admin-token", help="fixed admin token (default: random)")
    ap.add_argument("--admin-token-file", help="write the admin token here")
    ap.add_argument("--admin-port-file",
                    help="also serve /_test/ on a separate plain-HTTP port; write it here")
    ap.add_argument("--no-tls", action="store_true", help="serve the main listener as plain HTTP")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    if not args.no_tls and (not args.cert or not args.key):
        ap.error("--cert and --key are required (or --no-tls)")
    srv = AzureServer(args.cert, args.key, host=args.host, port=args.port,
                      metadata_port=None if args.no_metadata else args.metadata_port,
                      config=load_config_arg(args.config), admin_token=args.admin_token,
                      admin_port=0 if args.admin_port_file else None, verbose=args.verbose,
                      tls=not args.no_tls)
    return serve_until_signalled(srv, args)


if __name__ == "__main__":
    sys.exit(main())
