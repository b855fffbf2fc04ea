"""
Issue 12, versions you can name: .secretfs/at/SELECTOR/PATH and
.secretfs/versions/PATH through a real mount, against the Vault and AWS test
servers (tests/servers), with the store changed as its own clients change
it (the server's admin API, boto3):

- every row of the selector table for Vault KV v2 and v1 and Secrets
  Manager, including the selectors a store cannot serve (ENOENT);
- Vault: a new version moves at/previous, a deleted version is skipped by
  previous and ENOENT by number, a destroyed one too;
- AWS: the four-step rotation (createSecret puts AWSPENDING: at/pending is
  new and at/current old; finishSecret moves AWSCURRENT: current new,
  at/previous old), at/id:VERSIONID and at/label:STAGE;
- the versions/ lists: ids, labels, dates and states, never a value;
- policy: a rule without `versions` gives current only; `versions=previous`
  gives previous and not pending; the denial's audit record names the
  selector in its path; a granted one names the version it resolved to;
- odd selectors and paths an attacker would try: at/../, at/Current,
  at/01, at/id:.., a view or the meta directory under at/.
No value appears in the daemon's stderr or the audit log (the fixture's leak
check, plus explicit searches).
"""

import errno
import json
import os
import sys
import uuid

import pytest

from helpers import REPO, read_file, run_secretfs, wait_until
from policy_env import write_policy

sys.path.insert(0, str(REPO / "tests" / "servers"))
# The servers and their certificates are the backend tests' own fixtures, one of each.
from test_aws import STATIC, aws, aws_env, aws_server, boto3_client  # noqa: E402,F401
from test_azure import azure_server  # noqa: E402,F401
from test_gcp import gcp_server  # noqa: E402,F401
from test_vault import ROOT, vault_env, vault_server, vs  # noqa: E402,F401

AT = ".secretfs/at"
VERSIONS = ".secretfs/versions"
TTL = ["-o", "ttl=1s", "-o", "negative_ttl=1s"]

VAULT_VALUES = ["vault-rot-value-v1", "vault-rot-value-v2", "vault-rot-value-v3",
                "vault-rot-value-v4"]
AWS_OLD, AWS_NEW = "aws-rotation-old-11", "aws-rotation-new-22"


def err(path):
    """The errno name reading @path fails with, or its bytes."""
    try:
        return read_file(path)
    except OSError as e:
        return errno.errorcode[e.errno]


def audit_records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- servers


@pytest.fixture
def vmount(secretfs, workdir, certs):
    def start(vs, path="secret", *, options=()):
        e = vault_env(workdir, VAULT_TOKEN=ROOT)
        opts = ["-o", f"ca_file={certs.ca}", *TTL, *options]
        leak = [v.encode() for v in VAULT_VALUES] + [ROOT.encode()]
        return secretfs(None, argv=lambda store, mnt: [*opts, f"vault:{vs.url}/{path}",
                                                       str(mnt)], env=e, secrets=leak)
    return start


@pytest.fixture
def amount(secretfs, workdir, aws, certs):
    def start(*, options=()):
        e = aws_env(workdir, aws, certs, **STATIC)
        leak = [AWS_OLD.encode(), AWS_NEW.encode()]
        return secretfs(None, argv=lambda store, mnt: [*TTL, *options, "aws-sm:us-east-1",
                                                       str(mnt)], env=e, secrets=leak)
    return start


def vault_versions(vs, n=3):
    for v in VAULT_VALUES[:n]:
        vs.put_secret("secret", "rot/db", {"pw": v})


# ---------------------------------------------------------------- Vault KV v2


