"""Checks the AWS test server against boto3/botocore (AWS's Python SDK) and the
documented wire formats in /work/shared/fixtures/aws.

Run:  /usr/bin/python3 -m pytest -q tests/servers/test_aws_server.py
Needs Debian packages python3-boto3 (botocore 1.29), python3-pytest and openssl.
"""

import base64
import datetime as _dt
import glob
import http.client
import json
import os
import signal
import socket
import ssl
import sys
import time
import types
import urllib.error
import urllib.request

import pytest

boto3 = pytest.importorskip("boto3")
import botocore  # noqa: E402
import botocore.auth  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.retries.standard  # noqa: E402
import botocore.retryhandler  # noqa: E402
import botocore.session  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aws_server import (  # noqa: E402
    BOTOCORE_ERROR_STYLES,
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ERROR_STYLES,
    AdminClient,
    AwsServer,
    spawn_cli,
)
from certs import generate_certs  # noqa: E402

FIXTURES = os.environ.get("AWS_FIXTURES", "/work/shared/fixtures/aws")
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/secretfs-app"
JSON_CT = "application/x-amz-json-1.1"
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1},
                  connect_timeout=5, read_timeout=10)


def _jwt(claims):
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa
    return f"{enc({'alg': 'RS256', 'typ': 'JWT'})}.{enc(claims)}.c2lnbmF0dXJl"


WEB_TOKEN = _jwt({"sub": "system:serviceaccount:apps:secretfs", "aud": "sts.amazonaws.com",
                  "exp": int(time.time()) + 86400})
EXPIRED_WEB_TOKEN = _jwt({"sub": "system:serviceaccount:apps:old", "exp": 1000})

