#!/usr/bin/env python3
"""Google Secret Manager test server (in memory).

One process stands in for what secretfs' gcp-sm backend talks to:

  HTTPS listener (127.0.0.1, TLS, HTTP/1.1 keep-alive):
    Secret Manager REST v1
      GET /v1/projects/P/secrets/S/versions/V:access  {name, payload{data, dataCrc32c}}
      GET /v1/projects/P/secrets/S/versions/V         version metadata, no payload
      GET /v1/projects/P/secrets/S                    secret metadata
      GET /v1/projects/P/secrets?pageSize=&pageToken= {secrets, nextPageToken, totalSize}
      errors are google.rpc.Status: {"error":{"code","message","status"}}
    OAuth2 token URI  POST /token (form-encoded)
      grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT
          the RS256 signature is verified against the public key of the
          service account named by `iss` (and the `kid` header), with aud,
          scope, iat and exp checked against the server's clock;
      grant_type=refresh_token&client_id=&client_secret=&refresh_token=

  plain-HTTP metadata listener (as the real one is):
      GET /computeMetadata/v1/instance/service-accounts/default/token
          needs `Metadata-Flavor: Google`; answers {access_token, expires_in, token_type}.

The HTTP plumbing, fault actions (drop, truncate) and the admin client are
aws_server.py's, shared rather than copied.  The control API is under
/_test/ (header X-Test-Admin) on every listener; see README.md and
_ADMIN_HELP.
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
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aws_server import (AdminClient, AwsPlumbing, Resp, _admin_json,  # noqa: E402
                        load_config_arg, serve_until_signalled)

__all__ = ["GcpServer", "AdminClient", "spawn_cli", "crc32c", "SCOPE", "JWT_BEARER"]

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
JSON_CT = "application/json; charset=UTF-8"

# google.rpc.Code names by HTTP status, as Google's APIs send them.
STATUS_NAME = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
               499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
               503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
DEFAULT_MESSAGE = {
    429: "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per "
         "minute' of service 'secretmanager.googleapis.com'.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request deadline was exceeded.",
}
MSG_UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 "
                       "access token, login cookie or other valid authentication credential. "
                       "See https://developers.google.com/identity/sign-in/web/devconsole-project.")


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), reflected, init/xorout 0xFFFFFFFF."""
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


_NOT_MINE = object()  # an admin path a shared route does not serve