def test_vault_kv2_selector_table(vs, vmount, workdir):
    vault_versions(vs)
    d = vmount(vs)
    at = lambda sel: d.path(AT, sel, "rot/db/pw")  # noqa: E731
    assert read_file(d.path("rot/db/pw")) == b"vault-rot-value-v3"
    assert read_file(at("current")) == b"vault-rot-value-v3"
    assert read_file(at("previous")) == b"vault-rot-value-v2"
    assert read_file(at("1")) == b"vault-rot-value-v1"
    assert read_file(at("2")) == b"vault-rot-value-v2"
    assert read_file(at("3")) == b"vault-rot-value-v3"
    # what KV v2 cannot serve, and versions it does not have
    for sel in ("pending", "id:3", "label:AWSCURRENT", "4", "99"):
        assert err(at(sel)) == "ENOENT", sel
    # the shape is the store's: directories, and keys of the object
    assert sorted(os.listdir(d.path(AT, "previous", "rot", "db"))) == ["pw"]
    assert sorted(os.listdir(d.path(AT))) == ["current", "pending", "previous"]
    # the list of versions: ids, labels, dates and states, never a value
    text = read_file(d.path(VERSIONS, "rot/db"))
    listed = json.loads(text)
    assert [v["id"] for v in listed] == ["3", "2", "1"]
    assert [v["labels"] for v in listed] == [["current"], ["previous"], []]
    assert all(v["state"] == "enabled" and v["created"].endswith("Z") for v in listed)
    assert not [v for v in VAULT_VALUES if v.encode() in text]
    assert err(d.path(VERSIONS, "rot/db/pw")) == "ENOTDIR"  # the secret's list is a file
    assert err(d.path(VERSIONS, "nope")) == "ENOENT"
    # a reason for the ENOENT is said at debug level only: nothing above it
    assert "pending" not in d.stderr()


def test_file_store_has_current_only(secretfs):
    d = secretfs({"app/db": {"pw": "file-store-value-1"}, "app/plain": "file-plain-value-2"})
    assert read_file(d.path(AT, "current", "app/db/pw")) == b"file-store-value-1"
    assert read_file(d.path(AT, "current", "app/plain")) == b"file-plain-value-2"
    for sel in ("previous", "pending", "1", "id:x", "label:x"):
        assert err(d.path(AT, sel, "app/plain")) == "ENOENT", sel
        assert err(d.path(AT, sel, "app/db/pw")) == "ENOENT", sel
    assert err(d.path(VERSIONS, "app/plain")) == "ENOENT"
    # the store's shape under every selector, the meta directory hidden in it
    assert sorted(os.listdir(d.path(AT, "previous", "app"))) == ["db", "plain"]
    assert ".secretfs" not in os.listdir(d.path(AT, "current"))


def test_no_template_under_a_selector(secretfs, workdir):
    """A template renders current values at its own mount path; under at/ it is not there."""
    from test_templates import write_template  # noqa: PLC0415
    t = write_template(workdir, "v", "PW={{ app/db/pw }}\n")

    def argv(store, mnt):
        cfg = workdir / "versions-tmpl.conf"
        cfg.write_text(f"[secretfs]\nsource = file:{store}\n[template v]\nfile = {t}\n"
                       "path = app/v.env\nformat = env\n")
        os.chmod(cfg, 0o600)
        return ["--config", str(cfg), str(mnt)]

    d = secretfs({"app/db": {"pw": "tmpl-version-value-1"}}, argv=argv)
    assert read_file(d.path("app/v.env")) == b'PW="tmpl-version-value-1"\n'
    for sel in ("current", "previous"):
        assert err(d.path(AT, sel, "app/v.env")) == "ENOENT", sel
    assert read_file(d.path(AT, "current", "app/db/pw")) == b"tmpl-version-value-1"


def test_no_value_in_metrics_or_status(vs, vmount, workdir):
    vault_versions(vs)
    sock = workdir / "versions-metrics.sock"
    d = vmount(vs, options=["-o", f"control={sock}"])
    for sel in ("current", "previous", "1", "2"):
        assert read_file(d.path(AT, sel, "rot/db/pw")).startswith(b"vault-rot-value-v")
    read_file(d.path(VERSIONS, "rot/db"))
    for cmd in ("metrics", "status"):
        r = run_secretfs(["ctl", "--socket", str(sock), cmd])
        assert r.returncode == 0, r.stderr
        assert r.stdout, cmd
        assert not [v for v in VAULT_VALUES if v in r.stdout], cmd
    assert not [v for v in VAULT_VALUES if v in d.stderr()]