BASE_CONFIG = {
    "secrets": [{"name": "seeded/db", "secret_string": '{"user":"u","pw":"p"}',
                 "description": "seeded", "kms_key_id": "alias/aws/secretsmanager",
                 "tags": [{"Key": "team", "Value": "infra"}], "rotation_enabled": False}],
    "parameters": [{"name": "/seeded/p", "value": "v1"}],
    "roles": [{"role_arn": ROLE, "tokens": [WEB_TOKEN, EXPIRED_WEB_TOKEN],
               "max_session_duration": 7200}],
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def clean_aws_env():
    """No ambient AWS configuration may leak into botocore's resolution."""
    saved = dict(os.environ)
    for k in list(os.environ):
        if k.startswith("AWS_"):
            del os.environ[k]
    os.environ["AWS_CONFIG_FILE"] = "/nonexistent/aws-config"
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/aws-credentials"
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return generate_certs(str(tmp_path_factory.mktemp("awscerts")), extras=False)


@pytest.fixture(scope="module")
def server(certs):
    srv = AwsServer(certs.server, certs.server_key, config=BASE_CONFIG)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def aws(server):
    server.reset()
    return server


@pytest.fixture(scope="module")
def session():
    return boto3.session.Session(aws_access_key_id=DEFAULT_ACCESS_KEY,
                                 aws_secret_access_key=DEFAULT_SECRET_KEY, region_name=REGION)


@pytest.fixture(scope="module")
def mk(session, server, certs):
    """mk(service, config=NO_RETRY, **client_kwargs) -> boto3 client on the test server."""
    def make(service, config=NO_RETRY, **kw):
        kw.setdefault("region_name", REGION)
        return session.client(service, endpoint_url=server.url, verify=certs.ca, config=config,
                              **kw)
    return make


@pytest.fixture(scope="module")
def sm(mk):
    return mk("secretsmanager")


@pytest.fixture(scope="module")
def ssm(mk):
    return mk("ssm")


@pytest.fixture(scope="module")
def sts(mk):
    return mk("sts")


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def signed_raw(srv, certs, target, body, *, creds=(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, None),
               region=REGION, service=None, extra_headers=None, raw_body=None):
    """POST / signed by botocore's own SigV4Auth, sent with http.client so the raw
    status, headers and body are visible. Returns (status, headers(lower), body)."""
    service = service or ("secretsmanager" if target.startswith("secretsmanager.") else "ssm")
    data = raw_body if raw_body is not None else json.dumps(body).encode()
    req = AWSRequest(method="POST", url=srv.url + "/", data=data,
                     headers={"Content-Type": JSON_CT, "X-Amz-Target": target,
                              **(extra_headers or {})})
    SigV4Auth(Credentials(*creds), service, region).add_auth(req)
    prepared = req.prepare()
    ctx = ssl.create_default_context(cafile=certs.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
    try:
        conn.request("POST", "/", body=prepared.body, headers=dict(prepared.headers))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def smithy_error_code(headers, body):
    """Reference implementation of the awsJson1_1 rule in the vectors file:
    X-Amzn-Errortype header, else body __type, else body code; keep the part
    after the last '#' and before the first ':'."""
    code = headers.get("x-amzn-errortype")
    if not code and body:
        obj = json.loads(body)
        code = obj.get("__type") or obj.get("code")
    return code.split(":", 1)[0].rsplit("#", 1)[-1] if code else None


def error_form(headers, body):
    """Which wire form an error uses: (where, namespaced, uri, has_body)."""
    h = headers.get("x-amzn-errortype")
    obj = json.loads(body) if body else {}
    if h:
        where, raw = "header", h
    elif "__type" in obj:
        where, raw = "__type", obj["__type"]
    else:
        where, raw = "code", obj.get("code", "")
    return where, "#" in raw, ":" in raw, bool(body)


def http_get(url, headers=None, method="GET", data=None):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ---------------------------------------------------------------- Secrets Manager


def test_sm_string_binary_and_metadata(aws, sm):
    c = sm.create_secret(Name="app/db", SecretString='{"user":"u","pw":"1"}',
                         Description="db creds", Tags=[{"Key": "env", "Value": "test"}])
    assert set(c) - {"ResponseMetadata"} == {"ARN", "Name", "VersionId"}
    assert c["ARN"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-")
    assert len(c["ARN"].rsplit("-", 1)[1]) == 6
    g = sm.get_secret_value(SecretId="app/db")
    assert g["SecretString"] == '{"user":"u","pw":"1"}' and "SecretBinary" not in g
    assert g["VersionStages"] == ["AWSCURRENT"] and g["VersionId"] == c["VersionId"]
    assert g["Name"] == "app/db" and g["ARN"] == c["ARN"]
    assert isinstance(g["CreatedDate"], _dt.datetime)
    assert g["ResponseMetadata"]["HTTPHeaders"]["content-type"] == JSON_CT
    assert g["ResponseMetadata"]["RequestId"]

    blob = bytes(range(256)) * 3
    sm.create_secret(Name="app/tls.key", SecretBinary=blob)
    b = sm.get_secret_value(SecretId="app/tls.key")
    assert b["SecretBinary"] == blob and "SecretString" not in b

    # by full ARN, partial ARN (no random suffix), name
    assert sm.get_secret_value(SecretId=c["ARN"])["Name"] == "app/db"
    partial = c["ARN"].rsplit("-", 1)[0]
    assert sm.get_secret_value(SecretId=partial)["ARN"] == c["ARN"]

    d = sm.describe_secret(SecretId="app/db")
    assert d["Description"] == "db creds" and d["Tags"] == [{"Key": "env", "Value": "test"}]
    assert d["VersionIdsToStages"] == {c["VersionId"]: ["AWSCURRENT"]}
    assert isinstance(d["LastChangedDate"], _dt.datetime)
    assert d["LastAccessedDate"].time() == _dt.time(0, 0)  # AWS keeps only the date
    assert "SecretString" not in d

    with pytest.raises(ClientError) as ei:
        sm.create_secret(Name="app/db", SecretString="x")
    assert code_of(ei) == "ResourceExistsException"
    # counters: per operation and per secret name
    assert aws.secret_count("app/db", "GetSecretValue") == 3
    assert aws.op_count("secretsmanager.CreateSecret") == 3
    assert aws.secret_count("app/db", "DescribeSecret") == 1


def test_sm_rotation_stages_and_versions(aws, sm):
    v1 = sm.create_secret(Name="rot", SecretString="one")["VersionId"]
    p2 = sm.put_secret_value(SecretId="rot", SecretString="two")
    v2 = p2["VersionId"]
    assert p2["VersionStages"] == ["AWSCURRENT"] and v2 != v1
    stages = sm.describe_secret(SecretId="rot")["VersionIdsToStages"]
    assert stages == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId="rot")["SecretString"] == "two"
    prev = sm.get_secret_value(SecretId="rot", VersionStage="AWSPREVIOUS")
    assert prev["SecretString"] == "one" and prev["VersionStages"] == ["AWSPREVIOUS"]
    assert sm.get_secret_value(SecretId="rot", VersionId=v1)["SecretString"] == "one"
    both = sm.get_secret_value(SecretId="rot", VersionId=v2, VersionStage="AWSCURRENT")
    assert both["SecretString"] == "two"

    # a third value: v1 loses its labels (deprecated, hidden from VersionIdsToStages)
    v3 = sm.put_secret_value(SecretId="rot", SecretString="three")["VersionId"]
    stages = sm.describe_secret(SecretId="rot")["VersionIdsToStages"]
    assert stages == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    old = sm.get_secret_value(SecretId="rot", VersionId=v1)
    assert old["SecretString"] == "one" and "VersionStages" not in old

    # AWSPENDING does not move AWSCURRENT
    pend = sm.put_secret_value(SecretId="rot", SecretString="four", VersionStages=["AWSPENDING"])
    assert sm.get_secret_value(SecretId="rot")["SecretString"] == "three"
    assert sm.get_secret_value(SecretId="rot", VersionStage="AWSPENDING")["VersionId"] == \
        pend["VersionId"]
    ids = {v["VersionId"]: v.get("VersionStages")
           for v in sm.list_secret_version_ids(SecretId="rot")["Versions"]}
    assert ids[v1] is None and ids[pend["VersionId"]] == ["AWSPENDING"]

    # ClientRequestToken idempotency
    tok = "a" * 32
    r1 = sm.put_secret_value(SecretId="rot", SecretString="five", ClientRequestToken=tok)
    r2 = sm.put_secret_value(SecretId="rot", SecretString="five", ClientRequestToken=tok)
    assert r1["VersionId"] == r2["VersionId"] == tok
    with pytest.raises(ClientError) as ei:
        sm.put_secret_value(SecretId="rot", SecretString="six", ClientRequestToken=tok)
    assert code_of(ei) == "ResourceExistsException"

    for kw, msg in (({"VersionId": "f" * 36}, "VersionId"),
                    ({"VersionStage": "NOPE"}, "staging label: NOPE")):
        with pytest.raises(ClientError) as ei:
            sm.get_secret_value(SecretId="rot", **kw)
        assert code_of(ei) == "ResourceNotFoundException" and msg in str(ei.value)
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="rot", VersionId=v1, VersionStage="AWSCURRENT")
    assert code_of(ei) == "InvalidRequestException"


def test_sm_secret_without_value_and_delete_restore(aws, sm):
    sm.create_secret(Name="empty")
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="empty")
    assert code_of(ei) == "ResourceNotFoundException"
    assert "staging label: AWSCURRENT" in str(ei.value)

    sm.create_secret(Name="gone", SecretString="x")
    d = sm.delete_secret(SecretId="gone", RecoveryWindowInDays=7)
    assert (d["DeletionDate"] - _dt.datetime.now(_dt.timezone.utc)).days in (6, 7)
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="gone")
    assert code_of(ei) == "InvalidRequestException" and "marked for deletion" in str(ei.value)
    assert "DeletedDate" in sm.describe_secret(SecretId="gone")
    names = [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert "gone" not in names
    sm.restore_secret(SecretId="gone")
    assert sm.get_secret_value(SecretId="gone")["SecretString"] == "x"
    sm.delete_secret(SecretId="gone", ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as ei:
        sm.describe_secret(SecretId="gone")
    assert code_of(ei) == "ResourceNotFoundException"


def test_sm_list_secrets_paging_and_filters(aws, sm):
    for i in range(23):
        aws.put_secret(f"app/s{i:02d}", secret_string=str(i))
    for i in range(4):
        aws.put_secret(f"other/o{i}", secret_string=str(i), description="x",
                       tags=[{"Key": "owner", "Value": "team-a"}])
    seen, tok, pages = [], None, 0
    while True:
        kw = {"MaxResults": 10, "Filters": [{"Key": "name", "Values": ["app/"]}]}
        if tok:
            kw["NextToken"] = tok
        r = sm.list_secrets(**kw)
        pages += 1
        seen += [s["Name"] for s in r["SecretList"]]
        tok = r.get("NextToken")
        if not tok:
            break
    assert pages == 3 and seen == [f"app/s{i:02d}" for i in range(23)]
    item = sm.list_secrets(MaxResults=1, Filters=[{"Key": "name", "Values": ["app/s05"]}])
    e = item["SecretList"][0]
    assert set(e) >= {"ARN", "Name", "LastChangedDate", "SecretVersionsToStages", "CreatedDate"}
    assert list(e["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]

    pag = sm.get_paginator("list_secrets")
    every = [s["Name"] for p in pag.paginate(PaginationConfig={"PageSize": 4}) for s in
             p["SecretList"]]
    assert len(every) == 23 + 4 + 1  # + the seeded secret
    neg = [s["Name"] for p in pag.paginate(Filters=[{"Key": "name", "Values": ["!app/"]}])
           for s in p["SecretList"]]
    assert sorted(neg) == ["other/o0", "other/o1", "other/o2", "other/o3", "seeded/db"]
    tagged = sm.list_secrets(Filters=[{"Key": "tag-value", "Values": ["team-a"]},
                                      {"Key": "name", "Values": ["other/o1", "other/o2"]}])
    assert [s["Name"] for s in tagged["SecretList"]] == ["other/o1", "other/o2"]
    desc = sm.list_secrets(SortOrder="desc", MaxResults=2)["SecretList"]
    assert [s["Name"] for s in desc] == ["other/o3", "other/o2"]
    with pytest.raises(ClientError) as ei:
        sm.list_secrets(NextToken="garbage-token")
    assert code_of(ei) == "InvalidNextTokenException"
    assert aws.op_count("secretsmanager.ListSecrets") >= 3


def test_sm_batch_get_secret_value_raw(aws, certs):
    # not in botocore 1.29's model: signed raw request
    aws.put_secret("b1", secret_string="one")
    aws.put_secret("b2", secret_binary=b"\x00\x01")
    st, h, body = signed_raw(aws, certs, "secretsmanager.BatchGetSecretValue",
                             {"SecretIdList": ["b1", "b2", "missing"]})
    assert st == 200
    out = json.loads(body)
    assert [v["Name"] for v in out["SecretValues"]] == ["b1", "b2"]
    assert out["SecretValues"][1]["SecretBinary"] == base64.b64encode(b"\x00\x01").decode()
    assert out["Errors"] == [{"SecretId": "missing", "ErrorCode": "ResourceNotFoundException",
                              "Message": "Secrets Manager can't find the specified secret."}]
    st, h, body = signed_raw(aws, certs, "secretsmanager.BatchGetSecretValue",
                             {"Filters": [{"Key": "name", "Values": ["b"]}], "MaxResults": 1})
    out = json.loads(body)
    assert [v["Name"] for v in out["SecretValues"]] == ["b1"] and out["NextToken"]
    assert aws.secret_count("b1", "BatchGetSecretValue") == 1


def test_sm_error_codes_through_boto3(aws, sm, mk):
    aws.put_secret("locked", secret_string="x", decryption_failure=True)
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="locked")
    assert code_of(ei) == "DecryptionFailure" and status_of(ei) == 400
    assert isinstance(ei.value, sm.exceptions.DecryptionFailure)

    with pytest.raises(sm.exceptions.ResourceNotFoundException) as ei:
        sm.get_secret_value(SecretId="nope")
    assert ei.value.response["Error"]["Message"] == \
        "Secrets Manager can't find the specified secret."
    # default error_style "header": the code is in the body and in x-amzn-ErrorType
    assert ei.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == \
        "ResourceNotFoundException"

    # AccessDeniedException from a key's deny rules
    k = aws.add_key(deny=["secretsmanager:GetSecretValue:prod/*"])
    aws.put_secret("prod/db", secret_string="x")
    aws.put_secret("dev/db", secret_string="y")
    limited = mk("secretsmanager", aws_access_key_id=k["access_key_id"],
                 aws_secret_access_key=k["secret_access_key"])
    assert limited.get_secret_value(SecretId="dev/db")["SecretString"] == "y"
    with pytest.raises(ClientError) as ei:
        limited.get_secret_value(SecretId="prod/db")
    assert code_of(ei) == "AccessDeniedException" and status_of(ei) == 400
    assert "not authorized to perform: secretsmanager:GetSecretValue" in str(ei.value)

    # injected errors: the right botocore codes and statuses
    for code, status in (("ThrottlingException", 400), ("InternalServiceError", 500),
                         ("ExpiredTokenException", 400), ("AccessDeniedException", 400),
                         ("ServiceUnavailable", 503)):
        fid = aws.add_fault(kind="error", code=code, operation="GetSecretValue", count=1)
        with pytest.raises(ClientError) as ei:
            sm.get_secret_value(SecretId="dev/db")
        assert (code_of(ei), status_of(ei)) == (code, status)
        aws.clear_faults(fid)
    assert aws.counts()["errors"]["ThrottlingException"] == 1


@pytest.mark.parametrize("style", BOTOCORE_ERROR_STYLES)
def test_error_styles_botocore_reads(aws, sm, ssm, style, certs):
    aws.configure(error_style=style)
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="nope")
    assert code_of(ei) == "ResourceNotFoundException" and status_of(ei) == 400
    assert ei.value.response["Error"]["Message"] == \
        "Secrets Manager can't find the specified secret."
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name="/nope")
    st, h, body = signed_raw(aws, certs, "secretsmanager.GetSecretValue", {"SecretId": "nope"})
    assert smithy_error_code(h, body) == "ResourceNotFoundException"


def test_error_wire_forms_cover_parsing_vectors(aws, certs):
    vectors = json.load(open(os.path.join(FIXTURES, "awsjson11-error-parsing-vectors.json")))
    ours = {}
    for style in ERROR_STYLES:
        aws.configure(error_style=style)
        st, h, body = signed_raw(aws, certs, "secretsmanager.GetSecretValue",
                                 {"SecretId": "nope"})
        assert st == 400 and h["content-type"] == JSON_CT
        assert smithy_error_code(h, body) == "ResourceNotFoundException", style
        ours[error_form(h, body)] = style
        if body:
            msg = json.loads(body).get("Message")
            assert msg == "Secrets Manager can't find the specified secret.", style
    for case in vectors["cases"]:
        h = {k.lower(): v for k, v in case["headers"].items()}
        body = (case["body"] or "").encode()
        # our reference rule agrees with the vector...
        assert smithy_error_code(h, body) == case["expected_error_code"], case["id"]
        # ...and the server can emit that very wire form
        assert error_form(h, body) in ours, case["id"]
    # "rotate" walks through every style
    aws.configure(error_style="rotate")
    forms = set()
    for _ in ERROR_STYLES:
        st, h, body = signed_raw(aws, certs, "AmazonSSM.GetParameter", {"Name": "/nope"})
        assert smithy_error_code(h, body) == "ParameterNotFound"
        forms.add(error_form(h, body))
    assert len(forms) == len(set(ours))


# ---------------------------------------------------------------- SSM


def test_ssm_get_parameter_types_and_versions(aws, ssm):
    assert ssm.put_parameter(Name="/app/url", Value="https://x", Type="String")["Version"] == 1
    ssm.put_parameter(Name="/app/hosts", Value="a,b,c", Type="StringList")
    ssm.put_parameter(Name="/app/pw", Value="s3cret", Type="SecureString")
    ssm.put_parameter(Name="plain", Value="top", Type="String")
    p = ssm.get_parameter(Name="/app/url")["Parameter"]
    assert p == {**p, "Name": "/app/url", "Type": "String", "Value": "https://x", "Version": 1,
                 "ARN": "arn:aws:ssm:us-east-1:123456789012:parameter/app/url",
                 "DataType": "text"}
    assert isinstance(p["LastModifiedDate"], _dt.datetime)
    assert ssm.get_parameter(Name="/app/hosts")["Parameter"]["Value"] == "a,b,c"
    assert ssm.get_parameter(Name="plain")["Parameter"]["ARN"].endswith(":parameter/plain")
    enc = ssm.get_parameter(Name="/app/pw")["Parameter"]
    assert enc["Type"] == "SecureString" and enc["Value"] != "s3cret"
    assert base64.b64decode(enc["Value"])[:4] == b"\x01\x02\x02\x00"
    dec = ssm.get_parameter(Name="/app/pw", WithDecryption=True)["Parameter"]
    assert dec["Value"] == "s3cret"

    with pytest.raises(ClientError) as ei:
        ssm.put_parameter(Name="/app/url", Value="y", Type="String")
    assert code_of(ei) == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name="/app/url", Value="https://y", Overwrite=True)["Version"] == 2
    assert ssm.get_parameter(Name="/app/url")["Parameter"]["Value"] == "https://y"
    v1 = ssm.get_parameter(Name="/app/url:1")["Parameter"]
    assert v1["Value"] == "https://x" and v1["Selector"] == ":1" and v1["Name"] == "/app/url"
    arn = ssm.get_parameter(Name="arn:aws:ssm:us-east-1:123456789012:parameter/app/url")
    assert arn["Parameter"]["Version"] == 2

    with pytest.raises(ssm.exceptions.ParameterNotFound) as ei:
        ssm.get_parameter(Name="/app/missing")
    assert status_of(ei) == 400
    with pytest.raises(ClientError) as ei:
        ssm.get_parameter(Name="/app/url:9")
    assert code_of(ei) == "ParameterVersionNotFound"
    got = ssm.get_parameters(Names=["/app/url", "/nope"], WithDecryption=True)
    assert [x["Name"] for x in got["Parameters"]] == ["/app/url"]
    assert got["InvalidParameters"] == ["/nope"]
    ssm.delete_parameter(Name="plain")
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.delete_parameter(Name="plain")
    assert aws.parameter_count("/app/url", "GetParameter") == 5  # incl. :1, :9, ARN
    assert aws.op_count("AmazonSSM.GetParameter") == 10