class GcpError(Exception):
    def __init__(self, code, message, status=None, headers=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAME.get(code, "UNKNOWN")
        self.headers = headers or {}


class OAuthError(Exception):
    """An RFC 6749 token-endpoint error: {"error", "error_description"}."""

    def __init__(self, error, description, code=400):
        super().__init__(error, description)
        self.error, self.description, self.code = error, description, code


class _Req:
    def __init__(self, method, url, headers, body, listener):
        self.method = method.upper()
        self.path = url.path or "/"
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers = headers
        self.body = body or b""
        self.listener = listener
        self.endpoint = "unknown"
        self.project = self.secret = self.version = None
        auth = headers.get("Authorization") or ""
        self.bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None


class GcpServer(AwsPlumbing):
    """In-memory Secret Manager + OAuth2 token URI + metadata server."""

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
        self._servers, self._threads = [], []
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.port = self.metadata_port = self.admin_port = None
        self.url = self.metadata_url = self.admin_url = None
        self.faults = []
        self._fault_seq = 0
        self.reset_counts()
        self._apply_config(self._initial_config)

    # ------------------------------------------------------------------ state

    def _apply_config(self, cfg):
        self.secrets = {}          # (project, id) -> {"created", "versions": {n: {...}}}
        self.project_numbers = {}  # project id -> number (names in responses use the number)
        self.service_accounts = {}  # client_email -> {"public_key", "key_id", "deny"}
        self.users = {}            # refresh_token -> {"client_id", "client_secret"}
        self.tokens = {}           # access token -> {"expires", "principal", "deny", "source"}
        self.clock_offset = 0.0
        self.page_size = int(cfg.get("page_size", 25))
        self.token_ttl = int(cfg.get("token_ttl", 3600))
        self.metadata = {"enabled": True, "email": "default@secretfs-test.iam.gserviceaccount.com",
                         "deny": []}
        for p, n in (cfg.get("projects") or {}).items():
            self.project_numbers[p] = str(n)
        for s in cfg.get("secrets", []):
            s = dict(s)
            self.put_secret(s.pop("project"), s.pop("id"), **s)
        for t in cfg.get("tokens", []):
            self.add_token(**t)

    def now(self):
        return time.time() + self.clock_offset

    def advance_clock(self, seconds):
        with self._lock:
            self.clock_offset += float(seconds)

    def reset(self):
        with self._lock:
            self.clear_faults()
            self._apply_config(self._initial_config)
            self.reset_counts()

    def configure(self, page_size=None, token_ttl=None, metadata=None):
        with self._lock:
            if page_size is not None:
                self.page_size = int(page_size)
            if token_ttl is not None:
                self.token_ttl = int(token_ttl)
            if metadata is not None:
                self.metadata.update(metadata)
            return {"page_size": self.page_size, "token_ttl": self.token_ttl,
                    "metadata": dict(self.metadata)}

    def project_number(self, project):
        with self._lock:
            if project.isdigit():
                return project
            if project not in self.project_numbers:
                self.project_numbers[project] = str(100000000000 +
                                                    crc32c(project.encode()) % 900000000000)
            return self.project_numbers[project]

    def _project_id(self, project):
        """The project id for an id or number in a request path."""
        for pid, num in self.project_numbers.items():
            if project == num:
                return pid
        return project

    def put_secret(self, project, id, value=None, value_b64=None, state="ENABLED",
                   data_crc32c=True):
        """Add a version (the next number) to secret `id`; returns its number."""
        if not SECRET_ID_RE.match(id):
            raise ValueError(f"secret id {id!r} does not match [A-Za-z0-9_-]{{1,255}}")
        if value_b64 is not None:
            data = base64.b64decode(value_b64)
        elif isinstance(value, (dict, list)):
            data = json.dumps(value).encode()
        else:
            data = (value or "").encode() if isinstance(value, str) or value is None else value
        with self._lock:
            self.project_number(project)
            s = self.secrets.setdefault((project, id), {"created": self.now(), "versions": {}})
            n = max(s["versions"], default=0) + 1
            s["versions"][n] = {"data": data, "state": state, "created": self.now(),
                                "crc": bool(data_crc32c)}
            return n

    def set_version_state(self, project, id, version, state):
        with self._lock:
            v = self.secrets[(project, id)]["versions"][int(version)]
            v["state"] = state
            if state == "DESTROYED":
                v["data"] = b""

    def delete_secret(self, project, id):
        with self._lock:
            return self.secrets.pop((project, id), None) is not None

    def secret_state(self, project, id):
        with self._lock:
            s = self.secrets.get((project, id))
            if s is None:
                return None
            return {"versions": {str(n): {"state": v["state"],
                                          "data_b64": base64.b64encode(v["data"]).decode()}
                                 for n, v in s["versions"].items()}}

    # credentials ---------------------------------------------------------------

    def add_service_account(self, client_email=None, project="secretfs-test", deny=()):
        """Make an RSA key pair; return the service-account key file (JSON)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        email = client_email or f"sa-{_secrets.token_hex(4)}@{project}.iam.gserviceaccount.com"
        key_id = _secrets.token_hex(20)
        with self._lock:
            self.service_accounts[email] = {"public_key": key.public_key(), "key_id": key_id,
                                            "deny": list(deny)}
        return {
            "type": "service_account", "project_id": project, "private_key_id": key_id,
            "private_key": pem, "client_email": email,
            "client_id": str(100000000000000000000 + crc32c(email.encode())),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email,
            "universe_domain": "googleapis.com",
        }

    def add_authorized_user(self, deny=()):
        """Return an `authorized_user` credentials file (what gcloud writes for ADC)."""
        user = {"client_id": _secrets.token_hex(8) + ".apps.googleusercontent.com",
                "client_secret": _secrets.token_urlsafe(18),
                "refresh_token": "1//" + _secrets.token_urlsafe(48), "deny": list(deny)}
        with self._lock:
            self.users[user["refresh_token"]] = user
        return {"type": "authorized_user", "client_id": user["client_id"],
                "client_secret": user["client_secret"], "refresh_token": user["refresh_token"],
                "token_uri": self.token_uri, "universe_domain": "googleapis.com"}

    def add_token(self, token=None, ttl=None, principal="test", deny=(), source="admin"):
        tok = token or "ya29." + _secrets.token_urlsafe(60)
        with self._lock:
            ttl = self.token_ttl if ttl is None else int(ttl)
            self.tokens[tok] = {"expires": self.now() + ttl, "principal": principal,
                                "deny": list(deny), "source": source}
        return {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"}

    def expire_tokens(self, token=None):
        """Expire one token, or every token issued so far; returns how many."""
        with self._lock:
            n = 0
            for t, rec in self.tokens.items():
                if token is None or t == token:
                    rec["expires"] = self.now() - 1
                    n += 1
            return n

    @property
    def token_uri(self):
        return (self.url or "https://oauth2.invalid") + "/token"

    # faults ---------------------------------------------------------------------

    FAULT_KINDS = ("status", "latency", "hold", "drop", "truncate", "malformed", "bad_crc")

    def add_fault(self, kind="status", path=None, method=None, listener=None, secret=None,
                  count=None, skip=0, probability=1.0, seed=0, status=None, message=None,
                  grpc_status=None, headers=None, retry_after=None, latency_ms=0, body=None,
                  content_type=None, rst=False, truncate_at=None):
        if kind not in self.FAULT_KINDS:
            raise ValueError(f"kind must be one of {self.FAULT_KINDS}")
        with self._lock:
            self._fault_seq += 1
            self.faults.append({
                "id": self._fault_seq, "kind": kind, "path": path,
                "_re": re.compile(path) if path else None,
                "method": method.upper() if method else None, "listener": listener,
                "secret": secret, "_secret_re": re.compile(secret) if secret else None,
                "count": None if count is None else int(count), "skip": int(skip or 0),
                "probability": float(probability), "_rng": random.Random(seed),
                "status": None if status is None else int(status), "message": message,
                "grpc_status": grpc_status, "headers": dict(headers or {}),
                "retry_after": retry_after, "latency_ms": float(latency_ms or 0),
                "body": body, "content_type": content_type, "rst": bool(rst),
                "truncate_at": truncate_at, "_release": threading.Event(),
                "matched": 0, "fired": 0,
            })
            return self._fault_seq

    def clear_faults(self, fault_id=None):
        with self._lock:
            keep = []
            for f in self.faults:
                if fault_id is None or f["id"] == int(fault_id):
                    f["_release"].set()
                else:
                    keep.append(f)
            self.faults = keep

    def _match_fault(self, req):
        latency, holds, action = 0.0, [], None
        for f in self.faults:
            if f["_re"] is not None and not f["_re"].search(req.path):
                continue
            if f["method"] and f["method"] != req.method:
                continue
            if (f["listener"] or "main") != req.listener and f["listener"] != "any":
                continue
            if f["_secret_re"] is not None and not f["_secret_re"].search(req.secret or ""):
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
            if f["kind"] == "hold":
                holds.append(f)
            else:
                latency += f["latency_ms"] / 1000.0
            if f["kind"] not in ("latency", "hold"):
                action = f
        return latency, holds, action

    # counters -------------------------------------------------------------------

    def reset_counts(self):
        with self._lock:
            self._counts = {"total": 0, "connections": 0, "tls_handshake_failures": 0,
                            "admin_requests": 0, "faults_fired": 0, "in_flight": 0,
                            "in_flight_peak": 0, "endpoints": {}, "secrets": {},
                            "grants": {}, "statuses": {}}
            self._log = []
            self._seq = 0

    def endpoint_count(self, endpoint):
        with self._lock:
            return self._counts["endpoints"].get(endpoint, 0)

    def secret_count(self, project, id, op=None):
        with self._lock:
            d = self._counts["secrets"].get(f"{project}/{id}", {})
            return sum(d.values()) if op is None else d.get(op, 0)

    # ------------------------------------------------------------- lifecycle

    def info(self):
        return {"port": self.port, "url": self.url, "token_uri": self.token_uri,
                "metadata_port": self.metadata_port, "metadata_url": self.metadata_url,
                "metadata_host": (f"{self.host}:{self.metadata_port}"
                                  if self.metadata_port else None),
                "admin_port": self.admin_port, "admin_url": self.admin_url,
                "admin_token": self.admin_token, "pid": os.getpid()}

    # ---------------------------------------------------------- request path

    _SM_RE = re.compile(r"^/v1/projects/([^/]+)/secrets(?:/([^/:]+)"
                        r"(?:/versions/([^/:]+)(:access)?)?)?$")

    def _classify(self, req):
        if req.listener == "metadata":
            req.endpoint = "metadata " + req.path
            return
        if req.path == "/token":
            req.endpoint = "POST /token"
            return
        m = self._SM_RE.match(unquote(req.path))
        if not m:
            req.endpoint = f"{req.method} unknown"
            return
        req.project, req.secret, req.version, access = m.groups()
        req.endpoint = ("access" if access else "get_version" if req.version else
                        "get_secret" if req.secret else "list")

    def _request(self, method, url, headers, body, listener):
        req = _Req(method, url, headers, body, listener)
        self._classify(req)
        return req

    def _count(self, req):
        """Counts @req beyond total and endpoints (under the lock)."""
        if req.secret:
            c = self._counts
            d = c["secrets"].setdefault(f"{self._project_id(req.project)}/{req.secret}", {})
            d[req.endpoint] = d.get(req.endpoint, 0) + 1

    def _record(self, req, headers):
        """What the request log keeps of @req besides seq, times, status and fault."""
        return {"listener": req.listener, "method": req.method, "path": req.path,
                "query": req.query, "endpoint": req.endpoint, "project": req.project,
                "secret": req.secret, "version": req.version,
                "bearer_present": req.bearer is not None,
                "metadata_flavor": headers.get("Metadata-Flavor"),
                "user_agent": headers.get("User-Agent"),
                "x_goog_api_client": headers.get("x-goog-api-client")}

    def serve(self, method, url, headers, body, peer=None, listener="main"):
        """One non-admin request; returns (Resp, action) for aws_server's handler."""
        req = self._request(method, url, headers, body, listener)
        with self._lock:
            c = self._counts
            c["total"] += 1
            c["endpoints"][req.endpoint] = c["endpoints"].get(req.endpoint, 0) + 1
            self._count(req)
            c["in_flight"] += 1
            c["in_flight_peak"] = max(c["in_flight_peak"], c["in_flight"])
            self._seq += 1
            rec = {"seq": self._seq, "time": time.time(), "end": None, "status": None,
                   "fault": None, **self._record(req, headers)}
            self._log.append(rec)
            latency, holds, fault = self._match_fault(req)
        try:
            for h in holds:
                h["_release"].wait(h["latency_ms"] / 1000.0 if h["latency_ms"] else 120)
            if latency:
                time.sleep(latency)
            resp, action = self._respond(req, fault)
        finally:
            with self._lock:
                c["in_flight"] -= 1
                rec["end"] = time.time()
        with self._lock:
            rec["fault"] = fault["kind"] if fault else None
            st = "dropped" if action and action.get("drop") else str(resp.status)
            rec["status"] = st
            c["statuses"][st] = c["statuses"].get(st, 0) + 1
        return resp, action

    def _respond(self, req, f):
        if f is not None and f["kind"] == "drop":
            return None, {"drop": True, "rst": f["rst"]}
        if f is not None and f["kind"] == "status":
            return self._fault_status(f), None
        with self._lock:
            try:
                resp = self._dispatch(req, bad_crc=f is not None and f["kind"] == "bad_crc")
            except GcpError as e:
                resp = self._error(e)
            except OAuthError as e:
                resp = self._json(e.code, {"error": e.error, "error_description": e.description})
        if f is not None and f["kind"] == "truncate":
            n = len(resp.body) // 2 if f["truncate_at"] is None else int(f["truncate_at"])
            return resp, {"truncate": max(0, min(n, len(resp.body) - 1))}
        if f is not None and f["kind"] == "malformed":
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            if body is None:
                body = resp.body[: max(1, len(resp.body) // 2)] + b"\x00<<malformed>>"
            h = dict(resp.headers)
            if f["content_type"]:
                h["Content-Type"] = f["content_type"]
            return Resp(f["status"] or resp.status, body, h), None
        return resp, None

    def _fault_status(self, f):
        code = f["status"] or 503
        if f["body"] is not None:
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            r = Resp(code, body, {"Content-Type": f["content_type"] or JSON_CT})
        else:
            r = self._error(GcpError(code, f["message"] or DEFAULT_MESSAGE.get(code, "Error."),
                                     f["grpc_status"]))
        if f["retry_after"] is not None:
            r.headers["Retry-After"] = str(f["retry_after"])
        r.headers.update(f["headers"])
        return r

    @staticmethod
    def _json(code, obj, extra=None):
        h = {"Content-Type": JSON_CT, "Cache-Control": "private", "Vary": "X-Origin"}
        h.update(extra or {})
        return Resp(code, (json.dumps(obj, indent=2) + "\n").encode(), h)

    def _error(self, e):
        return self._json(e.code, {"error": {"code": e.code, "message": e.message,
                                             "status": e.status}}, e.headers)

    def _dispatch(self, req, bad_crc=False):
        if req.listener == "metadata":
            return self._metadata(req)
        if req.endpoint == "POST /token":
            if req.method != "POST":
                raise GcpError(405, "Method Not Allowed")
            return self._token(req)
        if req.project is None:
            raise GcpError(404, f"The requested URL {req.path} was not found on this server.")
        if req.method != "GET":
            raise GcpError(405, "Only GET is implemented by this test server.")
        principal = self._authenticate(req)
        pid = self._project_id(req.project)
        num = self.project_number(pid)
        if req.endpoint == "list":
            return self._list(req, pid, num)
        sname = f"projects/{num}/secrets/{req.secret}"
        s = self.secrets.get((pid, req.secret))
        perm = {"access": "secretmanager.versions.access", "get_version":
                "secretmanager.versions.get", "get_secret": "secretmanager.secrets.get"}
        if req.secret in principal["deny"]:
            raise GcpError(403, f"Permission '{perm[req.endpoint]}' denied for resource "
                           f"'{sname}' (or it may not exist).")
        if s is None:
            raise GcpError(404, f"Secret [{sname}] not found or has no versions.")
        if req.endpoint == "get_secret":
            return self._json(200, self._secret_json(sname, s))
        if req.version == "latest":
            if not s["versions"]:
                raise GcpError(404, f"Secret [{sname}] not found or has no versions.")
            n = max(s["versions"])
        elif req.version.isdigit() and int(req.version) in s["versions"]:
            n = int(req.version)
        else:
            raise GcpError(404, f"Secret Version [{sname}/versions/{req.version}] not found.")
        v = s["versions"][n]
        vname = f"{sname}/versions/{n}"
        if req.endpoint == "get_version":
            out = {"name": vname, "createTime": _rfc3339(v["created"]), "state": v["state"],
                   "replicationStatus": {"automatic": {}},
                   "etag": f'"{int(v["created"] * 1e6):x}"', "clientSpecifiedPayloadChecksum":
                   v["crc"]}
            if v["state"] == "DESTROYED":
                out["destroyTime"] = _rfc3339(v["created"])
            return self._json(200, out)
        if v["state"] != "ENABLED":
            raise GcpError(400, f"{vname} is in {v['state']} state.", "FAILED_PRECONDITION")
        payload = {"data": base64.b64encode(v["data"]).decode()}
        if v["crc"]:
            crc = crc32c(v["data"])
            payload["dataCrc32c"] = str(crc ^ 1 if bad_crc else crc)
        return self._json(200, {"name": vname, "payload": payload})

    def _secret_json(self, sname, s):
        return {"name": sname, "replication": {"automatic": {}},
                "createTime": _rfc3339(s["created"]), "etag": f'"{int(s["created"] * 1e6):x}"'}

    def _list(self, req, pid, num):
        try:
            size = int(req.query.get("pageSize") or 0)
            start = int(req.query["pageToken"], 36) if req.query.get("pageToken") else 0
        except ValueError:
            raise GcpError(400, "Invalid pageToken or pageSize.") from None
        if size <= 0:
            size = self.page_size
        size = min(size, 25000)
        ids = [i for (p, i) in self.secrets if p == pid]
        page = ids[start:start + size]
        out = {"secrets": [self._secret_json(f"projects/{num}/secrets/{i}",
                                             self.secrets[(pid, i)]) for i in page]}
        if not page:
            out = {}
        if start + size < len(ids):
            out["nextPageToken"] = _b36(start + size)
        out["totalSize"] = len(ids)
        return self._json(200, out)

    def _authenticate(self, req):
        t = self.tokens.get(req.bearer or "")
        if t is None or t["expires"] <= self.now():
            raise GcpError(401, MSG_UNAUTHENTICATED,
                           headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        return t

    # OAuth2 token URI ------------------------------------------------------------

    def _token(self, req):
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        grant = form.get("grant_type")
        self._counts["grants"][grant or "none"] = self._counts["grants"].get(grant or "none", 0) + 1
        if grant == JWT_BEARER:
            email, deny = self._verify_assertion(form.get("assertion") or "")
            return self._json(200, self.add_token(principal=email, deny=deny, source="jwt"))
        if grant == "refresh_token":
            u = self.users.get(form.get("refresh_token") or "")
            if u is None:
                raise OAuthError("invalid_grant", "Bad Request")
            if not (hmac.compare_digest(form.get("client_id", ""), u["client_id"]) and
                    hmac.compare_digest(form.get("client_secret", ""), u["client_secret"])):
                raise OAuthError("invalid_client", "Unauthorized", 401)
            out = self.add_token(principal=u["client_id"], deny=u["deny"], source="refresh")
            out["scope"] = SCOPE
            return self._json(200, out)
        raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant or ''}")

    def _verify_assertion(self, jwt):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        parts = jwt.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            sig = _b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived "
                             "token (60 minutes) and in a reasonable timeframe.") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        sa = self.service_accounts.get(claims.get("iss"))
        if sa is None:
            raise OAuthError("invalid_grant", "Invalid grant: account not found")
        if "kid" in header and header["kid"] != sa["key_id"]:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            sa["public_key"].verify(sig, (parts[0] + "." + parts[1]).encode(),
                                    padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        if claims.get("aud") != self.token_uri:
            raise OAuthError("invalid_grant", "Invalid JWT: Failed audience check. The right "
                             f"audience is {self.token_uri}")
        if not claims.get("scope"):
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience "
                             "provided.")
        now = self.now()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or
                iat > now + 300 or exp < now - 300 or exp <= iat):
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                             "(60 minutes) and in a reasonable timeframe. Check your iat and "
                             "exp values in the JWT claim.")
        return claims["iss"], sa["deny"]

    # metadata server ---------------------------------------------------------------

    def _metadata(self, req):
        h = {"Metadata-Flavor": "Google", "Content-Type": "application/json"}
        if not self.metadata["enabled"]:
            return Resp(404, b"Not Found\n", {"Content-Type": "text/plain"})
        if req.headers.get("Metadata-Flavor") != "Google":
            return Resp(403, b"Missing required header: Metadata-Flavor\n",
                        {"Content-Type": "text/html", "Metadata-Flavor": "Google"})
        sa = re.match(r"^/computeMetadata/v1/instance/service-accounts/([^/]+)/(.*)$", req.path)
        if sa and sa.group(1) not in ("default", self.metadata["email"]):
            sa = None
        if sa and sa.group(2) == "token":
            self._counts["grants"]["metadata"] = self._counts["grants"].get("metadata", 0) + 1
            out = self.add_token(principal=self.metadata["email"], deny=self.metadata["deny"],
                                 source="metadata")
            return Resp(200, json.dumps(out).encode(), h)
        if req.path in ("/", "/computeMetadata/v1/", "/computeMetadata/v1"):
            return Resp(200, b"", h)
        if sa and sa.group(2) == "":
            return Resp(200, json.dumps({"aliases": ["default"], "email": self.metadata["email"],
                                         "scopes": [SCOPE]}).encode(), h)
        if sa and sa.group(2) == "email":
            return Resp(200, self.metadata["email"].encode(), dict(h, **{
                "Content-Type": "application/text"}))
        return Resp(404, b"Not Found\n", {"Content-Type": "text/plain", "Metadata-Flavor": "Google"})

    # control API ------------------------------------------------------------------

    def _admin_faults_and_counts(self, m, path, a, q):
        """The control API's fault rules, counters and request log; _NOT_MINE otherwise."""
        if path == "/_test/fault" and m == "POST":
            return {"id": self.add_fault(**a)}
        if path in ("/_test/fault", "/_test/faults") and m == "DELETE":
            self.clear_faults(a.get("id", q.get("id")))
            return None
        if path == "/_test/faults/clear" and m == "POST":
            self.clear_faults(a.get("id"))
            return None
        if path == "/_test/faults" and m == "GET":
            return {"faults": self.list_faults()}
        if path == "/_test/counts" and m == "GET":
            return self.counts()
        if path == "/_test/reset-counts" and m == "POST":
            self.reset_counts()
            return None
        if path == "/_test/requests" and m == "GET":
            return {"requests": self.requests_log(int(q.get("since", 0)))}
        return _NOT_MINE

    def _admin_route(self, m, path, a, q):
        if path in ("/_test/health", "/_test/info"):
            return dict(self.info(), ok=True)
        if path == "/_test/help":
            return {"help": _ADMIN_HELP}
        if path == "/_test/config" and m == "POST":
            return self.configure(**a)
        if path == "/_test/reset" and m == "POST":
            self.reset()
            return None
        if path == "/_test/secret" and m == "POST":
            a = dict(a)
            return {"version": self.put_secret(a.pop("project"), a.pop("id"), **a)}
        if path == "/_test/secret" and m == "GET":
            st = self.secret_state(q["project"], q["id"])
            return st if st is not None else _admin_json(404, {"error": "no such secret"})
        if path == "/_test/secret/state" and m == "POST":
            self.set_version_state(a["project"], a["id"], a["version"], a["state"])
            return None
        if path == "/_test/secret/delete" and m == "POST":
            return {"ok": self.delete_secret(a["project"], a["id"])}
        if path == "/_test/secrets" and m == "GET":
            with self._lock:
                return {"secrets": [f"{p}/{i}" for (p, i) in self.secrets]}
        if path == "/_test/service-account" and m == "POST":
            return self.add_service_account(**a)
        if path == "/_test/authorized-user" and m == "POST":
            return self.add_authorized_user(**a)
        if path == "/_test/token" and m == "POST":
            return self.add_token(**a)
        if path == "/_test/token/expire" and m == "POST":
            return {"expired": self.expire_tokens(a.get("token"))}
        out = self._admin_faults_and_counts(m, path, a, q)
        if out is not _NOT_MINE:
            return out
        if path == "/_test/clock" and m == "POST":
            self.advance_clock(a.get("advance", 0))
            return {"offset": self.clock_offset, "now": self.now()}
        return _admin_json(404, {"error": f"no admin endpoint {m} {path}", "help": _ADMIN_HELP})


