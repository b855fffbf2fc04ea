#!/usr/bin/env python3
"""Protocol-faithful HashiCorp Vault test server (Python standard library only).

Serves a subset of Vault's HTTP API over HTTPS on 127.0.0.1 with in-memory
state, so that secretfs' C Vault backend can be tested without a real Vault.
Response envelopes, status codes and error bodies follow Vault's own code and
API docs (see /work/shared/fixtures/vault and tests/servers/README.md); the
server is checked against Vault's client library hvac by test_vault_server.py.

Implemented Vault endpoints (all also reachable under a namespace, via the
X-Vault-Namespace header and/or a /v1/<namespace>/... path prefix):

  KV v2  GET|POST|PUT|PATCH|DELETE  /v1/M/data/P      (GET ?version=N)
         GET|POST|PATCH|DELETE|LIST /v1/M/metadata/P  (LIST == GET ?list=true)
         POST|PUT /v1/M/delete/P, /v1/M/undelete/P, /v1/M/destroy/P {versions}
         GET /v1/M/subkeys/P, GET|POST /v1/M/config
  KV v1  GET|POST|PUT|DELETE|LIST   /v1/M/P
  sys    GET /v1/sys/internal/ui/mounts/PATH, GET /v1/sys/health
  token  GET|POST /v1/auth/token/lookup-self, POST renew-self, revoke-self,
         POST lookup {token}, POST create
  AppRole (mount "approle" by default): POST /v1/auth/A/login,
         LIST role, GET role/R, GET role/R/role-id, POST role/R/secret-id,
         POST role/R/secret-id/lookup
  Kubernetes (mount "kubernetes" by default): POST /v1/auth/K/login,
         LIST role, GET role/R

Test-only control API under /_test/ (header X-Test-Admin: <admin token>);
see README.md in this directory or ``_ADMIN_HELP`` below.

Use as a module::

    vs = VaultServer(cert="server.pem", key="server.key")
    vs.start()                       # vs.port, vs.url, vs.root_token
    vs.put_secret("secret", "app/db", {"password": "x"})
    ...
    vs.stop()

or as a CLI::

    vault_server.py --cert C --key K --port-file F [--config JSON|@FILE]
                    [--info-file F] [--admin-token T] [--admin-token-file F]
                    [--client-ca CA --require-client-cert]
                    [--admin-port-file F] [--port N] [--verbose]
"""

from __future__ import annotations

import argparse
import copy
import hmac
import http.server
import json
import math
import os
import random
import re
import secrets as _secrets
import signal
import socket
import ssl
import string
import struct
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["VaultServer", "AdminClient", "spawn_cli", "VaultError"]

DEFAULT_LEASE_TTL = 2764800  # 768h, Vault's system default_lease_ttl
MAX_LEASE_TTL = 2764800  # 768h, Vault's system max_lease_ttl
KV_PLUGIN_VERSION = "v0.16.1+builtin"
VAULT_VERSION = "1.15.6"
ENVELOPE_KEYS = (
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
    "mount_type",
)
_B62 = string.ascii_letters + string.digits


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class VaultError(Exception):
    """Raised inside handlers; becomes {"errors": [...]} with `status`."""

    def __init__(self, status, errors=None, headers=None):
        super().__init__(status, errors)
        self.status = status
        self.errors = [] if errors is None else list(errors)
        self.headers = headers or {}


class Resp:
    """An HTTP response to be written by the handler."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}


def _rand62(n):
    return "".join(_secrets.choice(_B62) for _ in range(n))


def new_token_id():
    return "hvs." + _rand62(24)


def new_uuid():
    return str(uuid.uuid4())


def fmt_time(t):
    """RFC3339Nano in UTC the way Go prints it (trailing zeros trimmed)."""
    if t is None:
        return ""
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_DUR_MULT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(v):
    """Vault's parseutil.ParseDurationSecond: int seconds or Go duration."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool):
        raise ValueError("invalid duration")
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).strip()
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    total, pos = 0.0, 0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            raise ValueError(f"invalid duration {s!r}")
        total += float(m.group(1)) * _DUR_MULT[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"time: invalid duration {s!r}")
    return int(total)