def _tree(aws):
    names = [f"/svc/a/p{i}" for i in range(7)] + ["/svc/a/deep/x", "/svc/a/deep/y/z",
                                                  "/svc/b", "/svcx/no"]
    for n in names:
        aws.put_parameter(n, "v" + n, type="SecureString" if n.endswith("p3") else "String")
    return names


def test_ssm_get_parameters_by_path(aws, ssm):
    _tree(aws)
    flat = ssm.get_parameters_by_path(Path="/svc/a")
    assert [p["Name"] for p in flat["Parameters"]] == [f"/svc/a/p{i}" for i in range(7)]
    assert "NextToken" not in flat
    assert flat["Parameters"][3]["Value"] != "v/svc/a/p3"  # SecureString, not decrypted
    rec = ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/svc/", Recursive=True, WithDecryption=True, PaginationConfig={"PageSize": 3})
    pages = list(rec)
    names = [p["Name"] for page in pages for p in page["Parameters"]]
    assert names == sorted([f"/svc/a/p{i}" for i in range(7)] + ["/svc/a/deep/x",
                                                                "/svc/a/deep/y/z", "/svc/b"])
    assert len(pages) == 4
    assert {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}[
        "/svc/a/p3"] == "v/svc/a/p3"
    top = ssm.get_parameters_by_path(Path="/", Recursive=False)
    assert [p["Name"] for p in top["Parameters"]] == []  # only /x-level names
    aws.put_parameter("/rootlevel", "r")
    assert [p["Name"] for p in ssm.get_parameters_by_path(Path="/")["Parameters"]] == \
        ["/rootlevel"]
    with pytest.raises(ClientError) as ei:
        ssm.get_parameters_by_path(Path="/svc", NextToken="bogus")
    assert code_of(ei) == "InvalidNextToken"
    with pytest.raises(ClientError) as ei:
        ssm.get_parameters_by_path(Path="/svc", MaxResults=11)
    assert code_of(ei) == "ValidationException"
    assert aws.parameter_count("/svc/", "GetParametersByPath") == 6


