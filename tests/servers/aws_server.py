#!/usr/bin/env python3
"""Protocol-faithful AWS test server (Python standard library only).

One process stands in for every AWS endpoint that secretfs' AWS backend talks to,
with in-memory state, so that the C backend can be tested without AWS:

  HTTPS listener (127.0.0.1, TLS, HTTP/1.1 keep-alive), dispatched on
  X-Amz-Target / Action, never on Host:
    Secrets Manager  awsJson1_1, X-Amz-Target: secretsmanager.<Op>, SigV4 "secretsmanager"
        GetSecretValue, BatchGetSecretValue, DescribeSecret, ListSecrets,
        ListSecretVersionIds, PutSecretValue, CreateSecret, DeleteSecret, RestoreSecret
    SSM Parameter Store  awsJson1_1, X-Amz-Target: AmazonSSM.<Op>, SigV4 "ssm"
        GetParameter, GetParameters, GetParametersByPath, PutParameter, DeleteParameter
    STS  Query protocol (form-encoded POST / or GET ?Action=...), XML responses
        AssumeRoleWithWebIdentity (unsigned), GetCallerIdentity (SigV4 "sts")

  plain-HTTP "metadata" listener (127.0.0.1), as the real services are plain HTTP:
    IMDSv2  PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/[ROLE],
            /latest/meta-data/iam/info, /latest/meta-data/placement/region,
            /latest/meta-data/instance-id, /latest/dynamic/instance-identity/document
    Container credentials (ECS / EKS Pod Identity): GET on configured paths
            (e.g. /v2/credentials/ID for ..._RELATIVE_URI, /creds for ..._FULL_URI),
            checking the Authorization header when a token is configured.

Every Secrets Manager / SSM request (and STS GetCallerIdentity) has its SigV4
signature verified against the secret of the access key that signed it
(static keys, STS-, IMDS- and container-issued temporary keys), including the
X-Amz-Date skew, the credential scope, the session token and the expiry of
temporary credentials (a fake, adjustable clock).

Test-only control API under /_test/ (header X-Test-Admin: <admin token>) on
every listener; see README.md in this directory or ``_ADMIN_HELP`` below.

Use as a module::

    srv = AwsServer(cert="server.pem", key="server.key")
    srv.start()              # srv.url (https), srv.metadata_url (http)
    srv.put_secret("app/db", secret_string='{"pw":"x"}')
    ...
    srv.stop()

or as a CLI::

    aws_server.py --cert C --key K --port-file F [--metadata-port-file F]
                  [--info-file F] [--config JSON|@FILE|FILE] [--admin-token T]
                  [--admin-token-file F] [--admin-port-file F] [--port N]
                  [--metadata-port N] [--no-metadata] [--no-tls] [-v]
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import hmac
import http.server
import json
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
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape as _xml_escape

__all__ = ["AwsServer", "AdminClient", "spawn_cli", "AwsError", "ERROR_STYLES",
           "BOTOCORE_ERROR_STYLES", "DEFAULT_ACCESS_KEY", "DEFAULT_SECRET_KEY",
           "canonical_request", "string_to_sign", "signing_key"]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
# The documentation's example key pair (fixtures' raw requests use the same id).
DEFAULT_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DEFAULT_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEFAULT_IMDS_ROLE = "secretfs-test-role"
DEFAULT_CONTAINER_PATHS = ["/v2/credentials/secretfs-test", "/creds"]
JSON_CT = "application/x-amz-json-1.1"
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
CORAL_URI = "http://internal.amazon.com/coral/com.amazon.coral.validate/"
SERVICE_NS = {"secretsmanager": "com.amazonaws.secretsmanager", "ssm": "com.amazonaws.ssm"}
CORAL_NS = "com.amazon.coral.service"
TARGET_PREFIX = {"secretsmanager": "secretsmanager", "AmazonSSM": "ssm"}
SIGNING_NAME = {"secretsmanager": "secretsmanager", "ssm": "ssm", "sts": "sts"}
AWSCURRENT, AWSPREVIOUS = "AWSCURRENT", "AWSPREVIOUS"
SM_OPERATIONS = ("GetSecretValue", "BatchGetSecretValue", "DescribeSecret", "ListSecrets",
                 "ListSecretVersionIds", "PutSecretValue", "CreateSecret", "DeleteSecret",
                 "RestoreSecret", "UpdateSecretVersionStage")
SSM_OPERATIONS = ("GetParameter", "GetParameters", "GetParametersByPath", "PutParameter",
                  "DeleteParameter")
_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + "234567"

# How an error's code is put on the wire (the awsJson1_1 error-parsing vectors,
# /work/shared/fixtures/aws/awsjson11-error-parsing-vectors.json, list the forms).
#   plain          body {"__type":"X","Message":...}
#   header         plain + header  x-amzn-ErrorType: X
#   header_uri     plain + header  x-amzn-ErrorType: X:http://internal.amazon.com/coral/...
#   namespaced     body __type "ns#X" + header "ns#X:http://..."
#   type_ns        body __type "ns#X", no header
#   type_ns_uri    body __type "ns#X:http://...", no header
#   code / code_ns / code_ns_uri   body {"code": X | ns#X | ns#X:uri}, no header
#   header_only / header_only_uri / header_only_ns_uri   empty body, code in header only
#   rotate         cycles through all of the above, one error response after the other
ERROR_STYLES = ("plain", "header", "header_uri", "namespaced", "type_ns", "type_ns_uri",
                "code", "code_ns", "code_ns_uri", "header_only", "header_only_uri",
                "header_only_ns_uri")
# Styles from which botocore (1.29, which reads only the body's __type and strips
# "ns#") extracts the right code. The others are for clients that implement the
# full smithy rule (header first, then __type, then code; strip ns# and :uri).
BOTOCORE_ERROR_STYLES = ("plain", "header", "header_uri", "namespaced", "type_ns")

# Default HTTP status per error code (AWS CommonErrors + the service models).
ERROR_STATUS = {
    "InternalServiceError": 500, "InternalServerError": 500, "InternalFailure": 500,
    "ServiceUnavailable": 503, "ServiceUnavailableException": 503,
    "InvalidClientTokenId": 403, "OptInRequired": 403, "AccessDenied": 403,
    "SignatureDoesNotMatch": 403, "MissingAuthenticationToken": 403,
}
# Which member carries the message ('Message' vs 'message', per the models).
_LOWER_MESSAGE = {
    "ParameterNotFound", "ParameterVersionNotFound", "InvalidKeyId", "InvalidFilterOption",
    "ParameterAlreadyExists", "UnrecognizedClientException", "InvalidSignatureException",
    "IncompleteSignatureException", "MissingAuthenticationTokenException",
    "ExpiredTokenException", "ValidationException", "SerializationException",
    "UnknownOperationException", "HierarchyLevelLimitExceededException",
    "ParameterLimitExceeded", "UnsupportedParameterType",
}
_NO_MESSAGE = {"InvalidFilterKey"}
# Framework (Coral) errors: namespaced as com.amazon.coral.service#X in "namespaced".
_CORAL_ERRORS = {
    "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
    "MissingAuthenticationTokenException", "ExpiredTokenException", "ThrottlingException",
    "AccessDeniedException", "SerializationException", "UnknownOperationException",
    "ValidationException", "ServiceUnavailable", "InternalFailure", "RequestExpired",
}
# The same auth failures in the Query (STS) protocol.
_STS_AUTH_ERRORS = {
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
    "InvalidSignatureException": ("SignatureDoesNotMatch", 403),
    "IncompleteSignatureException": ("IncompleteSignature", 400),
    "MissingAuthenticationTokenException": ("MissingAuthenticationToken", 403),
    "ExpiredTokenException": ("ExpiredToken", 400),
    "ThrottlingException": ("Throttling", 400),
}

MSG_NOT_FOUND = "Secrets Manager can't find the specified secret."
MSG_DECRYPT = "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
MSG_MARKED_DELETED = ("You can't perform this operation on the secret because it was marked "
                      "for deletion.")
MSG_BAD_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
MSG_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                     "provided. Check your AWS Secret Access Key and signing method. Consult the "
                     "service documentation for details.")
MSG_THROTTLED = "Rate exceeded"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


class AwsError(Exception):
    """Raised inside handlers; rendered per protocol (JSON 1.1 or STS XML)."""

    def __init__(self, code, message=None, status=None, extra=None, style=None, headers=None,
                 sender=True):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)
        self.extra = extra or {}
        self.style = style
        self.headers = headers or {}
        self.sender = sender


class Resp:
    """An HTTP response to be written by the handler."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}


def _rand(alphabet, n):
    return "".join(_secrets.choice(alphabet) for _ in range(n))


def new_request_id():
    return str(uuid.uuid4())


def iso8601(t):
    """AWS XML / IMDS timestamp: 2014-10-24T23:00:23Z (whole seconds, UTC)."""
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(t):
    """awsJson1_1 timestamp: epoch seconds as a JSON number, millisecond precision."""
    return round(float(t), 3)


def amz_date(t):
    return datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def parse_time(v, now):
    """Seconds since epoch from an epoch number, ISO 8601 text, or None."""
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    s = str(v).strip()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    s = s.replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()


def aws_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bool(v, default=False):
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return bool(v)
    return str(v).strip().lower() in ("1", "t", "true", "yes", "y", "on")


def _b64decode_any(s):
    if isinstance(s, (bytes, bytearray)):
        return bytes(s)
    return base64.b64decode(s, validate=True)


def _xml(tag, value):
    return f"<{tag}>{_xml_escape(str(value))}</{tag}>"


def sts_xml(tag_resp, inner, request_id):
    return (f'<{tag_resp} xmlns="{STS_XMLNS}">\n{inner}'
            f"  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n"
            f"  </ResponseMetadata>\n</{tag_resp}>\n").encode("utf-8")


def sts_error_xml(code, message, request_id, sender=True):
    return (f'<ErrorResponse xmlns="{STS_XMLNS}">\n  <Error>\n'
            f"    <Type>{'Sender' if sender else 'Receiver'}</Type>\n"
            f"    {_xml('Code', code)}\n    {_xml('Message', message or '')}\n"
            f"  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
            ).encode("utf-8")