def go_duration(sec):
    """time.Duration(sec*1e9).String() for whole seconds."""
    sec = int(sec)
    if sec == 0:
        return "0s"
    sign = "-" if sec < 0 else ""
    sec = abs(sec)
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def sort_rec(v):
    """Go's encoding/json sorts map keys; mimic that for data members."""
    if isinstance(v, dict):
        return {k: sort_rec(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [sort_rec(x) for x in v]
    return v


def go_json(obj):
    """Serialise like Go's json.Encoder (compact, HTML-escaped, newline)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = (
        s.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return (s + "\n").encode("utf-8")


def json_resp(status, obj, headers=None):
    h = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if headers:
        h.update(headers)
    return Resp(status, go_json(obj), h)


def no_content():
    return Resp(204, None, {"Content-Type": "application/json", "Cache-Control": "no-store"})


def error_resp(status, errors, headers=None):
    return json_resp(status, {"errors": list(errors)}, headers)


def envelope(data=None, *, auth=None, warnings=None, lease_duration=0, renewable=False,
             lease_id="", mount_type="", request_id=None):
    """Vault's logical.HTTPResponse, keys in Vault's order."""
    return {
        "request_id": request_id or new_uuid(),
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": sort_rec(data) if data is not None else None,
        "wrap_info": None,
        "warnings": warnings if warnings else None,
        "auth": auth,
        "mount_type": mount_type,
    }


def _norm_ns(ns):
    return (ns or "").strip().strip("/")


def _ns_prefix(ns):
    return ns + "/" if ns else ""


def _bool(v, default=False):
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return bool(v)
    return str(v).strip().lower() in ("1", "t", "true", "yes", "y", "on")


# --------------------------------------------------------------------------
# state objects
# --------------------------------------------------------------------------


class KVMount:
    def __init__(self, path, version=2, default_lease_ttl=None, options=None, description=None,
                 max_versions=0, cas_required=False, delete_version_after=0,
                 hide_from_ui_mounts=False):
        self.path = path.strip("/")
        self.version = int(version)
        self.default_lease_ttl = default_lease_ttl  # None -> server default
        self.options = {"version": str(self.version)} if options is None else options
        self.description = (
            description if description is not None
            else ("key/value secret storage" if self.version == 2 else "")
        )
        self.accessor = "kv_" + _secrets.token_hex(4)
        self.uuid = new_uuid()
        self.max_versions = int(max_versions or 0)
        self.cas_required = bool(cas_required)
        self.delete_version_after = parse_duration(delete_version_after)
        self.hide_from_ui_mounts = bool(hide_from_ui_mounts)
        self.kv1 = {}  # path -> dict
        self.kv2 = {}  # path -> KV2Meta

    def describe(self):
        return {
            "accessor": self.accessor,
            "config": {"default_lease_ttl": 0, "force_no_cache": False, "max_lease_ttl": 0},
            "description": self.description,
            "external_entropy_access": False,
            "local": False,
            "options": self.options,
            "path": self.path + "/",
            "plugin_version": "",
            "running_plugin_version": KV_PLUGIN_VERSION,
            "running_sha256": "",
            "seal_wrap": False,
            "type": "kv",
            "uuid": self.uuid,
        }


class KV2Meta:
    def __init__(self, now):
        self.current_version = 0
        self.oldest_version = 0
        self.created_time = now
        self.updated_time = now
        self.versions = {}  # int -> {"created", "deletion", "destroyed", "data"}
        self.max_versions = 0
        self.cas_required = False
        self.delete_version_after = 0
        self.custom_metadata = None


class AppRoleMount:
    def __init__(self, path):
        self.path = path.strip("/")
        self.roles = {}  # name -> dict


class K8sMount:
    def __init__(self, path):
        self.path = path.strip("/")
        self.roles = {}  # name -> dict


class Namespace:
    def __init__(self, path):
        self.path = path
        self.id = "root" if not path else _rand62(5)
        self.mounts = {}  # path -> KVMount
        self.approle = {}  # mount path (e.g. "approle") -> AppRoleMount
        self.kubernetes = {}  # mount path -> K8sMount


class Token:
    def __init__(self, **kw):
        self.id = kw.get("id") or new_token_id()
        self.accessor = kw.get("accessor") or _rand62(24)
        self.policies = list(kw.get("policies") or ["default"])
        self.acl = kw.get("acl")  # None = unrestricted unless policies define rules
        self.namespace = _norm_ns(kw.get("namespace"))
        self.creation_time = kw["now"]
        self.issue_time = kw["now"]
        self.creation_ttl = int(kw.get("ttl", 0))
        self.renew_ttl = self.creation_ttl
        self.expire_at = kw["now"] + self.creation_ttl if self.creation_ttl > 0 else None
        self.renewable = bool(kw.get("renewable", True))
        self.explicit_max_ttl = int(kw.get("explicit_max_ttl", 0) or 0)
        self.max_ttl = int(kw.get("max_ttl", 0) or 0)
        self.period = int(kw.get("period", 0) or 0)
        self.num_uses = int(kw.get("num_uses", 0) or 0)
        self.meta = kw.get("meta")
        self.display_name = kw.get("display_name") or "token"
        self.path = kw.get("path") or "auth/token/create"
        self.orphan = bool(kw.get("orphan", True))
        self.parent = kw.get("parent")
        self.entity_id = kw.get("entity_id", "")
        self.identity_policies = kw.get("identity_policies")
        self.role = kw.get("role")
        self.last_renewal = None
        self.token_type = "service"
        self.mount_type = kw.get("mount_type", "token")


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------


class _Req:
    """Parsed request, filled in by VaultServer._resolve()."""

    def __init__(self, method, url, headers, body, peer, has_client_cert):
        self.method = method.upper()
        self.raw_path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.query_string = url.query
        self.headers = headers
        self.body = body
        self.peer = peer
        self.has_client_cert = has_client_cert
        self.op = None
        self.ns = ""
        self.rel = ""
        self.route = None
        self.endpoint = None
        self.secret_key = None
        self.secret_op = None
        self._json = None
        self._json_done = False
        self.token = None
        self.resolve_error = None
        self.holds = []
        self.x_vault_request = headers.get("X-Vault-Request") is not None

    def json(self):
        """Body as dict (None if empty). Raises VaultError(400) when invalid."""
        if self._json_done:
            return self._json
        self._json_done = True
        if not self.body or not self.body.strip():
            self._json = None
            return None
        try:
            obj = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise VaultError(400, [f"failed to parse JSON input: {e}"])
        if not isinstance(obj, dict):
            raise VaultError(400, [
                "failed to parse JSON input: json: cannot unmarshal "
                f"{type(obj).__name__} into Go value of type map[string]interface {{}}"
            ])
        self._json = obj
        return obj


class VaultServer:
    """In-memory Vault test server. See module docstring."""

    def __init__(self, cert=None, key=None, *, host="127.0.0.1", port=0, config=None,
                 client_ca=None, require_client_cert=False, admin_token=None,
                 admin_port=None, verbose=False, tls=True):
        if tls and (not cert or not key):
            raise ValueError("cert and key are required unless tls=False")
        self.cert, self.key = cert, key
        self.host, self._want_port = host, port
        self.client_ca = client_ca
        self.require_client_cert = require_client_cert
        self.tls = tls
        self.admin_token = admin_token or _secrets.token_hex(16)
        self.verbose = verbose
        self._admin_port_wanted = admin_port
        self._initial_config = copy.deepcopy(config or {})
        self._lock = threading.RLock()
        self._in_flight = 0  # /v1 requests being answered (not reset by reset_counts)
        self._httpd = None
        self._admin_httpd = None
        self._threads = []
        self._conns = set()
        self._conns_lock = threading.Lock()
        self.port = None
        self.admin_port = None
        self._apply_config(self._initial_config, fresh=True)

    # ------------------------------------------------------------------ setup

    def _apply_config(self, cfg, fresh=False):
        with self._lock:
            if fresh:
                self.clock_offset = 0.0
                self.namespaces = {"": Namespace("")}
                self.tokens = {}
                self.policies = {}
                for f in getattr(self, "faults", []):
                    f["_release"].set()
                self.faults = []
                self._fault_seq = 0
                self.require_request_header = False
                self.error_style = "simple"
                self.default_lease_ttl = DEFAULT_LEASE_TTL
                self.max_lease_ttl = MAX_LEASE_TTL
                self.reset_counts()
                self.root_token = cfg.get("root_token") or new_token_id()
                self._add_token(id=self.root_token, policies=["root"], ttl=0, renewable=False,
                                display_name="root", path="auth/token/root", orphan=True)
                if cfg.get("default_mounts", True):
                    self.add_mount("secret", version=2)
                    self.add_mount("kv", version=1)
                    self.add_approle_mount("approle")
                    self.add_kubernetes_mount("kubernetes")
            self.configure(**{k: cfg[k] for k in ("require_request_header", "error_style",
                                                  "default_lease_ttl", "max_lease_ttl")
                              if k in cfg})
            for ns in cfg.get("namespaces", []):
                self.add_namespace(ns)
            for m in cfg.get("mounts", []):
                m = dict(m)
                self.add_mount(m.pop("path"), **m)
            for name, rules in (cfg.get("policies") or {}).items():
                self.add_policy(name, rules)
            for s in cfg.get("secrets", []):
                s = dict(s)
                self.put_secret(s.pop("mount"), s.pop("path"), s.pop("data"), **s)
            for t in cfg.get("tokens", []):
                self.create_token(**t)
            for r in cfg.get("approle", []):
                self.add_approle_role(**r)
            for r in cfg.get("kubernetes", []):
                self.add_kubernetes_role(**r)
            for f in cfg.get("faults", []):
                self.add_fault(**f)

    def now(self):
        return time.time() + self.clock_offset

    def advance_clock(self, seconds):
        """Move the server's notion of time forward (token TTLs, deletion times)."""
        with self._lock:
            self.clock_offset += float(seconds)
            return self.clock_offset

    def configure(self, require_request_header=None, error_style=None, default_lease_ttl=None,
                  max_lease_ttl=None):
        with self._lock:
            if require_request_header is not None:
                self.require_request_header = _bool(require_request_header)
            if error_style is not None:
                if error_style not in ("simple", "multierror"):
                    raise ValueError("error_style must be 'simple' or 'multierror'")
                self.error_style = error_style
            if default_lease_ttl is not None:
                self.default_lease_ttl = parse_duration(default_lease_ttl)
            if max_lease_ttl is not None:
                self.max_lease_ttl = parse_duration(max_lease_ttl)

    def reset(self):
        """Back to the initial configuration (state, tokens, faults, counts, clock)."""
        self._apply_config(self._initial_config, fresh=True)

    # namespaces / mounts -------------------------------------------------

    def add_namespace(self, path):
        path = _norm_ns(path)
        with self._lock:
            parts = path.split("/") if path else []
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p not in self.namespaces:
                    self.namespaces[p] = Namespace(p)
            return self.namespaces[path]

    def _ns(self, namespace, create=False):
        namespace = _norm_ns(namespace)
        if namespace not in self.namespaces:
            if not create:
                raise KeyError(f"no such namespace {namespace!r}")
            self.add_namespace(namespace)
        return self.namespaces[namespace]

    def add_mount(self, path, version=2, namespace="", ttl=None, default_lease_ttl=None, **kw):
        with self._lock:
            ns = self._ns(namespace, create=True)
            dl = default_lease_ttl if default_lease_ttl is not None else ttl
            m = KVMount(path, version=version,
                        default_lease_ttl=None if dl is None else parse_duration(dl), **kw)
            ns.mounts[m.path] = m
            return m

    def remove_mount(self, path, namespace=""):
        with self._lock:
            self._ns(namespace).mounts.pop(path.strip("/"), None)

    def mount(self, path, namespace=""):
        return self._ns(namespace).mounts[path.strip("/")]

    def add_approle_mount(self, path="approle", namespace=""):
        with self._lock:
            ns = self._ns(namespace, create=True)
            path = path.strip("/")
            if path not in ns.approle:
                ns.approle[path] = AppRoleMount(path)
            return ns.approle[path]

    def add_kubernetes_mount(self, path="kubernetes", namespace=""):
        with self._lock:
            ns = self._ns(namespace, create=True)
            path = path.strip("/")
            if path not in ns.kubernetes:
                ns.kubernetes[path] = K8sMount(path)
            return ns.kubernetes[path]

    # secrets --------------------------------------------------------------

    def put_secret(self, mount, path, data, namespace="", custom_metadata=None):
        """Write a secret as a client would (KV v2: new version). Returns version (v2)."""
        with self._lock:
            m = self.mount(mount, namespace)
            path = path.strip("/")
            if m.version == 1:
                m.kv1[path] = copy.deepcopy(data)
                return None
            meta = m.kv2.get(path)
            if meta is None:
                meta = m.kv2[path] = KV2Meta(self.now())
            if custom_metadata is not None:
                meta.custom_metadata = dict(custom_metadata)
            return self._kv2_add_version(m, meta, data)

    def get_secret_state(self, mount, path, namespace=""):
        """Raw stored state (for assertions on what a client wrote)."""
        with self._lock:
            m = self.mount(mount, namespace)
            path = path.strip("/")
            if m.version == 1:
                if path not in m.kv1:
                    return None
                return {"version": 1, "data": copy.deepcopy(m.kv1[path])}
            meta = m.kv2.get(path)
            if meta is None:
                return None
            now = self.now()
            return {
                "version": 2,
                "current_version": meta.current_version,
                "oldest_version": meta.oldest_version,
                "custom_metadata": copy.deepcopy(meta.custom_metadata),
                "versions": {
                    str(n): {
                        "data": copy.deepcopy(v["data"]),
                        "created_time": fmt_time(v["created"]),
                        "deletion_time": fmt_time(v["deletion"]),
                        "deleted": v["deletion"] is not None and v["deletion"] <= now,
                        "destroyed": v["destroyed"],
                    }
                    for n, v in sorted(meta.versions.items())
                },
                "data": (
                    copy.deepcopy(meta.versions[meta.current_version]["data"])
                    if meta.current_version in meta.versions else None
                ),
            }

    def delete_secret(self, mount, path, namespace="", mode="soft", versions=None):
        """mode: soft (KV v2 soft delete), destroy, metadata (remove everything)."""
        with self._lock:
            m = self.mount(mount, namespace)
            path = path.strip("/")
            if m.version == 1 or mode == "metadata":
                (m.kv1 if m.version == 1 else m.kv2).pop(path, None)
                return
            meta = m.kv2.get(path)
            if meta is None:
                return
            vs = versions or [meta.current_version]
            for n in vs:
                v = meta.versions.get(int(n))
                if v is None:
                    continue
                if mode == "destroy":
                    v["destroyed"] = True
                    v["data"] = None
                elif not v["destroyed"] and v["deletion"] is None:
                    v["deletion"] = self.now()

    def _kv2_add_version(self, m, meta, data):
        now = self.now()
        dva = meta.delete_version_after or m.delete_version_after
        meta.current_version += 1
        meta.versions[meta.current_version] = {
            "created": now,
            "deletion": now + dva if dva > 0 else None,
            "destroyed": False,
            "data": copy.deepcopy(data),
        }
        meta.updated_time = now
        if meta.created_time is None:
            meta.created_time = now
        maxv = meta.max_versions or m.max_versions or 10
        if meta.current_version - meta.oldest_version >= maxv:
            to_delete = meta.current_version - maxv
            for i in range(meta.oldest_version, to_delete + 1):
                meta.versions.pop(i, None)
            meta.oldest_version = to_delete + 1
        return meta.current_version

    # tokens / policies ---------------------------------------------------

    def add_policy(self, name, rules):
        """rules: list of ACL entries (see README: strings = prefixes)."""
        with self._lock:
            self.policies[name] = list(rules)

    def _add_token(self, **kw):
        kw.setdefault("now", self.now())
        t = Token(**kw)
        self.tokens[t.id] = t
        return t

    def create_token(self, id=None, policies=None, acl=None, ttl=None, renewable=True,
                     explicit_max_ttl=0, max_ttl=0, period=0, num_uses=0, namespace="",
                     meta=None, display_name="token", no_default_policy=False,
                     entity_id="", identity_policies=None, path="auth/token/create",
                     orphan=True, **_ignored):
        """Create a token directly. ttl: seconds or duration; 0 = never expires.

        Returns {"token": id, "accessor": accessor}.
        """
        with self._lock:
            pol = list(policies) if policies is not None else []
            if "root" not in pol and not no_default_policy and "default" not in pol:
                pol.append("default")
            pol = sorted(set(pol))
            ttl_s = self.default_lease_ttl if ttl is None else parse_duration(ttl)
            emt = parse_duration(explicit_max_ttl)
            if emt and ttl_s > emt:
                ttl_s = emt
            t = self._add_token(id=id, policies=pol, acl=acl, ttl=ttl_s, renewable=renewable,
                                explicit_max_ttl=emt, max_ttl=parse_duration(max_ttl),
                                period=parse_duration(period), num_uses=num_uses,
                                namespace=namespace, meta=meta, display_name=display_name,
                                entity_id=entity_id, identity_policies=identity_policies,
                                path=path, orphan=orphan)
            return {"token": t.id, "accessor": t.accessor}

    def revoke_token(self, token):
        with self._lock:
            t = self.tokens.pop(token, None)
            if t is None:
                return False
            for child in [c for c in self.tokens.values() if c.parent == t.id]:
                self.revoke_token(child.id)
            return True

    def expire_token(self, token):
        with self._lock:
            t = self.tokens.get(token)
            if t is None:
                return False
            t.expire_at = self.now() - 1
            return True

    def token_info(self, token):
        with self._lock:
            t = self.tokens.get(token)
            if t is None:
                return None
            return self._lookup_data(t)

    # auth roles -----------------------------------------------------------

    def add_approle_role(self, role_name, role_id=None, secret_id=None, secret_id_num_uses=0,
                         secret_ids=None, token_ttl=0, token_max_ttl=0, token_policies=None,
                         policies=None, acl=None, bind_secret_id=True, token_num_uses=0,
                         token_period=0, secret_id_ttl=0, mount="approle", namespace="",
                         token_explicit_max_ttl=0, token_no_default_policy=False):
        """Create/replace an AppRole role. Returns {"role_id", "secret_ids": [...]}."""
        with self._lock:
            am = self.add_approle_mount(mount, namespace)
            role = {
                "name": role_name,
                "role_id": role_id or new_uuid(),
                "bind_secret_id": _bool(bind_secret_id, True),
                "secret_id_num_uses": int(secret_id_num_uses or 0),
                "secret_id_ttl": parse_duration(secret_id_ttl),
                "token_ttl": parse_duration(token_ttl),
                "token_max_ttl": parse_duration(token_max_ttl),
                "token_explicit_max_ttl": parse_duration(token_explicit_max_ttl),
                "token_policies": list(token_policies or policies or []),
                "token_num_uses": int(token_num_uses or 0),
                "token_period": parse_duration(token_period),
                "token_no_default_policy": bool(token_no_default_policy),
                "acl": acl,
                "secret_ids": {},
            }
            am.roles[role_name] = role
            out = []
            if secret_id is not None:
                out.append(self._approle_add_secret_id(role, secret_id, secret_id_num_uses))
            for s in secret_ids or []:
                if isinstance(s, str):
                    out.append(self._approle_add_secret_id(role, s, secret_id_num_uses))
                else:
                    out.append(self._approle_add_secret_id(
                        role, s.get("secret_id"), s.get("num_uses", secret_id_num_uses),
                        s.get("ttl"), s.get("metadata")))
            return {"role_id": role["role_id"], "secret_ids": out}

    def add_approle_secret_id(self, role_name, secret_id=None, num_uses=None, ttl=None,
                              metadata=None, mount="approle", namespace=""):
        with self._lock:
            role = self._ns(namespace).approle[mount.strip("/")].roles[role_name]
            return self._approle_add_secret_id(role, secret_id, num_uses, ttl, metadata)

    def _approle_add_secret_id(self, role, secret_id=None, num_uses=None, ttl=None, metadata=None):
        sid = secret_id or new_uuid()
        now = self.now()
        ttl_s = role["secret_id_ttl"] if ttl is None else parse_duration(ttl)
        role["secret_ids"][sid] = {
            "accessor": new_uuid(),
            "num_uses": role["secret_id_num_uses"] if num_uses is None else int(num_uses),
            "ttl": ttl_s,
            "created": now,
            "updated": now,
            "expires": now + ttl_s if ttl_s else None,
            "metadata": dict(metadata or {}),
        }
        return sid

    def add_kubernetes_role(self, role, jwt=None, jwts=None, token_ttl=0, token_max_ttl=0,
                            token_policies=None, policies=None, acl=None, mount="kubernetes",
                            namespace="", service_account_name="vault-auth",
                            service_account_namespace="default", service_account_uid=None,
                            service_account_secret_name="", token_num_uses=0, token_period=0,
                            bound_service_account_names=None,
                            bound_service_account_namespaces=None):
        """Create/replace a Kubernetes role accepting the given JWT string(s)."""
        with self._lock:
            km = self.add_kubernetes_mount(mount, namespace)
            accepted = list(jwts or [])
            if jwt is not None:
                accepted.append(jwt)
            km.roles[role] = {
                "name": role,
                "jwts": accepted,
                "token_ttl": parse_duration(token_ttl),
                "token_max_ttl": parse_duration(token_max_ttl),
                "token_policies": list(token_policies or policies or []),
                "token_num_uses": int(token_num_uses or 0),
                "token_period": parse_duration(token_period),
                "acl": acl,
                "sa_name": service_account_name,
                "sa_namespace": service_account_namespace,
                "sa_uid": service_account_uid or new_uuid(),
                "sa_secret_name": service_account_secret_name,
                "bound_names": list(bound_service_account_names or [service_account_name]),
                "bound_namespaces": list(bound_service_account_namespaces
                                         or [service_account_namespace]),
            }

    # faults ---------------------------------------------------------------

    def add_fault(self, kind="status", path=None, method=None, namespace=None, count=None,
                  skip=0, probability=1.0, seed=0, status=500, errors=None, retry_after=None,
                  headers=None, latency_ms=0, size_mib=1.0, chunked=False, truncate_at=None,
                  body=None, content_type=None, rst=False):
        """Register a fault rule; returns its id. See README for semantics."""
        kinds = ("status", "latency", "hold", "drop", "truncate", "oversize", "malformed")
        if kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}")
        with self._lock:
            self._fault_seq += 1
            rule = {
                "id": self._fault_seq,
                "kind": kind,
                "path": path,
                "_re": re.compile(path) if path else None,
                "method": method.upper() if method else None,
                "namespace": None if namespace is None else _norm_ns(namespace),
                "count": None if count is None else int(count),
                "skip": int(skip or 0),
                "probability": float(probability),
                "seed": seed,
                "_rng": random.Random(seed),
                "status": int(status),
                "errors": errors,
                "retry_after": retry_after,
                "headers": dict(headers or {}),
                "latency_ms": float(latency_ms or 0),
                "size_mib": float(size_mib),
                "chunked": bool(chunked),
                "truncate_at": truncate_at,
                "body": body,
                "content_type": content_type,
                "rst": bool(rst),
                "_release": threading.Event(),
                "matched": 0,
                "fired": 0,
            }
            self.faults.append(rule)
            return rule["id"]

    def clear_faults(self, fault_id=None):
        with self._lock:
            gone = [f for f in self.faults if fault_id is None or f["id"] == int(fault_id)]
            self.faults = [f for f in self.faults if f not in gone]
        for f in gone:  # a "hold" lets its requests go
            f["_release"].set()

    def list_faults(self):
        with self._lock:
            return [{k: v for k, v in f.items() if not k.startswith("_")} for f in self.faults]

    # counters -------------------------------------------------------------

    def reset_counts(self):
        with self._lock:
            self._counts = {
                "total": 0,
                "with_x_vault_request": 0,
                "without_x_vault_request": 0,
                "connections": 0,
                "tls_handshake_failures": 0,
                "admin_requests": 0,
                "faults_fired": 0,
                "endpoints": {},
                "secrets": {},
                "statuses": {},
                "namespaces": {},
                "in_flight": self._in_flight,
                "in_flight_peak": self._in_flight,
            }
            self._log = []
            self._seq = 0

    def counts(self):
        with self._lock:
            return copy.deepcopy(self._counts)

    def requests_log(self, since=0):
        with self._lock:
            return [dict(r) for r in self._log if r["seq"] > since]

    def endpoint_count(self, key):
        with self._lock:
            return self._counts["endpoints"].get(key, 0)

    def secret_count(self, key, op=None):
        with self._lock:
            d = self._counts["secrets"].get(key, {})
            return sum(d.values()) if op is None else d.get(op, 0)

    # ------------------------------------------------------------- lifecycle

    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        if self.client_ca:
            ctx.load_verify_locations(self.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        elif self.require_client_cert:
            raise ValueError("require_client_cert needs client_ca")
        return ctx

    def start(self):
        self.ssl_ctx = self._ssl_context() if self.tls else None
        self._httpd = _HTTPServer((self.host, self._want_port), _Handler, self, admin_only=False)
        self.port = self._httpd.server_address[1]
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{self.host}:{self.port}"
        t = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                             name="vault-server", daemon=True)
        t.start()
        self._threads.append(t)
        if self._admin_port_wanted is not None:
            self._admin_httpd = _HTTPServer((self.host, self._admin_port_wanted), _Handler, self,
                                            admin_only=True)
            self.admin_port = self._admin_httpd.server_address[1]
            self.admin_url = f"http://{self.host}:{self.admin_port}"
            t = threading.Thread(target=self._admin_httpd.serve_forever,
                                 kwargs={"poll_interval": 0.1}, name="vault-admin", daemon=True)
            t.start()
            self._threads.append(t)
        return self.port

    def stop(self):
        for srv in (self._httpd, self._admin_httpd):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        self._httpd = self._admin_httpd = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def info(self):
        return {
            "port": self.port,
            "url": self.url,
            "admin_token": self.admin_token,
            "root_token": self.root_token,
            "admin_port": self.admin_port,
            "pid": os.getpid(),
        }

    # ---------------------------------------------------------- request path

    def _record_request(self, req):
        c = self._counts
        c["total"] += 1
        if req.x_vault_request:
            c["with_x_vault_request"] += 1
        else:
            c["without_x_vault_request"] += 1
        if req.endpoint:
            c["endpoints"][req.endpoint] = c["endpoints"].get(req.endpoint, 0) + 1
        if req.secret_key and req.secret_op:
            d = c["secrets"].setdefault(req.secret_key, {})
            d[req.secret_op] = d.get(req.secret_op, 0) + 1
        nskey = req.ns or "root"
        c["namespaces"][nskey] = c["namespaces"].get(nskey, 0) + 1
        self._seq += 1
        self._in_flight += 1
        c["in_flight"] = self._in_flight
        c["in_flight_peak"] = max(c["in_flight_peak"], self._in_flight)
        tok = self._token_from_headers(req)
        t = self.tokens.get(tok) if tok else None
        rec = {
            "seq": self._seq,
            "time": time.time(),
            "method": req.method,
            "op": req.op,
            "path": req.raw_path,
            "query": req.query_string,
            "namespace": req.ns,
            "namespace_header": req.headers.get("X-Vault-Namespace"),
            "endpoint": req.endpoint,
            "secret": req.secret_key,
            "secret_op": req.secret_op,
            "x_vault_request": req.x_vault_request,
            "x_vault_request_value": req.headers.get("X-Vault-Request"),
            "token_present": bool(tok),
            "token_accessor": t.accessor if t else None,
            "client_cert": req.has_client_cert,
            "user_agent": req.headers.get("User-Agent"),
            "body_len": len(req.body or b""),
            "status": None,
            "fault": None,
            "end": None,
        }
        self._log.append(rec)
        if len(self._log) > 10000:
            del self._log[: len(self._log) - 10000]
        return rec

    def _finish(self, rec, status):
        with self._lock:
            if rec["end"] is None:
                rec["end"] = time.time()
                self._in_flight -= 1
                self._counts["in_flight"] = self._in_flight
            rec["status"] = status
            k = str(status)
            self._counts["statuses"][k] = self._counts["statuses"].get(k, 0) + 1

    def _match_fault(self, req):
        """Returns (latency_seconds, action_rule_or_None); "hold" rules go to req.holds."""
        latency = 0.0
        action = None
        for f in list(self.faults):
            if f["_re"] is not None and not f["_re"].search(req.raw_path):
                continue
            if f["method"] and f["method"] not in (req.method, (req.op or "").upper()):
                continue
            if f["namespace"] is not None and f["namespace"] != req.ns:
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
                req.holds.append(f)
                continue
            latency += f["latency_ms"] / 1000.0
            if f["kind"] != "latency":
                action = f
        return latency, action

    def serve(self, method, url, headers, body, peer=None, has_client_cert=False):
        """Handle one /v1 request. Returns (Resp, action_dict_or_None)."""
        req = _Req(method, url, headers, body, peer, has_client_cert)
        with self._lock:
            try:
                self._resolve(req)
            except VaultError as e:
                req.resolve_error = e
            except Exception as e:  # pragma: no cover - bug guard
                req.resolve_error = VaultError(500, [f"internal error: {e}"])
            rec = self._record_request(req)
            latency, fault = self._match_fault(req)
        if latency > 0:
            time.sleep(latency)
        for f in req.holds:  # until the rule is cleared, or its latency_ms (default 120 s)
            f["_release"].wait(f["latency_ms"] / 1000.0 or 120.0)
        if fault is not None:
            rec["fault"] = fault["kind"]
            if fault["kind"] == "drop":
                self._finish(rec, "dropped")
                return None, {"drop": True, "rst": fault["rst"]}
            if fault["kind"] == "status":
                resp = self._fault_status_resp(fault, req)
                self._finish(rec, resp.status)
                return resp, None
        with self._lock:
            try:
                resp = self._dispatch(req)
            except VaultError as e:
                resp = error_resp(e.status, e.errors, e.headers)
            except Exception as e:  # pragma: no cover - bug guard
                if self.verbose:
                    import traceback
                    traceback.print_exc()
                resp = error_resp(500, [f"internal error: {e}"])
        self._finish(rec, resp.status)
        action = None
        if fault is not None:
            resp, action = self._apply_post_fault(fault, resp)
        return resp, action

    def _fault_status_resp(self, f, req):
        st = f["status"]
        if f["body"] is not None:
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            h = {"Content-Type": f["content_type"] or "application/json",
                 "Cache-Control": "no-store"}
            r = Resp(st, body, h)
        else:
            errs = f["errors"]
            if errs is None:
                errs = {
                    429: [f"request path \"{req.rel}\": rate limit quota exceeded"],
                    500: ["internal error"],
                    502: ["upstream error"],
                    503: ["Vault is sealed"],
                }.get(st, [http.server.BaseHTTPRequestHandler.responses.get(st, ("error",))[0]])
            r = error_resp(st, errs)
            if f["content_type"]:
                r.headers["Content-Type"] = f["content_type"]
        ra = f["retry_after"]
        if ra is None and st == 429:
            ra = 1
        if ra is not None:
            r.headers["Retry-After"] = str(ra)
        r.headers.update(f["headers"])
        return r

    def _apply_post_fault(self, f, resp):
        k = f["kind"]
        if k == "truncate":
            body = resp.body or b""
            n = f["truncate_at"]
            n = len(body) // 2 if n is None else int(n)
            return resp, {"truncate": max(0, min(n, max(len(body) - 1, 0)))}
        if k == "oversize":
            size = int(f["size_mib"] * 1024 * 1024)
            head = (b'{"request_id":"' + new_uuid().encode() +
                    b'","lease_id":"","renewable":false,"lease_duration":0,'
                    b'"data":{"data":{"padding":"')
            tail = (b'"},"metadata":{"created_time":"' + fmt_time(self.now()).encode() +
                    b'","custom_metadata":null,"deletion_time":"","destroyed":false,'
                    b'"version":1}},"wrap_info":null,"warnings":null,"auth":null,'
                    b'"mount_type":"kv"}\n')
            pad = max(0, size - len(head) - len(tail))
            r = Resp(200, None, {"Content-Type": "application/json", "Cache-Control": "no-store"})
            return r, {"oversize": (head, pad, tail), "chunked": f["chunked"]}
        if k == "malformed":
            if f["body"] is not None:
                body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            else:
                real = resp.body or b'{"data":{"data":{"key":"value"}}}'
                body = real[: max(1, len(real) // 2)] + b'\x00<<malformed>>'
            st = resp.status if resp.status != 204 else 200
            h = dict(resp.headers)
            h["Content-Type"] = f["content_type"] or "application/json"
            return Resp(st, body, h), None
        return resp, None

    # ---------------------------------------------------------------- routing

    def _token_from_headers(self, req):
        tok = req.headers.get("X-Vault-Token")
        if not tok:
            auth = req.headers.get("Authorization") or ""
            if auth.lower().startswith("bearer "):
                tok = auth[7:].strip()
        return tok or None

    def _resolve(self, req):
        m = req.method
        if m in ("GET", "HEAD"):
            lst = req.query.get("list")
            req.op = "list" if lst is not None and _bool(lst) else "read"
        elif m in ("POST", "PUT"):
            req.op = "update"
        elif m == "DELETE":
            req.op = "delete"
        elif m == "LIST":
            req.op = "list"
        elif m == "PATCH":
            req.op = "patch"
        else:
            req.op = None
        path = unquote(req.raw_path)
        if not path.startswith("/v1/"):
            req.endpoint = f"{m} {req.raw_path}"
            raise VaultError(404, [])
        rel = path[len("/v1/"):]
        ns = _norm_ns(req.headers.get("X-Vault-Namespace"))
        if ns and ns not in self.namespaces:
            req.ns = ns
            req.rel = rel
            req.endpoint = f"{'LIST' if req.op == 'list' else m} /v1/{_ns_prefix(ns)}?"
            raise VaultError(404, [f'no handler for route "{_ns_prefix(ns)}{rel}". '
                                   "route entry not found."])
        # path-prefix namespaces: /v1/ns1/child/secret/...
        while True:
            seg, _, rest = rel.partition("/")
            cand = _ns_prefix(ns) + seg
            if seg and cand in self.namespaces and seg not in ("sys", "auth"):
                ns, rel = cand, rest
                continue
            break
        req.ns, req.rel = ns, rel
        nsobj = self.namespaces[ns]
        op = "LIST" if req.op == "list" else m
        pre = f"/v1/{_ns_prefix(ns)}"

        # sys
        if rel == "sys/health":
            req.route = ("health",)
            req.endpoint = f"{op} {pre}sys/health"
            return
        if rel == "sys/internal/ui/mounts" or rel.startswith("sys/internal/ui/mounts/"):
            req.route = ("ui_mounts", rel[len("sys/internal/ui/mounts/"):])
            req.endpoint = f"{op} {pre}sys/internal/ui/mounts/*"
            return
        # auth
        if rel.startswith("auth/"):
            if rel.startswith("auth/token/"):
                sub = rel[len("auth/token/"):].rstrip("/")
                req.route = ("token", sub)
                req.endpoint = f"{op} {pre}auth/token/{sub}"
                return
            for kind, table in (("approle", nsobj.approle), ("kubernetes", nsobj.kubernetes)):
                best = None
                for mp in table:
                    if rel == f"auth/{mp}" or rel.startswith(f"auth/{mp}/"):
                        if best is None or len(mp) > len(best):
                            best = mp
                if best is not None:
                    sub = rel[len(f"auth/{best}"):].strip("/")
                    req.route = (kind, table[best], sub)
                    parts = sub.split("/")
                    if len(parts) >= 2 and parts[0] == "role":
                        pat = "role/*" + ("/" + "/".join(parts[2:]) if len(parts) > 2 else "")
                    else:
                        pat = sub
                    req.endpoint = f"{op} {pre}auth/{best}/{pat}"
                    return
        # kv mounts
        best = None
        for mp in nsobj.mounts:
            if rel == mp or rel.startswith(mp + "/"):
                if best is None or len(mp) > len(best):
                    best = mp
        if best is not None:
            mnt = nsobj.mounts[best]
            sub = rel[len(best):].lstrip("/")
            req.route = ("kv", mnt, sub)
            skey_base = f"{_ns_prefix(ns)}{mnt.path}/"
            if mnt.version == 1:
                req.endpoint = f"{op} {pre}{mnt.path}/*"
                req.secret_op = {"read": "read", "update": "write", "delete": "delete",
                                 "list": "list"}.get(req.op)
                if req.op == "list":
                    t = sub.strip("/")
                    req.secret_key = skey_base + (t + "/" if t else "")
                else:
                    req.secret_key = skey_base + sub
                return
            head, _, tail = sub.partition("/")
            if head in ("data", "metadata", "delete", "undelete", "destroy", "subkeys"):
                req.endpoint = f"{op} {pre}{mnt.path}/{head}/*"
                if head == "metadata" and req.op == "list":
                    t = tail.strip("/")
                    req.secret_key = skey_base + (t + "/" if t else "")
                    req.secret_op = "list"
                else:
                    req.secret_key = skey_base + tail
                    req.secret_op = {
                        ("data", "read"): "read", ("data", "update"): "write",
                        ("data", "delete"): "delete", ("data", "patch"): "patch",
                        ("metadata", "read"): "metadata", ("metadata", "update"): "metadata_write",
                        ("metadata", "delete"): "delete_metadata",
                        ("metadata", "patch"): "metadata_patch",
                        ("delete", "update"): "delete", ("undelete", "update"): "undelete",
                        ("destroy", "update"): "destroy", ("subkeys", "read"): "subkeys",
                    }.get((head, req.op))
            else:
                req.endpoint = f"{op} {pre}{mnt.path}/{head}"
            return
        req.route = ("none",)
        req.endpoint = f"{op} {pre}{rel}"

    # ---------------------------------------------------------------- auth/ACL

    def _perm_denied(self, invalid_token=False):
        if self.error_style == "multierror":
            if invalid_token:
                msg = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
            else:
                msg = "1 error occurred:\n\t* permission denied\n\n"
            return VaultError(403, [msg])
        return VaultError(403, ["permission denied"])

    def _authenticate(self, req):
        tok = self._token_from_headers(req)
        if not tok:
            raise self._perm_denied(invalid_token=True)
        t = self.tokens.get(tok)
        if t is None:
            raise self._perm_denied(invalid_token=True)
        if t.expire_at is not None and self.now() >= t.expire_at:
            self.revoke_token(t.id)
            raise self._perm_denied(invalid_token=True)
        # token namespace must be the request namespace or an ancestor of it
        if t.namespace and not (req.ns == t.namespace or req.ns.startswith(t.namespace + "/")):
            raise self._perm_denied(invalid_token=True)
        req.token = t
        return t

    def _consume_use(self, t):
        if t.num_uses > 0:
            t.num_uses -= 1
            if t.num_uses == 0:
                self.revoke_token(t.id)
                t.num_uses = -1  # marks "last use consumed" for lookups in this request

    def _rules_for(self, t):
        """(unrestricted, rules)"""
        if "root" in t.policies:
            return True, []
        rules = []
        defined = False
        for p in t.policies:
            if p in self.policies:
                defined = True
                rules.extend(self.policies[p])
        if t.acl is None and not defined:
            return True, []
        if t.acl is not None:
            rules.extend(t.acl)
        return False, rules

    @staticmethod
    def _rule_matches(rule, path):
        """Returns capabilities list if rule matches path, else None."""
        all_caps = ["create", "read", "update", "delete", "list", "patch"]
        if isinstance(rule, str):
            return all_caps if path.startswith(rule) else None
        caps = rule.get("capabilities") or all_caps
        if "prefix" in rule:
            return caps if path.startswith(rule["prefix"]) else None
        pat = rule.get("path", "")
        if pat.endswith("*"):
            base = pat[:-1]
            rx = "^" + re.escape(base).replace(r"\+", "[^/]+") + ".*$"
        else:
            rx = "^" + re.escape(pat).replace(r"\+", "[^/]+") + "$"
        return caps if re.match(rx, path) else None

    def _acl_path(self, req, t):
        # paths are evaluated relative to the token's namespace
        rel_ns = req.ns[len(t.namespace):].strip("/") if t.namespace else req.ns
        return _ns_prefix(rel_ns) + req.rel

    def _allowed(self, t, path, cap):
        unrestricted, rules = self._rules_for(t)
        if unrestricted:
            return True
        got = set()
        for r in rules:
            caps = self._rule_matches(r, path)
            if caps is not None:
                got.update(caps)
        if "deny" in got:
            return False
        if cap == "update":
            return bool(got & {"create", "update"})
        return cap in got

    def _check_acl(self, req, t, cap=None):
        cap = cap or {"read": "read", "list": "list", "update": "update", "delete": "delete",
                      "patch": "patch"}.get(req.op, "read")
        path = self._acl_path(req, t)
        if req.op == "list" and not path.endswith("/"):
            path += "/"
        if not self._allowed(t, path, cap):
            raise self._perm_denied()

    # ---------------------------------------------------------------- dispatch

    def _dispatch(self, req):
        if req.op is None:
            raise VaultError(405, [])
        if self.require_request_header and not req.x_vault_request:
            raise VaultError(412, ["missing 'X-Vault-Request' header"])
        route = req.route
        if route is None:
            raise req.resolve_error or VaultError(404, [])
        kind = route[0]
        if kind == "health":
            return self._h_health(req)
        if kind in ("approle", "kubernetes") and route[2] == "login":
            if req.op != "update":
                raise VaultError(405, ["unsupported operation"])
            return (self._h_approle_login if kind == "approle" else self._h_k8s_login)(req, route[1])
        t = self._authenticate(req)
        try:
            if kind == "ui_mounts":
                return self._h_ui_mounts(req, t, route[1])
            if kind == "token":
                return self._h_token(req, t, route[1])
            if kind == "approle":
                self._check_acl(req, t)
                return self._h_approle_admin(req, route[1], route[2])
            if kind == "kubernetes":
                self._check_acl(req, t)
                return self._h_k8s_admin(req, route[1], route[2])
            if kind == "kv":
                mnt, sub = route[1], route[2]
                if req.op == "patch":
                    self._check_acl(req, t, "patch")
                else:
                    self._check_acl(req, t)
                if mnt.version == 1:
                    return self._h_kv1(req, mnt, sub)
                return self._h_kv2(req, mnt, sub)
            self._check_acl(req, t)
            raise VaultError(404, [f'no handler for route "{_ns_prefix(req.ns)}{req.rel}". '
                                   "route entry not found."])
        finally:
            self._consume_use(t)

    # ---------------------------------------------------------------- sys

    def _h_health(self, req):
        now = int(self.now())
        return json_resp(200, {
            "initialized": True, "sealed": False, "standby": False,
            "performance_standby": False, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": now,
            "version": VAULT_VERSION, "enterprise": False,
            "cluster_name": "vault-cluster-test", "cluster_id": "00000000-0000-0000-0000-000000000000",
        })

    def _h_ui_mounts(self, req, t, path):
        if req.op != "read":
            raise VaultError(405, ["unsupported operation"])
        nsobj = self.namespaces[req.ns]
        p = path.strip("/")
        best = None
        for mp in nsobj.mounts:
            if p == mp or p.startswith(mp + "/"):
                if best is None or len(mp) > len(best):
                    best = mp
        shown = path if path.endswith("/") else path + "/"
        denied = VaultError(403, [
            "preflight capability check returned 403, please ensure client's policies "
            f'grant access to path "{shown}"'])
        if best is None:
            raise denied
        mnt = nsobj.mounts[best]
        if mnt.hide_from_ui_mounts:
            raise denied
        unrestricted, rules = self._rules_for(t)
        if not unrestricted:
            rel_ns = req.ns[len(t.namespace):].strip("/") if t.namespace else req.ns
            mprefix = _ns_prefix(rel_ns) + mnt.path + "/"
            ok = False
            for r in rules:
                if isinstance(r, str):
                    rp = r
                else:
                    rp = r.get("prefix", r.get("path", "")).rstrip("*")
                    if "deny" in (r.get("capabilities") or []):
                        continue
                if rp.startswith(mprefix) or mprefix.startswith(rp):
                    ok = True
                    break
            if not ok:
                raise denied
        return json_resp(200, envelope(mnt.describe(), mount_type="system"))

    # ---------------------------------------------------------------- tokens

    def _lookup_data(self, t):
        now = self.now()
        d = {
            "accessor": t.accessor,
            "creation_time": int(t.creation_time),
            "creation_ttl": t.creation_ttl,
            "display_name": t.display_name,
            "entity_id": t.entity_id,
            "expire_time": None,
            "explicit_max_ttl": t.explicit_max_ttl,
            "id": t.id,
            "issue_time": fmt_time(t.issue_time),
            "meta": t.meta,
            "num_uses": max(t.num_uses, 0),
            "orphan": t.orphan,
            "path": t.path,
            "policies": t.policies,
            "renewable": False,
            "ttl": 0,
            "type": t.token_type,
        }
        if t.expire_at is not None:
            d["expire_time"] = fmt_time(t.expire_at)
            d["ttl"] = max(0, int(math.ceil(t.expire_at - now - 1e-6)))
            d["renewable"] = t.renewable and t.expire_at > now
        if t.last_renewal is not None:
            d["last_renewal"] = fmt_time(t.last_renewal)
            d["last_renewal_time"] = int(t.last_renewal)
        if t.period:
            d["period"] = t.period
        if t.role:
            d["role"] = t.role
        if t.entity_id and t.identity_policies is not None:
            d["identity_policies"] = t.identity_policies
        if t.namespace:
            d["namespace_path"] = t.namespace + "/"
        return d

    def _auth_block(self, t, lease_duration, metadata=None):
        a = {
            "client_token": t.id,
            "accessor": t.accessor,
            "policies": t.policies,
            "token_policies": t.policies,
        }
        if t.identity_policies:
            a["identity_policies"] = t.identity_policies
        md = t.meta if metadata is None else metadata
        a.update({
            "metadata": sort_rec(md) if md is not None else None,
            "lease_duration": lease_duration,
            "renewable": t.renewable and lease_duration > 0,
            "entity_id": t.entity_id,
            "token_type": t.token_type,
            "orphan": t.orphan,
            "mfa_requirement": None,
            "num_uses": max(t.num_uses, 0),
        })
        return a

    def _h_token(self, req, t, sub):
        if sub == "lookup-self":
            if req.op not in ("read", "update"):
                raise VaultError(405, ["unsupported operation"])
            return json_resp(200, envelope(self._lookup_data(t), mount_type="token"))
        if sub == "renew-self":
            if req.op != "update":
                raise VaultError(405, ["unsupported operation"])
            body = req.json() or {}
            try:
                inc = parse_duration(body.get("increment"))
            except ValueError as e:
                raise VaultError(400, [str(e)])
            return self._renew(t, inc)
        if sub == "revoke-self":
            if req.op != "update":
                raise VaultError(405, ["unsupported operation"])
            self.revoke_token(t.id)
            return no_content()
        if sub == "lookup":
            self._check_acl(req, t, "update" if req.op == "update" else "read")
            body = req.json() or {}
            target = body.get("token") or req.query.get("token")
            if not target:
                raise VaultError(400, ["missing token"])
            tt = self.tokens.get(target)
            if tt is None or (tt.expire_at is not None and self.now() >= tt.expire_at):
                raise VaultError(403, ["bad token"])
            return json_resp(200, envelope(self._lookup_data(tt), mount_type="token"))
        if sub == "create" or sub == "create-orphan":
            if req.op != "update":
                raise VaultError(405, ["unsupported operation"])
            self._check_acl(req, t, "update")
            return self._h_token_create(req, t, orphan=(sub == "create-orphan"))
        raise VaultError(404, [f'no handler for route "{_ns_prefix(req.ns)}{req.rel}". '
                               "route entry not found."])

    def _renew(self, t, increment):
        now = self.now()
        if t.expire_at is None:
            raise VaultError(400, ["lease is not renewable"])
        if t.expire_at <= now:
            raise VaultError(400, ["lease expired"])
        if not t.renewable:
            raise VaultError(400, ["lease is not renewable"])
        nowt = math.floor(now)
        start = math.floor(t.issue_time)
        max_ttl = self.max_lease_ttl
        if t.max_ttl and t.max_ttl < max_ttl:
            max_ttl = t.max_ttl
        if t.explicit_max_ttl and t.explicit_max_ttl < max_ttl:
            max_ttl = t.explicit_max_ttl
        warnings = []
        if t.period:
            period = t.period
            if period > max_ttl:
                warnings.append(f'period of "{go_duration(period)}" exceeded the effective '
                                f'max_ttl of "{go_duration(max_ttl)}"; period value is capped '
                                "accordingly")
                period = max_ttl
            ttl = period
            max_valid = start + t.explicit_max_ttl if t.explicit_max_ttl else nowt + ttl
        else:
            ttl = increment if increment > 0 else (t.renew_ttl or self.default_lease_ttl)
            max_valid = start + max_ttl
        max_valid_ttl = int(max_valid - nowt)
        if max_valid_ttl <= 0:
            raise VaultError(500, ["past the max TTL, cannot renew"])
        if max_valid_ttl - ttl < 0:
            warnings.append(f'TTL of "{go_duration(ttl)}" exceeded the effective max_ttl of '
                            f'"{go_duration(max_valid_ttl)}"; TTL value is capped accordingly')
            ttl = max_valid_ttl
        t.expire_at = now + ttl
        t.renew_ttl = ttl
        t.last_renewal = now
        return json_resp(200, envelope(None, auth=self._auth_block(t, ttl), warnings=warnings,
                                       mount_type="token"))

    def _h_token_create(self, req, parent, orphan=False):
        body = req.json() or {}
        pol = body.get("policies")
        if pol is None:
            pol = [p for p in parent.policies]
        if isinstance(pol, str):
            pol = [p.strip() for p in pol.split(",") if p.strip()]
        if "root" not in parent.policies:
            bad = [p for p in pol if p not in parent.policies and p != "default"]
            if bad:
                raise VaultError(400, ["child policies must be subset of parent's policies"])
        no_default = _bool(body.get("no_default_policy"))
        final = sorted(set(pol) | (set() if no_default or "root" in pol else {"default"}))
        warnings = [f'Policy "{p}" does not exist' for p in sorted(final, reverse=True)
                    if p not in ("default", "root") and p not in self.policies]
        warnings.sort()
        try:
            ttl = parse_duration(body.get("ttl")) or self.default_lease_ttl
            emt = parse_duration(body.get("explicit_max_ttl"))
            period = parse_duration(body.get("period"))
        except ValueError as e:
            raise VaultError(400, [str(e)])
        if emt and ttl > emt:
            ttl = emt
        if period:
            ttl = period
        unrestricted, _ = self._rules_for(parent)
        tok = self._add_token(
            id=body.get("id"), policies=final,
            acl=None if unrestricted else parent.acl,
            ttl=ttl, renewable=_bool(body.get("renewable"), True), explicit_max_ttl=emt,
            period=period, num_uses=int(body.get("num_uses") or 0), namespace=req.ns,
            meta=body.get("meta"), display_name="token-" + body["display_name"]
            if body.get("display_name") else "token", path="auth/token/create",
            orphan=orphan or _bool(body.get("no_parent")),
            parent=None if (orphan or _bool(body.get("no_parent"))) else parent.id)
        return json_resp(200, envelope(None, auth=self._auth_block(tok, ttl),
                                       warnings=warnings, mount_type="token"))

    def _issue_login_token(self, req, role, mount_path, metadata, display_name, mount_type):
        pol = list(role["token_policies"])
        if not role.get("token_no_default_policy") and "default" not in pol:
            pol.append("default")
        pol = sorted(set(pol))
        ttl = role["token_ttl"] or self.default_lease_ttl
        max_ttl = role["token_max_ttl"]
        emt = role.get("token_explicit_max_ttl", 0)
        cap = min(x for x in (self.max_lease_ttl, max_ttl or 1 << 62, emt or 1 << 62))
        warnings = None
        if ttl > cap:
            ttl = cap
        if role.get("token_period"):
            ttl = role["token_period"]
        t = self._add_token(policies=pol, acl=role.get("acl"), ttl=ttl, renewable=True,
                            explicit_max_ttl=emt, max_ttl=max_ttl, period=role.get("token_period"),
                            num_uses=role.get("token_num_uses", 0), namespace=req.ns,
                            meta=metadata, display_name=display_name,
                            path=f"auth/{mount_path}/login", orphan=True,
                            entity_id=new_uuid(), mount_type=mount_type)
        t.renew_ttl = ttl
        return json_resp(200, envelope(None, auth=self._auth_block(t, ttl), warnings=warnings,
                                       mount_type=mount_type))

    # ---------------------------------------------------------------- approle

    def _h_approle_login(self, req, am):
        body = req.json() or {}
        role_id = str(body.get("role_id") or "").strip()
        if not role_id:
            raise VaultError(400, ["missing role_id"])
        role = next((r for r in am.roles.values() if r["role_id"] == role_id), None)
        if role is None:
            raise VaultError(400, ["invalid role or secret ID"])
        metadata = {}
        if role["bind_secret_id"]:
            sid = str(body.get("secret_id") or "").strip()
            if not sid:
                raise VaultError(400, ["missing secret_id"])
            entry = role["secret_ids"].get(sid)
            now = self.now()
            if entry is not None and entry["expires"] is not None and entry["expires"] <= now:
                del role["secret_ids"][sid]
                entry = None
            if entry is None:
                raise VaultError(400, ["invalid role or secret ID"])
            if entry["num_uses"] > 0:
                if entry["num_uses"] == 1:
                    del role["secret_ids"][sid]
                else:
                    entry["num_uses"] -= 1
                    entry["updated"] = now
            metadata = dict(entry["metadata"])
        metadata["role_name"] = role["name"]
        return self._issue_login_token(req, role, am.path, metadata,
                                       f"{am.path}", "approle")

    def _h_approle_admin(self, req, am, sub):
        parts = sub.split("/")
        if parts == ["role"] or parts == ["role", ""]:
            if req.op != "list":
                raise VaultError(405, ["unsupported operation"])
            keys = sorted(am.roles)
            if not keys:
                raise VaultError(404, [])
            return json_resp(200, envelope({"keys": keys}, mount_type="approle"))
        if len(parts) >= 2 and parts[0] == "role":
            role = am.roles.get(parts[1])
            rest = "/".join(parts[2:])
            if rest == "" and req.op == "read":
                if role is None:
                    raise VaultError(404, [])
                d = {
                    "bind_secret_id": role["bind_secret_id"],
                    "local_secret_ids": False,
                    "period": 0,
                    "policies": role["token_policies"],
                    "secret_id_bound_cidrs": [],
                    "secret_id_num_uses": role["secret_id_num_uses"],
                    "secret_id_ttl": role["secret_id_ttl"],
                    "token_bound_cidrs": [],
                    "token_explicit_max_ttl": role.get("token_explicit_max_ttl", 0),
                    "token_max_ttl": role["token_max_ttl"],
                    "token_no_default_policy": role.get("token_no_default_policy", False),
                    "token_num_uses": role["token_num_uses"],
                    "token_period": role["token_period"],
                    "token_policies": role["token_policies"],
                    "token_ttl": role["token_ttl"],
                    "token_type": "default",
                }
                return json_resp(200, envelope(d, mount_type="approle"))
            if role is None:
                raise VaultError(400, [f'role "{parts[1]}" does not exist'])
            if rest == "role-id" and req.op == "read":
                return json_resp(200, envelope({"role_id": role["role_id"]}, mount_type="approle"))
            if rest == "secret-id" and req.op == "update":
                body = req.json() or {}
                md = body.get("metadata")
                if isinstance(md, str) and md.strip():
                    try:
                        md = json.loads(md)
                    except ValueError:
                        raise VaultError(400, ["failed to parse metadata"])
                sid = self._approle_add_secret_id(role, None, body.get("num_uses"),
                                                  body.get("ttl"), md or {})
                e = role["secret_ids"][sid]
                return json_resp(200, envelope({
                    "secret_id_accessor": e["accessor"], "secret_id": sid,
                    "secret_id_ttl": e["ttl"], "secret_id_num_uses": e["num_uses"],
                }, mount_type="approle"))
            if rest == "secret-id/lookup" and req.op == "update":
                body = req.json() or {}
                e = role["secret_ids"].get(str(body.get("secret_id") or ""))
                if e is None:
                    return no_content()
                return json_resp(200, envelope({
                    "cidr_list": [], "creation_time": fmt_time(e["created"]),
                    "expiration_time": fmt_time(e["expires"]) if e["expires"] else
                    "0001-01-01T00:00:00Z",
                    "last_updated_time": fmt_time(e["updated"]), "metadata": e["metadata"],
                    "secret_id_accessor": e["accessor"], "secret_id_num_uses": e["num_uses"],
                    "secret_id_ttl": e["ttl"], "token_bound_cidrs": [],
                }, mount_type="approle"))
        raise VaultError(405, ["unsupported operation"])

    # ---------------------------------------------------------------- kubernetes

    def _h_k8s_login(self, req, km):
        body = req.json() or {}
        role_name = str(body.get("role") or "")
        if not role_name:
            raise VaultError(400, ["missing role"])
        jwt = str(body.get("jwt") or "")
        if not jwt:
            raise VaultError(400, ["missing jwt"])
        role = km.roles.get(role_name)
        if role is None:
            raise VaultError(400, [f'invalid role name "{role_name}"'])
        if not any(hmac.compare_digest(jwt, j) for j in role["jwts"]):
            raise VaultError(403, ["permission denied"])
        md = {
            "role": role_name,
            "service_account_name": role["sa_name"],
            "service_account_namespace": role["sa_namespace"],
            "service_account_secret_name": role["sa_secret_name"],
            "service_account_uid": role["sa_uid"],
        }
        return self._issue_login_token(req, role, km.path, md,
                                       f"{km.path}-{role['sa_namespace']}-{role['sa_name']}",
                                       "kubernetes")

    def _h_k8s_admin(self, req, km, sub):
        parts = sub.split("/")
        if parts == ["role"] or parts == ["role", ""]:
            if req.op != "list":
                raise VaultError(405, ["unsupported operation"])
            keys = sorted(km.roles)
            if not keys:
                raise VaultError(404, [])
            return json_resp(200, envelope({"keys": keys}, mount_type="kubernetes"))
        if len(parts) == 2 and parts[0] == "role" and req.op == "read":
            r = km.roles.get(parts[1])
            if r is None:
                raise VaultError(404, [])
            return json_resp(200, envelope({
                "alias_name_source": "serviceaccount_uid", "audience": "",
                "bound_service_account_names": r["bound_names"],
                "bound_service_account_namespace_selector": "",
                "bound_service_account_namespaces": r["bound_namespaces"],
                "max_ttl": r["token_max_ttl"], "num_uses": r["token_num_uses"],
                "period": r["token_period"], "policies": r["token_policies"],
                "token_bound_cidrs": [], "token_explicit_max_ttl": 0,
                "token_max_ttl": r["token_max_ttl"], "token_no_default_policy": False,
                "token_num_uses": r["token_num_uses"], "token_period": r["token_period"],
                "token_policies": r["token_policies"], "token_ttl": r["token_ttl"],
                "token_type": "default", "ttl": r["token_ttl"],
            }, mount_type="kubernetes"))
        raise VaultError(405, ["unsupported operation"])

    # ---------------------------------------------------------------- KV v1

    @staticmethod
    def _list_keys(paths, prefix):
        keys = set()
        for p in paths:
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):]
            if not rest:
                continue
            head, sep, _ = rest.partition("/")
            keys.add(head + "/" if sep else head)
        return sorted(keys)

    def _h_kv1(self, req, m, sub):
        if req.op == "list":
            prefix = sub if (not sub or sub.endswith("/")) else sub + "/"
            keys = self._list_keys(m.kv1.keys(), prefix)
            if not keys:
                raise VaultError(404, [])
            return json_resp(200, envelope({"keys": keys}, mount_type="kv"))
        if req.op == "read":
            data = m.kv1.get(sub)
            if data is None:
                raise VaultError(404, [])
            lease = m.default_lease_ttl if m.default_lease_ttl is not None else self.default_lease_ttl
            raw = data.get("ttl", data.get("lease"))
            if raw is not None:
                try:
                    lease = parse_duration(raw)
                except ValueError:
                    pass
            return json_resp(200, envelope(data, lease_duration=lease, mount_type="kv"))
        if req.op == "update":
            if not sub:
                raise VaultError(400, ["missing path"])
            body = req.json()
            if not body:
                raise VaultError(400, ["missing data fields"])
            m.kv1[sub] = body
            return no_content()
        if req.op == "delete":
            m.kv1.pop(sub, None)
            return no_content()
        raise VaultError(405, ["unsupported operation"])

    # ---------------------------------------------------------------- KV v2

    def _kv2_version_meta(self, meta, n):
        v = meta.versions[n]
        now = self.now()
        dt = v["deletion"]
        return {
            "created_time": fmt_time(v["created"]),
            "custom_metadata": meta.custom_metadata,
            "deletion_time": fmt_time(dt),
            "destroyed": v["destroyed"],
            "version": n,
        }, (dt is not None and dt <= now) or v["destroyed"]

    def _kv2_invalid(self, req, sub):
        if sub in ("metadata", "data", "delete", "undelete", "destroy"):
            w = "Non-listing operations on the root of a K/V v2 mount are not supported."
        else:
            verb = {"update": "put", "patch": "patch", "read": "get", "list": "list",
                    "delete": "delete"}.get(req.op, "get")
            w = ("Invalid path for a versioned K/V secrets engine. See the API docs for the "
                 "appropriate API endpoints to use. If using the Vault CLI, use "
                 f"'vault kv {verb}' for this operation.")
        return json_resp(404, envelope(None, warnings=[w], mount_type=""))

    def _versions_arg(self, req):
        body = req.json() or {}
        vs = body.get("versions")
        if isinstance(vs, str):
            vs = [x for x in vs.split(",") if x.strip()]
        if isinstance(vs, int):
            vs = [vs]
        if not vs:
            raise VaultError(400, ["no version number provided"])
        try:
            return [int(x) for x in vs]
        except (TypeError, ValueError):
            raise VaultError(400, ["error parsing versions"])

    def _h_kv2(self, req, m, sub):
        head, sep, path = sub.partition("/")
        if head == "config" and not path:
            if req.op == "read":
                return json_resp(200, envelope({
                    "cas_required": m.cas_required,
                    "delete_version_after": go_duration(m.delete_version_after),
                    "max_versions": m.max_versions}, mount_type="kv"))
            if req.op == "update":
                body = req.json() or {}
                if "max_versions" in body:
                    m.max_versions = int(body["max_versions"])
                if "cas_required" in body:
                    m.cas_required = _bool(body["cas_required"])
                if "delete_version_after" in body:
                    m.delete_version_after = parse_duration(body["delete_version_after"])
                return no_content()
            raise VaultError(405, ["unsupported operation"])
        if head == "metadata" and req.op == "list":
            prefix = path if (not path or path.endswith("/")) else path + "/"
            keys = self._list_keys(m.kv2.keys(), prefix)
            if not keys:
                raise VaultError(404, [])
            return json_resp(200, envelope({"keys": keys}, mount_type="kv"))
        if head not in ("data", "metadata", "delete", "undelete", "destroy", "subkeys") \
                or not sep or not path or path.endswith("/"):
            return self._kv2_invalid(req, sub.rstrip("/") if not path else sub)
        meta = m.kv2.get(path)
        now = self.now()
        if head == "data":
            if req.op == "read":
                if meta is None:
                    raise VaultError(404, [])
                ver = meta.current_version
                if "version" in req.query and req.query["version"] not in ("", "0"):
                    try:
                        ver = int(req.query["version"])
                    except ValueError:
                        raise VaultError(400, ['1 error occurred:\n\t* error converting input '
                                               f'{req.query["version"]} for field "version"\n\n'])
                if ver not in meta.versions:
                    raise VaultError(404, [])
                md, gone = self._kv2_version_meta(meta, ver)
                if gone:
                    return json_resp(404, envelope({"data": None, "metadata": md}, mount_type=""))
                return json_resp(200, envelope({"data": meta.versions[ver]["data"],
                                                "metadata": md}, mount_type="kv"))
            if req.op == "update":
                body = req.json() or {}
                if "data" not in body or body["data"] is None:
                    raise VaultError(400, ["no data provided"])
                if not isinstance(body["data"], dict):
                    raise VaultError(400, ['1 error occurred:\n\t* error converting input for '
                                           'field "data": expected a map\n\n'])
                cur = meta.current_version if meta else 0
                self._kv2_cas(body, m, meta, cur)
                if meta is None:
                    meta = m.kv2[path] = KV2Meta(now)
                ver = self._kv2_add_version(m, meta, body["data"])
                md, _ = self._kv2_version_meta(meta, ver)
                return json_resp(200, envelope(md, mount_type="kv"))
            if req.op == "patch":
                ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
                if ctype != "application/merge-patch+json":
                    raise VaultError(415, [f"PATCH requires Content-Type of "
                                           f"application/merge-patch+json, provided {ctype}"])
                body = req.json() or {}
                if "data" not in body:
                    raise VaultError(400, ["no data provided"])
                if meta is None or meta.current_version not in meta.versions:
                    raise VaultError(404, [])
                md, gone = self._kv2_version_meta(meta, meta.current_version)
                if gone:
                    return json_resp(404, envelope(md, mount_type=""))
                self._kv2_cas(body, m, meta, meta.current_version)
                merged = _merge_patch(copy.deepcopy(meta.versions[meta.current_version]["data"]),
                                      body["data"])
                ver = self._kv2_add_version(m, meta, merged)
                md, _ = self._kv2_version_meta(meta, ver)
                return json_resp(200, envelope(md, mount_type="kv"))
            if req.op == "delete":
                if meta is not None:
                    lv = meta.versions.get(meta.current_version)
                    if lv is not None and not lv["destroyed"] and not (
                            lv["deletion"] is not None and lv["deletion"] <= now):
                        lv["deletion"] = now
                return no_content()
            raise VaultError(405, ["unsupported operation"])
        if head == "subkeys":
            if req.op != "read":
                raise VaultError(405, ["unsupported operation"])
            if meta is None:
                raise VaultError(404, [])
            ver = int(req.query.get("version") or 0) or meta.current_version
            depth = int(req.query.get("depth") or 0)
            if ver not in meta.versions:
                raise VaultError(404, [])
            md, gone = self._kv2_version_meta(meta, ver)
            if gone:
                return json_resp(404, envelope({"subkeys": None, "metadata": md}, mount_type=""))
            return json_resp(200, envelope({
                "subkeys": _subkeys(meta.versions[ver]["data"], depth, 1),
                "metadata": md}, mount_type="kv"))
        if head == "metadata":
            if req.op == "read":
                if meta is None:
                    raise VaultError(404, [])
                versions = {}
                for n, v in meta.versions.items():
                    versions[str(n)] = {"created_time": fmt_time(v["created"]),
                                        "deletion_time": fmt_time(v["deletion"]),
                                        "destroyed": v["destroyed"]}
                return json_resp(200, envelope({
                    "cas_required": meta.cas_required,
                    "created_time": fmt_time(meta.created_time),
                    "current_version": meta.current_version,
                    "custom_metadata": meta.custom_metadata,
                    "delete_version_after": go_duration(meta.delete_version_after),
                    "max_versions": meta.max_versions,
                    "oldest_version": meta.oldest_version,
                    "updated_time": fmt_time(meta.updated_time),
                    "versions": versions}, mount_type="kv"))
            if req.op in ("update", "patch"):
                if req.op == "patch":
                    ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
                    if ctype != "application/merge-patch+json":
                        raise VaultError(415, [f"PATCH requires Content-Type of "
                                               f"application/merge-patch+json, provided {ctype}"])
                    if meta is None:
                        raise VaultError(404, [])
                body = req.json() or {}
                if meta is None:
                    meta = m.kv2[path] = KV2Meta(now)
                if "max_versions" in body:
                    meta.max_versions = int(body["max_versions"])
                if "cas_required" in body:
                    meta.cas_required = _bool(body["cas_required"])
                if "delete_version_after" in body:
                    meta.delete_version_after = parse_duration(body["delete_version_after"])
                if "custom_metadata" in body:
                    cm = body["custom_metadata"]
                    if req.op == "patch" and isinstance(cm, dict):
                        cm = _merge_patch(dict(meta.custom_metadata or {}), cm)
                    meta.custom_metadata = cm if cm else None
                meta.updated_time = now
                return no_content()
            if req.op == "delete":
                m.kv2.pop(path, None)
                return no_content()
            raise VaultError(405, ["unsupported operation"])
        # delete / undelete / destroy
        if req.op != "update":
            raise VaultError(405, ["unsupported operation"])
        versions = self._versions_arg(req)
        if meta is None:
            return no_content()
        for n in versions:
            v = meta.versions.get(n)
            if v is None:
                continue
            if head == "delete":
                if not v["destroyed"] and not (v["deletion"] is not None and v["deletion"] <= now):
                    v["deletion"] = now
            elif head == "undelete":
                if not v["destroyed"]:
                    v["deletion"] = None
            else:
                v["destroyed"] = True
                v["data"] = None
        return no_content()

    @staticmethod
    def _kv2_cas(body, m, meta, cur):
        opts = body.get("options") or {}
        if isinstance(opts, dict) and "cas" in opts:
            try:
                cas = int(opts["cas"])
            except (TypeError, ValueError):
                raise VaultError(400, ["error parsing check-and-set parameter"])
            if cas != cur:
                raise VaultError(400, ["check-and-set parameter did not match the current version"])
        elif m.cas_required or (meta is not None and meta.cas_required):
            raise VaultError(400, ["check-and-set parameter required for this call"])

    # ---------------------------------------------------------------- admin API

    def admin(self, method, url, headers, body):
        """Handle a /_test/ request. Returns Resp."""
        with self._lock:
            self._counts["admin_requests"] += 1
        got = headers.get("X-Test-Admin") or ""
        if not hmac.compare_digest(got.encode(), self.admin_token.encode()):
            return json_resp(401, {"error": "missing or wrong X-Test-Admin header"})
        try:
            args = json.loads(body.decode("utf-8")) if body and body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as e:
            return json_resp(400, {"error": f"bad JSON: {e}"})
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        try:
            out = self._admin_route(method.upper(), path, args, q)
        except (KeyError, ValueError, TypeError) as e:
            return json_resp(400, {"error": f"{type(e).__name__}: {e}"})
        if isinstance(out, Resp):
            return out
        return json_resp(200, out if out is not None else {"ok": True})

    def _admin_route(self, m, path, a, q):
        if path == "/_test/health" or path == "/_test/info":
            return dict(self.info(), ok=True, namespaces=sorted(self.namespaces))
        if path == "/_test/help":
            return {"help": _ADMIN_HELP}
        if path == "/_test/config" and m == "POST":
            self.configure(**a)
            return {"require_request_header": self.require_request_header,
                    "error_style": self.error_style,
                    "default_lease_ttl": self.default_lease_ttl,
                    "max_lease_ttl": self.max_lease_ttl}
        if path == "/_test/reset" and m == "POST":
            self.reset()
            return {"ok": True, "root_token": self.root_token}
        if path == "/_test/namespace" and m == "POST":
            self.add_namespace(a["path"])
            return {"ok": True}
        if path == "/_test/mount" and m == "POST":
            a = dict(a)
            mnt = self.add_mount(a.pop("path"), **a)
            return {"ok": True, "path": mnt.path, "version": mnt.version}
        if path == "/_test/unmount" and m == "POST":
            self.remove_mount(a["path"], a.get("namespace", ""))
            return {"ok": True}
        if path == "/_test/kv":
            if m == "GET":
                st = self.get_secret_state(q["mount"], q["path"], q.get("namespace", ""))
                if st is None:
                    return json_resp(404, {"error": "no such secret"})
                return st
            if m == "POST":
                v = self.put_secret(a["mount"], a["path"], a["data"], a.get("namespace", ""),
                                    a.get("custom_metadata"))
                return {"ok": True, "version": v}
        if path == "/_test/kv/delete" and m == "POST":
            self.delete_secret(a["mount"], a["path"], a.get("namespace", ""),
                               a.get("mode", "soft"), a.get("versions"))
            return {"ok": True}
        if path == "/_test/token":
            if m == "POST":
                return self.create_token(**a)
            if m == "GET":
                info = self.token_info(q["token"])
                return info if info is not None else json_resp(404, {"error": "no such token"})
        if path == "/_test/tokens" and m == "GET":
            with self._lock:
                return {"tokens": [self._lookup_data(t) for t in self.tokens.values()]}
        if path == "/_test/token/revoke" and m == "POST":
            return {"ok": self.revoke_token(a["token"])}
        if path == "/_test/token/expire" and m == "POST":
            return {"ok": self.expire_token(a["token"])}
        if path == "/_test/policy" and m == "POST":
            self.add_policy(a["name"], a["rules"])
            return {"ok": True}
        if path == "/_test/approle" and m == "POST":
            return self.add_approle_role(**a)
        if path == "/_test/approle/secret-id" and m == "POST":
            return {"secret_id": self.add_approle_secret_id(**a)}
        if path == "/_test/kubernetes" and m == "POST":
            self.add_kubernetes_role(**a)
            return {"ok": True}
        if path == "/_test/fault" and m == "POST":
            return {"id": self.add_fault(**a)}
        if path in ("/_test/fault", "/_test/faults") and m == "DELETE":
            self.clear_faults(a.get("id", q.get("id")))
            return {"ok": True}
        if path == "/_test/faults/clear" and m == "POST":
            self.clear_faults(a.get("id"))
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
        if path == "/_test/clock" and m == "POST":
            if "advance" in a:
                self.advance_clock(a["advance"])
            if "offset" in a:
                with self._lock:
                    self.clock_offset = float(a["offset"])
            return {"offset": self.clock_offset, "now": self.now()}
        return json_resp(404, {"error": f"no admin endpoint {m} {path}",
                               "help": _ADMIN_HELP})

    # connection bookkeeping (called from the HTTP server)
    def _on_connection(self, sock):
        with self._lock:
            self._counts["connections"] += 1
        with self._conns_lock:
            self._conns.add(sock)

    def _on_disconnect(self, sock):
        with self._conns_lock:
            self._conns.discard(sock)

    def _on_tls_failure(self, err):
        with self._lock:
            self._counts["tls_handshake_failures"] += 1
        if self.verbose:
            sys.stderr.write(f"vault_server: TLS handshake failed: {err}\n")


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target


def _subkeys(data, depth, level):
    out = {}
    for k, v in (data or {}).items():
        if isinstance(v, dict) and v and (depth == 0 or level < depth):
            out[k] = _subkeys(v, depth, level + 1)
        else:
            out[k] = None
    return out


_ADMIN_HELP = """\
All /_test/ requests need header 'X-Test-Admin: <admin token>' and JSON bodies.
GET  /_test/health | /_test/info              -> port, url, root_token, admin_port
POST /_test/config {require_request_header, error_style: simple|multierror,
                    default_lease_ttl, max_lease_ttl}
POST /_test/reset                               full reset to the startup config
POST /_test/namespace {path}
POST /_test/mount {path, version: 1|2, namespace, default_lease_ttl|ttl, options,
                   max_versions, cas_required, delete_version_after,
                   hide_from_ui_mounts, description}
POST /_test/unmount {path, namespace}
POST /_test/kv {mount, path, data, namespace, custom_metadata} -> {version}
GET  /_test/kv?mount=M&path=P[&namespace=N]     raw stored state (404 if absent)
POST /_test/kv/delete {mount, path, namespace, mode: soft|destroy|metadata, versions}
POST /_test/token {id, policies, acl, ttl, renewable, explicit_max_ttl, max_ttl, period,
                   num_uses, namespace, meta, display_name, entity_id,
                   identity_policies} -> {token, accessor}
GET  /_test/token?token=T | GET /_test/tokens
POST /_test/token/revoke {token} | POST /_test/token/expire {token}
POST /_test/policy {name, rules: [ACL entries]}
POST /_test/approle {role_name, role_id, secret_id, secret_ids, secret_id_num_uses,
                     secret_id_ttl, token_ttl, token_max_ttl, token_policies, acl,
                     bind_secret_id, token_num_uses, token_period, mount, namespace}
POST /_test/approle/secret-id {role_name, secret_id, num_uses, ttl, mount, namespace}
POST /_test/kubernetes {role, jwt | jwts, token_ttl, token_max_ttl, token_policies, acl,
                        service_account_name, service_account_namespace, mount, namespace}
POST /_test/fault {kind: status|latency|drop|truncate|oversize|malformed, path (regex),
                   method, namespace, count, skip, probability, seed, status, errors,
                   retry_after, headers, latency_ms, size_mib, chunked, truncate_at,
                   body, content_type, rst} -> {id}
GET  /_test/faults | DELETE /_test/faults | POST /_test/faults/clear {id?}
GET  /_test/counts | POST /_test/reset-counts | GET /_test/requests?since=SEQ
POST /_test/clock {advance: seconds} | {offset: seconds}
"""


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, vault, admin_only):
        self.vault = vault
        self.admin_only = admin_only
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        v = self.vault
        v._on_connection(request)
        sock = request
        try:
            try:
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if v.tls and not self.admin_only:
                request.settimeout(10)
                try:
                    sock = v.ssl_ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    v._on_tls_failure(e)
                    return
                sock.settimeout(None)
                with v._conns_lock:
                    v._conns.discard(request)
                    v._conns.add(sock)
            self.RequestHandlerClass(sock, client_address, self)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            v._on_disconnect(sock)
            v._on_disconnect(request)
            try:
                sock.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):  # keep stderr quiet
        if self.vault.verbose:
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.server.vault.verbose:
            sys.stderr.write("vault_server: %s - %s\n" % (self.address_string(), fmt % args))

    def send_response(self, code, message=None):
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        v = self.server.vault
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path == "/_test" or url.path.startswith("/_test/"):
            self._write(v.admin(self.command, url, self.headers, body), None)
            return
        if self.server.admin_only:
            self._write(json_resp(404, {"error": "admin-only listener"}), None)
            return
        has_cert = False
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                has_cert = self.connection.getpeercert() not in (None, {})
            except (ValueError, ssl.SSLError):
                has_cert = False
        try:
            resp, action = v.serve(self.command, url, self.headers, body,
                                   peer=self.client_address, has_client_cert=has_cert)
        except Exception as e:  # pragma: no cover - bug guard
            resp, action = error_resp(500, [f"internal error: {e}"]), None
        self._write(resp, action)

    def _drop(self, rst=False):
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            if rst:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, resp, action):
        try:
            if action and action.get("drop"):
                self._drop(action.get("rst", False))
                return
            if action and "oversize" in action:
                head, pad, tail = action["oversize"]
                self.send_response(resp.status)
                for k, val in resp.headers.items():
                    self.send_header(k, val)
                if action.get("chunked"):
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(head) + pad + len(tail)))
                self.end_headers()

                def emit(b):
                    if action.get("chunked"):
                        self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
                    else:
                        self.wfile.write(b)

                emit(head)
                block = b"A" * 65536
                left = pad
                while left > 0:
                    emit(block[: min(left, len(block))])
                    left -= min(left, len(block))
                emit(tail)
                if action.get("chunked"):
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                return
            body = resp.body or b""
            if self.command == "HEAD":
                body = b""
            self.send_response(resp.status)
            for k, val in resp.headers.items():
                self.send_header(k, val)
            if resp.status != 204 and resp.status >= 200:
                self.send_header("Content-Length", str(len(resp.body or b"")))
            if self.close_connection:
                self.send_header("Connection", "close")
            # headers and body in one write (one TLS record / TCP segment burst)
            self._headers_buffer.append(b"\r\n")
            head = b"".join(self._headers_buffer)
            self._headers_buffer = []
            if action and "truncate" in action:
                self.wfile.write(head + body[: action["truncate"]])
                self._drop()
                return
            self.wfile.write(head + body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


# --------------------------------------------------------------------------
# clients / helpers for tests
# --------------------------------------------------------------------------


class AdminClient:
    """Tiny client for the /_test/ control API (stdlib only)."""

    def __init__(self, url, admin_token, cafile=None, cert=None, timeout=10):
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout
        self.ctx = None
        if self.url.startswith("https"):
            self.ctx = ssl.create_default_context(cafile=cafile)
            if cert:
                self.ctx.load_cert_chain(*cert) if isinstance(cert, tuple) \
                    else self.ctx.load_cert_chain(cert)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("X-Test-Admin", self.admin_token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.ctx) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw
            raise RuntimeError(f"admin {method} {path} -> {e.code}: {payload}") from None
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body=None):
        return self.call("POST", path, body if body is not None else {})