def test_ssm_empty_pages_with_next_token(aws, ssm):
    _tree(aws)
    aws.configure(ssm_paging={"empty_leading": 1, "empty_between": 2, "empty_trailing": 1,
                              "page_size": 2})
    raw_pages, tok = [], None
    while True:
        kw = {"Path": "/svc/a", "MaxResults": 10}
        if tok:
            kw["NextToken"] = tok
        r = ssm.get_parameters_by_path(**kw)
        raw_pages.append(len(r["Parameters"]))
        tok = r.get("NextToken")
        if not tok:
            break
    # leading empty, then 2-item pages separated by two empty pages, one empty trailing page
    assert raw_pages == [0, 2, 0, 0, 2, 0, 0, 2, 0, 0, 1, 0]
    # botocore's paginator keeps going through empty pages and gets everything
    pag = ssm.get_paginator("get_parameters_by_path")
    got = [p["Name"] for page in pag.paginate(Path="/svc/a") for p in page["Parameters"]]
    assert got == [f"/svc/a/p{i}" for i in range(7)]
    # filters applied after the scan window (as SSM does) also make short/empty pages
    aws.configure(ssm_paging={"empty_leading": 0, "empty_between": 0, "empty_trailing": 0,
                              "page_size": None})
    pages = list(pag.paginate(Path="/svc/a", ParameterFilters=[
        {"Key": "Type", "Values": ["SecureString"]}], PaginationConfig={"PageSize": 2}))
    assert [len(p["Parameters"]) for p in pages] == [0, 1, 0, 0]
    assert pages[1]["Parameters"][0]["Name"] == "/svc/a/p3"
    with pytest.raises(ClientError) as ei:
        ssm.get_parameters_by_path(Path="/svc", ParameterFilters=[{"Key": "Name",
                                                                   "Values": ["x"]}])
    assert code_of(ei) == "InvalidFilterKey"


# ---------------------------------------------------------------- SigV4


def test_signature_verification(aws, mk, sm, certs):
    aws.put_secret("sig", secret_string="ok")
    bad = mk("secretsmanager", aws_access_key_id=DEFAULT_ACCESS_KEY,
             aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as ei:
        bad.get_secret_value(SecretId="sig")
    assert code_of(ei) == "InvalidSignatureException" and status_of(ei) == 400
    msg = ei.value.response["Error"]["Message"]
    assert msg.startswith("The request signature we calculated does not match")
    assert "x-amz-target:secretsmanager.GetSecretValue" in msg  # canonical request echoed
    aws.configure(auth_error_status=403)
    with pytest.raises(ClientError) as ei:
        bad.get_secret_value(SecretId="sig")
    assert code_of(ei) == "InvalidSignatureException" and status_of(ei) == 403
    aws.configure(auth_error_status=400)

    unknown = mk("secretsmanager", aws_access_key_id="AKIAUNKNOWNEXAMPLE01",
                 aws_secret_access_key="x")
    with pytest.raises(ClientError) as ei:
        unknown.get_secret_value(SecretId="sig")
    assert code_of(ei) == "UnrecognizedClientException"
    assert ei.value.response["Error"]["Message"] == \
        "The security token included in the request is invalid."

    west = mk("secretsmanager", region_name="us-west-2")
    with pytest.raises(ClientError) as ei:
        west.get_secret_value(SecretId="sig")
    assert code_of(ei) == "InvalidSignatureException"
    assert "scoped to a valid region, not 'us-west-2'" in str(ei.value)

    # a secretsmanager-scoped signature sent to SSM
    st, h, body = signed_raw(aws, certs, "AmazonSSM.GetParameter", {"Name": "/seeded/p"},
                             service="secretsmanager")
    assert st == 400 and "correct service: 'ssm'" in json.loads(body)["message"]
    # body changed after signing
    req = AWSRequest(method="POST", url=aws.url + "/", data=b'{"SecretId":"sig"}',
                     headers={"Content-Type": JSON_CT,
                              "X-Amz-Target": "secretsmanager.GetSecretValue"})
    SigV4Auth(Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), "secretsmanager",
              REGION).add_auth(req)
    p = req.prepare()
    conn = http.client.HTTPSConnection("127.0.0.1", aws.port,
                                       context=ssl.create_default_context(cafile=certs.ca))
    conn.request("POST", "/", body=b'{"SecretId":"SIG"}', headers=dict(p.headers))
    r = conn.getresponse()
    assert r.status == 400 and json.loads(r.read())["__type"] == "InvalidSignatureException"
    # unsigned request to SM
    conn.request("POST", "/", body=b"{}", headers={
        "Content-Type": JSON_CT, "X-Amz-Target": "secretsmanager.ListSecrets"})
    r = conn.getresponse()
    assert json.loads(r.read())["__type"] == "MissingAuthenticationTokenException"
    conn.close()
    c = aws.counts()
    assert c["auth_failures"]["InvalidSignatureException"] >= 4
    assert c["auth_failures"]["UnrecognizedClientException"] == 1
    # a good client after all that still works (keep-alive connection reused)
    assert sm.get_secret_value(SecretId="sig")["SecretString"] == "ok"


def test_signature_clock_skew(aws, sm, monkeypatch):
    aws.put_secret("skew", secret_string="ok")

    class Past(_dt.datetime):
        @classmethod
        def utcnow(cls):
            return _dt.datetime.utcnow() - _dt.timedelta(minutes=20)

    monkeypatch.setattr(botocore.auth, "datetime", types.SimpleNamespace(datetime=Past))
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="skew")
    assert code_of(ei) == "InvalidSignatureException"
    assert "Signature expired:" in str(ei.value) and "- 5 min.)" in str(ei.value)
    monkeypatch.undo()
    assert sm.get_secret_value(SecretId="skew")["SecretString"] == "ok"