def test_vault_new_version_delete_and_destroy(vs, vmount):
    vault_versions(vs)
    d = vmount(vs)
    prev = d.path(AT, "previous", "rot/db/pw")
    assert read_file(prev) == b"vault-rot-value-v2"

    # a new version: previous follows it once the TTL has passed
    vs.put_secret("secret", "rot/db", {"pw": "vault-rot-value-v4"})
    wait_until(lambda: read_file(prev) == b"vault-rot-value-v3", what="previous is v3")
    assert read_file(d.path("rot/db/pw")) == b"vault-rot-value-v4"

    # deleting version 3: previous skips it, and the number is not found
    vs.delete_secret("secret", "rot/db", mode="soft", versions=[3])
    wait_until(lambda: read_file(prev) == b"vault-rot-value-v2", what="previous skips v3")
    assert err(d.path(AT, "3", "rot/db/pw")) == "ENOENT"
    # destroying version 2: previous goes to 1, and 2 is not found either
    vs.delete_secret("secret", "rot/db", mode="destroy", versions=[2])
    wait_until(lambda: read_file(prev) == b"vault-rot-value-v1", what="previous skips v2")
    assert err(d.path(AT, "2", "rot/db/pw")) == "ENOENT"
    states = {v["id"]: v["state"] for v in json.loads(read_file(d.path(VERSIONS, "rot/db")))}
    assert states == {"4": "enabled", "3": "deleted", "2": "destroyed", "1": "enabled"}


def test_vault_pinned_versions_stay_until_flushed(vs, vmount, workdir):
    """A number names the same bytes forever: read once, it is kept past the TTL, so a
    version destroyed afterwards is still served until `secretfs ctl flush [PATH]`
    (documented)."""
    vault_versions(vs, 2)
    sock = workdir / "versions-ctl.sock"
    d = vmount(vs, options=["-o", f"control={sock}"])
    one = d.path(AT, "1", "rot/db/pw")
    assert read_file(one) == b"vault-rot-value-v1"
    reads = vs.secret_count("secret/rot/db", "read")
    vs.delete_secret("secret", "rot/db", mode="destroy", versions=[1])
    assert read_file(one) == b"vault-rot-value-v1"
    assert vs.secret_count("secret/rot/db", "read") == reads  # from memory
    # flushing another path keeps it; flushing the key's path (or everything) drops it
    r = run_secretfs(["ctl", "--socket", str(sock), "flush", "app"])
    assert r.returncode == 0, r.stderr
    assert read_file(one) == b"vault-rot-value-v1"
    r = run_secretfs(["ctl", "--socket", str(sock), "flush", "rot/db/pw"])
    assert r.returncode == 0 and "1 versions" in r.stdout, r.stdout + r.stderr
    assert err(one) == "ENOENT"


def test_vault_kv1_keeps_one_version(vs, vmount):
    d = vmount(vs, "kv")
    assert read_file(d.path(AT, "current", "long/k")) == b"kv1-default-lease"
    for sel in ("previous", "1", "pending"):
        assert err(d.path(AT, sel, "long/k")) == "ENOENT", sel
    assert err(d.path(VERSIONS, "long")) == "ENOENT"


# ---------------------------------------------------------------- AWS Secrets Manager