def _b36(n):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        n, r = divmod(n, 36)
        s = digits[r] + s
        if n == 0:
            return s


_ADMIN_HELP = """\
All requests need header X-Test-Admin: <admin token>; JSON bodies. Served on every listener.
GET  /_test/health | /_test/info  -> {ok, port, url, token_uri, metadata_url, metadata_host, admin_token}
POST /_test/config {page_size, token_ttl, metadata{enabled, email, deny}}
POST /_test/reset                 -> back to the startup config
POST /_test/secret {project, id, value | value_b64, state, data_crc32c} -> {version} (a new version)
GET  /_test/secret?project=P&id=S | GET /_test/secrets
POST /_test/secret/state {project, id, version, state: ENABLED|DISABLED|DESTROYED}
POST /_test/secret/delete {project, id}
POST /_test/service-account {client_email, project, deny:[secret ids]} -> service-account key file
POST /_test/authorized-user {deny}                   -> authorized_user credentials file
POST /_test/token {token, ttl, principal, deny}      -> {access_token, expires_in, token_type}
POST /_test/token/expire {token?}                    (no token = every token)
POST /_test/fault {kind: status|latency|hold|drop|truncate|malformed|bad_crc, path (regex),
                   method, listener (main|metadata|any), secret (regex), count, skip,
                   probability, seed, status, message, grpc_status, headers, retry_after,
                   latency_ms, body, content_type, rst, truncate_at}  -> {id}
GET  /_test/faults | DELETE /_test/faults | POST /_test/faults/clear {id?}
GET  /_test/counts | POST /_test/reset-counts | GET /_test/requests?since=SEQ
POST /_test/clock {advance: seconds}   (fake clock: token and JWT lifetimes)
"""