def test_session_token_keys_and_expiry(aws, mk):
    aws.put_secret("tmp", secret_string="ok")
    k = aws.add_key(session_token="FQoGZXIvYXdzEXAMPLETOKEN", expires_in=600)
    good = mk("secretsmanager", aws_access_key_id=k["access_key_id"],
              aws_secret_access_key=k["secret_access_key"],
              aws_session_token="FQoGZXIvYXdzEXAMPLETOKEN")
    assert good.get_secret_value(SecretId="tmp")["SecretString"] == "ok"
    log = aws.requests_log()[-1]
    assert log["session_token_sent"] and log["auth"] == "ok"
    for token in (None, "wrong-token"):
        kw = {"aws_session_token": token} if token else {}
        c = mk("secretsmanager", aws_access_key_id=k["access_key_id"],
               aws_secret_access_key=k["secret_access_key"], **kw)
        with pytest.raises(ClientError) as ei:
            c.get_secret_value(SecretId="tmp")
        assert code_of(ei) == "UnrecognizedClientException"
    # the fake clock expires temporary credentials (the signing skew uses real time)
    aws.advance_clock(601)
    with pytest.raises(ClientError) as ei:
        good.get_secret_value(SecretId="tmp")
    assert code_of(ei) == "ExpiredTokenException" and status_of(ei) == 400
    assert ei.value.response["Error"]["Message"] == \
        "The security token included in the request is expired"
    k2 = aws.add_key(session_token="tok2", expires_in=3600)
    c2 = mk("ssm", aws_access_key_id=k2["access_key_id"],
            aws_secret_access_key=k2["secret_access_key"], aws_session_token="tok2")
    assert c2.get_parameter(Name="/seeded/p")["Parameter"]["Value"] == "v1"
    aws.expire_key(k2["access_key_id"])
    with pytest.raises(ClientError) as ei:
        c2.get_parameter(Name="/seeded/p")
    assert code_of(ei) == "ExpiredTokenException"


# ---------------------------------------------------------------- STS