def test_aws_four_step_rotation(aws, amount, certs):
    sm = boto3_client(aws, certs, "secretsmanager")
    old_id = sm.create_secret(Name="rot/db", SecretString=AWS_OLD)["VersionId"]
    d = amount()
    at = lambda sel: d.path(AT, sel, "rot/db")  # noqa: E731
    assert read_file(d.path("rot/db")) == AWS_OLD.encode()
    assert read_file(at("current")) == AWS_OLD.encode()
    assert err(at("pending")) == "ENOENT"
    assert err(at("previous")) == "ENOENT"

    # createSecret: the new value as AWSPENDING
    token = str(uuid.uuid4())
    sm.put_secret_value(SecretId="rot/db", ClientRequestToken=token, SecretString=AWS_NEW,
                        VersionStages=["AWSPENDING"])
    wait_until(lambda: err(at("pending")) == AWS_NEW.encode(), what="at/pending is new")
    assert read_file(at("current")) == AWS_OLD.encode()
    assert read_file(d.path("rot/db")) == AWS_OLD.encode()
    # setSecret and testSecret would read the pending value, as above, by id too
    assert read_file(at(f"id:{token}")) == AWS_NEW.encode()

    # finishSecret: AWSCURRENT moves to the new version, AWSPREVIOUS to the old
    sm.update_secret_version_stage(SecretId="rot/db", VersionStage="AWSCURRENT",
                                   MoveToVersionId=token, RemoveFromVersionId=old_id)
    wait_until(lambda: read_file(d.path("rot/db")) == AWS_NEW.encode(), what="current is new")
    wait_until(lambda: err(at("previous")) == AWS_OLD.encode(), what="at/previous is old")
    assert read_file(at("current")) == AWS_NEW.encode()
    assert read_file(at("label:AWSPREVIOUS")) == AWS_OLD.encode()
    assert read_file(at(f"id:{old_id}")) == AWS_OLD.encode()
    # what Secrets Manager cannot serve, and names it does not know
    for sel in ("1", "label:nope", f"id:{uuid.uuid4()}"):
        assert err(at(sel)) == "ENOENT", sel

    listed = json.loads(read_file(d.path(VERSIONS, "rot/db")))
    by_id = {v["id"]: v for v in listed}
    assert "AWSPREVIOUS" in by_id[old_id]["labels"]
    assert "AWSCURRENT" in by_id[token]["labels"]
    assert all(v["created"].endswith("Z") for v in listed)
    text = json.dumps(listed)
    assert AWS_OLD not in text and AWS_NEW not in text


def test_ssm_numbers_and_labels(aws, secretfs, workdir, certs):
    ssm = boto3_client(aws, certs, "ssm")
    ssm.put_parameter(Name="/rot/pw", Value="ssm-version-one-1", Type="SecureString")
    ssm.put_parameter(Name="/rot/pw", Value="ssm-version-two-2", Type="SecureString",
                      Overwrite=True)
    aws.post("/_test/parameter", {"name": "/rot/pw", "value": "ssm-version-three-3",
                                  "type": "SecureString", "labels": ["blue"]})
    e = aws_env(workdir, aws, certs, **STATIC)
    d = secretfs(None, argv=lambda store, mnt: [*TTL, "aws-ssm:us-east-1", str(mnt)], env=e,
                 secrets=[b"ssm-version-one-1", b"ssm-version-two-2", b"ssm-version-three-3"])
    at = lambda sel: d.path(AT, sel, "rot/pw")  # noqa: E731
    assert read_file(at("current")) == b"ssm-version-three-3"
    assert read_file(at("1")) == b"ssm-version-one-1"
    assert read_file(at("2")) == b"ssm-version-two-2"
    assert read_file(at("label:blue")) == b"ssm-version-three-3"
    for sel in ("previous", "pending", "id:1", "9", "label:green"):
        assert err(at(sel)) == "ENOENT", sel
    assert err(d.path(VERSIONS, "rot/pw")) == "ENOENT"


# ---------------------------------------------------------------- policy and attackers


POLICY = """\
# versions test policy
permit user:sfst-alice  rot/**     versions
permit user:sfst-bob    rot/**
permit user:sfst-carol  rot/**     versions=previous
"""


