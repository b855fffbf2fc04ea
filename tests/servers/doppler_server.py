#!/usr/bin/env python3
"""Doppler API v3 test server (in memory).

One HTTPS listener on 127.0.0.1 (TLS, HTTP/1.1 keep-alive) stands in for
https://api.doppler.com, as secretfs' doppler backend and npm
@dopplerhq/node-sdk use it:

  GET /v3/configs/config/secrets/download?format=json&project=&config=
      the whole config as one flat JSON object NAME -> computed value, with the
      Doppler-managed DOPPLER_PROJECT, DOPPLER_ENVIRONMENT and DOPPLER_CONFIG
      (include_managed_secrets=false leaves them out); an ETag, and
      If-None-Match with that ETag answers 304 with no body
  GET /v3/configs/config/secrets?project=&config=
      {"secrets": {NAME: {raw, computed, note, rawVisibility, computedVisibility}}, "success": true}
  GET /v3/configs/config/secret?project=&config=&name=
      {"name": NAME, "value": {raw, computed, note, ...}, "success": true}

Authentication: a service token, as `Authorization: Bearer TOKEN` (the SDK and
the API docs) or `Authorization: Basic base64(TOKEN:)` (the older form the CLI
and curl examples use).  A service token belongs to one project and config:
they may be left out of the query (the token implies them), and naming another
config is 403.  Errors are {"messages": ["..."], "success": false}: 401 for a
missing or unknown token, 403, 404 for an unknown project, config or secret,
429 with Retry-After and the x-ratelimit-* headers.

Computed values expand ${NAME} references within the config, as Doppler does.

The HTTP plumbing, fault actions (drop, truncate) and the admin front door are
aws_server.py's, shared rather than copied.  The control API is under /_test/
(header X-Test-Admin) on every listener; see README.md and _ADMIN_HELP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets as _secrets
import sys
import time
from urllib.parse import parse_qsl, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aws_server import AdminClient, AwsPlumbing, Resp, _admin_json, serve_cli  # noqa: E402
from gcp_server import _NOT_MINE, GcpError, GcpServer, spawn_server  # noqa: E402

__all__ = ["DopplerServer", "AdminClient", "spawn_cli"]

JSON_CT = "application/json; charset=utf-8"
NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
REF_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
MANAGED = ("DOPPLER_CONFIG", "DOPPLER_ENVIRONMENT", "DOPPLER_PROJECT")
ENDPOINTS = {"/v3/configs/config/secrets/download": "download",
             "/v3/configs/config/secrets": "list",
             "/v3/configs/config/secret": "get"}
DEFAULT_MESSAGE = {
    401: "Invalid Auth token",
    403: "This token does not have access to requested config",
    429: "You have exceeded the rate limit. Please wait and try again.",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class DopplerError(GcpError):
    """An error answer: {"messages": [message], "success": false} with status @code."""

    def __init__(self, code, message, headers=None):
        super().__init__(code, message, headers=headers)


class _Req:
    def __init__(self, method, url, headers, body, listener):
        self.method = method.upper()
        self.path = unquote(url.path or "/")
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.headers = headers
        self.body = body or b""
        self.listener = listener
        self.endpoint = ENDPOINTS.get(self.path.rstrip("/"), f"{self.method} unknown")
        self.secret = self.query.get("name")
        self.auth_form = None
        self.token = None
        auth = (headers.get("Authorization") or "").strip()
        if auth[:7].lower() == "bearer ":
            self.auth_form, self.token = "bearer", auth[7:].strip()
        elif auth[:6].lower() == "basic ":
            try:
                user = base64.b64decode(auth[6:].strip(), validate=True).decode()
                self.auth_form, self.token = "basic", user.split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                self.auth_form = "basic-malformed"


class DopplerServer(AwsPlumbing):
    """In-memory Doppler API v3: configs of secrets, service tokens, faults, counters."""

    def __init__(self, cert=None, key=None, *, host="127.0.0.1", port=0, config=None,
                 admin_token=None, admin_port=None, verbose=False, tls=True):
        # The Secret Manager server's attributes, without its metadata listener.
        GcpServer.__init__(self, cert, key, host=host, port=port, metadata_port=None,
                           config=config, admin_token=admin_token, admin_port=admin_port,
                           verbose=verbose, tls=tls)

    # ------------------------------------------------------------------ state

    def _apply_config(self, cfg):
        self.configs = {}  # (project, config) -> {"environment", "secrets": {name: raw}}
        self.tokens = {}   # token -> {"project", "config", "deny": [names]}
        for c in cfg.get("configs", []):
            self.put_config(c["project"], c["config"], c.get("secrets", {}),
                            c.get("environment"))
        for t in cfg.get("tokens", []):
            self.add_token(**t)

    def reset(self):
        with self._lock:
            self.clear_faults()
            self._apply_config(self._initial_config)
            self.reset_counts()

    def put_config(self, project, config, secrets=None, environment=None):
        with self._lock:
            c = self.configs.setdefault((project, config), {"secrets": {}})
            c["environment"] = environment or config.split("_")[0]
            for name, raw in (secrets or {}).items():
                self.put_secret(project, config, name, raw)

    def put_secret(self, project, config, name, raw):
        if not NAME_RE.match(name) or name in MANAGED:
            raise ValueError(f"secret name {name!r} is not one Doppler accepts")
        if not isinstance(raw, str):
            raise ValueError("a Doppler secret's value is a string")
        with self._lock:
            c = self.configs.setdefault((project, config),
                                        {"secrets": {}, "environment": config.split("_")[0]})
            c["secrets"][name] = raw

    def delete_secret(self, project, config, name):
        with self._lock:
            return self.configs.get((project, config), {}).get("secrets", {}).pop(name,
                                                                                 None) is not None

    def add_token(self, project, config, token=None, deny=()):
        token = token or f"dp.st.{config}.{_secrets.token_urlsafe(30)}"
        with self._lock:
            self.tokens[token] = {"project": project, "config": config, "deny": list(deny)}
        return {"token": token}

    def revoke_token(self, token):
        with self._lock:
            return self.tokens.pop(token, None) is not None

    def computed(self, project, config):
        """NAME -> {raw, computed}: ${NAME} references expanded (one level, as stored)."""
        c = self.configs[(project, config)]
        out = {}
        for name, raw in c["secrets"].items():
            out[name] = {"raw": raw, "computed": REF_RE.sub(
                lambda m: c["secrets"].get(m.group(1), m.group(0)), raw)}
        for name, v in (("DOPPLER_PROJECT", project), ("DOPPLER_CONFIG", config),
                        ("DOPPLER_ENVIRONMENT", c["environment"])):
            out[name] = {"raw": v, "computed": v, "managed": True}
        return out

    # faults ---------------------------------------------------------------------

    FAULT_KINDS = ("status", "latency", "hold", "drop", "truncate", "malformed")

    # Rules, their matching and their release are the Secret Manager server's
    # (a rule's `secret` regex matches the `name` a get asks for).
    add_fault = GcpServer.add_fault
    clear_faults = GcpServer.clear_faults
    _match_fault = GcpServer._match_fault

    # counters -------------------------------------------------------------------

    def reset_counts(self):
        with self._lock:
            self._counts = {"total": 0, "connections": 0, "tls_handshake_failures": 0,
                            "admin_requests": 0, "faults_fired": 0, "in_flight": 0,
                            "in_flight_peak": 0, "endpoints": {},
                            "auth_forms": {}, "statuses": {}}
            self._log = []
            self._seq = 0

    def endpoint_count(self, endpoint):
        with self._lock:
            return self._counts["endpoints"].get(endpoint, 0)

    # ------------------------------------------------------------- lifecycle

    def info(self):
        return {"port": self.port, "url": self.url, "admin_port": self.admin_port,
                "admin_url": self.admin_url, "admin_token": self.admin_token,
                "pid": os.getpid()}

    # ---------------------------------------------------------- request path

    # The request path (count, log, faults, answer) is the Secret Manager
    # server's, with these three hooks.
    serve = GcpServer.serve
    _admin_faults_and_counts = GcpServer._admin_faults_and_counts

    def _request(self, method, url, headers, body, listener):
        return _Req(method, url, headers, body, listener)

    def _count(self, req):
        form = req.auth_form or "none"
        self._counts["auth_forms"][form] = self._counts["auth_forms"].get(form, 0) + 1

    def _record(self, req, headers):
        return {"listener": req.listener, "method": req.method, "path": req.path,
                "query": req.query, "endpoint": req.endpoint, "auth_form": req.auth_form,
                "if_none_match": headers.get("If-None-Match"),
                "user_agent": headers.get("User-Agent")}

    # A fault's action (drop, truncate, malformed) or the answer: the Secret
    # Manager server's, with DopplerError a GcpError that _error() renders.
    _respond = GcpServer._respond

    def _fault_status(self, f):
        code = f["status"] or 503
        if f["body"] is not None:
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            r = Resp(code, body, {"Content-Type": f["content_type"] or JSON_CT})
        else:
            r = self._error(DopplerError(code, f["message"] or DEFAULT_MESSAGE.get(code,
                                                                                 "Error")))
        if code == 429:
            r.headers.update({"x-ratelimit-limit": "480", "x-ratelimit-remaining": "0",
                              "x-ratelimit-reset": str(int(time.time()) + 1)})
        if f["retry_after"] is not None:
            r.headers["Retry-After"] = str(f["retry_after"])
        r.headers.update(f["headers"])
        return r

    @staticmethod
    def _json(code, obj, extra=None):
        h = {"Content-Type": JSON_CT}
        h.update(extra or {})
        return Resp(code, json.dumps(obj).encode(), h)

    def _error(self, e):
        return self._json(e.code, {"messages": [e.message], "success": False}, e.headers)

    def _authenticate(self, req):
        """The (project, config) the request reads, checked against the token."""
        if req.token is None:
            raise DopplerError(401, "Invalid Auth token")
        t = self.tokens.get(req.token)
        if t is None:
            raise DopplerError(401, "Invalid Auth token")
        project = req.query.get("project") or t["project"]
        config = req.query.get("config") or t["config"]
        if (project, config) != (t["project"], t["config"]):
            raise DopplerError(403, DEFAULT_MESSAGE[403])
        if (project, config) not in self.configs:
            raise DopplerError(404, f"Could not find requested config '{config}'")
        return t, project, config

    def _dispatch(self, req, bad_crc=False):
        if req.endpoint.endswith("unknown"):
            raise DopplerError(404, "Not Found")
        if req.method != "GET":
            raise DopplerError(405, "Only GET is implemented by this test server.")
        t, project, config = self._authenticate(req)
        values = self.computed(project, config)
        if req.endpoint == "download":
            fmt = req.query.get("format", "json")
            if fmt != "json":
                raise DopplerError(400, f"This test server only serves format=json, not {fmt}")
            managed = req.query.get("include_managed_secrets", "true").lower() != "false"
            doc = {n: v["computed"] for n, v in sorted(values.items())
                   if n not in t["deny"] and (managed or not v.get("managed"))}
            body = json.dumps(doc, indent=2).encode()
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:32]
            inm = req.headers.get("If-None-Match")
            if inm and etag in [x.strip() for x in inm.split(",")]:
                return Resp(304, b"", {"ETag": etag})
            return Resp(200, body, {"Content-Type": JSON_CT, "ETag": etag})
        if req.endpoint == "list":
            out = {}
            for n, v in values.items():
                if v.get("managed") and req.query.get("include_managed_secrets",
                                                      "true").lower() == "false":
                    continue
                vis = "restricted" if n in t["deny"] else "masked"
                out[n] = {"raw": None if n in t["deny"] else v["raw"],
                          "computed": None if n in t["deny"] else v["computed"],
                          "note": "", "rawVisibility": vis, "computedVisibility": vis}
            return self._json(200, {"secrets": out, "success": True})
        name = req.query.get("name")
        if not name or name not in values:
            raise DopplerError(404, "Could not find requested secret")
        if name in t["deny"]:
            raise DopplerError(403, "You do not have access to this secret")
        v = values[name]
        return self._json(200, {"name": name, "value": {
            "raw": v["raw"], "computed": v["computed"], "note": "", "rawVisibility": "masked",
            "computedVisibility": "masked"}, "success": True})

    # control API ------------------------------------------------------------------

    def _admin_route(self, m, path, a, q):
        if path in ("/_test/health", "/_test/info"):
            return dict(self.info(), ok=True)
        if path == "/_test/help":
            return {"help": _ADMIN_HELP}
        if path == "/_test/reset" and m == "POST":
            self.reset()
            return None
        if path == "/_test/config" and m == "POST":
            self.put_config(a["project"], a["config"], a.get("secrets"), a.get("environment"))
            return None
        if path == "/_test/secret" and m == "POST":
            self.put_secret(a["project"], a["config"], a["name"], a["value"])
            return None
        if path == "/_test/secret/delete" and m == "POST":
            return {"ok": self.delete_secret(a["project"], a["config"], a["name"])}
        if path == "/_test/token" and m == "POST":
            return self.add_token(**a)
        if path == "/_test/token/revoke" and m == "POST":
            return {"ok": self.revoke_token(a["token"])}
        out = self._admin_faults_and_counts(m, path, a, q)
        if out is not _NOT_MINE:
            return out
        return _admin_json(404, {"error": f"no admin endpoint {m} {path}", "help": _ADMIN_HELP})


_ADMIN_HELP = """\
All requests need header X-Test-Admin: <admin token>; JSON bodies. Served on every listener.
GET  /_test/health | /_test/info  -> {ok, port, url, admin_token}
POST /_test/reset                 -> back to the startup config
POST /_test/config {project, config, secrets{NAME: raw}, environment}
POST /_test/secret {project, config, name, value}   (value is the raw value; ${X} references)
POST /_test/secret/delete {project, config, name}
POST /_test/token {project, config, token?, deny:[names]} -> {token}
POST /_test/token/revoke {token}
POST /_test/fault {kind: status|latency|hold|drop|truncate|malformed, path (regex), method,
                   secret (regex on the name a get asks for), count, skip, probability, seed, status, message, headers, retry_after,
                   latency_ms, body, content_type, rst, truncate_at}  -> {id}
GET  /_test/faults | DELETE /_test/faults | POST /_test/faults/clear {id?}
GET  /_test/counts | POST /_test/reset-counts | GET /_test/requests?since=SEQ
Startup config (--config): {"configs": [{project, config, environment, secrets{}}],
                            "tokens": [{project, config, token, deny}]}
"""


def spawn_cli(cert, key, workdir, config=None, extra_args=(), python=None, timeout=10):
    """Start doppler_server.py as a subprocess; returns (Popen, info dict)."""
    return spawn_server(os.path.abspath(__file__), "doppler", cert, key, workdir, config,
                        extra_args, python, timeout)


def main(argv=None):
    return serve_cli(DopplerServer, "Doppler API v3 test server, in memory", argv)


if __name__ == "__main__":
    sys.exit(main())