def _decode_jwt_claims(token):
    """Claims of a JWT-looking token (no signature check), else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        pad = "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + pad))
        return claims if isinstance(claims, dict) else None
    except (ValueError, TypeError):
        return None


# --------------------------------------------------------------------------
# SigV4 (the same canonical form botocore's SigV4Auth builds)
# --------------------------------------------------------------------------


def _remove_dot_segments(path):
    """botocore.utils.remove_dot_segments (RFC 3986 5.2.4; also collapses '//')."""
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if seg and seg != ".":
            if seg == "..":
                if out:
                    out.pop()
            else:
                out.append(seg)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and out else ""
    return first + "/".join(out) + last


def _canonical_query(raw_query):
    pairs = []
    for part in (raw_query or "").split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(method, raw_path, raw_query, get_all, signed_headers, payload_hash):
    """The SigV4 canonical request.

    get_all(name) returns the list of values received for a header (any case);
    signed_headers is the list from the Authorization header's SignedHeaders.
    """
    curi = quote(_remove_dot_segments(raw_path or "/"), safe="/~")
    names = sorted({h.strip().lower() for h in signed_headers if h.strip()})
    lines = []
    for n in names:
        vals = get_all(n) or []
        lines.append(f"{n}:" + ",".join(" ".join(str(v).split()) for v in vals))
    return "\n".join([method.upper(), curi, _canonical_query(raw_query),
                      "\n".join(lines) + "\n", ";".join(names), payload_hash])


def string_to_sign(amzdate, scope, creq):
    return "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                      hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


# --------------------------------------------------------------------------
# state objects
# --------------------------------------------------------------------------


class Key:
    """An access key the server accepts."""

    def __init__(self, access_key_id, secret_access_key, session_token=None, expiration=None,
                 kind="static", principal=None, deny=None, source=None):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.expiration = expiration  # epoch seconds (server clock) or None
        self.kind = kind  # static | sts | imds | container | session
        self.principal = principal
        self.deny = list(deny or [])
        self.source = source  # role ARN / IMDS role / container path
        self.revoked = False

    def as_dict(self, now):
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "expiration": self.expiration,
            "expiration_iso": iso8601(self.expiration) if self.expiration else None,
            "expired": bool(self.expiration is not None and now >= self.expiration),
            "revoked": self.revoked,
            "kind": self.kind,
            "principal": self.principal,
            "deny": list(self.deny),
            "source": self.source,
        }


class SecretVersion:
    def __init__(self, version_id, string_value, binary_value, created):
        self.version_id = version_id
        self.string = string_value
        self.binary = binary_value
        self.created = created
        self.stages = []


class Secret:
    def __init__(self, name, arn, created, seq):
        self.name = name
        self.arn = arn
        self.created = created
        self.last_changed = created
        self.last_accessed = None
        self.deleted_date = None
        self.description = None
        self.kms_key_id = None
        self.tags = []
        self.versions = {}  # version id -> SecretVersion (insertion order)
        self.decryption_failure = False
        self.rotation_enabled = None
        self.seq = seq

    def staged(self):
        return {vid: list(v.stages) for vid, v in self.versions.items() if v.stages}

    def by_stage(self, stage):
        for v in self.versions.values():
            if stage in v.stages:
                return v
        return None


class Parameter:
    def __init__(self, name):
        self.name = name
        self.versions = []  # list of dicts, ascending version

    @property
    def current(self):
        return self.versions[-1]


# --------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------


class _Req:
    def __init__(self, method, url, headers, body, peer, listener):
        self.method = method.upper()
        self.raw_path = url.path or "/"
        self.query_string = url.query
        self.headers = headers
        self.body = body or b""
        self.peer = peer
        self.listener = listener
        self.request_id = new_request_id()
        self.service = None  # secretsmanager | ssm | sts | imds | container | None
        self.op = None
        self.op_key = "unknown"
        self.names = []
        self.params = {}
        self.parse_error = None
        self.key = None
        self.auth_result = None
        auth = headers.get("Authorization") or ""
        m = re.search(r"Credential=([^/,\s]+)", auth)
        self.access_key = m.group(1) if m else None
        self.signed = auth.startswith("AWS4-")
        self.session_token_sent = headers.get("X-Amz-Security-Token") is not None


class AwsServer:
    """In-memory AWS test server. See module docstring."""

    def __init__(self, cert=None, key=None, *, host="127.0.0.1", port=0, metadata_port=0,
                 config=None, admin_token=None, admin_port=None, verbose=False, tls=True):
        if tls and (not cert or not key):
            raise ValueError("cert and key are required unless tls=False")
        self.cert, self.key = cert, key
        self.host, self._want_port = host, port
        self._want_metadata_port = metadata_port  # None = no metadata listener
        self._admin_port_wanted = admin_port
        self.tls = tls
        self.admin_token = admin_token or _secrets.token_hex(16)
        self.verbose = verbose
        self._initial_config = copy.deepcopy(config or {})
        self._lock = threading.RLock()
        self._servers = []
        self._threads = []
        self._conns = set()
        self._conns_lock = threading.Lock()
        self._token_secret = _secrets.token_bytes(16)
        self.port = self.metadata_port = self.admin_port = None
        self.url = self.metadata_url = self.admin_url = None
        self._apply_config(self._initial_config, fresh=True)

    # ------------------------------------------------------------------ setup

    def _apply_config(self, cfg, fresh=False):
        with self._lock:
            if fresh:
                self.clock_offset = 0.0
                self.region = DEFAULT_REGION
                self.account_id = DEFAULT_ACCOUNT
                self.error_style = "header"
                self._rotate_i = 0
                self.auth_error_status = 400
                self.max_skew = 300
                self.verify_signatures = True
                self.signature_debug = True
                self.ssm_paging = {"page_size": None, "empty_leading": 0, "empty_between": 0,
                                   "empty_trailing": 0}
                self.session_token_length = 356
                self.keys = {}
                self.secrets = {}
                self._secret_seq = 0
                self.parameters = {}
                self.roles = {}
                self.faults = []
                self._fault_seq = 0
                self.imds = {"enabled": True, "role": DEFAULT_IMDS_ROLE, "token_required": True,
                             "duration": 21600, "rotate_before": 300, "code": "Success",
                             "deny": [], "tokens": {}, "creds": None,
                             "instance_id": "i-0123456789abcdef0"}
                self.container = {"enabled": True, "paths": list(DEFAULT_CONTAINER_PATHS),
                                  "authorization": None, "duration": 3600,
                                  "rotate_before": 300, "deny": [], "creds": None,
                                  "role_arn": None, "account_id_field": False}
                self.reset_counts()
            for k in ("region", "account_id"):
                if k in cfg:
                    setattr(self, k, str(cfg[k]))
            self.configure(**{k: cfg[k] for k in (
                "error_style", "auth_error_status", "max_skew", "verify_signatures",
                "signature_debug", "ssm_paging", "session_token_length") if k in cfg})
            if fresh:
                if self.container["role_arn"] is None:
                    self.container["role_arn"] = (
                        f"arn:aws:iam::{self.account_id}:role/secretfs-container-role")
                if cfg.get("default_keys", True):
                    self.add_key(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
            for k in cfg.get("keys", []):
                self.add_key(**k)
            for s in cfg.get("secrets", []):
                s = dict(s)
                self.put_secret(s.pop("name"), **s)
            for p in cfg.get("parameters", []):
                p = dict(p)
                self.put_parameter(p.pop("name"), p.pop("value"), **p)
            for r in cfg.get("roles", []):
                self.add_role(**r)
            if "imds" in cfg:
                self.configure_imds(**cfg["imds"])
            if "container" in cfg:
                self.configure_container(**cfg["container"])
            for f in cfg.get("faults", []):
                self.add_fault(**f)

    def now(self):
        """The server's (fake) clock: credential lifetimes, timestamps, token TTLs."""
        return time.time() + self.clock_offset

    def advance_clock(self, seconds):
        with self._lock:
            self.clock_offset += float(seconds)
            return self.clock_offset

    def set_clock_offset(self, seconds):
        with self._lock:
            self.clock_offset = float(seconds)
            return self.clock_offset

    def configure(self, error_style=None, auth_error_status=None, max_skew=None,
                  verify_signatures=None, signature_debug=None, ssm_paging=None,
                  session_token_length=None, region=None, account_id=None):
        with self._lock:
            if error_style is not None:
                if error_style not in ERROR_STYLES + ("rotate",):
                    raise ValueError(f"error_style must be one of {ERROR_STYLES + ('rotate',)}")
                self.error_style = error_style
            if auth_error_status is not None:
                self.auth_error_status = int(auth_error_status)
            if max_skew is not None:
                self.max_skew = int(max_skew)
            if verify_signatures is not None:
                self.verify_signatures = _bool(verify_signatures)
            if signature_debug is not None:
                self.signature_debug = _bool(signature_debug)
            if ssm_paging is not None:
                for k, v in ssm_paging.items():
                    if k not in self.ssm_paging:
                        raise ValueError(f"unknown ssm_paging key {k!r}")
                    self.ssm_paging[k] = None if v is None else int(v)
            if session_token_length is not None:
                self.session_token_length = max(16, int(session_token_length))
            if region is not None:
                self.region = str(region)
            if account_id is not None:
                self.account_id = str(account_id)
            return self.settings()

    def settings(self):
        return {"region": self.region, "account_id": self.account_id,
                "error_style": self.error_style, "auth_error_status": self.auth_error_status,
                "max_skew": self.max_skew, "verify_signatures": self.verify_signatures,
                "signature_debug": self.signature_debug, "ssm_paging": dict(self.ssm_paging),
                "session_token_length": self.session_token_length}

    def reset(self):
        """Back to the startup configuration (state, keys, faults, counts, clock)."""
        self._apply_config(self._initial_config, fresh=True)

    # keys -------------------------------------------------------------------

    def add_key(self, access_key_id=None, secret_access_key=None, session_token=None,
                expiration=None, expires_in=None, kind=None, principal=None, deny=None):
        """Register an access key. A session_token makes it a temporary key (which
        must send X-Amz-Security-Token); expiration (epoch/ISO) or expires_in
        (seconds from the server clock) make it expire."""
        with self._lock:
            now = self.now()
            akid = access_key_id or ("ASIA" if session_token else "AKIA") + _rand(_UPPER_ALNUM, 16)
            exp = parse_time(expiration, now)
            if expires_in is not None:
                exp = now + float(expires_in)
            k = Key(akid, secret_access_key or _rand(_ALNUM + "/+", 40), session_token, exp,
                    kind or ("session" if session_token else "static"),
                    principal or f"arn:aws:iam::{self.account_id}:user/secretfs-test", deny)
            self.keys[akid] = k
            return k.as_dict(now)

    def expire_key(self, access_key_id):
        with self._lock:
            k = self.keys[access_key_id]
            k.expiration = self.now() - 1
            return k.as_dict(self.now())

    def revoke_key(self, access_key_id):
        with self._lock:
            k = self.keys.get(access_key_id)
            if k is None:
                return False
            k.revoked = True
            return True

    def list_keys(self):
        with self._lock:
            now = self.now()
            return [k.as_dict(now) for k in self.keys.values()]

    def _issue_temp_key(self, kind, duration, principal, deny, source):
        now = self.now()
        akid = "ASIA" + _rand(_UPPER_ALNUM, 16)
        token = "IQoJb3JpZ2luX2VjE" + _rand(_ALNUM + "/+", max(0, self.session_token_length - 17))
        k = Key(akid, _rand(_ALNUM + "/+", 40), token, now + duration, kind, principal, deny,
                source)
        self.keys[akid] = k
        return k

    # Secrets Manager state --------------------------------------------------

    def _new_arn(self, name, suffix=None):
        return (f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{name}-"
                f"{suffix or _rand(_ALNUM, 6)}")

    def put_secret(self, name, secret_string=None, secret_binary=None, secret_binary_b64=None,
                   description=None, tags=None, kms_key_id=None, version_id=None, stages=None,
                   decryption_failure=None, arn_suffix=None, rotation_enabled=None,
                   versions=None):
        """Create a secret, or add a version to it (PutSecretValue semantics).

        secret_binary: bytes (or base64 text); secret_binary_b64: base64 text.
        versions: [{version_id, secret_string|secret_binary_b64, stages}] for setup.
        Returns {arn, name, version_id, version_stages}."""
        with self._lock:
            sec = self.secrets.get(name)
            now = self.now()
            if sec is None:
                self._secret_seq += 1
                sec = Secret(name, self._new_arn(name, arn_suffix), now, self._secret_seq)
                self.secrets[name] = sec
            if description is not None:
                sec.description = description
            if tags is not None:
                sec.tags = [{"Key": t["Key"], "Value": t.get("Value", "")} for t in tags]
            if kms_key_id is not None:
                sec.kms_key_id = kms_key_id
            if decryption_failure is not None:
                sec.decryption_failure = _bool(decryption_failure)
            if rotation_enabled is not None:
                sec.rotation_enabled = _bool(rotation_enabled)
            out = {"arn": sec.arn, "name": sec.name, "version_id": None, "version_stages": None}
            for v in versions or []:
                v = dict(v)
                b = v.get("secret_binary_b64", v.get("secret_binary"))
                ver = self._sm_add_version(sec, v.get("version_id"), v.get("secret_string"),
                                           _b64decode_any(b) if b is not None else None,
                                           v.get("stages"))
                out.update(version_id=ver.version_id, version_stages=list(ver.stages))
            if secret_binary_b64 is not None:
                secret_binary = _b64decode_any(secret_binary_b64)
            elif isinstance(secret_binary, str):
                secret_binary = _b64decode_any(secret_binary)
            if secret_string is not None or secret_binary is not None:
                ver = self._sm_add_version(sec, version_id, secret_string, secret_binary, stages)
                out.update(version_id=ver.version_id, version_stages=list(ver.stages))
            return out

    def _sm_add_version(self, sec, version_id, string_value, binary_value, stages):
        if string_value is not None and binary_value is not None:
            raise AwsError("InvalidParameterException",
                           "You can't specify both a binary secret value and a string secret "
                           "value in the same secret.")
        if string_value is None and binary_value is None:
            raise AwsError("InvalidRequestException",
                           "You must provide either SecretString or SecretBinary.")
        vid = version_id or str(uuid.uuid4())
        old = sec.versions.get(vid)
        if old is not None:
            if old.string == string_value and old.binary == binary_value:
                return old  # idempotent retry of the same ClientRequestToken
            raise AwsError("ResourceExistsException",
                           f"A resource with the ID you requested already exists: version "
                           f"{vid} of {sec.name} has a different secret value.")
        now = self.now()
        ver = SecretVersion(vid, string_value, binary_value, now)
        new_stages = list(stages) if stages is not None else [AWSCURRENT]
        prev_current = sec.by_stage(AWSCURRENT)
        for v in sec.versions.values():
            v.stages = [s for s in v.stages if s not in new_stages]
        if AWSCURRENT in new_stages and prev_current is not None:
            for v in sec.versions.values():
                v.stages = [s for s in v.stages if s != AWSPREVIOUS]
            prev_current.stages.append(AWSPREVIOUS)
        ver.stages = new_stages
        sec.versions[vid] = ver
        sec.last_changed = now
        # like AWS, drop the oldest unstaged ("deprecated") versions beyond 100
        unstaged = [k for k, v in sec.versions.items() if not v.stages]
        while len(sec.versions) > 100 and unstaged:
            del sec.versions[unstaged.pop(0)]
        return ver

    def get_secret_state(self, name):
        with self._lock:
            sec = self.secrets.get(name)
            if sec is None:
                return None
            return {
                "name": sec.name, "arn": sec.arn, "description": sec.description,
                "kms_key_id": sec.kms_key_id, "tags": sec.tags,
                "created": sec.created, "last_changed": sec.last_changed,
                "last_accessed": sec.last_accessed, "deleted_date": sec.deleted_date,
                "decryption_failure": sec.decryption_failure,
                "version_ids_to_stages": sec.staged(),
                "versions": [{"version_id": v.version_id, "stages": list(v.stages),
                              "created": v.created, "secret_string": v.string,
                              "secret_binary_b64": (base64.b64encode(v.binary).decode()
                                                    if v.binary is not None else None)}
                             for v in sec.versions.values()],
            }

    def delete_secret(self, name, force=True, recovery_window_days=30):
        with self._lock:
            sec = self.secrets.get(name)
            if sec is None:
                return False
            if force:
                del self.secrets[name]
            else:
                sec.deleted_date = self.now() + 86400 * int(recovery_window_days)
            return True

    def _resolve_secret(self, secret_id, quiet=False):
        """Secret by name, full ARN or partial ARN (without the -XXXXXX suffix)."""
        if secret_id in self.secrets:
            return self.secrets[secret_id]
        if isinstance(secret_id, str) and secret_id.startswith("arn:"):
            for sec in self.secrets.values():
                if sec.arn == secret_id:
                    return sec
            prefix = f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:"
            if secret_id.startswith(prefix):
                name = secret_id[len(prefix):]
                if name in self.secrets:
                    return self.secrets[name]
        if quiet:
            return None
        raise AwsError("ResourceNotFoundException", MSG_NOT_FOUND)

    # SSM state --------------------------------------------------------------

    def _param_arn(self, name):
        return (f"arn:aws:ssm:{self.region}:{self.account_id}:parameter"
                f"{name if name.startswith('/') else '/' + name}")

    def put_parameter(self, name, value, type=None, overwrite=True, key_id=None,
                      data_type=None, description=None, labels=None):
        """Create or overwrite a parameter; returns the new version number."""
        with self._lock:
            self._validate_param_name(name)
            if type is not None and type not in ("String", "StringList", "SecureString"):
                raise AwsError("ValidationException",
                               f"1 validation error detected: Value '{type}' at 'type' failed to "
                               "satisfy constraint: Member must satisfy enum value set: "
                               "[SecureString, StringList, String]")
            p = self.parameters.get(name)
            if p is not None and not _bool(overwrite):
                raise AwsError("ParameterAlreadyExists",
                               "The parameter already exists. To overwrite this value, set the "
                               "overwrite option in the request to true.")
            if p is None:
                p = Parameter(name)
                self.parameters[name] = p
                ptype = type or "String"
            else:
                ptype = type or p.current["type"]
            ver = {
                "version": (p.versions[-1]["version"] + 1) if p.versions else 1,
                "value": str(value),
                "type": ptype,
                "key_id": (key_id or "alias/aws/ssm") if ptype == "SecureString" else None,
                "data_type": data_type or "text",
                "modified": self.now(),
                "description": description,
                "labels": list(labels or []),
            }
            p.versions.append(ver)
            del p.versions[:-100]
            return ver["version"]

    def delete_parameter(self, name):
        with self._lock:
            return self.parameters.pop(name, None) is not None

    def get_parameter_state(self, name):
        with self._lock:
            p = self.parameters.get(name)
            if p is None:
                return None
            return {"name": p.name, "arn": self._param_arn(p.name),
                    "versions": copy.deepcopy(p.versions)}

    @staticmethod
    def _validate_param_name(name):
        if not isinstance(name, str) or not name or len(name) > 2048:
            raise AwsError("ValidationException", "Parameter name must not be empty.")
        bad = ("/" in name and not name.startswith("/")) or "//" in name \
            or not re.fullmatch(r"[A-Za-z0-9_.\-/]+", name) \
            or re.match(r"/?(aws|ssm)", name, re.I)
        if bad:
            raise AwsError("ValidationException",
                           "Parameter name: can't be prefixed with \"aws\" or \"ssm\" "
                           "(case-insensitive). If formed as a path, it can consist of sub-paths "
                           "divided by slash symbol; each sub-path can be formed as a mix of "
                           "letters, numbers and the following 3 symbols .-_")
        if name.count("/") > 15:
            raise AwsError("HierarchyLevelLimitExceededException",
                           "The hierarchy can have a maximum of 15 levels.")

    def _ciphertext(self, name, ver):
        """A deterministic KMS-ciphertext-looking blob (what SSM returns for a
        SecureString read without WithDecryption)."""
        seed = hashlib.sha256(f"{name}:{ver['version']}:{ver['key_id']}".encode()).digest()
        data = ver["value"].encode("utf-8")
        stream = b""
        i = 0
        while len(stream) < len(data):
            stream += hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
            i += 1
        enc = bytes(a ^ b for a, b in zip(data, stream))
        return base64.b64encode(b"\x01\x02\x02\x00\x78" + seed + enc).decode()

    # STS / IMDS / container --------------------------------------------------

    def add_role(self, role_arn, web_identity_token=None, tokens=None, max_session_duration=3600,
                 subject=None, audience=None, provider=None, deny=None,
                 invalid_token_message=None):
        """A role for AssumeRoleWithWebIdentity; the call succeeds only with one of
        the configured tokens (if the token is a JWT its 'exp' is enforced)."""
        with self._lock:
            toks = list(tokens or [])
            if web_identity_token is not None:
                toks.insert(0, web_identity_token)
            self.roles[role_arn] = {
                "role_arn": role_arn, "tokens": toks,
                "max_session_duration": int(max_session_duration),
                "subject": subject, "audience": audience,
                "provider": provider or "arn:aws:iam::%s:oidc-provider/oidc.example.test"
                % self.account_id,
                "deny": list(deny or []),
                "invalid_token_message": invalid_token_message,
                "issued": [],
            }
            return {"role_arn": role_arn, "tokens": toks}

    def configure_imds(self, **kw):
        with self._lock:
            for k, v in kw.items():
                if k not in ("enabled", "role", "token_required", "duration", "rotate_before",
                             "code", "deny", "instance_id"):
                    raise ValueError(f"unknown imds setting {k!r}")
                if k != "role" and k != "code" and k != "deny" and k != "instance_id":
                    v = _bool(v) if k in ("enabled", "token_required") else int(v)
                self.imds[k] = v
            if "role" in kw or "duration" in kw or "deny" in kw:
                self.imds["creds"] = None
            return self.imds_state()

    def imds_state(self):
        with self._lock:
            d = {k: v for k, v in self.imds.items() if k not in ("tokens", "creds")}
            c = self.imds["creds"]
            d["credentials"] = c.as_dict(self.now()) if c else None
            d["tokens"] = len(self.imds["tokens"])
            return d

    def rotate_imds(self):
        with self._lock:
            self.imds["creds"] = None
            return self._imds_creds().as_dict(self.now())

    def _imds_creds(self):
        c = self.imds["creds"]
        now = self.now()
        if c is None or c.revoked or now >= c.expiration - self.imds["rotate_before"]:
            c = self._issue_temp_key(
                "imds", self.imds["duration"],
                f"arn:aws:sts::{self.account_id}:assumed-role/{self.imds['role']}/"
                f"{self.imds['instance_id']}", self.imds["deny"], self.imds["role"])
            c.issued = now
            self.imds["creds"] = c
        return c

    def configure_container(self, **kw):
        with self._lock:
            for k, v in kw.items():
                if k not in ("enabled", "paths", "authorization", "duration", "rotate_before",
                             "deny", "role_arn", "account_id_field"):
                    raise ValueError(f"unknown container setting {k!r}")
                if k in ("enabled", "account_id_field"):
                    v = _bool(v)
                elif k in ("duration", "rotate_before"):
                    v = int(v)
                elif k == "paths":
                    v = [v] if isinstance(v, str) else list(v)
                self.container[k] = v
            if {"duration", "deny", "role_arn"} & set(kw):
                self.container["creds"] = None
            return self.container_state()

    def container_state(self):
        with self._lock:
            d = {k: v for k, v in self.container.items() if k != "creds"}
            c = self.container["creds"]
            d["credentials"] = c.as_dict(self.now()) if c else None
            return d

    def rotate_container(self):
        with self._lock:
            self.container["creds"] = None
            return self._container_creds().as_dict(self.now())

    def _container_creds(self):
        c = self.container["creds"]
        now = self.now()
        if c is None or c.revoked or now >= c.expiration - self.container["rotate_before"]:
            role = self.container["role_arn"].rsplit("/", 1)[-1]
            c = self._issue_temp_key(
                "container", self.container["duration"],
                f"arn:aws:sts::{self.account_id}:assumed-role/{role}/secretfs-task",
                self.container["deny"], self.container["role_arn"])
            self.container["creds"] = c
        return c

    # faults -------------------------------------------------------------------

    def add_fault(self, kind="status", service=None, operation=None, name=None, path=None,
                  method=None, listener=None, access_key=None, count=None, skip=0,
                  probability=1.0, seed=0, status=None, code=None, message=None, style=None,
                  headers=None, latency_ms=0, size_mib=1.0, chunked=False, truncate_at=None,
                  body=None, content_type=None, rst=False, retry_after=None):
        """Register a fault rule; returns its id. See README for semantics."""
        kinds = ("status", "error", "throttle", "latency", "drop", "truncate", "oversize",
                 "malformed")
        if kind not in kinds:
            raise ValueError(f"kind must be one of {kinds}")
        if style is not None and style not in ERROR_STYLES + ("rotate",):
            raise ValueError(f"style must be one of {ERROR_STYLES + ('rotate',)}")
        with self._lock:
            self._fault_seq += 1
            rule = {
                "id": self._fault_seq, "kind": kind, "service": service,
                "operation": operation, "name": name,
                "_name_re": re.compile(name) if name else None,
                "path": path, "_re": re.compile(path) if path else None,
                "method": method.upper() if method else None, "listener": listener,
                "access_key": access_key,
                "count": None if count is None else int(count), "skip": int(skip or 0),
                "probability": float(probability), "seed": seed,
                "_rng": random.Random(seed),
                "status": None if status is None else int(status), "code": code,
                "message": message, "style": style, "headers": dict(headers or {}),
                "latency_ms": float(latency_ms or 0), "size_mib": float(size_mib),
                "chunked": bool(chunked), "truncate_at": truncate_at, "body": body,
                "content_type": content_type, "rst": bool(rst), "retry_after": retry_after,
                "matched": 0, "fired": 0,
            }
            self.faults.append(rule)
            return rule["id"]

    def clear_faults(self, fault_id=None):
        with self._lock:
            if fault_id is None:
                self.faults = []
            else:
                self.faults = [f for f in self.faults if f["id"] != int(fault_id)]

    def list_faults(self):
        with self._lock:
            return [{k: v for k, v in f.items() if not k.startswith("_")} for f in self.faults]

    # counters -----------------------------------------------------------------

    def reset_counts(self):
        with self._lock:
            self._counts = {
                "total": 0, "connections": 0, "tls_handshake_failures": 0,
                "admin_requests": 0, "faults_fired": 0, "signed": 0, "unsigned": 0,
                "operations": {}, "secrets": {}, "parameters": {}, "roles": {},
                "access_keys": {}, "statuses": {}, "errors": {}, "auth_failures": {},
                "listeners": {},
            }
            self._log = []
            self._seq = 0

    def counts(self):
        with self._lock:
            return copy.deepcopy(self._counts)

    def requests_log(self, since=0):
        with self._lock:
            return [dict(r) for r in self._log if r["seq"] > since]

    def op_count(self, op_key):
        with self._lock:
            return self._counts["operations"].get(op_key, 0)

    def secret_count(self, name, op=None):
        with self._lock:
            d = self._counts["secrets"].get(name, {})
            return sum(d.values()) if op is None else d.get(op, 0)

    def parameter_count(self, name, op=None):
        with self._lock:
            d = self._counts["parameters"].get(name, {})
            return sum(d.values()) if op is None else d.get(op, 0)

    def role_count(self, role_arn):
        with self._lock:
            return self._counts["roles"].get(role_arn, {}).get("AssumeRoleWithWebIdentity", 0)

    # ------------------------------------------------------------- lifecycle

    def _ssl_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def _listen(self, port, kind):
        srv = _HTTPServer((self.host, port), _Handler, self, kind)
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                             name=f"aws-{kind}", daemon=True)
        t.start()
        self._servers.append(srv)
        self._threads.append(t)
        return srv.server_address[1]

    def start(self):
        self.ssl_ctx = self._ssl_context() if self.tls else None
        self.port = self._listen(self._want_port, "main")
        self.url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        if self._want_metadata_port is not None:
            self.metadata_port = self._listen(self._want_metadata_port, "metadata")
            self.metadata_url = f"http://{self.host}:{self.metadata_port}"
        if self._admin_port_wanted is not None:
            self.admin_port = self._listen(self._admin_port_wanted, "admin")
            self.admin_url = f"http://{self.host}:{self.admin_port}"
        return self.port

    def stop(self):
        for srv in self._servers:
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
        self._servers, self._threads = [], []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def info(self):
        return {
            "port": self.port, "url": self.url,
            "metadata_port": self.metadata_port, "metadata_url": self.metadata_url,
            "imds_endpoint": (self.metadata_url + "/") if self.metadata_url else None,
            "container_full_uri": (self.metadata_url + self.container["paths"][-1]
                                   if self.metadata_url and self.container["paths"] else None),
            "container_relative_uri": (self.container["paths"][0]
                                       if self.container["paths"] else None),
            "admin_port": self.admin_port, "admin_url": self.admin_url,
            "admin_token": self.admin_token,
            "region": self.region, "account_id": self.account_id,
            "access_key_id": DEFAULT_ACCESS_KEY if DEFAULT_ACCESS_KEY in self.keys else None,
            "secret_access_key": (DEFAULT_SECRET_KEY if DEFAULT_ACCESS_KEY in self.keys
                                  else None),
            "pid": os.getpid(),
        }

    # ---------------------------------------------------------- request path

    def _classify(self, req):
        """Work out service, operation and resource names (no side effects)."""
        h = req.headers
        if req.listener == "metadata":
            return self._classify_metadata(req)
        target = h.get("X-Amz-Target")
        if target:
            prefix, _, op = target.partition(".")
            req.service = TARGET_PREFIX.get(prefix)
            req.op = op
            req.op_key = target if req.service else "unknown"
            if req.body.strip():
                try:
                    obj = json.loads(req.body.decode("utf-8"))
                    if not isinstance(obj, dict):
                        raise ValueError("not an object")
                    req.params = obj
                except (ValueError, UnicodeDecodeError):
                    req.parse_error = AwsError("SerializationException",
                                               "Start of structure or map found where not "
                                               "expected.")
            p = req.params
            if req.service == "secretsmanager":
                sid = p.get("SecretId", p.get("Name"))
                if isinstance(sid, str):
                    sec = self._resolve_secret(sid, quiet=True)
                    req.names = [sec.name if sec else sid]
                elif isinstance(p.get("SecretIdList"), list):
                    for s in p["SecretIdList"]:
                        if isinstance(s, str):
                            sec = self._resolve_secret(s, quiet=True)
                            req.names.append(sec.name if sec else s)
            elif req.service == "ssm":
                if isinstance(p.get("Name"), str):
                    req.names = [self._ssm_split_name(p["Name"])[0]]
                elif isinstance(p.get("Path"), str):
                    req.names = [self._ssm_norm_path(p["Path"])]
                elif isinstance(p.get("Names"), list):
                    req.names = [self._ssm_split_name(n)[0] for n in p["Names"]
                                 if isinstance(n, str)]
            return
        params = dict(parse_qsl(req.query_string, keep_blank_values=True))
        ctype = (h.get("Content-Type") or "").lower()
        if req.method == "POST" and req.body and (
                "x-www-form-urlencoded" in ctype or not ctype):
            try:
                params.update(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                pass
        if "Action" in params:
            req.service = "sts"
            req.op = params["Action"]
            req.op_key = "sts." + params["Action"]
            req.params = params
            if params.get("RoleArn"):
                req.names = [params["RoleArn"]]

    def _classify_metadata(self, req):
        path = req.raw_path
        if path.startswith("/latest/") or path == "/latest":
            req.service = "imds"
            if path == "/latest/api/token":
                req.op = "token"
            elif path.rstrip("/") == "/latest/meta-data/iam/security-credentials":
                req.op = "role-list"
            elif path.startswith("/latest/meta-data/iam/security-credentials/"):
                req.op = "credentials"
                req.names = [path.rsplit("/", 1)[-1]]
            else:
                req.op = "other"
        elif path in self.container["paths"]:
            req.service = "container"
            req.op = "credentials"
            req.names = [path]
        else:
            req.service = "container"
            req.op = "unknown-path"
            req.names = [path]
        req.op_key = f"{req.service}.{req.op}"

    def _record(self, req):
        c = self._counts
        c["total"] += 1
        c["listeners"][req.listener] = c["listeners"].get(req.listener, 0) + 1
        c["operations"][req.op_key] = c["operations"].get(req.op_key, 0) + 1
        if req.listener == "main":
            c["signed" if req.signed else "unsigned"] += 1
        bucket = {"secretsmanager": "secrets", "ssm": "parameters", "sts": "roles"}.get(
            req.service)
        if bucket and req.op:
            for n in req.names:
                d = c[bucket].setdefault(n, {})
                d[req.op] = d.get(req.op, 0) + 1
        if req.access_key:
            c["access_keys"][req.access_key] = c["access_keys"].get(req.access_key, 0) + 1
        self._seq += 1
        sdk = req.headers.get("amz-sdk-request") or ""
        m = re.search(r"attempt=(\d+)", sdk)
        rec = {
            "seq": self._seq, "time": time.time(), "listener": req.listener,
            "method": req.method, "path": req.raw_path, "query": req.query_string,
            "service": req.service, "operation": req.op, "op_key": req.op_key,
            "target": req.headers.get("X-Amz-Target"), "names": list(req.names),
            "access_key": req.access_key, "signed": req.signed,
            "session_token_sent": req.session_token_sent,
            "user_agent": req.headers.get("User-Agent"),
            "sdk_attempt": int(m.group(1)) if m else None,
            "sdk_invocation_id": req.headers.get("amz-sdk-invocation-id"),
            "imds_token_sent": req.headers.get("X-aws-ec2-metadata-token") is not None,
            "authorization_sent": req.headers.get("Authorization") is not None,
            "body_len": len(req.body), "request_id": req.request_id,
            "status": None, "error": None, "auth": None, "fault": None,
        }
        self._log.append(rec)
        if len(self._log) > 10000:
            del self._log[: len(self._log) - 10000]
        return rec

    def _finish(self, rec, status, error=None):
        with self._lock:
            rec["status"] = status
            k = str(status)
            self._counts["statuses"][k] = self._counts["statuses"].get(k, 0) + 1
            if error:
                rec["error"] = error
                self._counts["errors"][error] = self._counts["errors"].get(error, 0) + 1

    def _match_fault(self, req):
        latency, action = 0.0, None
        for f in list(self.faults):
            if f["service"] and f["service"] != req.service:
                continue
            if f["operation"] and f["operation"] not in (req.op, req.op_key):
                continue
            if f["_name_re"] is not None and not any(f["_name_re"].search(n or "")
                                                     for n in req.names):
                continue
            if f["_re"] is not None and not f["_re"].search(req.raw_path):
                continue
            if f["method"] and f["method"] != req.method:
                continue
            if f["listener"] and f["listener"] != req.listener:
                continue
            if f["access_key"] and f["access_key"] != req.access_key:
                continue
            if f["kind"] != "latency" and action is not None:
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
            if f["kind"] != "latency":
                action = f
        return latency, action

    def serve(self, method, url, headers, body, peer=None, listener="main"):
        """Handle one non-admin request. Returns (Resp, action_or_None)."""
        req = _Req(method, url, headers, body, peer, listener)
        with self._lock:
            try:
                self._classify(req)
            except Exception as e:  # pragma: no cover - bug guard
                req.parse_error = AwsError("InternalFailure", f"classify: {e}", 500)
            rec = self._record(req)
            latency, fault = self._match_fault(req)
        if latency > 0:
            time.sleep(latency)
        if fault is not None:
            rec["fault"] = fault["kind"]
            if fault["kind"] == "drop":
                self._finish(rec, "dropped")
                return None, {"drop": True, "rst": fault["rst"]}
            if fault["kind"] in ("status", "error", "throttle"):
                resp, code = self._fault_resp(fault, req)
                self._finish(rec, resp.status, code)
                return resp, None
        with self._lock:
            err = None
            try:
                resp = self._dispatch(req)
            except AwsError as e:
                err = e
            except Exception as e:  # pragma: no cover - bug guard
                if self.verbose:
                    import traceback
                    traceback.print_exc()
                err = AwsError("InternalServiceError" if req.service == "secretsmanager"
                               else "InternalServerError", f"internal error: {e}", 500,
                               sender=False)
            if err is not None:
                resp = self._render_error(req, err)
            rec["auth"] = req.auth_result
        self._finish(rec, resp.status, err.code if err is not None else None)
        action = None
        if fault is not None:
            resp, action = self._apply_post_fault(fault, req, resp)
        return resp, action

    # error rendering -----------------------------------------------------------

    def _next_style(self, style):
        style = style or self.error_style
        if style == "rotate":
            style = ERROR_STYLES[self._rotate_i % len(ERROR_STYLES)]
            self._rotate_i += 1
        return style

    def _render_error(self, req, e):
        if req.listener == "metadata":
            body = (e.message or e.code).encode("utf-8")
            ct = "text/plain"
            if req.service == "container":
                body = aws_json({"code": e.code, "message": e.message or ""})
                ct = "application/json"
            return Resp(e.status, body, {"Content-Type": ct, **e.headers})
        if req.service == "sts":
            return Resp(e.status, sts_error_xml(e.code, e.message, req.request_id, e.sender),
                        {"Content-Type": "text/xml", "x-amzn-RequestId": req.request_id,
                         **e.headers})
        return self._json_error(req, e)

    def _json_error(self, req, e, style=None):
        style = self._next_style(style or e.style)
        code = e.code
        ns = CORAL_NS if code in _CORAL_ERRORS else SERVICE_NS.get(req.service, CORAL_NS)
        mkey = "message" if code in _LOWER_MESSAGE else "Message"
        if code == "ThrottlingException":
            mkey = "message" if req.service == "ssm" else "Message"
        full_ns, full_ns_uri = f"{ns}#{code}", f"{ns}#{code}:{CORAL_URI}"
        body, header = {}, None
        if style == "plain":
            body["__type"] = code
        elif style == "header":
            body["__type"], header = code, code
        elif style == "header_uri":
            body["__type"], header = code, f"{code}:{CORAL_URI}"
        elif style == "namespaced":
            body["__type"], header = full_ns, full_ns_uri
        elif style == "type_ns":
            body["__type"] = full_ns
        elif style == "type_ns_uri":
            body["__type"] = full_ns_uri
        elif style == "code":
            body["code"] = code
        elif style == "code_ns":
            body["code"] = full_ns
        elif style == "code_ns_uri":
            body["code"] = full_ns_uri
        elif style == "header_only":
            body, header = None, code
        elif style == "header_only_uri":
            body, header = None, f"{code}:{CORAL_URI}"
        elif style == "header_only_ns_uri":
            body, header = None, full_ns_uri
        if body is not None:
            if e.message is not None and code not in _NO_MESSAGE:
                body[mkey] = e.message
            body.update(e.extra)
        headers = {"Content-Type": JSON_CT, "x-amzn-RequestId": req.request_id}
        if header is not None:
            headers["x-amzn-ErrorType"] = header
        headers.update(e.headers)
        return Resp(e.status, aws_json(body) if body is not None else b"", headers)

    def _fault_resp(self, f, req):
        """Response for status / error / throttle faults. Returns (Resp, code)."""
        if f["body"] is not None:
            body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            st = f["status"] or 500
            r = Resp(st, body, {"Content-Type": f["content_type"] or JSON_CT,
                                "x-amzn-RequestId": req.request_id})
            r.headers.update(f["headers"])
            return r, None
        kind = f["kind"]
        code, st, msg = f["code"], f["status"], f["message"]
        if kind == "throttle":
            if req.service == "sts":
                code, st, msg = code or "Throttling", st or 400, msg or MSG_THROTTLED
            elif req.listener == "metadata":
                code, st, msg = code or "TooManyRequests", st or 429, msg or "Too Many Requests"
            else:
                code, st, msg = code or "ThrottlingException", st or 400, msg or MSG_THROTTLED
        elif code is None:
            st = st or 500
            if st >= 500 and req.service == "secretsmanager":
                code = {503: "ServiceUnavailable"}.get(st, "InternalServiceError")
            elif st >= 500:
                code = {503: "ServiceUnavailable"}.get(st, "InternalServerError"
                                                       if req.service == "ssm" else
                                                       "InternalFailure")
            else:
                code = "ValidationException"
        st = st or ERROR_STATUS.get(code, 400)
        if msg is None:
            msg = {"ThrottlingException": MSG_THROTTLED, "DecryptionFailure": MSG_DECRYPT,
                   "ExpiredTokenException": MSG_EXPIRED_TOKEN,
                   "UnrecognizedClientException": MSG_BAD_TOKEN,
                   "InvalidSignatureException": MSG_BAD_SIGNATURE,
                   "ResourceNotFoundException": MSG_NOT_FOUND,
                   "ServiceUnavailable": "Service Unavailable",
                   "AccessDeniedException": "User: arn:aws:iam::%s:user/secretfs-test is not "
                   "authorized to perform: %s:%s" % (self.account_id, req.service, req.op),
                   }.get(code, "An error occurred (injected fault).")
        if req.listener == "metadata" and kind != "error":
            if f["message"] is None and kind == "status":
                msg = http.server.BaseHTTPRequestHandler.responses.get(st, ("Error",))[0]
            r = Resp(st, (msg or "").encode(), {"Content-Type": "text/plain"})
        else:
            e = AwsError(code, msg, st, style=f["style"], sender=st < 500)
            with self._lock:
                r = self._render_error(req, e)
        ra = f["retry_after"]
        if ra is not None:
            r.headers["Retry-After"] = str(ra)
        r.headers.update(f["headers"])
        return r, code

    def _apply_post_fault(self, f, req, resp):
        k = f["kind"]
        if k == "truncate":
            body = resp.body or b""
            n = f["truncate_at"]
            n = len(body) // 2 if n is None else int(n)
            return resp, {"truncate": max(0, min(n, max(len(body) - 1, 0)))}
        if k == "oversize":
            size = int(f["size_mib"] * 1024 * 1024)
            now = epoch(self.now())
            name = (req.names[0] if req.names else "oversize")
            if req.service == "ssm":
                head = b'{"Parameter":{"ARN":' + json.dumps(self._param_arn(name)).encode() + \
                    b',"DataType":"text","LastModifiedDate":' + str(now).encode() + \
                    b',"Name":' + json.dumps(name).encode() + b',"Type":"String","Value":"'
                tail = b'","Version":1}}'
            elif req.service == "secretsmanager":
                head = b'{"ARN":' + json.dumps(self._new_arn(name, "AAAAAA")).encode() + \
                    b',"CreatedDate":' + str(now).encode() + b',"Name":' + \
                    json.dumps(name).encode() + b',"SecretString":"'
                tail = (b'","VersionId":"' + str(uuid.uuid4()).encode() +
                        b'","VersionStages":["AWSCURRENT"]}')
            else:
                head, tail = b'{"padding":"', b'"}'
            pad = max(0, size - len(head) - len(tail))
            ct = resp.headers.get("Content-Type", JSON_CT)
            r = Resp(200, None, {"Content-Type": ct, "x-amzn-RequestId": req.request_id})
            return r, {"oversize": (head, pad, tail), "chunked": f["chunked"]}
        if k == "malformed":
            if f["body"] is not None:
                body = f["body"].encode() if isinstance(f["body"], str) else f["body"]
            else:
                real = resp.body or b'{"SecretString":"value"}'
                body = real[: max(1, len(real) // 2)] + b'\x00<<malformed>>'
            h = dict(resp.headers)
            if f["content_type"]:
                h["Content-Type"] = f["content_type"]
            return Resp(f["status"] or resp.status, body, h), None
        return resp, None

    # ---------------------------------------------------------------- auth

    def _authenticate(self, req, service):
        """Verify the SigV4 signature; returns the Key or raises AwsError."""
        h = req.headers
        st = self.auth_error_status
        auth = h.get("Authorization")
        if auth is None:
            if not self.verify_signatures:
                req.auth_result = "unverified"
                return None
            raise AwsError("MissingAuthenticationTokenException", "Missing Authentication Token",
                           st)
        algo, _, rest = auth.strip().partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            raise AwsError("IncompleteSignatureException",
                           f"Unsupported AWS 'algorithm': '{algo}'", st)
        fields = {}
        for part in rest.split(","):
            k, sep, v = part.strip().partition("=")
            if sep:
                fields[k.strip()] = v.strip()
        missing = [f"Authorization header requires '{p}' parameter." for p in
                   ("Credential", "Signature", "SignedHeaders") if p not in fields]
        date_hdr = h.get("X-Amz-Date")
        if date_hdr is None and h.get("Date") is None:
            missing.append("Authorization header requires existence of either a 'X-Amz-Date' "
                           "or a 'Date' header.")
        if missing:
            raise AwsError("IncompleteSignatureException",
                           " ".join(missing) + f" Authorization={auth}", st)
        cred = fields["Credential"].split("/")
        if len(cred) != 5:
            raise AwsError("IncompleteSignatureException",
                           f"Credential should be scoped to a valid region, not "
                           f"'{cred[2] if len(cred) > 2 else ''}'. ", st)
        akid, cdate, cregion, cservice, term = cred
        key = self.keys.get(akid)
        if key is None or key.revoked:
            raise AwsError("UnrecognizedClientException", MSG_BAD_TOKEN, 400)
        tok = h.get("X-Amz-Security-Token")
        if key.session_token is not None or tok is not None:
            if tok is None or key.session_token is None or \
                    not hmac.compare_digest(tok.encode(), key.session_token.encode()):
                raise AwsError("UnrecognizedClientException", MSG_BAD_TOKEN, 400)
        if date_hdr is not None:
            amzdate = date_hdr.strip()
            try:
                t = datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(
                    tzinfo=timezone.utc).timestamp()
            except ValueError:
                raise AwsError("IncompleteSignatureException",
                               f"Date must be in ISO-8601 'basic format'. Got '{amzdate}'. See "
                               "http://en.wikipedia.org/wiki/ISO_8601", st) from None
        else:
            from email.utils import parsedate_to_datetime
            try:
                t = parsedate_to_datetime(h.get("Date")).timestamp()
            except (TypeError, ValueError):
                raise AwsError("IncompleteSignatureException", "Date header is invalid.",
                               st) from None
            amzdate = amz_date(t)
        if cdate != amzdate[:8]:
            raise AwsError("InvalidSignatureException",
                           f"Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                           f"version of date from HTTP: '{cdate}' != '{amzdate[:8]}', from "
                           f"'{amzdate}'.", st)
        now = time.time()  # the signing skew is judged on the real clock
        if t < now - self.max_skew:
            raise AwsError("InvalidSignatureException",
                           f"Signature expired: {amzdate} is now earlier than "
                           f"{amz_date(now - self.max_skew)} ({amz_date(now)} - "
                           f"{self.max_skew // 60} min.)", st)
        if t > now + self.max_skew:
            raise AwsError("InvalidSignatureException",
                           f"Signature not yet current: {amzdate} is still later than "
                           f"{amz_date(now + self.max_skew)} ({amz_date(now)} + "
                           f"{self.max_skew // 60} min.)", st)
        if cregion != self.region:
            raise AwsError("InvalidSignatureException",
                           f"Credential should be scoped to a valid region, not '{cregion}'. ",
                           st)
        if cservice != service:
            raise AwsError("InvalidSignatureException",
                           f"Credential should be scoped to correct service: '{service}'. ", st)
        if term != "aws4_request":
            raise AwsError("InvalidSignatureException",
                           f"Credential should be scoped with a valid terminator: "
                           f"'aws4_request', not '{term}'. ", st)
        signed = [s for s in fields["SignedHeaders"].split(";")]
        if "host" not in [s.lower() for s in signed]:
            raise AwsError("InvalidSignatureException",
                           "'Host' or ':authority' must be a 'SignedHeader' in the AWS "
                           "Authorization.", st)
        body_hash = hashlib.sha256(req.body).hexdigest()
        claimed = h.get("X-Amz-Content-SHA256")
        if claimed is not None and claimed != "UNSIGNED-PAYLOAD" and claimed != body_hash:
            raise AwsError("InvalidSignatureException",
                           "The provided 'x-amz-content-sha256' header does not match what was "
                           "computed.", st)
        if self.verify_signatures:
            creq = canonical_request(req.method, req.raw_path, req.query_string,
                                     lambda n: h.get_all(n), signed,
                                     claimed if claimed is not None else body_hash)
            scope = f"{cdate}/{cregion}/{cservice}/{term}"
            sts = string_to_sign(amzdate, scope, creq)
            want = hmac.new(signing_key(key.secret_access_key, cdate, cregion, cservice),
                            sts.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, fields["Signature"].lower()):
                msg = MSG_BAD_SIGNATURE
                if self.signature_debug:
                    msg += (f"\n\nThe Canonical String for this request should have been\n"
                            f"'{creq}'\n\nThe String-to-Sign should have been\n'{sts}'\n")
                raise AwsError("InvalidSignatureException", msg, st)
        if key.expiration is not None and self.now() >= key.expiration:
            raise AwsError("ExpiredTokenException", MSG_EXPIRED_TOKEN, 400)
        req.key = key
        req.auth_result = "ok"
        return key

    def _check_access(self, req, resource, arn=None):
        key = req.key
        if key is None or not key.deny:
            return
        action = f"{req.service}:{req.op}"
        subject = f"{action}:{resource}"
        if any(fnmatch.fnmatchcase(subject, pat) for pat in key.deny):
            raise AwsError("AccessDeniedException",
                           f"User: {key.principal} is not authorized to perform: {action} on "
                           f"resource: {arn or resource} because no identity-based policy "
                           f"allows the {action} action")

    # ---------------------------------------------------------------- routing

    def _dispatch(self, req):
        if req.listener == "metadata":
            return self._dispatch_metadata(req)
        if req.service == "sts":
            return self._h_sts(req)
        if req.headers.get("X-Amz-Target") is None:
            if req.method == "GET" and req.raw_path == "/":
                raise AwsError("MissingAuthenticationTokenException",
                               "Missing Authentication Token", self.auth_error_status)
            raise AwsError("UnknownOperationException", None)
        if req.service is None or req.method != "POST":
            raise AwsError("UnknownOperationException", None)
        try:
            self._authenticate(req, SIGNING_NAME[req.service])
        except AwsError as e:
            req.auth_result = e.code
            self._counts["auth_failures"][e.code] = \
                self._counts["auth_failures"].get(e.code, 0) + 1
            raise
        if req.parse_error is not None:
            raise req.parse_error
        ops = SM_OPERATIONS if req.service == "secretsmanager" else SSM_OPERATIONS
        handler = getattr(self, f"_sm_{req.op}" if req.service == "secretsmanager"
                          else f"_ssm_{req.op}", None) if req.op in ops else None
        if handler is None:
            raise AwsError("UnknownOperationException", None)
        out = handler(req, req.params)
        return Resp(200, aws_json(out), {"Content-Type": JSON_CT,
                                         "x-amzn-RequestId": req.request_id})

    # -------------------------------------------------------- Secrets Manager

    @staticmethod
    def _req_str(p, name, wire):
        v = p.get(name)
        if v is None:
            raise AwsError("ValidationException",
                           f"1 validation error detected: Value null at '{wire}' failed to "
                           "satisfy constraint: Member must not be null")
        if not isinstance(v, str):
            raise AwsError("SerializationException",
                           f"STRING_VALUE can not be converted to {name}")
        return v

    def _sm_live(self, req, p, op_needs_value=True):
        sid = self._req_str(p, "SecretId", "secretId")
        sec = self._resolve_secret(sid)
        self._check_access(req, sec.name, sec.arn)
        if sec.deleted_date is not None and op_needs_value:
            raise AwsError("InvalidRequestException", MSG_MARKED_DELETED)
        return sec

    def _sm_value(self, sec, vid, stage):
        if vid is not None:
            ver = sec.versions.get(vid)
            if ver is None:
                raise AwsError("ResourceNotFoundException",
                               f"Secrets Manager can't find the specified secret value for "
                               f"VersionId: {vid}")
            if stage is not None and stage not in ver.stages:
                raise AwsError("InvalidRequestException",
                               "You provided a VersionStage that is not associated to the "
                               "provided VersionId.")
        else:
            stage = stage or AWSCURRENT
            ver = sec.by_stage(stage)
            if ver is None:
                raise AwsError("ResourceNotFoundException",
                               f"Secrets Manager can't find the specified secret value for "
                               f"staging label: {stage}")
        if sec.decryption_failure:
            raise AwsError("DecryptionFailure", MSG_DECRYPT)
        out = {"ARN": sec.arn, "CreatedDate": epoch(ver.created), "Name": sec.name}
        if ver.binary is not None:
            out["SecretBinary"] = base64.b64encode(ver.binary).decode()
        else:
            out["SecretString"] = ver.string
        out["VersionId"] = ver.version_id
        if ver.stages:
            out["VersionStages"] = list(ver.stages)
        now = self.now()
        sec.last_accessed = now - (now % 86400)  # AWS keeps only the date
        return out

    def _sm_GetSecretValue(self, req, p):
        sec = self._sm_live(req, p)
        return self._sm_value(sec, p.get("VersionId"), p.get("VersionStage"))

    def _sm_BatchGetSecretValue(self, req, p):
        ids, filters = p.get("SecretIdList"), p.get("Filters")
        if (ids is None) == (filters is None):
            raise AwsError("InvalidParameterException",
                           "Either 'SecretIdList' or 'Filters' must be provided, but not both.")
        values, errors = [], []
        next_token = None
        if ids is not None:
            if not isinstance(ids, list) or not 1 <= len(ids) <= 20:
                raise AwsError("ValidationException",
                               "1 validation error detected: Value at 'secretIdList' failed to "
                               "satisfy constraint: Member must have length between 1 and 20")
            for sid in ids:
                try:
                    sec = self._resolve_secret(sid)
                    self._check_access(req, sec.name, sec.arn)
                    if sec.deleted_date is not None:
                        raise AwsError("InvalidRequestException", MSG_MARKED_DELETED)
                    values.append(self._sm_value(sec, None, None))
                except AwsError as e:
                    errors.append({"SecretId": sid, "ErrorCode": e.code,
                                   "Message": e.message or ""})
        else:
            max_results = p.get("MaxResults", 20)
            if not isinstance(max_results, int) or not 1 <= max_results <= 20:
                raise AwsError("ValidationException",
                               f"1 validation error detected: Value '{max_results}' at "
                               "'maxResults' failed to satisfy constraint: Member must have "
                               "value less than or equal to 20")
            items = self._sm_filtered(filters, False)
            start = self._decode_token(p.get("NextToken"), "sm-batch", "InvalidNextTokenException")
            page = items[start:start + max_results]
            for sec in page:
                try:
                    self._check_access(req, sec.name, sec.arn)
                    values.append(self._sm_value(sec, None, None))
                except AwsError as e:
                    errors.append({"SecretId": sec.name, "ErrorCode": e.code,
                                   "Message": e.message or ""})
            if start + max_results < len(items):
                next_token = self._encode_token(start + max_results, "sm-batch")
        out = {"SecretValues": values, "Errors": errors}
        if next_token:
            out["NextToken"] = next_token
        return out

    def _sm_DescribeSecret(self, req, p):
        sec = self._sm_live(req, p, op_needs_value=False)
        out = {"ARN": sec.arn, "Name": sec.name}
        if sec.description is not None:
            out["Description"] = sec.description
        if sec.kms_key_id is not None:
            out["KmsKeyId"] = sec.kms_key_id
        if sec.rotation_enabled is not None:
            out["RotationEnabled"] = sec.rotation_enabled
        out["LastChangedDate"] = epoch(sec.last_changed)
        if sec.last_accessed is not None:
            out["LastAccessedDate"] = epoch(sec.last_accessed)
        if sec.deleted_date is not None:
            out["DeletedDate"] = epoch(sec.deleted_date)
        if sec.tags:
            out["Tags"] = [dict(t) for t in sec.tags]
        out["VersionIdsToStages"] = sec.staged()
        out["CreatedDate"] = epoch(sec.created)
        return out

    def _sm_list_entry(self, sec):
        out = {"ARN": sec.arn, "Name": sec.name}
        if sec.description is not None:
            out["Description"] = sec.description
        if sec.kms_key_id is not None:
            out["KmsKeyId"] = sec.kms_key_id
        if sec.rotation_enabled is not None:
            out["RotationEnabled"] = sec.rotation_enabled
        out["LastChangedDate"] = epoch(sec.last_changed)
        if sec.last_accessed is not None:
            out["LastAccessedDate"] = epoch(sec.last_accessed)
        if sec.deleted_date is not None:
            out["DeletedDate"] = epoch(sec.deleted_date)
        if sec.tags:
            out["Tags"] = [dict(t) for t in sec.tags]
        out["SecretVersionsToStages"] = sec.staged()
        out["CreatedDate"] = epoch(sec.created)
        return out

    def _sm_filtered(self, filters, include_deleted, sort_order="asc"):
        keys = ("description", "name", "tag-key", "tag-value", "primary-region",
                "owning-service", "all")
        if filters is not None and not isinstance(filters, list):
            raise AwsError("SerializationException", "Filters must be a list")
        for f in filters or []:
            if f.get("Key") not in keys:
                raise AwsError("ValidationException",
                               f"1 validation error detected: Value '{f.get('Key')}' at "
                               "'filters.1.member.key' failed to satisfy constraint: Member must "
                               f"satisfy enum value set: [{', '.join(keys)}]")
            if not f.get("Values"):
                raise AwsError("InvalidParameterException", "Invalid filter values")

        def fields(sec, key):
            if key == "name":
                return [sec.name]
            if key == "description":
                return [sec.description or ""]
            if key == "tag-key":
                return [t["Key"] for t in sec.tags]
            if key == "tag-value":
                return [t["Value"] for t in sec.tags]
            if key == "all":
                return [sec.name, sec.description or ""] + \
                    [t["Key"] for t in sec.tags] + [t["Value"] for t in sec.tags]
            return []

        def match(sec):
            for f in filters or []:
                pos = [v for v in f["Values"] if not v.startswith("!")]
                neg = [v[1:] for v in f["Values"] if v.startswith("!")]
                fl = fields(sec, f["Key"])
                if pos and not any(x.startswith(v) for v in pos for x in fl):
                    return False
                if neg and any(x.startswith(v) for v in neg for x in fl):
                    return False
            return True

        items = [s for s in self.secrets.values()
                 if (include_deleted or s.deleted_date is None) and match(s)]
        items.sort(key=lambda s: (s.created, s.seq), reverse=(sort_order == "desc"))
        return items

    def _encode_token(self, offset, kind):
        raw = json.dumps({"o": int(offset), "k": kind}, separators=(",", ":")).encode()
        mac = hmac.new(self._token_secret, raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")

    def _decode_token(self, tok, kind, error_code, message="The NextToken value is invalid."):
        if tok is None:
            return 0
        try:
            data = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
            raw, mac = data[:-12], data[-12:]
            if not hmac.compare_digest(mac, hmac.new(self._token_secret, raw,
                                                     hashlib.sha256).digest()[:12]):
                raise ValueError("mac")
            obj = json.loads(raw)
            if obj.get("k") != kind:
                raise ValueError("kind")
            return obj["o"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise AwsError(error_code, message) from None

    def _sm_ListSecrets(self, req, p):
        max_results = p.get("MaxResults", 100)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise AwsError("ValidationException",
                           f"1 validation error detected: Value '{max_results}' at 'maxResults' "
                           "failed to satisfy constraint: Member must have value less than or "
                           "equal to 100")
        order = p.get("SortOrder", "asc")
        if order not in ("asc", "desc"):
            raise AwsError("ValidationException",
                           f"1 validation error detected: Value '{order}' at 'sortOrder' failed "
                           "to satisfy constraint: Member must satisfy enum value set: "
                           "[asc, desc]")
        items = self._sm_filtered(p.get("Filters"), _bool(p.get("IncludePlannedDeletion")),
                                  order)
        start = self._decode_token(p.get("NextToken"), "sm-list", "InvalidNextTokenException")
        page = items[start:start + max_results]
        out = {"SecretList": [self._sm_list_entry(s) for s in page]}
        if start + max_results < len(items):
            out["NextToken"] = self._encode_token(start + max_results, "sm-list")
        return out

    def _sm_ListSecretVersionIds(self, req, p):
        sec = self._sm_live(req, p, op_needs_value=False)
        versions = []
        for v in sec.versions.values():
            e = {"VersionId": v.version_id}
            if v.stages:
                e["VersionStages"] = list(v.stages)
            e["CreatedDate"] = epoch(v.created)
            versions.append(e)
        return {"Versions": versions, "ARN": sec.arn, "Name": sec.name}

    def _sm_value_args(self, p):
        s, b = p.get("SecretString"), p.get("SecretBinary")
        if b is not None:
            try:
                b = _b64decode_any(b)
            except (ValueError, TypeError):
                raise AwsError("SerializationException",
                               "Base64 encoded SecretBinary is not valid") from None
        return s, b

    def _check_crt(self, p):
        crt = p.get("ClientRequestToken")
        if crt is not None and not (isinstance(crt, str) and 32 <= len(crt) <= 64):
            raise AwsError("ValidationException",
                           "1 validation error detected: Value at 'clientRequestToken' failed to "
                           "satisfy constraint: Member must have length between 32 and 64")
        return crt

    def _sm_PutSecretValue(self, req, p):
        sec = self._sm_live(req, p)
        crt = self._check_crt(p)
        s, b = self._sm_value_args(p)
        stages = p.get("VersionStages")
        if stages is not None and (not isinstance(stages, list) or not stages):
            raise AwsError("InvalidParameterException", "VersionStages must be a non-empty list")
        ver = self._sm_add_version(sec, crt, s, b, stages)
        return {"ARN": sec.arn, "Name": sec.name, "VersionId": ver.version_id,
                "VersionStages": list(ver.stages)}

    def _sm_UpdateSecretVersionStage(self, req, p):
        """Moves a stage label between versions, as rotation's finishSecret step does:
        AWSPENDING's version becomes AWSCURRENT, the old current gets AWSPREVIOUS."""
        sec = self._sm_live(req, p)
        stage = self._req_str(p, "VersionStage", "versionStage")
        move_to = p.get("MoveToVersionId")
        remove_from = p.get("RemoveFromVersionId")
        holder = sec.by_stage(stage)
        if move_to is not None and move_to not in sec.versions:
            raise AwsError("ResourceNotFoundException",
                           f"Secrets Manager can't find the specified secret version: {move_to}")
        if holder is not None and holder.version_id != move_to:
            if remove_from != holder.version_id:
                raise AwsError("InvalidParameterException",
                               f"The parameter RemoveFromVersionId can't be empty. Staging label "
                               f"{stage} is currently attached to version {holder.version_id}, "
                               "so you must explicitly reference that version in "
                               "RemoveFromVersionId.")
            holder.stages = [x for x in holder.stages if x != stage]
            if stage == AWSCURRENT:
                for v in sec.versions.values():
                    v.stages = [x for x in v.stages if x != AWSPREVIOUS]
                holder.stages.append(AWSPREVIOUS)
        elif holder is None and remove_from is not None:
            raise AwsError("InvalidParameterException",
                           f"Staging label {stage} is not attached to version {remove_from}.")
        if move_to is not None:
            target = sec.versions[move_to]
            if stage not in target.stages:
                target.stages.append(stage)
            if stage == AWSCURRENT:
                target.stages = [x for x in target.stages if x != AWSPREVIOUS]
        return {"ARN": sec.arn, "Name": sec.name}

    def _sm_CreateSecret(self, req, p):
        name = self._req_str(p, "Name", "name")
        if not re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,512}", name):
            raise AwsError("InvalidParameterException",
                           "Invalid name. Must be a valid name containing alphanumeric "
                           "characters, or any of the following: -/_+=.@!")
        self._check_access(req, name)
        old = self.secrets.get(name)
        if old is not None:
            if old.deleted_date is not None:
                raise AwsError("InvalidRequestException",
                               "You can't create this secret because a secret with this name is "
                               "already scheduled for deletion.")
            raise AwsError("ResourceExistsException",
                           f"The operation failed because the secret {name} already exists.")
        crt = self._check_crt(p)
        s, b = self._sm_value_args(p)
        if s is not None and b is not None:
            raise AwsError("InvalidParameterException",
                           "You can't specify both a binary secret value and a string secret "
                           "value in the same secret.")
        self.put_secret(name, description=p.get("Description"), tags=p.get("Tags"),
                        kms_key_id=p.get("KmsKeyId"))
        sec = self.secrets[name]
        res = {"ARN": sec.arn, "Name": sec.name}
        if s is not None or b is not None:
            ver = self._sm_add_version(sec, crt, s, b, None)
            res["VersionId"] = ver.version_id
        return res

    def _sm_DeleteSecret(self, req, p):
        sec = self._sm_live(req, p, op_needs_value=False)
        force = p.get("ForceDeleteWithoutRecovery")
        window = p.get("RecoveryWindowInDays")
        if force and window is not None:
            raise AwsError("InvalidParameterException",
                           "You can't use ForceDeleteWithoutRecovery in conjunction with "
                           "RecoveryWindowInDays.")
        if window is not None and not (isinstance(window, int) and 7 <= window <= 30):
            raise AwsError("InvalidParameterException",
                           "The RecoveryWindowInDays value must be between 7 and 30 days "
                           "(inclusive).")
        now = self.now()
        if force:
            del self.secrets[sec.name]
            deletion = now
        else:
            if sec.deleted_date is not None:
                raise AwsError("InvalidRequestException", MSG_MARKED_DELETED)
            deletion = now + 86400 * (window or 30)
            sec.deleted_date = deletion
        return {"ARN": sec.arn, "Name": sec.name, "DeletionDate": epoch(deletion)}

    def _sm_RestoreSecret(self, req, p):
        sec = self._sm_live(req, p, op_needs_value=False)
        sec.deleted_date = None
        return {"ARN": sec.arn, "Name": sec.name}

    # -------------------------------------------------------------------- SSM

    def _ssm_split_name(self, name):
        """'name', 'name:3', 'name:label' or an ARN -> (name, selector or None)."""
        sel = None
        tail_i = name.rfind(":")
        if tail_i > 0 and "/" not in name[tail_i + 1:] and name[tail_i + 1:]:
            if not name.startswith("arn:") or name.count(":") > 5:
                name, sel = name[:tail_i], name[tail_i + 1:]
        if name.startswith("arn:") and ":parameter/" in name:
            rest = name.split(":parameter/", 1)[1]
            if ("/" + rest) in self.parameters or "/" in rest:
                name = "/" + rest
            else:
                name = rest
        return name, sel

    @staticmethod
    def _ssm_norm_path(path):
        return path if path.endswith("/") else path + "/"

    def _ssm_param_out(self, p, ver, decrypt, selector=None):
        value = ver["value"]
        if ver["type"] == "SecureString" and not decrypt:
            value = self._ciphertext(p.name, ver)
        out = {"Name": p.name, "Type": ver["type"], "Value": value, "Version": ver["version"]}
        if selector is not None:
            out["Selector"] = ":" + selector
        out["LastModifiedDate"] = epoch(ver["modified"])
        out["ARN"] = self._param_arn(p.name)
        out["DataType"] = ver["data_type"]
        return out

    def _ssm_lookup(self, req, raw_name, decrypt):
        name, sel = self._ssm_split_name(raw_name)
        self._check_access(req, name, self._param_arn(name))
        p = self.parameters.get(name)
        if p is None:
            raise AwsError("ParameterNotFound", "")
        ver = p.current
        if sel is not None:
            if sel.isdigit():
                ver = next((v for v in p.versions if v["version"] == int(sel)), None)
            else:
                ver = next((v for v in reversed(p.versions) if sel in v["labels"]), None)
            if ver is None:
                raise AwsError("ParameterVersionNotFound",
                               f"Systems Manager could not find version {sel} of {name}. Verify "
                               "the version and try again.")
        return self._ssm_param_out(p, ver, decrypt, sel)

    def _ssm_GetParameter(self, req, p):
        name = self._req_str(p, "Name", "name")
        return {"Parameter": self._ssm_lookup(req, name, _bool(p.get("WithDecryption")))}

    def _ssm_GetParameters(self, req, p):
        names = p.get("Names")
        if not isinstance(names, list) or not 1 <= len(names) <= 10:
            raise AwsError("ValidationException",
                           "1 validation error detected: Value at 'names' failed to satisfy "
                           "constraint: Member must have length between 1 and 10")
        found, invalid = [], []
        for n in names:
            try:
                found.append(self._ssm_lookup(req, n, _bool(p.get("WithDecryption"))))
            except AwsError as e:
                if e.code == "AccessDeniedException":
                    raise
                invalid.append(n)
        return {"Parameters": found, "InvalidParameters": invalid}

    def _ssm_filter(self, filters):
        """ParameterFilters for GetParametersByPath (Type, KeyId, Label)."""
        checks = []
        for f in filters or []:
            key, opt, vals = f.get("Key"), f.get("Option", "Equals"), f.get("Values") or []
            if key not in ("Type", "KeyId", "Label"):
                raise AwsError("InvalidFilterKey", None)
            if opt not in ("Equals", "BeginsWith") or (key != "KeyId" and opt != "Equals"):
                raise AwsError("InvalidFilterOption",
                               f"The following filter option is not valid: {opt}. Valid options "
                               "include: [Equals].")
            field = {"Type": "type", "KeyId": "key_id", "Label": "labels"}[key]
            checks.append((field, opt, vals))

        def ok(ver):
            for field, opt, vals in checks:
                v = ver.get(field)
                cand = v if isinstance(v, list) else [v]
                if opt == "BeginsWith":
                    if not any(c and c.startswith(x) for c in cand for x in vals):
                        return False
                elif not any(c in vals for c in cand):
                    return False
            return True
        return ok

    def _ssm_GetParametersByPath(self, req, p):
        path = self._req_str(p, "Path", "path")
        if not path.startswith("/"):
            raise AwsError("ValidationException",
                           "The parameter doesn't meet the parameter name requirements. The "
                           "parameter name must begin with a forward slash \"/\".")
        if path.count("/") > 15:
            raise AwsError("HierarchyLevelLimitExceededException",
                           "The hierarchy can have a maximum of 15 levels.")
        prefix = self._ssm_norm_path(path)
        self._check_access(req, prefix, self._param_arn(prefix.rstrip("/") or "/"))
        max_results = p.get("MaxResults", 10)
        if not isinstance(max_results, int) or not 1 <= max_results <= 10:
            raise AwsError("ValidationException",
                           f"1 validation error detected: Value '{max_results}' at 'maxResults' "
                           "failed to satisfy constraint: Member must have value less than or "
                           "equal to 10")
        recursive = _bool(p.get("Recursive"))
        decrypt = _bool(p.get("WithDecryption"))
        ok = self._ssm_filter(p.get("ParameterFilters"))
        names = sorted(n for n in self.parameters
                       if n.startswith(prefix) and (recursive or "/" not in n[len(prefix):]))
        state = self._ssm_token_state(p.get("NextToken"), prefix, recursive)
        after, gap_empties, started = state["a"], state["e"], state["s"]
        remaining = [n for n in names if after is None or n > after]
        cfg = self.ssm_paging
        lead, between, trail = (cfg["empty_leading"] or 0, cfg["empty_between"] or 0,
                                cfg["empty_trailing"] or 0)

        def token(a, e, s):
            return self._ssm_token(prefix, recursive, a, e, s)

        out = {"Parameters": []}
        if remaining:
            need = between if started else lead
            if gap_empties < need:
                out["NextToken"] = token(after, gap_empties + 1, started)
                return out
            n = max_results
            if cfg["page_size"]:
                n = min(n, cfg["page_size"])
            window = remaining[:n]
            for name in window:
                par = self.parameters[name]
                if ok(par.current):
                    out["Parameters"].append(self._ssm_param_out(par, par.current, decrypt))
            if len(remaining) > len(window) or trail > 0:
                out["NextToken"] = token(window[-1], 0, True)
            return out
        # nothing left: trailing empty pages (the last one without a NextToken)
        if started and gap_empties + 1 < trail:
            out["NextToken"] = token(after, gap_empties + 1, True)
        return out

    def _ssm_token(self, prefix, recursive, after, empties, started):
        raw = json.dumps({"p": prefix, "r": recursive, "a": after, "e": empties, "s": started},
                         separators=(",", ":")).encode()
        mac = hmac.new(self._token_secret, raw, hashlib.sha256).digest()[:12]
        return "AAEAA" + base64.urlsafe_b64encode(raw + mac).decode().rstrip("=")

    def _ssm_token_state(self, tok, prefix, recursive):
        if tok is None:
            return {"a": None, "e": 0, "s": False}
        try:
            if not tok.startswith("AAEAA"):
                raise ValueError("prefix")
            t = tok[5:]
            data = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
            raw, mac = data[:-12], data[-12:]
            if not hmac.compare_digest(mac, hmac.new(self._token_secret, raw,
                                                     hashlib.sha256).digest()[:12]):
                raise ValueError("mac")
            st = json.loads(raw)
            if st["p"] != prefix or st["r"] != recursive:
                raise ValueError("other request")
            return st
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise AwsError("InvalidNextToken", "The specified token isn't valid.") from None

    def _ssm_PutParameter(self, req, p):
        name = self._req_str(p, "Name", "name")
        value = self._req_str(p, "Value", "value")
        self._check_access(req, name, self._param_arn(name))
        if self.parameters.get(name) is None and p.get("Type") is None:
            raise AwsError("ValidationException", "A parameter type is required when you create "
                           "a parameter.")
        v = self.put_parameter(name, value, type=p.get("Type"),
                               overwrite=_bool(p.get("Overwrite")), key_id=p.get("KeyId"),
                               data_type=p.get("DataType"), description=p.get("Description"))
        return {"Version": v, "Tier": p.get("Tier") or "Standard"}

    def _ssm_DeleteParameter(self, req, p):
        name = self._req_str(p, "Name", "name")
        self._check_access(req, name, self._param_arn(name))
        if not self.delete_parameter(name):
            raise AwsError("ParameterNotFound", "")
        return {}

    # -------------------------------------------------------------------- STS

    def _sts_resp(self, req, action, inner):
        body = sts_xml(f"{action}Response",
                       f"  <{action}Result>\n{inner}  </{action}Result>\n", req.request_id)
        return Resp(200, body, {"Content-Type": "text/xml", "x-amzn-RequestId": req.request_id})

    def _h_sts(self, req):
        p = req.params
        action = p.get("Action")
        if p.get("Version") not in (None, STS_VERSION):
            raise AwsError("InvalidAction",
                           f"Could not find operation {action} for version {p.get('Version')}")
        if action == "AssumeRoleWithWebIdentity":
            return self._sts_web_identity(req, p)
        if action == "GetCallerIdentity":
            try:
                key = self._authenticate(req, "sts")
            except AwsError as e:
                req.auth_result = e.code
                self._counts["auth_failures"][e.code] = \
                    self._counts["auth_failures"].get(e.code, 0) + 1
                code, status = _STS_AUTH_ERRORS.get(e.code, (e.code, e.status))
                raise AwsError(code, e.message, status) from None
            principal = key.principal if key else f"arn:aws:iam::{self.account_id}:root"
            user_id = key.access_key_id if key and key.kind == "static" else \
                "AROA" + hashlib.sha1(principal.encode()).hexdigest()[:17].upper() + ":" + \
                principal.rsplit("/", 1)[-1]
            inner = (f"    {_xml('Arn', principal)}\n    {_xml('UserId', user_id)}\n"
                     f"    {_xml('Account', self.account_id)}\n")
            return self._sts_resp(req, "GetCallerIdentity", inner)
        raise AwsError("InvalidAction",
                       f"Could not find operation {action} for version {STS_VERSION}")

    def _sts_web_identity(self, req, p):
        for field, wire in (("RoleArn", "roleArn"), ("RoleSessionName", "roleSessionName"),
                            ("WebIdentityToken", "webIdentityToken")):
            if not p.get(field):
                raise AwsError("ValidationError",
                               f"1 validation error detected: Value null at '{wire}' failed to "
                               "satisfy constraint: Member must not be null")
        role_arn, session, tok = p["RoleArn"], p["RoleSessionName"], p["WebIdentityToken"]
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session):
            raise AwsError("ValidationError",
                           f"1 validation error detected: Value '{session}' at 'roleSessionName' "
                           "failed to satisfy constraint: Member must satisfy regular expression "
                           "pattern: [\\w+=,.@-]*")
        try:
            duration = int(p.get("DurationSeconds", 3600))
        except ValueError:
            raise AwsError("ValidationError", "DurationSeconds must be an integer") from None
        if duration < 900 or duration > 43200:
            raise AwsError("ValidationError",
                           f"1 validation error detected: Value '{duration}' at 'durationSeconds' "
                           "failed to satisfy constraint: Member must have value "
                           f"{'greater' if duration < 900 else 'less'} than or equal to "
                           f"{900 if duration < 900 else 43200}")
        role = self.roles.get(role_arn)
        if role is None:
            raise AwsError("AccessDenied",
                           "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403)
        if tok not in role["tokens"]:
            raise AwsError("InvalidIdentityToken", role["invalid_token_message"] or
                           "The ID Token provided is not a valid JWT. (You may see this error if "
                           "you sent an Access Token)")
        claims = _decode_jwt_claims(tok) or {}
        now = self.now()
        if isinstance(claims.get("exp"), (int, float)) and claims["exp"] <= now:
            raise AwsError("ExpiredTokenException",
                           f"Token expired: current date/time {int(now)} must be before the "
                           f"expiration date/time {int(claims['exp'])}")
        if duration > role["max_session_duration"]:
            raise AwsError("ValidationError",
                           "The requested DurationSeconds exceeds the MaxSessionDuration set for "
                           "this role.")
        role_name = role_arn.rsplit("/", 1)[-1]
        assumed = f"arn:aws:sts::{self.account_id}:assumed-role/{role_name}/{session}"
        key = self._issue_temp_key("sts", duration, assumed, role["deny"], role_arn)
        role["issued"].append(key.access_key_id)
        role_id = "AROA" + hashlib.sha1(role_arn.encode()).hexdigest()[:17].upper()
        subject = role["subject"] or claims.get("sub") or "system:serviceaccount:default:default"
        aud = role["audience"] or claims.get("aud") or "sts.amazonaws.com"
        if isinstance(aud, list):
            aud = aud[0] if aud else ""
        inner = (
            f"    {_xml('SubjectFromWebIdentityToken', subject)}\n"
            f"    {_xml('Audience', aud)}\n"
            f"    <AssumedRoleUser>\n      {_xml('Arn', assumed)}\n"
            f"      {_xml('AssumedRoleId', role_id + ':' + session)}\n    </AssumedRoleUser>\n"
            f"    <Credentials>\n      {_xml('SessionToken', key.session_token)}\n"
            f"      {_xml('SecretAccessKey', key.secret_access_key)}\n"
            f"      {_xml('Expiration', iso8601(key.expiration))}\n"
            f"      {_xml('AccessKeyId', key.access_key_id)}\n    </Credentials>\n"
            f"    {_xml('Provider', role['provider'])}\n")
        return self._sts_resp(req, "AssumeRoleWithWebIdentity", inner)

    # ------------------------------------------------- IMDS and container creds

    def _text(self, status, text, ctype="text/plain", headers=None):
        h = {"Content-Type": ctype, "Server": "EC2ws"}
        h.update(headers or {})
        return Resp(status, text.encode("utf-8") if isinstance(text, str) else text, h)

    def _dispatch_metadata(self, req):
        if req.service == "imds":
            return self._h_imds(req)
        return self._h_container(req)

    def _h_imds(self, req):
        im = self.imds
        if not im["enabled"]:
            raise AwsError("NotFound", "Not Found", 404)
        now = self.now()
        if req.op == "token":
            if req.method != "PUT":
                raise AwsError("MethodNotAllowed", "Method Not Allowed", 405,
                               headers={"Allow": "PUT"})
            if req.headers.get("X-Forwarded-For") is not None:
                raise AwsError("Forbidden", "Forbidden", 403)
            ttl = req.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl_i = int(ttl)
                if not 1 <= ttl_i <= 21600:
                    raise ValueError
            except (TypeError, ValueError):
                raise AwsError("BadRequest", "Bad Request", 400) from None
            tok = base64.b64encode(_secrets.token_bytes(42)).decode()
            im["tokens"] = {t: e for t, e in im["tokens"].items() if e > now}
            im["tokens"][tok] = now + ttl_i
            return self._text(200, tok, headers={"X-aws-ec2-metadata-token-ttl-seconds":
                                                 str(ttl_i)})
        if req.method not in ("GET", "HEAD"):
            raise AwsError("MethodNotAllowed", "Method Not Allowed", 405)
        tok = req.headers.get("X-aws-ec2-metadata-token")
        if tok is not None:
            exp = im["tokens"].get(tok)
            if exp is None or exp <= now:
                raise AwsError("Unauthorized", "Unauthorized", 401)
        elif im["token_required"]:
            raise AwsError("Unauthorized", "Unauthorized", 401)
        path = req.raw_path
        role = im["role"]
        if req.op == "role-list":
            if not role:
                raise AwsError("NotFound", "Not Found", 404)
            return self._text(200, role)
        if req.op == "credentials":
            if not role or req.names[0] != role:
                raise AwsError("NotFound", "Not Found", 404)
            c = self._imds_creds()
            if im["code"] != "Success":
                doc = {"Code": im["code"], "LastUpdated": iso8601(now),
                       "Message": f"Instance profile role {role} could not be assumed."}
            else:
                doc = {"Code": "Success", "LastUpdated": iso8601(getattr(c, "issued", now)),
                       "Type": "AWS-HMAC", "AccessKeyId": c.access_key_id,
                       "SecretAccessKey": c.secret_access_key, "Token": c.session_token,
                       "Expiration": iso8601(c.expiration)}
            return self._text(200, json.dumps(doc, indent=2, separators=(",", " : ")))
        if path == "/latest/meta-data/iam/info":
            if not role:
                raise AwsError("NotFound", "Not Found", 404)
            doc = {"Code": "Success", "LastUpdated": iso8601(now),
                   "InstanceProfileArn": f"arn:aws:iam::{self.account_id}:instance-profile/"
                                         f"{role}",
                   "InstanceProfileId": "AIPA" + hashlib.sha1(role.encode()).hexdigest()[:17]
                   .upper()}
            return self._text(200, json.dumps(doc, indent=2, separators=(",", " : ")))
        if path == "/latest/meta-data/placement/region":
            return self._text(200, self.region)
        if path == "/latest/meta-data/instance-id":
            return self._text(200, im["instance_id"])
        if path == "/latest/dynamic/instance-identity/document":
            doc = {"accountId": self.account_id, "architecture": "x86_64",
                   "availabilityZone": self.region + "a", "imageId": "ami-0123456789abcdef0",
                   "instanceId": im["instance_id"], "instanceType": "t3.micro",
                   "pendingTime": iso8601(now - 3600), "privateIp": "10.0.0.10",
                   "region": self.region, "version": "2017-09-30"}
            return self._text(200, json.dumps(doc, indent=2, separators=(",", " : ")))
        raise AwsError("NotFound", "Not Found", 404)

    def _h_container(self, req):
        co = self.container
        if req.op != "credentials" or not co["enabled"]:
            raise AwsError("InvalidIdQuery", "CredentialsV2Request: Credentials not found", 404)
        if req.method not in ("GET", "HEAD"):
            raise AwsError("MethodNotAllowed", "Method Not Allowed", 405)
        want = co["authorization"]
        if want is not None:
            got = req.headers.get("Authorization")
            if got is None:
                raise AwsError("AccessDeniedException",
                               "Authorization header is missing", 401)
            if not hmac.compare_digest(got.encode(), want.encode()):
                raise AwsError("AccessDeniedException", "Authorization token is invalid", 401)
        c = self._container_creds()
        doc = {"AccessKeyId": c.access_key_id, "Expiration": iso8601(c.expiration),
               "RoleArn": co["role_arn"], "SecretAccessKey": c.secret_access_key,
               "Token": c.session_token}
        if co["account_id_field"]:
            doc["AccountId"] = self.account_id
        return self._text(200, json.dumps(doc), "application/json")

    # ------------------------------------------------------------------- admin

    def admin(self, method, url, headers, body):
        """Handle a /_test/ request. Returns Resp."""
        with self._lock:
            self._counts["admin_requests"] += 1
        got = headers.get("X-Test-Admin") or ""
        if not hmac.compare_digest(got.encode(), self.admin_token.encode()):
            return _admin_json(401, {"error": "missing or wrong X-Test-Admin header"})
        try:
            args = json.loads(body.decode("utf-8")) if body and body.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as e:
            return _admin_json(400, {"error": f"bad JSON: {e}"})
        q = dict(parse_qsl(url.query))
        path = url.path.rstrip("/")
        try:
            with self._lock:
                out = self._admin_route(method.upper(), path, args, q)
        except AwsError as e:
            return _admin_json(400, {"error": f"{e.code}: {e.message}"})
        except (KeyError, ValueError, TypeError) as e:
            return _admin_json(400, {"error": f"{type(e).__name__}: {e}"})
        if isinstance(out, Resp):
            return out
        return _admin_json(200, out if out is not None else {"ok": True})

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
        if path == "/_test/secret":
            if m == "POST":
                a = dict(a)
                return self.put_secret(a.pop("name"), **a)
            if m == "GET":
                st = self.get_secret_state(q["name"])
                return st if st is not None else _admin_json(404, {"error": "no such secret"})
        if path == "/_test/secret/delete" and m == "POST":
            return {"ok": self.delete_secret(a["name"], _bool(a.get("force"), True),
                                             a.get("recovery_window_days", 30))}
        if path == "/_test/secrets" and m == "GET":
            return {"secrets": sorted(self.secrets)}
        if path == "/_test/parameter":
            if m == "POST":
                a = dict(a)
                return {"version": self.put_parameter(a.pop("name"), a.pop("value"), **a)}
            if m == "GET":
                st = self.get_parameter_state(q["name"])
                return st if st is not None else _admin_json(404, {"error": "no such parameter"})
        if path == "/_test/parameter/delete" and m == "POST":
            return {"ok": self.delete_parameter(a["name"])}
        if path == "/_test/parameters" and m == "GET":
            return {"parameters": sorted(self.parameters)}
        if path == "/_test/key" and m == "POST":
            return self.add_key(**a)
        if path == "/_test/keys" and m == "GET":
            return {"keys": self.list_keys()}
        if path == "/_test/key/expire" and m == "POST":
            return self.expire_key(a["access_key_id"])
        if path == "/_test/key/revoke" and m == "POST":
            return {"ok": self.revoke_key(a["access_key_id"])}
        if path == "/_test/role" and m == "POST":
            return self.add_role(**a)
        if path == "/_test/roles" and m == "GET":
            return {"roles": copy.deepcopy(list(self.roles.values()))}
        if path == "/_test/imds":
            return self.configure_imds(**a) if m == "POST" else self.imds_state()
        if path == "/_test/imds/rotate" and m == "POST":
            return self.rotate_imds()
        if path == "/_test/container":
            return self.configure_container(**a) if m == "POST" else self.container_state()
        if path == "/_test/container/rotate" and m == "POST":
            return self.rotate_container()
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
                self.set_clock_offset(a["offset"])
            return {"offset": self.clock_offset, "now": self.now()}
        if path == "/_test/clock" and m == "GET":
            return {"offset": self.clock_offset, "now": self.now()}
        return _admin_json(404, {"error": f"no admin endpoint {m} {path}", "help": _ADMIN_HELP})

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
            sys.stderr.write(f"aws_server: TLS handshake failed: {err}\n")


def _admin_json(status, obj):
    return Resp(status, (json.dumps(obj) + "\n").encode(), {"Content-Type": "application/json"})


_ADMIN_HELP = """\
All requests need header X-Test-Admin: <admin token>; JSON bodies. Served on every listener.
GET  /_test/health | /_test/info      -> {ok, port, url, metadata_port, metadata_url, imds_endpoint,
                                         container_full_uri, admin_token, region, access_key_id,
                                         secret_access_key, settings}
POST /_test/config {error_style, auth_error_status, max_skew, verify_signatures,
                    signature_debug, ssm_paging{page_size, empty_leading, empty_between,
                    empty_trailing}, session_token_length, region, account_id}
POST /_test/reset                     -> back to the startup config (new random temp keys)
POST /_test/secret {name, secret_string | secret_binary_b64, description, tags, kms_key_id,
                    version_id, stages, decryption_failure, arn_suffix, rotation_enabled,
                    versions:[{version_id, secret_string|secret_binary_b64, stages}]}
                                      -> {arn, name, version_id, version_stages}
GET  /_test/secret?name=N | GET /_test/secrets | POST /_test/secret/delete {name, force}
POST /_test/parameter {name, value, type, key_id, data_type, overwrite, labels} -> {version}
GET  /_test/parameter?name=N | GET /_test/parameters | POST /_test/parameter/delete {name}
POST /_test/key {access_key_id, secret_access_key, session_token, expiration|expires_in,
                 principal, deny:[glob "service:Operation:resource"]}   -> key
GET  /_test/keys | POST /_test/key/expire {access_key_id} | POST /_test/key/revoke {access_key_id}
POST /_test/role {role_arn, web_identity_token | tokens:[...], max_session_duration, subject,
                  audience, provider, deny, invalid_token_message} | GET /_test/roles
GET|POST /_test/imds {enabled, role, token_required, duration, rotate_before, code, deny,
                      instance_id} | POST /_test/imds/rotate
GET|POST /_test/container {enabled, paths, authorization, duration, rotate_before, deny,
                           role_arn, account_id_field} | POST /_test/container/rotate
POST /_test/fault {kind: status|error|throttle|latency|drop|truncate|oversize|malformed,
                   service, operation, name, path, method, listener, access_key, count, skip,
                   probability, seed, status, code, message, style, headers, latency_ms,
                   size_mib, chunked, truncate_at, body, content_type, rst, retry_after} -> {id}
GET  /_test/faults | DELETE /_test/faults | POST /_test/faults/clear {id?}
GET  /_test/counts | POST /_test/reset-counts | GET /_test/requests?since=SEQ
GET|POST /_test/clock {advance: s} | {offset: s}   (fake clock: credential expiry, timestamps)
"""


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, aws, kind):
        self.aws = aws
        self.kind = kind  # main | metadata | admin
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        v = self.aws
        v._on_connection(request)
        sock = request
        try:
            try:
                request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            if v.tls and self.kind == "main":
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
        if self.aws.verbose:
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server_version = "Server"
    sys_version = ""

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, fmt, *args):
        if self.server.aws.verbose:
            sys.stderr.write("aws_server: %s - %s\n" % (self.address_string(), fmt % args))

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
        v = self.server.aws
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path == "/_test" or url.path.startswith("/_test/"):
            self._write(v.admin(self.command, url, self.headers, body), None)
            return
        if self.server.kind == "admin":
            self._write(_admin_json(404, {"error": "admin-only listener"}), None)
            return
        try:
            resp, action = v.serve(self.command, url, self.headers, body,
                                   peer=self.client_address, listener=self.server.kind)
        except Exception as e:  # pragma: no cover - bug guard
            resp, action = _admin_json(500, {"error": f"internal error: {e}"}), None
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
            self.send_response(resp.status)
            for k, val in resp.headers.items():
                self.send_header(k, val)
            self.send_header("Content-Length", str(len(body)))
            if self.command == "HEAD":
                body = b""
            if self.close_connection:
                self.send_header("Connection", "close")
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

    def __init__(self, url, admin_token, cafile=None, timeout=10):
        self.url = url.rstrip("/")
        self.admin_token = admin_token
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=cafile) if self.url.startswith("https") \
            else None

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
    """Start aws_server.py as a subprocess; returns (Popen, info_dict) where
    info_dict is what --info-file holds (port, url, metadata_url, admin_token, ...)."""
    import subprocess

    os.makedirs(workdir, exist_ok=True)
    port_file = os.path.join(workdir, "aws.port")
    mport_file = os.path.join(workdir, "aws.metadata.port")
    info_file = os.path.join(workdir, "aws.info.json")
    for f in (port_file, mport_file, info_file):
        if os.path.exists(f):
            os.unlink(f)
    cmd = [python or sys.executable, os.path.abspath(__file__), "--cert", cert, "--key", key,
           "--port-file", port_file, "--metadata-port-file", mport_file,
           "--info-file", info_file]
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
            raise RuntimeError("aws_server exited: " + proc.stderr.read().decode(errors="replace"))
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("aws_server did not start in time")


def _write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="AWS (Secrets Manager, SSM, STS, IMDS, container "
                                 "credentials) test server, in-memory")
    ap.add_argument("--cert", help="server certificate (PEM)")
    ap.add_argument("--key", help="server private key (PEM)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port, 0 = ephemeral (default)")
    ap.add_argument("--port-file", help="write the HTTPS port number here (atomically)")
    ap.add_argument("--metadata-port", type=int, default=0,
                    help="plain-HTTP IMDS/container port, 0 = ephemeral (default)")
    ap.add_argument("--metadata-port-file", help="write the metadata port number here")
    ap.add_argument("--no-metadata", action="store_true", help="no IMDS/container listener")
    ap.add_argument("--info-file", help="write JSON {port,url,metadata_url,admin_token,...} here")
    ap.add_argument("--config", help="JSON text, or @FILE / FILE with JSON")
    ap.add_argument("--admin-token", help="fixed admin token (default: random)")
    ap.add_argument("--admin-token-file", help="write the admin token here")
    ap.add_argument("--admin-port-file",
                    help="also serve /_test/ on a separate plain-HTTP port; write it here")
    ap.add_argument("--no-tls", action="store_true", help="serve the main listener as plain HTTP")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)

    cfg = load_config_arg(args.config)
    if not args.no_tls and (not args.cert or not args.key):
        ap.error("--cert and --key are required (or --no-tls)")
    srv = AwsServer(args.cert, args.key, host=args.host, port=args.port,
                    metadata_port=None if args.no_metadata else args.metadata_port,
                    config=cfg, admin_token=args.admin_token,
                    admin_port=0 if args.admin_port_file else None, verbose=args.verbose,
                    tls=not args.no_tls)
    return serve_until_signalled(srv, args)