def test_policy_versions_option_and_audit(vs, vmount, workdir, agents, sfs_users):
    vault_versions(vs)
    policy = workdir / "versions-policy.conf"
    write_policy(policy, POLICY)
    audit = workdir / "audit-versions.log"
    d = vmount(vs, options=["-o", f"policy={policy}", "-o", f"audit={audit}"])
    cur, prev = d.path(AT, "current", "rot/db/pw"), d.path(AT, "previous", "rot/db/pw")
    pend, num = d.path(AT, "pending", "rot/db/pw"), d.path(AT, "1", "rot/db/pw")
    listing = d.path(VERSIONS, "rot/db")

    got = {w: (agents[w].read(cur), agents[w].read(prev), agents[w].read(num))
           for w in ("alice", "bob", "carol")}
    assert got == {
        "alice": (b"vault-rot-value-v3", b"vault-rot-value-v2", b"vault-rot-value-v1"),
        "bob": (b"vault-rot-value-v3", "EACCES", "EACCES"),
        "carol": (b"vault-rot-value-v3", b"vault-rot-value-v2", "EACCES"),
    }
    # pending: Vault has none; the lookup says so before any open is judged
    assert agents["carol"].read(pend) == "ENOENT"
    assert agents["alice"].read(pend) == "ENOENT"
    # the version list needs the option too: it says how to name the others
    assert agents["bob"].read(listing) == "EACCES"
    assert json.loads(agents["alice"].read(listing))[0]["id"] == "3"
    assert agents["bob"].access(prev) is False and agents["alice"].access(prev) is True

    recs = audit_records(audit)
    bob = agents["bob"].user.uid
    denied = [r for r in recs if r["uid"] == bob and r["op"] == "open" and "previous" in r["path"]]
    assert [(r["path"], r["decision"], r["errno"]) for r in denied] == [
        (f"{AT}/previous/rot/db/pw", "deny", 13)]
    assert denied[0]["rule"].endswith(":3")
    alice = agents["alice"].user.uid
    granted = {r["path"]: r for r in recs if r["uid"] == alice and r["op"] == "open"}
    assert granted[f"{AT}/previous/rot/db/pw"]["version"] == "2"
    assert granted[f"{AT}/1/rot/db/pw"]["version"] == "1"
    assert granted[f"{AT}/current/rot/db/pw"]["version"] == "3"
    text = audit.read_bytes()
    assert not [v for v in VAULT_VALUES if v.encode() in text]


def test_policy_rejects_versions_on_deny_and_bad_kinds(workdir):
    for text, want in (("deny * rot/** versions\n", "deny rule"),
                       ("permit * rot/** versions=prev\n", "versions="),
                       ("permit * rot/** versions versions\n", "duplicate")):
        p = workdir / "bad-policy.conf"
        write_policy(p, text)
        r = run_secretfs(["check-policy", str(p), "root", "rot/x"])
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"{p}:1" in r.stderr and want in r.stderr, r.stderr


@pytest.mark.parametrize("sel", ["Current", "01", "0", "-1", "id:..", "id:", "label:",
                                 "version:1", "..", "view", " current"])
def test_odd_selectors_are_not_found(vs, vmount, sel):
    vault_versions(vs, 2)
    d = vmount(vs)
    assert err(os.path.join(d.mnt, AT, sel, "rot/db/pw")) == "ENOENT"


def test_paths_an_attacker_tries_under_at(vs, vmount):
    vault_versions(vs, 2)
    d = vmount(vs)
    # at/previous/../ is at/ (the kernel resolves ".."), never the store or another selector
    up = os.path.join(d.mnt, AT, "previous", "..", "current", "rot/db/pw")
    assert read_file(up) == b"vault-rot-value-v2"
    # no view, template or meta directory below a selector
    for rel in (".secretfs/view/json/rot/db", ".secretfs/at/current/rot/db",
                "view/json/rot/db"):
        assert err(d.path(AT, "previous", rel)) == "ENOENT", rel
    # read-only
    with pytest.raises(OSError) as e:
        open(d.path(AT, "previous", "rot/db/pw"), "w")
    assert e.value.errno in (errno.EROFS, errno.EACCES)