def spawn_cli(cert, key, workdir, config=None, extra_args=(), python=None, timeout=10,
              env=None):
    """Start vault_server.py as a subprocess; returns (Popen, info_dict).

    info_dict has port, url, admin_token, root_token (read from --info-file).
    """
    import subprocess

    os.makedirs(workdir, exist_ok=True)
    port_file = os.path.join(workdir, "vault.port")
    info_file = os.path.join(workdir, "vault.info.json")
    for f in (port_file, info_file):
        if os.path.exists(f):
            os.unlink(f)
    cmd = [python or sys.executable, os.path.abspath(__file__), "--cert", cert, "--key", key,
           "--port-file", port_file, "--info-file", info_file]
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
            raise RuntimeError("vault_server exited: " + proc.stderr.read().decode(errors="replace"))
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("vault_server did not start in time")


def _write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="HashiCorp Vault test server (HTTPS, in-memory)")
    ap.add_argument("--cert", help="server certificate (PEM)")
    ap.add_argument("--key", help="server private key (PEM)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = ephemeral (default)")
    ap.add_argument("--port-file", help="write the chosen port number here (atomically)")
    ap.add_argument("--info-file", help="write JSON {port,url,admin_token,root_token,...} here")
    ap.add_argument("--config", help="JSON text, or @FILE / FILE with JSON")
    ap.add_argument("--client-ca", help="CA bundle used to verify client certificates")
    ap.add_argument("--require-client-cert", action="store_true", help="mTLS: CERT_REQUIRED")
    ap.add_argument("--admin-token", help="fixed admin token (default: random)")
    ap.add_argument("--admin-token-file", help="write the admin token here")
    ap.add_argument("--admin-port-file",
                    help="also serve /_test/ on a plain-HTTP 127.0.0.1 port; write it here")
    ap.add_argument("--no-tls", action="store_true", help="serve plain HTTP (debug only)")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)

    cfg = None
    if args.config:
        text = args.config
        if text.startswith("@"):
            text = open(text[1:]).read()
        elif not text.lstrip().startswith("{") and os.path.exists(text):
            text = open(text).read()
        cfg = json.loads(text)
    if not args.no_tls and (not args.cert or not args.key):
        ap.error("--cert and --key are required (or --no-tls)")
    vs = VaultServer(args.cert, args.key, host=args.host, port=args.port, config=cfg,
                     client_ca=args.client_ca, require_client_cert=args.require_client_cert,
                     admin_token=args.admin_token,
                     admin_port=0 if args.admin_port_file else None,
                     verbose=args.verbose, tls=not args.no_tls)
    vs.start()
    info = vs.info()
    if args.admin_token_file:
        _write_atomic(args.admin_token_file, vs.admin_token + "\n")
    if args.admin_port_file:
        _write_atomic(args.admin_port_file, f"{vs.admin_port}\n")
    if args.info_file:
        _write_atomic(args.info_file, json.dumps(info) + "\n")
    if args.port_file:
        _write_atomic(args.port_file, f"{vs.port}\n")
    print(json.dumps(info), flush=True)

    stop = threading.Event()

    def _sig(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _sig)
    signal.signal(signal.SIGINT, _sig)
    while not stop.wait(0.5):
        pass
    vs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