def test_sts_web_identity_credentials_work(aws, sts, mk):
    r = sts.assume_role_with_web_identity(RoleArn=ROLE, RoleSessionName="secretfs-1",
                                          WebIdentityToken=WEB_TOKEN, DurationSeconds=900)
    cr = r["Credentials"]
    assert cr["AccessKeyId"].startswith("ASIA") and len(cr["SecretAccessKey"]) == 40
    assert len(cr["SessionToken"]) >= 300
    left = (cr["Expiration"] - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
    assert 880 < left <= 901
    assert r["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::123456789012:assumed-role/secretfs-app/secretfs-1"
    assert r["SubjectFromWebIdentityToken"] == "system:serviceaccount:apps:secretfs"
    assert r["Audience"] == "sts.amazonaws.com"
    log = aws.requests_log()[-1]
    assert log["op_key"] == "sts.AssumeRoleWithWebIdentity"
    assert not log["authorization_sent"]  # botocore sends it unsigned
    assert aws.role_count(ROLE) == 1

    c = mk("secretsmanager", aws_access_key_id=cr["AccessKeyId"],
           aws_secret_access_key=cr["SecretAccessKey"], aws_session_token=cr["SessionToken"])
    assert c.get_secret_value(SecretId="seeded/db")["SecretString"] == '{"user":"u","pw":"p"}'
    who = mk("sts", aws_access_key_id=cr["AccessKeyId"],
             aws_secret_access_key=cr["SecretAccessKey"],
             aws_session_token=cr["SessionToken"]).get_caller_identity()
    assert who["Arn"].endswith("assumed-role/secretfs-app/secretfs-1")
    assert who["Account"] == "123456789012"
    # the session lives DurationSeconds on the server's clock
    aws.advance_clock(901)
    with pytest.raises(ClientError) as ei:
        c.get_secret_value(SecretId="seeded/db")
    assert code_of(ei) == "ExpiredTokenException"

    for kw, code in (({"WebIdentityToken": "not-the-token"}, "InvalidIdentityToken"),
                     ({"WebIdentityToken": EXPIRED_WEB_TOKEN}, "ExpiredTokenException"),
                     ({"RoleArn": "arn:aws:iam::123456789012:role/other"}, "AccessDenied"),
                     ({"DurationSeconds": 7201}, "ValidationError")):
        args = {"RoleArn": ROLE, "RoleSessionName": "s2", "WebIdentityToken": WEB_TOKEN, **kw}
        with pytest.raises(ClientError) as ei:
            sts.assume_role_with_web_identity(**args)
        assert code_of(ei) == code
    assert status_of(ei) == 400
    assert aws.role_count(ROLE) == 4
    assert aws.counts()["roles"]["arn:aws:iam::123456789012:role/other"] == \
        {"AssumeRoleWithWebIdentity": 1}


def test_sts_raw_xml_and_errors(aws, certs):
    ctx = ssl.create_default_context(cafile=certs.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", aws.port, context=ctx)
    body = ("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" +
            urllib.request.quote(ROLE, safe="") + "&RoleSessionName=raw&WebIdentityToken=" +
            WEB_TOKEN)
    conn.request("POST", "/", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    r = conn.getresponse()
    xml = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type") == "text/xml"
    assert xml.startswith('<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/'
                          'doc/2011-06-15/">')
    for tag in ("AssumeRoleWithWebIdentityResult", "Credentials", "AccessKeyId",
                "SecretAccessKey", "SessionToken", "Expiration", "AssumedRoleUser",
                "ResponseMetadata", "RequestId"):
        assert f"<{tag}>" in xml
    # GET with a query string works too; a bad token gives an XML ErrorResponse
    conn.request("GET", "/?Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" +
                 urllib.request.quote(ROLE, safe="") + "&RoleSessionName=raw&"
                 "WebIdentityToken=wrong")
    r = conn.getresponse()
    xml = r.read().decode()
    assert r.status == 400 and "<ErrorResponse" in xml
    assert "<Code>InvalidIdentityToken</Code>" in xml and "<Type>Sender</Type>" in xml
    # a SigV4-signed GET with a query string (canonical query string check)
    for query, want in (("Action=GetCallerIdentity&Version=2011-06-15", 200),
                        ("Version=2011-06-15&Action=GetCallerIdentity", 200)):
        req = AWSRequest(method="GET", url=f"{aws.url}/?{query}")
        SigV4Auth(Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), "sts",
                  REGION).add_auth(req)
        p = req.prepare()
        conn.request("GET", "/?" + query, headers=dict(p.headers))
        r = conn.getresponse()
        xml = r.read().decode()
        assert r.status == want and "<GetCallerIdentityResult>" in xml
        assert "<Arn>arn:aws:iam::123456789012:user/secretfs-test</Arn>" in xml
        conn.request("GET", "/?" + query + "&Extra=1", headers=dict(p.headers))
        r = conn.getresponse()
        xml = r.read().decode()
        assert r.status == 403 and "<Code>SignatureDoesNotMatch</Code>" in xml
    conn.close()


# ---------------------------------------------------------------- IMDS / container


def test_imds_provider_via_botocore(aws, certs, monkeypatch):
    aws.put_secret("via/imds", secret_string="from-imds")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", aws.metadata_url + "/")
    bs = botocore.session.Session()
    creds = bs.get_credentials()
    assert creds is not None and creds.method == "iam-role"
    fz = creds.get_frozen_credentials()
    assert fz.access_key.startswith("ASIA") and fz.token
    st = aws.imds_state()
    assert st["credentials"]["access_key_id"] == fz.access_key
    c = boto3.session.Session(botocore_session=bs).client(
        "secretsmanager", endpoint_url=aws.url, verify=certs.ca, region_name=REGION,
        config=NO_RETRY)
    assert c.get_secret_value(SecretId="via/imds")["SecretString"] == "from-imds"
    ops = aws.counts()["operations"]
    assert ops["imds.token"] == 1 and ops["imds.role-list"] == 1 and ops["imds.credentials"] == 1
    log = [r for r in aws.requests_log() if r["service"] == "imds"]
    assert [r["method"] for r in log] == ["PUT", "GET", "GET"]
    assert all(r["imds_token_sent"] for r in log[1:])
    assert aws.requests_log()[-1]["access_key"] == fz.access_key

    # IMDSv2 rules, raw
    base = aws.metadata_url
    assert http_get(base + "/latest/meta-data/iam/security-credentials/")[0] == 401
    assert http_get(base + "/latest/api/token", method="PUT", data=b"")[0] == 400
    assert http_get(base + "/latest/api/token", method="PUT", data=b"", headers={
        "X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "1.2.3.4"})[0] == 403
    st, h, tok = http_get(base + "/latest/api/token", method="PUT", data=b"",
                          headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert st == 200 and h["X-aws-ec2-metadata-token-ttl-seconds"] == "60"
    hdr = {"X-aws-ec2-metadata-token": tok.decode()}
    st, _, role = http_get(base + "/latest/meta-data/iam/security-credentials/", hdr)
    assert (st, role) == (200, b"secretfs-test-role")
    st, _, doc = http_get(base + "/latest/meta-data/iam/security-credentials/secretfs-test-role",
                          hdr)
    doc = json.loads(doc)
    assert set(doc) == {"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey",
                        "Token", "Expiration"}
    assert doc["Code"] == "Success" and doc["Type"] == "AWS-HMAC"
    assert doc["AccessKeyId"] == fz.access_key  # same creds until close to expiry
    assert http_get(base + "/latest/meta-data/iam/security-credentials/other", hdr)[0] == 404
    assert http_get(base + "/latest/meta-data/placement/region", hdr)[2] == b"us-east-1"
    new = aws.rotate_imds()
    st, _, doc = http_get(base + "/latest/meta-data/iam/security-credentials/secretfs-test-role",
                          hdr)
    assert json.loads(doc)["AccessKeyId"] == new["access_key_id"] != fz.access_key
    aws.advance_clock(61)  # the session token has a TTL on the server clock
    assert http_get(base + "/latest/meta-data/iam/security-credentials/", hdr)[0] == 401


def test_container_provider_via_botocore(aws, certs, monkeypatch):
    aws.put_secret("via/ecs", secret_string="from-container")
    aws.configure_container(authorization="Bearer-ish pod token")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", aws.metadata_url + "/creds")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer-ish pod token")
    bs = botocore.session.Session()
    creds = bs.get_credentials()
    assert creds is not None and creds.method == "container-role"
    c = boto3.session.Session(botocore_session=bs).client(
        "secretsmanager", endpoint_url=aws.url, verify=certs.ca, region_name=REGION,
        config=NO_RETRY)
    assert c.get_secret_value(SecretId="via/ecs")["SecretString"] == "from-container"
    log = [r for r in aws.requests_log() if r["service"] == "container"]
    assert len(log) == 1 and log[0]["authorization_sent"] and log[0]["path"] == "/creds"

    base = aws.metadata_url
    assert http_get(base + "/creds")[0] == 401
    assert http_get(base + "/creds", {"Authorization": "wrong"})[0] == 401
    st, h, doc = http_get(base + "/v2/credentials/secretfs-test",
                          {"Authorization": "Bearer-ish pod token"})
    doc = json.loads(doc)
    assert st == 200 and h["Content-Type"] == "application/json"
    assert set(doc) == {"AccessKeyId", "Expiration", "RoleArn", "SecretAccessKey", "Token"}
    assert http_get(base + "/v2/credentials/unknown")[0] == 404
    aws.configure_container(authorization=None, account_id_field=True)
    st, h, doc = http_get(base + "/creds")
    assert st == 200 and json.loads(doc)["AccountId"] == "123456789012"


# ---------------------------------------------------------------- faults / retries


def test_retries_seen_in_server_counters(aws, mk, monkeypatch):
    monkeypatch.setattr(botocore.retryhandler, "random",
                        types.SimpleNamespace(random=lambda: 0.0))
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount",
                        lambda self, ctx: 0.0)
    aws.put_secret("r", secret_string="ok")
    legacy = mk("secretsmanager", config=Config(retries={"mode": "legacy"}))
    aws.add_fault(kind="status", status=500, operation="GetSecretValue", count=2)
    r = legacy.get_secret_value(SecretId="r")
    assert r["SecretString"] == "ok" and r["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws.secret_count("r", "GetSecretValue") == 3
    assert aws.counts()["statuses"]["500"] == 2
    attempts = [x["sdk_attempt"] for x in aws.requests_log() if x["names"] == ["r"]]
    assert attempts == [1, 2, 3]  # botocore's amz-sdk-request header

    aws.reset_counts()
    aws.clear_faults()
    aws.add_fault(kind="throttle", service="secretsmanager", count=100)
    with pytest.raises(ClientError) as ei:
        legacy.get_secret_value(SecretId="r")
    assert code_of(ei) == "ThrottlingException" and status_of(ei) == 400
    assert ei.value.response["ResponseMetadata"]["RetryAttempts"] == 4
    assert aws.secret_count("r", "GetSecretValue") == 5  # legacy: 5 attempts in all

    aws.reset_counts()
    std = mk("secretsmanager", config=Config(retries={"mode": "standard",
                                                      "total_max_attempts": 3}))
    with pytest.raises(ClientError) as ei:
        std.get_secret_value(SecretId="r")
    assert aws.secret_count("r", "GetSecretValue") == 3
    aws.clear_faults()

    # dropped connection and truncated body are retried as connection errors
    aws.reset_counts()
    aws.add_fault(kind="drop", operation="GetSecretValue", count=1)
    assert std.get_secret_value(SecretId="r")["SecretString"] == "ok"
    assert aws.counts()["statuses"] == {"dropped": 1, "200": 1}
    # a body cut short (full Content-Length, then close): urllib3 1.26 does not enforce
    # Content-Length, so botocore silently parses nothing - the C client must not
    aws.add_fault(kind="truncate", operation="GetSecretValue", count=1)
    assert "SecretString" not in std.get_secret_value(SecretId="r")
    assert aws.requests_log()[-1]["fault"] == "truncate"
    assert aws.secret_count("r", "GetSecretValue") == 3  # drop + retry, truncate
    # SSM throttling too (message member is lower-case 'message' there)
    ssm = mk("ssm", config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    aws.add_fault(kind="throttle", service="ssm", count=1)
    assert ssm.get_parameter(Name="/seeded/p")["Parameter"]["Value"] == "v1"
    assert aws.parameter_count("/seeded/p", "GetParameter") == 2


def test_fault_latency_malformed_oversize(aws, sm, mk):
    aws.put_secret("f", secret_string="ok")
    aws.add_fault(kind="latency", latency_ms=300, name="^f$", count=1)
    t0 = time.monotonic()
    sm.get_secret_value(SecretId="f")
    assert time.monotonic() - t0 >= 0.3
    aws.add_fault(kind="malformed", operation="GetSecretValue", count=1)
    # botocore is lenient: an unparsable 200 body becomes an empty result
    bad = sm.get_secret_value(SecretId="f")
    assert "SecretString" not in bad and bad["ResponseMetadata"]["HTTPStatusCode"] == 200
    aws.add_fault(kind="oversize", operation="GetSecretValue", size_mib=2, count=1)
    big = sm.get_secret_value(SecretId="f")
    assert len(big["SecretString"]) > 2 * 1024 * 1024 - 400
    aws.add_fault(kind="oversize", operation="GetParameter", size_mib=1, chunked=True, count=1)
    p = mk("ssm").get_parameter(Name="/seeded/p")["Parameter"]
    assert len(p["Value"]) > 1024 * 1024 - 400
    # a fault can replace the reply with any raw body (e.g. a proxy's HTML page)
    aws.add_fault(kind="status", status=502, body="<html>Bad Gateway</html>",
                  content_type="text/html", count=1, operation="GetSecretValue")
    with pytest.raises(ClientError) as ei:
        sm.get_secret_value(SecretId="f")
    assert status_of(ei) == 502
    faults = aws.list_faults()
    assert all(f["fired"] == 1 for f in faults)
    assert aws.counts()["faults_fired"] == 5


# ---------------------------------------------------------------- fixtures


def _load(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def _jtype(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def _same_types(fix, ours, allowed=(), path=""):
    problems = []
    for k, fv in fix.items():
        if k not in ours:
            continue
        p = f"{path}.{k}"
        if p in allowed:
            continue
        if _jtype(fv) != _jtype(ours[k]):
            problems.append(f"{p}: fixture {_jtype(fv)}, ours {_jtype(ours[k])}")
        elif isinstance(fv, dict) and fv and not any(len(x) >= 32 for x in fv):
            problems += _same_types(fv, ours[k], allowed, p)
        elif isinstance(fv, list) and fv and isinstance(fv[0], dict) and ours[k]:
            problems += _same_types(fv[0], ours[k][0], allowed, p + "[]")
    return problems


def test_fixture_shapes(aws, certs):
    assert len(glob.glob(os.path.join(FIXTURES, "*", "*.json"))) >= 8, "fixtures missing"
    shapes = _load("shapes.json")
    smsh, ssmsh = shapes["secretsmanager"]["shapes"], shapes["ssm"]["shapes"]

    def call(target, body, **kw):
        st, h, raw = signed_raw(aws, certs, target, body, **kw)
        return st, h, json.loads(raw) if raw else None

    # GetSecretValue: exactly the documented keys and JSON types
    fx = _load("secretsmanager/GetSecretValue.json")
    aws.put_secret("MyTestDatabaseSecret", secret_string=fx["response_body"]["SecretString"])
    aws.put_secret("MyTestDatabaseSecret", secret_string="new")  # first one -> AWSPREVIOUS
    st, h, ours = call("secretsmanager.GetSecretValue",
                       {"SecretId": "MyTestDatabaseSecret", "VersionStage": "AWSPREVIOUS"})
    assert st == fx["response_status"] and h["content-type"] == JSON_CT
    assert set(ours) == set(fx["response_body"])
    assert ours["SecretString"] == fx["response_body"]["SecretString"]
    assert ours["VersionStages"] == fx["response_body"]["VersionStages"]
    assert not _same_types(fx["response_body"], ours)
    assert set(ours) <= set(smsh["GetSecretValueResponse"]["members"])

    # DescribeSecret: the documented keys we model, same types (LastAccessedDate is a
    # string in the upstream example - a known quirk; the model says timestamp)
    fx = _load("secretsmanager/DescribeSecret.json")
    call("secretsmanager.GetSecretValue", {"SecretId": "seeded/db"})  # sets LastAccessedDate
    st, h, ours = call("secretsmanager.DescribeSecret", {"SecretId": "seeded/db"})
    assert set(ours) - set(fx["response_body"]) == {"CreatedDate"}  # newer model member
    assert {"ARN", "Name", "Description", "KmsKeyId", "RotationEnabled", "LastChangedDate",
            "LastAccessedDate", "Tags", "VersionIdsToStages", "CreatedDate"} <= set(ours)
    assert not _same_types(fx["response_body"], ours, allowed={".LastAccessedDate"})
    assert set(ours) <= set(smsh["DescribeSecretResponse"]["members"])

    fx = _load("secretsmanager/ListSecrets.json")
    aws.put_secret("seeded/db", description="x")
    st, h, ours = call("secretsmanager.ListSecrets", {})
    assert set(ours) == set(fx["response_body"])
    item = next(s for s in ours["SecretList"] if s["Name"] == "seeded/db")
    assert set(fx["response_body"]["SecretList"][0]) <= set(item)
    assert not _same_types(fx["response_body"]["SecretList"][0], item)
    assert set(item) <= set(smsh["SecretListEntry"]["members"])

    fx = _load("secretsmanager/BatchGetSecretValue.json")
    st, h, ours = call("secretsmanager.BatchGetSecretValue", {"SecretIdList": ["seeded/db"]})
    assert set(ours) == set(fx["response_body"])
    assert set(ours["SecretValues"][0]) == set(fx["response_body"]["SecretValues"][0])
    assert not _same_types(fx["response_body"]["SecretValues"][0], ours["SecretValues"][0])

    fx = _load("ssm/GetParameter.json")
    aws.put_parameter("MyGitHubPassword", "pw", type="SecureString")
    st, h, ours = call("AmazonSSM.GetParameter", fx["request_body"])
    assert set(ours["Parameter"]) == set(fx["response_body"]["Parameter"])
    assert not _same_types(fx["response_body"], ours)
    assert ours["Parameter"]["Value"] != "pw"  # no WithDecryption: ciphertext
    assert set(ours["Parameter"]) <= set(ssmsh["Parameter"]["members"])

    fx = _load("ssm/GetParametersByPath.json")
    for p in fx["response_body"]["Parameters"]:
        aws.put_parameter(p["Name"], p["Value"], type=p["Type"])
    st, h, ours = call("AmazonSSM.GetParametersByPath", fx["request_body"])
    assert [(p["Name"], p["Value"], p["Type"], p["Version"]) for p in ours["Parameters"]] == \
        [(p["Name"], p["Value"], p["Type"], p["Version"]) for p in fx["response_body"][
            "Parameters"]]
    assert set(fx["response_body"]["Parameters"][0]) <= set(ours["Parameters"][0])
    assert not _same_types(fx["response_body"], ours)

    # error bodies: the documented / observed bodies, statuses and member casing
    errs = _load("secretsmanager/errors.json")
    status = {e["code"]: e["http_status"] for e in errs["common_errors"]}
    constructed = {e["body"]["__type"]: e for e in errs["examples_constructed"]}
    st, h, ours = call("secretsmanager.GetSecretValue", {"SecretId": "nope"})
    assert (st, ours) == (constructed["ResourceNotFoundException"]["http_status"],
                          constructed["ResourceNotFoundException"]["body"])
    aws.put_secret("kms", secret_string="x", decryption_failure=True)
    st, h, ours = call("secretsmanager.GetSecretValue", {"SecretId": "kms"})
    assert (st, ours) == (constructed["DecryptionFailure"]["http_status"],
                          constructed["DecryptionFailure"]["body"])
    aws.add_fault(kind="throttle", service="secretsmanager", count=1)
    st, h, ours = call("secretsmanager.GetSecretValue", {"SecretId": "kms"})
    assert (st, ours) == (status["ThrottlingException"], constructed["ThrottlingException"][
        "body"])
    aws.add_fault(kind="error", code="InternalServiceError", count=1)
    st, h, ours = call("secretsmanager.GetSecretValue", {"SecretId": "kms"})
    assert st == status["InternalServiceError"] and set(ours) == {"__type", "Message"}
    aws.add_fault(kind="error", code="AccessDeniedException", count=1)
    st, h, ours = call("secretsmanager.GetSecretValue", {"SecretId": "kms"})
    assert st == status["AccessDeniedException"]
    assert set(ours) == set(constructed["AccessDeniedException"]["body"])
    for code, shape in errs["modeled_exceptions"].items():
        assert list(shape["members"]) == ["Message"]  # SM: capital M, as we send

    serr = _load("ssm/errors.json")
    sconstructed = {e["body"]["__type"]: e for e in serr["examples_constructed"]}
    st, h, ours = call("AmazonSSM.GetParameter", {"Name": "/nope"})
    assert (st, ours) == (sconstructed["ParameterNotFound"]["http_status"],
                          sconstructed["ParameterNotFound"]["body"])
    aws.add_fault(kind="throttle", service="ssm", count=1)
    st, h, ours = call("AmazonSSM.GetParameter", {"Name": "/nope"})
    assert (st, ours) == (sconstructed["ThrottlingException"]["http_status"],
                          sconstructed["ThrottlingException"]["body"])
    casing = {"ParameterVersionNotFound": ({"Name": "MyGitHubPassword:7"}, "GetParameter"),
              "InvalidNextToken": ({"Path": "/x", "NextToken": "zz"}, "GetParametersByPath"),
              "InvalidFilterOption": ({"Path": "/x", "ParameterFilters": [
                  {"Key": "Type", "Option": "BeginsWith", "Values": ["S"]}]},
                  "GetParametersByPath"),
              "InvalidFilterKey": ({"Path": "/x", "ParameterFilters": [
                  {"Key": "Tier", "Values": ["S"]}]}, "GetParametersByPath")}
    for code, (body, op) in casing.items():
        st, h, ours = call(f"AmazonSSM.{op}", body)
        assert ours["__type"] == code and st == 400
        members = set(serr["modeled_exceptions"][code]["members"])
        assert set(ours) - {"__type"} == members, code


# ---------------------------------------------------------------- protocol details


def test_protocol_details(aws, certs):
    ctx = ssl.create_default_context(cafile=certs.ca)
    conn = http.client.HTTPSConnection("127.0.0.1", aws.port, context=ctx)
    req = AWSRequest(method="POST", url=aws.url + "/", data=b"{not json",
                     headers={"Content-Type": JSON_CT,
                              "X-Amz-Target": "secretsmanager.GetSecretValue"})
    SigV4Auth(Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), "secretsmanager",
              REGION).add_auth(req)
    p = req.prepare()
    conn.request("POST", "/", body=p.body, headers=dict(p.headers))
    r = conn.getresponse()
    assert r.status == 400 and json.loads(r.read())["__type"] == "SerializationException"
    sock_before = conn.sock
    req = AWSRequest(method="POST", url=aws.url + "/", data=b"{}",
                     headers={"Content-Type": JSON_CT, "X-Amz-Target": "secretsmanager.Nope"})
    SigV4Auth(Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), "secretsmanager",
              REGION).add_auth(req)
    p = req.prepare()
    conn.request("POST", "/", body=p.body, headers=dict(p.headers))
    r = conn.getresponse()
    assert json.loads(r.read())["__type"] == "UnknownOperationException"
    assert conn.sock is sock_before  # HTTP/1.1 keep-alive across requests
    conn.close()
    # the Host header value does not matter for routing (only for the signature)
    st, h, body = signed_raw(aws, certs, "secretsmanager.ListSecrets", {})
    assert st == 200 and "x-amzn-requestid" in h
    assert aws.counts()["connections"] >= 2


def test_cli_subprocess_and_admin_api(certs, tmp_path):
    cfg = {"secrets": [{"name": "cli/s", "secret_string": "v"}], "error_style": "header_uri",
           "imds": {"role": "cli-role"}, "container": {"authorization": "t0k"}}
    proc, info = spawn_cli(certs.server, certs.server_key, str(tmp_path), config=cfg,
                           extra_args=["--admin-token", "adm1n"])
    try:
        assert (tmp_path / "aws.port").read_text() == f"{info['port']}\n"
        assert (tmp_path / "aws.metadata.port").read_text() == f"{info['metadata_port']}\n"
        assert info["admin_token"] == "adm1n" and info["access_key_id"] == DEFAULT_ACCESS_KEY
        assert info["url"] == f"https://127.0.0.1:{info['port']}"
        assert info["imds_endpoint"] == f"http://127.0.0.1:{info['metadata_port']}/"
        adm = AdminClient(info["url"], "adm1n", cafile=certs.ca)
        plain = AdminClient(info["metadata_url"], "adm1n")
        assert adm.get("/_test/health")["ok"] and plain.get("/_test/info")["settings"][
            "error_style"] == "header_uri"
        adm.post("/_test/secret", {"name": "cli/b", "secret_binary_b64": "AAEC"})
        adm.post("/_test/parameter", {"name": "/cli/p", "value": "pv", "type": "String"})
        k = adm.post("/_test/key", {"session_token": "T", "expires_in": 100})
        adm.post("/_test/fault", {"kind": "throttle", "operation": "GetParameter", "count": 1})
        s = boto3.session.Session(aws_access_key_id=k["access_key_id"],
                                  aws_secret_access_key=k["secret_access_key"],
                                  aws_session_token="T", region_name=REGION)
        smc = s.client("secretsmanager", endpoint_url=info["url"], verify=certs.ca,
                       config=NO_RETRY)
        assert smc.get_secret_value(SecretId="cli/s")["SecretString"] == "v"
        assert smc.get_secret_value(SecretId="cli/b")["SecretBinary"] == b"\x00\x01\x02"
        ssmc = s.client("ssm", endpoint_url=info["url"], verify=certs.ca, config=NO_RETRY)
        with pytest.raises(ClientError) as ei:
            ssmc.get_parameter(Name="/cli/p")
        assert code_of(ei) == "ThrottlingException"
        assert ei.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == \
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.validate/"
        assert ssmc.get_parameter(Name="/cli/p")["Parameter"]["Value"] == "pv"
        adm.post("/_test/clock", {"advance": 101})
        with pytest.raises(ClientError) as ei:
            smc.get_secret_value(SecretId="cli/s")
        assert code_of(ei) == "ExpiredTokenException"
        counts = adm.get("/_test/counts")
        assert counts["secrets"]["cli/s"]["GetSecretValue"] == 2
        assert counts["operations"]["AmazonSSM.GetParameter"] == 2
        assert counts["errors"] == {"ThrottlingException": 1, "ExpiredTokenException": 1}
        reqs = adm.get("/_test/requests")["requests"]
        assert reqs[-1]["auth"] == "ExpiredTokenException"
        assert adm.get("/_test/imds")["role"] == "cli-role"
        st, _, _ = http_get(info["metadata_url"] + "/creds", {"Authorization": "t0k"})
        assert st == 200
        with pytest.raises(RuntimeError, match="401"):
            AdminClient(info["url"], "wrong", cafile=certs.ca).get("/_test/counts")
        assert adm.post("/_test/reset")["ok"]
        assert adm.get("/_test/secrets")["secrets"] == ["cli/s"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", info["port"]), timeout=1).close()


def test_curl_sigv4_is_accepted(aws, certs):
    """A second, independent SigV4 implementation (curl --aws-sigv4, libcurl's
    signer) is accepted too, also with a chunked body and Expect: 100-continue."""
    import shutil
    import subprocess
    curl = shutil.which("curl")
    if not curl or "--aws-sigv4" not in subprocess.run(
            [curl, "--help", "all"], capture_output=True, text=True).stdout:
        pytest.skip("curl with --aws-sigv4 not available")
    aws.put_secret("curl/s", secret_string="via-curl")
    base = [curl, "-s", "--cacert", certs.ca, "--aws-sigv4", "aws:amz:us-east-1:secretsmanager",
            "--user", f"{DEFAULT_ACCESS_KEY}:{DEFAULT_SECRET_KEY}",
            "-H", f"Content-Type: {JSON_CT}", "-H", "X-Amz-Target: secretsmanager.GetSecretValue"]
    for extra in ([], ["-H", "Transfer-Encoding: chunked"], ["-H", "Expect: 100-continue"]):
        out = subprocess.run(base + extra + ["-d", '{"SecretId":"curl/s"}', aws.url + "/"],
                             capture_output=True, text=True, timeout=20).stdout
        assert json.loads(out)["SecretString"] == "via-curl", extra
    out = subprocess.run(base[:6] + ["--user", f"{DEFAULT_ACCESS_KEY}:wrong"] + base[8:] +
                         ["-d", '{"SecretId":"curl/s"}', aws.url + "/"],
                         capture_output=True, text=True, timeout=20).stdout
    assert json.loads(out)["__type"] == "InvalidSignatureException"
    assert aws.secret_count("curl/s", "GetSecretValue") == 4
