"""
Differential test of the SigV4 signer (src/backends/aws_sigv4.c) against
botocore's SigV4Auth, the signer every AWS CLI and boto3 call goes through.

400 requests are generated from a fixed seed: GET/POST/PUT/DELETE; paths
with several segments, unicode, spaces, reserved characters, '~', '%', dot
segments, doubled slashes, or no path at all, sent either percent-encoded (as
botocore's serializers do) or raw; queries with repeated keys, empty values,
keys without '=', unicode and reserved characters (percent-encoded on the
wire, sometimes with lowercase escapes); headers with mixed-case and
repeated names, leading, trailing and inner spaces and tabs, the names
botocore leaves unsigned, and X-Amz-Content-SHA256; empty, binary, JSON and
form bodies; with and without session tokens (and access key ids reused
with another secret, for the key cache); secretsmanager, ssm and sts in
several regions; hosts with ports, upper case and IPv6; timestamps from 1970
to 2099.  Each is signed by our signer, through $SECRETFS_BUILD/tests/sigv4_tool
(default build/), and by botocore with its clock fixed the way botocore's own
tests fix it (datetime.datetime patched in botocore.auth).  The Authorization
headers must be identical, and so must X-Amz-Date, X-Amz-Security-Token and
the canonical request; a mismatch shows both canonical requests.

Header values stay ASCII: botocore would also fold Unicode spaces, which no
AWS API sends in a header.  The Host, X-Amz-Date, X-Amz-Security-Token,
Authorization and Date headers are the signer's own: our signer refuses
them from the caller (checked below), where botocore would replace them.

Needs botocore (Debian: python3-botocore) and the tool (make
build/tests/sigv4_tool); skips with the reason otherwise.  No FUSE is
involved: where /dev/fuse is missing the integration conftest skips every
test, so run this one alone with `pytest --noconftest` there.
"""

import base64
import datetime
import difflib
import json
import os
import random
import string
import subprocess
from pathlib import Path
from unittest import mock

import pytest

botocore = pytest.importorskip(
    "botocore", reason="botocore is not installed (apt install python3-botocore)")
import botocore.auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.utils import percent_encode  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SEED = 20150830
COUNT = 400

SUITE_AKID = "AKIDEXAMPLE"
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = datetime.datetime(2015, 8, 30, 12, 36, 0)


def tool_path():
    build = os.environ.get("SECRETFS_BUILD")
    return (Path(build) if build else REPO / "build") / "tests" / "sigv4_tool"


@pytest.fixture(scope="module")
def tool():
    path = tool_path()
    if not os.access(path, os.X_OK):
        target = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        pytest.skip(f"{path}: not built (make {target}, "
                    "or set SECRETFS_BUILD to the build directory)")
    return path


def run_tool(tool, cases):
    """Signs each case (a dict in the tool's input format); returns one reply per case."""
    lines = "".join(json.dumps(c) + "\n" for c in cases)
    proc = subprocess.run([str(tool)], input=lines.encode(), capture_output=True, timeout=120)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"sigv4_tool exited {proc.returncode}: {stderr}"
    # A sanitizer build reports on stderr; nothing else may be written there.
    assert stderr == "", f"sigv4_tool wrote to stderr:\n{stderr}"
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(out) == len(cases)
    return out


class CapturingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth that keeps its canonical request and string to sign for the error message."""

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.last_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.last_string_to_sign


def botocore_sign(case, url, when):
    """Signs with botocore; returns (Authorization, X-Amz-Date, token header, creq, sts)."""
    creds = Credentials(case["access_key"], case["secret_key"], case.get("session_token"))
    auth = CapturingSigV4Auth(creds, case["service"], case["region"])
    body = base64.b64decode(case.get("body_b64") or "")
    request = AWSRequest(method=case["method"], url=url, data=body)
    for name, value in case.get("headers") or []:
        request.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    # botocore's own tests fix the clock this way (tests/unit/auth/test_sigv4.py).
    clock = mock.Mock(wraps=datetime.datetime)
    with mock.patch.object(botocore.auth.datetime, "datetime", clock) as dt:
        dt.utcnow.return_value = when
        auth.add_auth(request)
    return (
        request.headers["Authorization"],
        request.headers["X-Amz-Date"],
        request.headers.get("X-Amz-Security-Token"),
        auth.last_canonical_request,
        auth.last_string_to_sign,
    )


# ---------------------------------------------------------------- the generator

SERVICES = ["secretsmanager", "ssm", "sts"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "me-south-1"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
TIMES = [
    SUITE_TIME,
    datetime.datetime(1970, 1, 1, 0, 0, 0),
    datetime.datetime(2000, 2, 29, 23, 59, 59),
    datetime.datetime(2024, 2, 29, 0, 0, 1),
    datetime.datetime(2038, 1, 19, 3, 14, 8),
    datetime.datetime(2099, 12, 31, 23, 59, 59),
]
SEGMENTS = [
    "a", "secret", "prod", "db", "my secret", "two  spaces", "ünïcødé", "日本語", "key 🔑",
    "a+b", "a=b", "semi;colon", "col:on", "at@host", "bang!", "$dollar", "'quote'", "(paren)",
    "*star", ",comma", "~tilde", "-._~", "100%", "%41", "a%2Fb", "[x]", "back\\slash", "^caret",
    "|pipe", "`tick`", "{brace}", "<angle>", '"dq"', ".", "..", "", "...", ".hidden",
]
QUERY_KEYS = [
    "Action", "Version", "Param", "param", "a", "b", "key", "k-e_y.~", "ключ", "x y", "a&b",
    "a=b", "",
]
QUERY_VALUES = [
    "", "1", "value", "Value", "two words", "ünï", "日本", "🔑", "a+b", "a=b", "a&b",
    "/path/x",
    "?q", "#frag", "!*'();:@$,[]", "~-._", "%", "100%", "0", "GetSecretValue", "2011-06-15",
]
HEADER_NAMES = [
    "Content-Type", "X-Amz-Target", "X-Custom", "x-custom", "X-CUSTOM", "X-Amz-Meta-Thing",
    "Accept", "Accept-Encoding", "X_Under", "x-!#$%&'*+.^_`|~", "X-Empty", "Zz-Last", "A-First",
]
UNSIGNED_NAMES = ["User-Agent", "Expect", "X-Amzn-Trace-Id"]
PRINTABLE = string.ascii_letters + string.digits + string.punctuation


def mixed_case(rng, s):
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)


def header_value(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return ""
    if kind == 1:
        return rng.choice(["application/x-amz-json-1.1", "secretsmanager.GetSecretValue",
                           "AmazonSSM.GetParameter",
                           "application/x-www-form-urlencoded; charset=utf-8"])
    words = ["".join(rng.choice(PRINTABLE) for _ in range(rng.randint(1, 8)))
             for _ in range(rng.randint(1, 4))]
    blanks = [" ", "  ", "\t", " \t ", "   "]
    value = rng.choice(blanks).join(words) if kind >= 3 else " ".join(words)
    if rng.random() < 0.5:
        value = rng.choice(blanks + [""]) + value
    if rng.random() < 0.5:
        value = value + rng.choice(blanks + [""])
    return value


def gen_path(rng, seen):
    kind = rng.randrange(10)
    if kind == 0:
        seen.add("path:empty")
        return ""
    if kind == 1:
        return "/"
    segs = [rng.choice(SEGMENTS) for _ in range(rng.randint(1, 5))]
    if rng.random() < 0.3:
        segs.append("")  # a trailing slash
    if any(s in (".", "..", "") for s in segs):
        seen.add("path:dots-or-empty-segments")
    if any(ord(c) > 127 for s in segs for c in s):
        seen.add("path:unicode")
    if rng.random() < 0.5:
        # On the wire the way botocore's serializers send it: each segment encoded.
        seen.add("path:encoded")
        return "/" + "/".join(percent_encode(s, safe="~") for s in segs)
    # Raw: what urlsplit would mangle or cut ('?', '#', tab, CR, LF) never occurs raw.
    seen.add("path:raw")
    return "/" + "/".join(segs)


def gen_query(rng, seen):
    kind = rng.randrange(8)
    if kind == 0:
        return None
    if kind == 1:
        seen.add("query:empty")
        return ""
    parts = []
    keys = rng.sample(QUERY_KEYS, rng.randint(1, 3))
    for _ in range(rng.randint(1, 6)):
        key = rng.choice(keys)
        value = rng.choice(QUERY_VALUES)
        enc_key, enc_value = percent_encode(key), percent_encode(value)
        if rng.random() < 0.2:
            # Lowercase escapes: botocore signs them as sent, and so do we.
            enc_value = enc_value.replace("%C3%", "%c3%").replace("%2B", "%2b")
            seen.add("query:lowercase-escapes")
        if rng.random() < 0.1:
            parts.append(enc_key)  # no '='
            seen.add("query:no-equals")
        else:
            parts.append(f"{enc_key}={enc_value}")
        if value == "":
            seen.add("query:empty-value")
    if len({p.split("=")[0] for p in parts}) < len(parts):
        seen.add("query:repeated-keys")
    return "&".join(parts)


def gen_headers(rng, seen):
    headers = []
    for _ in range(rng.randint(0, 7)):
        r = rng.random()
        if r < 0.1:
            name = rng.choice(UNSIGNED_NAMES)
            seen.add("headers:unsigned-names")
        else:
            name = mixed_case(rng, rng.choice(HEADER_NAMES))
        headers.append([name, header_value(rng)])
    names = [n.lower() for n, _ in headers]
    if len(set(names)) < len(names):
        seen.add("headers:repeated")
    if any(v != v.strip() or "  " in v or "\t" in v for _, v in headers):
        seen.add("headers:blanks")
    if rng.random() < 0.05:
        headers.append(["X-Amz-Content-SHA256", rng.choice(["UNSIGNED-PAYLOAD", "ab" * 32])])
        seen.add("headers:content-sha256")
    return headers


def gen_body(rng, seen):
    kind = rng.randrange(4)
    if kind == 0:
        return b""
    if kind == 1:
        seen.add("body:binary")
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if kind == 2:
        seen.add("body:json")
        doc = {"SecretId": rng.choice(SEGMENTS), "VersionStage": "AWSCURRENT",
               "n": rng.randrange(10**6), "ünï": "日本 🔑"}
        return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
    seen.add("body:form")
    return b"Action=GetCallerIdentity&Version=2011-06-15"


def gen_token(rng, seen):
    if rng.random() < 0.5:
        return None
    seen.add("creds:token")
    alphabet = string.ascii_letters + string.digits + "+/="
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(16, 600)))


def gen_secret(rng):
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(40))


def gen_akid(rng):
    return rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice(string.ascii_uppercase + string.digits)
                                                    for _ in range(16))


def gen_host(rng, service, region, seen):
    """Returns (URL scheme and authority, the Host header botocore derives from it)."""
    kind = rng.randrange(10)
    name = f"{service}.{region}.amazonaws.com"
    if kind == 0:
        seen.add("host:port")
        return "http://localhost:4566", "localhost:4566"
    if kind == 1:
        seen.add("host:default-port")
        return f"https://{name}:443", name
    if kind == 2:
        seen.add("host:upper-case")
        return f"https://{mixed_case(rng, name)}", name
    if kind == 3:
        seen.add("host:ipv6")
        return "https://[::1]:8443", "[::1]:8443"
    return f"https://{name}", name


def generate(count, seed):
    rng = random.Random(seed)
    seen = set()
    pool = []
    cases = []
    for _ in range(count):
        if pool and rng.random() < 0.15:
            # A recent access key id (its key still in the signer's small cache), same day,
            # region and service, another secret: the cache must not hand out the old key.
            akid, service, region, when = rng.choice(pool[-3:])
            seen.add("creds:akid-reused-new-secret")
        else:
            akid, service, region = gen_akid(rng), rng.choice(SERVICES), rng.choice(REGIONS)
            when = rng.choice(TIMES)
            pool.append((akid, service, region, when))
        secret, token = gen_secret(rng), gen_token(rng, seen)
        origin, host = gen_host(rng, service, region, seen)
        path = gen_path(rng, seen)
        query = gen_query(rng, seen)
        case = {
            "method": rng.choice(METHODS),
            "host": host,
            "path": path,
            "query": query,
            "headers": gen_headers(rng, seen),
            "body_b64": base64.b64encode(gen_body(rng, seen)).decode(),
            "access_key": akid,
            "secret_key": secret,
            "session_token": token,
            "region": region,
            "service": service,
            "time": int(when.replace(tzinfo=datetime.timezone.utc).timestamp()),
        }
        url = origin + path + ("" if query is None else "?" + query)
        cases.append((case, url, when))
    return cases, seen


# ---------------------------------------------------------------- the tests


def test_generator_covers_everything():
    """The seeded requests hold every feature the module docstring promises, more than once."""
    _, seen = generate(COUNT, SEED)
    want = {
        "path:empty", "path:dots-or-empty-segments", "path:unicode", "path:encoded", "path:raw",
        "query:empty", "query:lowercase-escapes", "query:no-equals", "query:empty-value",
        "query:repeated-keys", "headers:unsigned-names", "headers:repeated", "headers:blanks",
        "headers:content-sha256", "body:binary", "body:json", "body:form", "creds:token",
        "creds:akid-reused-new-secret", "host:port", "host:default-port", "host:upper-case",
        "host:ipv6",
    }
    assert want <= seen, f"the generator never produced: {sorted(want - seen)}"


def test_harness_matches_the_suite():
    """botocore, clock-patched as here, gives the AWS suite's get-vanilla signature."""
    case = {"method": "GET", "access_key": SUITE_AKID, "secret_key": SUITE_SECRET,
            "region": "us-east-1", "service": "service"}
    auth, date, _, _, _ = botocore_sign(case, "https://example.amazonaws.com/", SUITE_TIME)
    assert date == "20150830T123600Z"
    assert auth == ("AWS4-HMAC-SHA256 "
                    "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                    "SignedHeaders=host;x-amz-date, "
                    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")


def test_same_signatures_as_botocore(tool):
    cases, _ = generate(COUNT, SEED)
    ours = run_tool(tool, [c for c, _, _ in cases])
    failures = []
    for i, ((case, url, when), got) in enumerate(zip(cases, ours)):
        if "error" in got:
            failures.append(f"#{i}: our signer refused it: {got}\n  {json.dumps(case)}")
            continue
        auth, date, token, creq, sts = botocore_sign(case, url, when)
        ours = (got["authorization"], got["amz_date"], got["security_token"],
                got["canonical_request"])
        if ours != (auth, date, token, creq):
            diff = "\n".join(difflib.unified_diff(creq.split("\n"),
                                                  got["canonical_request"].split("\n"),
                                                  "botocore", "ours", lineterm=""))
            failures.append(f"#{i}: {url}\n  {json.dumps(case)}\n  botocore: {auth}\n  ours:     "
                            f"{got['authorization']}\n{diff}\n--- botocore string to sign\n{sts}\n"
                            f"--- ours\n{got['string_to_sign']}")
    assert not failures, (f"{len(failures)} of {len(cases)} differ from botocore:\n\n"
                          + "\n\n".join(failures[:5]))
    assert len(cases) >= 200


def test_token_after(tool):
    """SIGV4_TOKEN_AFTER signs as if there were no token (the suite's post-sts-header-after)."""
    base = {"method": "POST", "host": "example.amazonaws.com", "path": "/",
            "access_key": SUITE_AKID, "secret_key": SUITE_SECRET, "region": "us-east-1",
            "service": "service",
            "time": int(SUITE_TIME.replace(tzinfo=datetime.timezone.utc).timestamp())}
    after, none = run_tool(tool, [dict(base, session_token="tok", token_after=True), base])
    assert after["authorization"] == none["authorization"]
    assert after["security_token"] == "tok"
    assert none["security_token"] is None


@pytest.mark.parametrize("headers, needle", [
    ([["Host", "example.com"]], "host"),
    ([["X-Amz-Date", "20150830T123600Z"]], "x-amz-date"),
    ([["x-amz-security-token", "t"]], "x-amz-security-token"),
    ([["Authorization", "x"]], "authorization"),
    ([["Date", "Sun, 30 Aug 2015 12:36:00 GMT"]], "date"),
    ([["X-Ok", "a\r\nX-Injected: 1"]], "control character"),
    ([["Bad Name", "v"]], "invalid name"),
])
def test_tool_refusals(tool, headers, needle):
    """What botocore would overwrite or send broken, our signer refuses, with a reason."""
    case = {"method": "GET", "host": "example.amazonaws.com", "path": "/", "headers": headers,
            "access_key": SUITE_AKID, "secret_key": SUITE_SECRET, "region": "us-east-1",
            "service": "service", "time": 0}
    (got,) = run_tool(tool, [case])
    assert got.get("errno") == 22, got
    assert needle in got["error"]
    assert "Injected" not in got["error"]