def spawn_server(script, name, cert, key, workdir, config=None, extra_args=(), python=None,
                 timeout=10):
    """Start test server @script (NAME.port, NAME.info.json in @workdir) as a subprocess;
    returns (Popen, info dict).  Shared with op_connect_server.py."""
    import subprocess

    os.makedirs(workdir, exist_ok=True)
    info_file = os.path.join(workdir, f"{name}.info.json")
    if os.path.exists(info_file):
        os.unlink(info_file)
    cmd = [python or sys.executable, script, "--cert", cert, "--key", key,
           "--port-file", os.path.join(workdir, f"{name}.port"), "--info-file", info_file]
    if config is not None:
        cmd += ["--config", config if isinstance(config, str) else json.dumps(config)]
    cmd += list(extra_args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(info_file):
            with open(info_file) as f:
                return proc, json.load(f)
        if proc.poll() is not None:
            raise RuntimeError(f"{os.path.basename(script)} exited: " +
                               proc.stderr.read().decode(errors="replace"))
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"{os.path.basename(script)} did not start in time")


def spawn_cli(cert, key, workdir, config=None, extra_args=(), python=None, timeout=10):
    """Start gcp_server.py as a subprocess; returns (Popen, info dict)."""
    return spawn_server(os.path.abspath(__file__), "gcp", cert, key, workdir, config,
                        extra_args, python, timeout)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Google Secret Manager test server, in memory")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--metadata-port", type=int, default=0)
    ap.add_argument("--metadata-port-file")
    ap.add_argument("--no-metadata", action="store_true")
    ap.add_argument("--info-file")
    ap.add_argument("--config", help="JSON text, or @FILE / FILE with JSON")
    ap.add_argument("--admin-token")
    ap.add_argument("--admin-token-file")
    ap.add_argument("--admin-port-file")
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    if not args.no_tls and (not args.cert or not args.key):
        ap.error("--cert and --key are required (or --no-tls)")
    srv = GcpServer(args.cert, args.key, host=args.host, port=args.port,
                    metadata_port=None if args.no_metadata else args.metadata_port,
                    config=load_config_arg(args.config), admin_token=args.admin_token,
                    admin_port=0 if args.admin_port_file else None, verbose=args.verbose,
                    tls=not args.no_tls)
    return serve_until_signalled(srv, args)


if __name__ == "__main__":
    sys.exit(main())