# ---------------------------------------------------------------- Google and Azure columns


def test_gcp_numbers_and_aliases(gcp_server, secretfs, workdir, certs):
    import test_gcp  # noqa: PLC0415
    gs = gcp_server
    gs.reset()
    for v in ("gcp-version-one-1", "gcp-version-two-2", "gcp-version-three-3"):
        gs.put_secret(test_gcp.PROJECT, "rot", v)
    key = gs.add_service_account()
    creds = test_gcp.write_creds(workdir, key)
    opts = ["-o", f"gcp_endpoint={gs.url}", "-o", f"ca_file={certs.ca}", "-o",
            f"gcp_credentials={creds}", *TTL]
    d = secretfs(None, argv=lambda store, mnt: [*opts, f"gcp-sm:{test_gcp.PROJECT}", str(mnt)],
                 env=test_gcp.gcp_env(workdir),
                 secrets=[b"gcp-version-one-1", b"gcp-version-two-2", b"gcp-version-three-3",
                          key[test_gcp.KEY_PEM].split("\n")[1].encode()])
    at = lambda sel: d.path(AT, sel, "rot")  # noqa: E731
    assert read_file(at("current")) == b"gcp-version-three-3"
    assert read_file(at("1")) == b"gcp-version-one-1"
    assert read_file(at("2")) == b"gcp-version-two-2"
    assert read_file(at("label:latest")) == b"gcp-version-three-3"
    for sel in ("previous", "pending", "id:2", "9", "label:no-such-alias"):
        assert err(at(sel)) == "ENOENT", sel
    # a version read by number is kept (pinned) even once destroyed, until a flush
    gs.set_version_state(test_gcp.PROJECT, "rot", 2, "DESTROYED")
    assert read_file(at("2")) == b"gcp-version-two-2"
    gs.set_version_state(test_gcp.PROJECT, "rot", 1, "DISABLED")
    # a mount that never read them: a disabled or destroyed version is not found
    d2 = secretfs(None, argv=lambda store, mnt: [*opts, f"gcp-sm:{test_gcp.PROJECT}", str(mnt)],
                  env=test_gcp.gcp_env(workdir), secrets=d.secrets)
    assert err(d2.path(AT, "1", "rot")) == "ENOENT"
    assert err(d2.path(AT, "2", "rot")) == "ENOENT"
    assert err(d2.path(VERSIONS, "rot")) == "ENOENT"  # no list of versions (yet)


def test_azure_version_ids(azure_server, secretfs, workdir, certs):
    import test_azure  # noqa: PLC0415
    az = azure_server
    az.post("/_test/reset")
    old = az.post("/_test/secret", {"name": "rot", "value": "azure-version-old-1"})["version"]
    new = az.post("/_test/secret", {"name": "rot", "value": "azure-version-new-2"})["version"]
    d = secretfs(None, argv=lambda store, mnt: ["-o", f"ca_file={certs.ca}", *TTL,
                                                f"azure-kv:{az.url}", str(mnt)],
                 env=test_azure.az_env(workdir, az),
                 secrets=[b"azure-version-old-1", b"azure-version-new-2"])
    at = lambda sel: d.path(AT, sel, "rot")  # noqa: E731
    assert read_file(at("current")) == b"azure-version-new-2"
    assert read_file(at(f"id:{old}")) == b"azure-version-old-1"
    assert read_file(at(f"id:{new}")) == b"azure-version-new-2"
    for sel in ("previous", "pending", "1", "label:x", "id:" + "0" * 32, "id:not-hex"):
        assert err(at(sel)) == "ENOENT", sel