class AwsPlumbing:
    """
    What another test server takes from this one: the listeners (main HTTPS,
    plain-HTTP metadata, admin), their handler, the connection bookkeeping,
    the counters' readers and the control API's front door; the same
    attributes drive them.  stop() first releases the requests a hold fault
    keeps (the subclass's clear_faults()).
    """

    _ssl_context = AwsServer._ssl_context
    _listen = AwsServer._listen
    start = AwsServer.start
    __enter__ = AwsServer.__enter__
    __exit__ = AwsServer.__exit__
    _on_connection = AwsServer._on_connection
    _on_disconnect = AwsServer._on_disconnect
    _on_tls_failure = AwsServer._on_tls_failure
    counts = AwsServer.counts
    requests_log = AwsServer.requests_log
    list_faults = AwsServer.list_faults
    admin = AwsServer.admin

    def stop(self):
        self.clear_faults()
        AwsServer.stop(self)


def load_config_arg(text):
    """--config: JSON text, @FILE or FILE with JSON; None when not given."""
    if not text:
        return None
    if text.startswith("@"):
        text = open(text[1:]).read()
    elif not text.lstrip().startswith("{") and os.path.exists(text):
        text = open(text).read()
    return json.loads(text)


def serve_cli(server_class, description, argv=None):
    """
    The command line of a test server with one HTTPS listener (and the admin
    one): parses --cert, --key, --host, --port[-file], --info-file, --config,
    --admin-token[-file], --admin-port-file, --no-tls, -v, then serves until
    signalled.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--info-file")
    ap.add_argument("--config", help="JSON text, or @FILE / FILE with JSON")
    ap.add_argument("--admin-token")
    ap.add_argument("--admin-token-file")
    ap.add_argument("--admin-port-file")
    ap.add_argument("--no-tls", action="store_true")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args(argv)
    args.metadata_port_file = None
    if not args.no_tls and (not args.cert or not args.key):
        ap.error("--cert and --key are required (or --no-tls)")
    srv = server_class(args.cert, args.key, host=args.host, port=args.port,
                       config=load_config_arg(args.config), admin_token=args.admin_token,
                       admin_port=0 if args.admin_port_file else None, verbose=args.verbose,
                       tls=not args.no_tls)
    return serve_until_signalled(srv, args)


def serve_until_signalled(srv, args):
    """
    Starts @srv, writes the files the CLI promises (atomically; --info-file
    last), prints the info line, and serves until SIGTERM or SIGINT.
    """
    srv.start()
    info = srv.info()
    if args.admin_token_file:
        _write_atomic(args.admin_token_file, srv.admin_token + "\n")
    if args.admin_port_file:
        _write_atomic(args.admin_port_file, f"{srv.admin_port}\n")
    if args.metadata_port_file and srv.metadata_port:
        _write_atomic(args.metadata_port_file, f"{srv.metadata_port}\n")
    if args.port_file:
        _write_atomic(args.port_file, f"{srv.port}\n")
    if args.info_file:
        _write_atomic(args.info_file, json.dumps(info) + "\n")
    print(json.dumps(info), flush=True)

    stop = threading.Event()

    def _sig(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _sig)
    signal.signal(signal.SIGINT, _sig)
    while not stop.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
