"""
examples/container/ and examples/kubernetes/: what can be checked without a
Docker engine or a Kubernetes cluster (this machine has neither).

- Every YAML file under examples/ parses (python3-yaml).
- The Kubernetes objects are checked against the API types of Debian's
  python3-kubernetes (22.6, the Kubernetes 1.22 API): every field must be a
  field of its type with the right JSON type (unknown or misspelt fields
  fail, as with `kubectl apply --validate=strict`), the client's models
  check the required fields, and fields newer than 1.22 are allowed only
  from an explicit list (restartPolicy of a container: the 1.28 native
  sidecar).  Then the API server's cross-field rules that matter here
  (pkg/apis/core/validation: Bidirectional only in a privileged container,
  allowPrivilegeEscalation false only without privileged and CAP_SYS_ADMIN,
  startupProbe and lifecycle on an init container only with restartPolicy
  Always, limits not below requests), and the fields the design needs:
  native sidecar, startupProbe on the ready file, propagation modes,
  preStop unmount, the security contexts, /dev/fuse as a CharDevice hostPath,
  the projected token.  The checker is itself checked on broken copies.
- docker-compose.yml passes `docker-compose config` (Debian's docker-compose
  1.29, which validates against the Compose schema without an engine; a
  broken copy must fail), and has the devices, capabilities, AppArmor
  setting, propagation, healthcheck and depends_on the design needs.
- The Dockerfile: a build stage that copies only what `make` needs, a
  Debian 12 slim runtime stage that copies nothing but the binary (no
  store, policy or token), installs one Debian package for every shared
  library the binary links (readelf -d, mapped with dpkg -S) and the
  Makefile's DEB_RUN, runs `secretfs -f` with a health check on the ready
  file.
- The configurations are run for real by the daemon on this machine: the
  Kubernetes ConfigMap (config and policy, laid out as kubelet lays out a
  ConfigMap volume, with ..data symlinks) with the sidecar's arguments and
  environment and the projected token, against the Vault test server; and
  the compose sidecar's command with examples/store.json and the example
  policy.  Container paths are mapped to test directories, and VAULT_ADDR
  to the test server; uid 1000 (the app container's) reads its secret as a
  0400 file of its own, root and other uids are refused.
"""

import configparser
import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import (
    CMD_TIMEOUT,
    MOUNT_TIMEOUT,
    REPO,
    SECRETFS_BIN,
    sanitizer_env,
    wait_until,
)

yaml = pytest.importorskip("yaml", reason="python3-yaml is missing (make test-deps)")

EXAMPLES = REPO / "examples"
K8S_DIR = EXAMPLES / "kubernetes"
CONTAINER_DIR = EXAMPLES / "container"
DOCKERFILE = CONTAINER_DIR / "Dockerfile"
COMPOSE = CONTAINER_DIR / "docker-compose.yml"

APP_UID = 1000  # the app container's uid in both examples


def yaml_files():
    return sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yml", ".yaml"))


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def k8s_objects():
    return [(p, d) for p in sorted(K8S_DIR.glob("*.yaml")) for d in load_all(p)]


def k8s_object(kind, name=None):
    found = [d for _, d in k8s_objects()
             if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in {K8S_DIR}, found {len(found)}"
    return found[0]


def test_every_yaml_file_under_examples_parses():
    files = yaml_files()
    assert {p.relative_to(EXAMPLES).as_posix() for p in files} >= {
        "container/docker-compose.yml", "kubernetes/configmap.yaml", "kubernetes/deployment.yaml"}
    for p in files:
        docs = load_all(p)
        assert docs, f"{p}: no document"
        for d in docs:
            assert isinstance(d, dict), f"{p}: a document is a {type(d).__name__}, not a mapping"


# ---------------------------------------------------------------- Kubernetes: the API types

# Fields newer than the python3-kubernetes models (Kubernetes 1.22), with their type.
NEWER_FIELDS = {
    ("V1Container", "restartPolicy"): "str",  # 1.28 (beta, on by default, in 1.29): native sidecars
}
MODEL_OF_KIND = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Pod"): "V1Pod",
}


def k8s_models():
    return pytest.importorskip("kubernetes.client",
                               reason="python3-kubernetes is missing (make test-deps)")


def schema_errors(model, data, path="$"):
    """Every field of @data that is not a field of @model or has the wrong JSON type."""
    k8s = k8s_models()
    errs = []

    def walk(t, v, p):
        if t.startswith("list["):
            if not isinstance(v, list):
                errs.append(f"{p}: expected a list ({t}), got {type(v).__name__}")
                return
            for i, x in enumerate(v):
                walk(t[5:-1], x, f"{p}[{i}]")
        elif t.startswith("dict("):
            inner = re.fullmatch(r"dict\(str, (.*)\)", t).group(1)
            if not isinstance(v, dict):
                errs.append(f"{p}: expected a mapping ({t}), got {type(v).__name__}")
                return
            for k, x in v.items():
                walk(inner, x, f"{p}.{k}")
        elif t == "str" or t == "datetime":
            if not isinstance(v, str):
                errs.append(f"{p}: expected a string, got {type(v).__name__} {v!r}")
        elif t == "int":
            if not isinstance(v, int) or isinstance(v, bool):
                errs.append(f"{p}: expected an integer, got {type(v).__name__} {v!r}")
        elif t == "float":
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                errs.append(f"{p}: expected a number, got {v!r}")
        elif t == "bool":
            if not isinstance(v, bool):
                errs.append(f"{p}: expected true or false, got {type(v).__name__} {v!r}")
        elif t == "object":  # IntOrString and raw JSON
            pass
        else:
            cls = getattr(k8s, t)
            if not isinstance(v, dict):
                errs.append(f"{p}: expected a {t} mapping, got {type(v).__name__}")
                return
            by_json = {j: a for a, j in cls.attribute_map.items()}
            for k, x in v.items():
                if k in by_json:
                    walk(cls.openapi_types[by_json[k]], x, f"{p}.{k}")
                elif (t, k) in NEWER_FIELDS:
                    walk(NEWER_FIELDS[(t, k)], x, f"{p}.{k}")
                else:
                    errs.append(f"{p}.{k}: unknown field of {t}")

    walk(model, data, path)
    return errs


def deserialize(model, data):
    """The client's own deserialization: required fields and value conversions."""
    k8s = k8s_models()

    class Response:
        def __init__(self, d):
            self.data = json.dumps(d)

    return k8s.ApiClient().deserialize(Response(data), model)


def test_kubernetes_objects_match_the_api_types():
    objs = k8s_objects()
    assert {d["kind"] for _, d in objs} >= {"Deployment", "ConfigMap"}
    for p, d in objs:
        model = MODEL_OF_KIND.get((d.get("apiVersion"), d.get("kind")))
        assert model, f"{p}: {d.get('apiVersion')} {d.get('kind')}: add its model to MODEL_OF_KIND"
        errs = schema_errors(model, d)
        assert not errs, f"{p}:\n" + "\n".join(errs)
        deserialize(model, d)  # raises on a missing required field


def test_the_schema_check_catches_mistakes():
    """The checker above is not vacuous: broken copies of the Deployment fail it."""
    dep = k8s_object("Deployment")

    def broken(edit):
        d = copy.deepcopy(dep)
        edit(d["spec"]["template"]["spec"])
        return d

    def misspelt(s):
        vm = s["containers"][0]["volumeMounts"][0]
        vm["mountPropogation"] = vm.pop("mountPropagation")

    cases = {
        "unknown field of V1VolumeMount": misspelt,
        "expected an integer": lambda s: s["initContainers"][0]["startupProbe"].update(
            periodSeconds="1"),
        "expected true or false": lambda s: s["containers"][0]["securityContext"].update(
            runAsNonRoot="yes"),
        "expected a list": lambda s: s["initContainers"][0]["securityContext"][
            "capabilities"].update(add="SYS_ADMIN"),
        "unknown field of V1PodSpec": lambda s: s.update(sidecars=[]),
    }
    for want, edit in cases.items():
        errs = schema_errors("V1Deployment", broken(edit))
        assert any(want in e for e in errs), (want, errs)
    # and a required field that is missing fails the client's models
    d = broken(lambda s: s["initContainers"][0].pop("name"))
    with pytest.raises(ValueError, match="name"):
        deserialize("V1Deployment", d)


# ---------------------------------------------------------------- Kubernetes: the design


def quantity(q):
    """A Kubernetes quantity as a number (the suffixes used here)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|k|M|G)?", str(q))
    assert m, f"quantity {q!r}"
    mult = {None: 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6,
            "G": 1e9}[m.group(2)]
    return float(m.group(1)) * mult


def api_server_rule_errors(pod_spec):
    """The API server's cross-field rules (pkg/apis/core/validation) that apply here."""
    errs = []
    vols = {v["name"] for v in pod_spec.get("volumes", [])}
    for kind in ("initContainers", "containers"):
        for c in pod_spec.get(kind, []):
            where = f"{kind}[{c['name']}]"
            sc = c.get("securityContext", {})
            privileged = sc.get("privileged") is True
            sidecar = kind == "initContainers" and c.get("restartPolicy") == "Always"
            if "restartPolicy" in c and not sidecar:
                errs.append(f"{where}: restartPolicy is only allowed as Always on init containers")
            if kind == "initContainers" and not sidecar:
                for f in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
                    if f in c:
                        errs.append(f"{where}: {f} needs restartPolicy: Always "
                                    "on an init container")
            if sc.get("allowPrivilegeEscalation") is False:
                if privileged:
                    errs.append(f"{where}: allowPrivilegeEscalation false with privileged true")
                if "CAP_SYS_ADMIN" in sc.get("capabilities", {}).get("add", []):
                    errs.append(f"{where}: allowPrivilegeEscalation false with CAP_SYS_ADMIN")
            if sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 0:
                errs.append(f"{where}: runAsNonRoot with runAsUser 0")
            paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
            if len(paths) != len(set(paths)):
                errs.append(f"{where}: a mountPath is used twice")
            for m in c.get("volumeMounts", []):
                if m["name"] not in vols:
                    errs.append(f"{where}: volumeMount {m['name']} names no volume")
                if m.get("mountPropagation") not in (None, "None", "HostToContainer",
                                                     "Bidirectional"):
                    errs.append(f"{where}: mountPropagation {m['mountPropagation']!r}")
                if m.get("mountPropagation") == "Bidirectional" and not privileged:
                    errs.append(f"{where}: Bidirectional mount propagation is available "
                                "only to privileged containers")
            res = c.get("resources", {})
            for r, lim in res.get("limits", {}).items():
                req = res.get("requests", {}).get(r)
                if req is not None and quantity(req) > quantity(lim):
                    errs.append(f"{where}: {r} request {req} above its limit {lim}")
    return errs


def test_the_api_server_rules_hold_and_are_checked():
    spec = k8s_object("Deployment")["spec"]["template"]["spec"]
    assert api_server_rule_errors(spec) == []
    # the rules fire on what a reader might be tempted to write
    bad = copy.deepcopy(spec)
    bad["initContainers"][0]["securityContext"]["privileged"] = False
    assert any("only to privileged" in e for e in api_server_rule_errors(bad))
    bad = copy.deepcopy(spec)
    bad["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = False
    assert any("allowPrivilegeEscalation false with privileged" in e
               for e in api_server_rule_errors(bad))
    bad = copy.deepcopy(spec)
    del bad["initContainers"][0]["restartPolicy"]
    assert any("startupProbe needs restartPolicy" in e for e in api_server_rule_errors(bad))


def image_entrypoint():
    """The runtime image's ENTRYPOINT (exec form) from the Dockerfile."""
    ins = [i for i in dockerfile_stages()[-1]["instructions"] if i[0] == "ENTRYPOINT"]
    assert len(ins) == 1
    return json.loads(ins[0][1])


def ready_file():
    ep = image_entrypoint()
    assert "--ready-file" in ep, ep
    return ep[ep.index("--ready-file") + 1]


def sidecar_and_app():
    spec = k8s_object("Deployment")["spec"]["template"]["spec"]
    side = [c for c in spec.get("initContainers", []) if c["name"] == "secretfs"]
    app = [c for c in spec["containers"] if c["name"] == "app"]
    assert len(side) == 1 and len(app) == 1
    return spec, side[0], app[0]


def mounts_by_volume(c):
    return {m["name"]: m for m in c.get("volumeMounts", [])}


def configmap_config():
    cm = k8s_object("ConfigMap", "secretfs-config")
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#", ";"))
    cp.read_string(cm["data"]["secretfs.conf"])
    return cm, cp


def test_kubernetes_native_sidecar_mounts_for_the_app():
    spec, side, app = sidecar_and_app()
    # a native sidecar: an init container that keeps running (Kubernetes >= 1.29)
    assert side["restartPolicy"] == "Always"
    assert not any(c["name"] == "secretfs" for c in spec["containers"])
    # the app starts only once the startup probe has seen the ready file
    ready = ready_file()
    probe = side["startupProbe"]["exec"]["command"]
    assert probe == ["test", "-e", ready]
    for p in ("readinessProbe", "livenessProbe"):
        assert side[p]["exec"]["command"] == probe
    assert side["startupProbe"]["failureThreshold"] * side["startupProbe"]["periodSeconds"] >= 30
    # the ready file lives on a writable volume (the root filesystem is read-only)
    vols = {v["name"]: v for v in spec["volumes"]}
    run = [m for m in side["volumeMounts"] if m["mountPath"] == os.path.dirname(ready)]
    assert len(run) == 1 and "emptyDir" in vols[run[0]["name"]]

    # the mountpoint: the config's, on a volume the sidecar shares Bidirectional
    # and the app receives HostToContainer
    _, conf = configmap_config()
    mnt = conf["secretfs"]["mountpoint"]
    side_m = [m for m in side["volumeMounts"] if m["mountPath"] == mnt]
    assert len(side_m) == 1 and side_m[0]["mountPropagation"] == "Bidirectional"
    vol = side_m[0]["name"]
    assert "emptyDir" in vols[vol] or "hostPath" in vols[vol]
    app_m = mounts_by_volume(app)[vol]
    assert app_m["mountPropagation"] == "HostToContainer" and app_m.get("readOnly") is True
    # only the sidecar propagates mounts back
    for c in [*spec["containers"], *spec.get("initContainers", [])]:
        for m in c.get("volumeMounts", []):
            if m.get("mountPropagation") == "Bidirectional":
                assert c is side and m["name"] == vol

    # preStop unmounts that mountpoint
    cmd = side["lifecycle"]["preStop"]["exec"]["command"]
    script = cmd[-1] if cmd[:2] == ["sh", "-c"] else shlex.join(cmd)
    assert re.search(rf"(^|\s)fusermount3 -u {re.escape(mnt)}(\s|$)", script), cmd

    # /dev/fuse from the node, as a character device (the pod fails without it)
    fuse = [m for m in side["volumeMounts"] if m["mountPath"] == "/dev/fuse"]
    assert len(fuse) == 1
    assert vols[fuse[0]["name"]]["hostPath"] == {"path": "/dev/fuse", "type": "CharDevice"}
    assert "/dev/fuse" not in json.dumps(app)

    # resources on both
    for c in (side, app):
        for k in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][k]), (c["name"], k)


def test_kubernetes_security_contexts():
    spec, side, app = sidecar_and_app()
    sc = side["securityContext"]
    # Bidirectional propagation is only allowed to privileged containers.
    assert sc["privileged"] is True
    assert "allowPrivilegeEscalation" not in sc  # false is refused together with privileged
    assert sc["runAsUser"] == 0 and sc.get("runAsNonRoot") is not True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN", "IPC_LOCK"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The app: the restricted Pod Security Standard.
    asc = app["securityContext"]
    assert asc["privileged"] is False
    assert asc["allowPrivilegeEscalation"] is False
    assert asc["runAsNonRoot"] is True and asc["runAsUser"] == APP_UID
    assert asc["readOnlyRootFilesystem"] is True
    assert asc["capabilities"] == {"drop": ["ALL"]}
    assert asc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    # The comments say why privileged is needed; keep them next to it.
    text = (K8S_DIR / "deployment.yaml").read_text()
    assert "Bidirectional only in a privileged container" in text


def test_kubernetes_config_policy_and_token_fit_the_pod():
    spec, side, app = sidecar_and_app()
    vols = {v["name"]: v for v in spec["volumes"]}
    by_path = {m["mountPath"]: m for m in side["volumeMounts"]}
    cm, conf = configmap_config()

    # the ConfigMap volume holds the config the sidecar is started with
    assert side["args"] == ["--config", "/etc/secretfs/secretfs.conf"]
    cfg_mount = by_path["/etc/secretfs"]
    assert cfg_mount.get("readOnly") is True
    assert vols[cfg_mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    # the policy through kubelet's ..data symlink, which secretfs follows
    assert conf["access"]["policy"] == "/etc/secretfs/policy"
    assert "policy" in cm["data"]
    # Vault: the address from the environment, the token as a credential file of
    # a projected Secret, the CA beside it
    env = {e["name"]: e["value"] for e in side["env"]}
    assert conf["secretfs"]["source"].startswith("vault:") and "VAULT_ADDR" in env
    assert "VAULT_TOKEN" not in env  # an environment is readable in /proc and in the API
    assert conf["vault"]["auth"] == "token" and "token_file" not in conf["vault"]
    creds = by_path[env["CREDENTIALS_DIRECTORY"]]
    assert creds.get("readOnly") is True
    proj = vols[creds["name"]]["projected"]
    assert proj["defaultMode"] == 0o400
    items = {i["path"]: (kind, s[kind]["name"], i["key"])
             for s in proj["sources"] for kind in s for i in s[kind]["items"]}
    assert items["vault-token"][0] == "secret"
    ca = conf["http"]["ca_file"]
    assert os.path.dirname(ca) == env["CREDENTIALS_DIRECTORY"]
    assert os.path.basename(ca) in items
    # no secret value in the manifests: the only Secret is referenced, not defined
    assert not [d for _, d in k8s_objects() if d["kind"] == "Secret"]
    # the app reads only through the mount
    assert "env" not in app and "envFrom" not in app


def kubelet_configmap_dir(root, data):
    """A ConfigMap volume as kubelet's AtomicWriter lays it out: ..data symlinks."""
    ts = root / "..2026_01_01_00_00_00.000000001"
    ts.mkdir(parents=True)
    for k, v in data.items():
        (ts / k).write_text(v)
        os.chmod(ts / k, 0o444)
        os.symlink(f"..data/{k}", root / k)
    os.symlink(ts.name, root / "..data")
    os.chmod(ts, 0o755)
    return root


def test_kubernetes_policy_grants_the_app_uid_only(workdir):
    cm, _ = configmap_config()
    d = kubelet_configmap_dir(workdir / "cm", cm["data"])
    pol = d / "policy"  # the symlink kubelet makes; secretfs follows it

    def check(user, path):
        return subprocess.run([SECRETFS_BIN, "check-policy", str(pol), str(user), path],
                              capture_output=True, text=True, timeout=CMD_TIMEOUT)

    r = check(APP_UID, "db/password")
    assert r.returncode == 0 and r.stdout.startswith("permit"), r.stdout + r.stderr
    assert re.search(r"owner: \S*\(1000\) group: \S*\(1000\) mode: 0400", r.stdout), r.stdout
    for other in ("root", "1001", "65534"):
        r = check(other, "db/password")
        assert r.returncode == 1 and r.stdout.startswith("deny"), (other, r.stdout, r.stderr)


# ---------------------------------------------------------------- running the configurations


def rewrite(text, mapping):
    """Replaces each container path of @mapping (whole path prefixes) with its test path."""
    for src in sorted(mapping, key=len, reverse=True):
        text = re.sub(rf"(?<![\w./-]){re.escape(src)}(?=/|$|[\s,\"'])", str(mapping[src]),
                      text, flags=re.M)
    return text


def run_as_app(argv):
    return subprocess.run(["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}",
                           "--clear-groups", *argv],
                          capture_output=True, timeout=CMD_TIMEOUT)


def wait_ready(fs, ready):
    def ok():
        if fs.proc.poll() is not None:
            pytest.fail(f"secretfs exited with {fs.proc.returncode}:\n{fs.stderr()}")
        return ready.exists()

    wait_until(ok, MOUNT_TIMEOUT, what=f"{ready}")


def assert_served_to_the_app_only(fs, rel, want):
    p = fs.path(rel)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (APP_UID, APP_UID, 0o400)
    r = run_as_app(["cat", str(p)])
    assert r.returncode == 0 and r.stdout == want, r
    r = subprocess.run(["cat", str(p)], capture_output=True, timeout=CMD_TIMEOUT)  # root
    assert r.returncode != 0 and b"Permission denied" in r.stderr, r
    r = subprocess.run(["setpriv", "--reuid=1001", "--regid=1001", "--clear-groups", "cat",
                        str(p)], capture_output=True, timeout=CMD_TIMEOUT)
    assert r.returncode != 0 and b"Permission denied" in r.stderr, r


@pytest.fixture(scope="module")
def vault_pki(tmp_path_factory):
    sys.path.insert(0, str(REPO / "tests" / "servers"))
    from certs import generate_certs

    d = tmp_path_factory.mktemp("examples-vault-certs")
    os.chmod(d, 0o755)
    return generate_certs(str(d), extras=False)


def test_kubernetes_sidecar_configuration_runs(secretfs, workdir, vault_pki):
    """The ConfigMap, the sidecar's arguments and environment and the projected token, for real."""
    sys.path.insert(0, str(REPO / "tests" / "servers"))
    from vault_server import VaultServer

    token = "hvs.ExamplesK8sSidecarToken0001"
    value = "k8s-sidecar-db-password-42"
    vs = VaultServer(vault_pki.server, vault_pki.server_key, config={
        "root_token": token,
        "secrets": [{"mount": "secret", "path": "apps/myapp/db",
                     "data": {"password": value, "user": "myapp"}}],
    })
    vs.start()
    try:
        spec, side, _ = sidecar_and_app()
        cm, _ = configmap_config()
        env = {e["name"]: e["value"] for e in side["env"]}
        paths = {"/etc/secretfs": workdir / "etc-secretfs",
                 env["CREDENTIALS_DIRECTORY"]: workdir / "credentials",
                 os.path.dirname(ready_file()): workdir / "run-secretfs"}
        (workdir / "run-secretfs").mkdir()
        # the projected volume: the Secret's token and the CA, 0400
        creds = workdir / "credentials"
        creds.mkdir(mode=0o755)
        (creds / "vault-token").write_text(token + "\n")
        shutil.copy(vault_pki.ca, creds / "vault-ca.pem")
        for f in creds.iterdir():
            os.chmod(f, 0o400)

        def argv(store, mnt):
            m = dict(paths, **{"/secrets": mnt})
            data = {k: rewrite(v, m) for k, v in cm["data"].items()}
            kubelet_configmap_dir(paths["/etc/secretfs"], data)
            ep = image_entrypoint()
            assert ep[:2] == ["secretfs", "-f"]  # the fixture adds -f
            return [rewrite(a, m) for a in [*ep[2:], *side["args"]]]

        run_env = {k: v for k, v in sanitizer_env().items() if not k.startswith("VAULT_")}
        run_env.update({k: rewrite(v, paths) for k, v in env.items()})
        run_env["VAULT_ADDR"] = vs.url  # the cluster's Service name, here the test server
        fs = secretfs({}, argv=argv, env=run_env, secrets=[value, token], wait=False)
        ready = paths[os.path.dirname(ready_file())] / os.path.basename(ready_file())
        wait_ready(fs, ready)
        assert_served_to_the_app_only(fs, "db/password", value.encode())
        # the audit log goes to the container's log (kubectl logs), naming the reader
        recs = [json.loads(line) for line in fs.stderr().splitlines() if line.startswith("{")]
        assert any(r["uid"] == APP_UID and r["path"] == "db/password"
                   and r["decision"] == "permit" for r in recs), fs.stderr()
    finally:
        vs.stop()


def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_sidecar_configuration_runs(secretfs, workdir):
    """The compose sidecar's command with examples/store.json and the example policy, for real."""
    side = compose()["services"]["secretfs"]
    pol = workdir / "policy"
    shutil.copy(CONTAINER_DIR / "policy", pol)
    os.chmod(pol, 0o644)
    rundir = workdir / "run-secretfs"
    rundir.mkdir()
    doc = json.loads((EXAMPLES / "store.json").read_text())

    def argv(store, mnt):
        m = {"/run/secrets/secretfs-store": store, "/run/secrets/secretfs-policy": pol,
             "/secrets": mnt, os.path.dirname(ready_file()): rundir}
        ep = image_entrypoint()
        return [rewrite(a, m) for a in [*ep[2:], *side["command"]]]

    fs = secretfs(doc, argv=argv, wait=False)
    wait_ready(fs, rundir / os.path.basename(ready_file()))
    assert_served_to_the_app_only(fs, "prod/db/password", b"s3cr3t")


# ---------------------------------------------------------------- docker-compose.yml


def test_compose_file_passes_docker_compose_config(workdir):
    exe = shutil.which("docker-compose")
    if not exe:
        pytest.skip("docker-compose is missing (Debian package docker-compose; make test-deps)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}

    def config(path):
        return subprocess.run([exe, "-f", str(path), "config", "-q"], capture_output=True,
                              text=True, timeout=CMD_TIMEOUT * 3, env=env, cwd=workdir)

    r = config(COMPOSE)
    assert r.returncode == 0, r.stderr
    # and it really validates: a broken copy is refused
    bad = compose()
    bad["services"]["secretfs"]["devices"] = {"fuse": "/dev/fuse"}
    bad["services"]["app"]["depends_on"]["secretfs"]["condition"] = "service_ready"
    p = workdir / "docker-compose.yml"
    p.write_text(yaml.safe_dump(bad))
    r = config(p)
    assert r.returncode != 0 and "devices" in r.stderr, r.stderr


def bind_of(service, target):
    found = [v for v in service["volumes"]
             if isinstance(v, dict) and v.get("type") == "bind" and v["target"] == target]
    assert len(found) == 1, service["volumes"]
    return found[0]


def test_compose_sidecar_structure():
    doc = compose()
    side, app = doc["services"]["secretfs"], doc["services"]["app"]
    assert side["devices"] == ["/dev/fuse:/dev/fuse"]
    assert "SYS_ADMIN" in side["cap_add"] and side["cap_drop"] == ["ALL"]
    assert "apparmor:unconfined" in side["security_opt"]
    assert "privileged" not in side  # CAP_SYS_ADMIN and /dev/fuse are enough in Docker
    # the sidecar mounts on the rshared bind, the app receives it rslave, read-only
    mnt = side["command"][-1]
    sb, ab = bind_of(side, mnt), bind_of(app, mnt)
    assert sb["bind"]["propagation"] == "rshared"
    assert ab["bind"]["propagation"] == "rslave" and ab["read_only"] is True
    assert sb["source"] == ab["source"]
    # the store and the policy: Docker secrets from the host, read-only; the command uses them
    secrets = doc["secrets"]
    assert set(side["secrets"]) == set(secrets) == {"secretfs-store", "secretfs-policy"}
    assert all(set(s) == {"file"} and s["file"].startswith("/") for s in secrets.values())
    cmd = " ".join(side["command"])
    assert "file:/run/secrets/secretfs-store" in cmd
    assert "policy=/run/secrets/secretfs-policy" in cmd
    # health: the ready file of the image's entrypoint; the app waits for it
    assert side["healthcheck"]["test"] == ["CMD", "test", "-e", ready_file()]
    assert app["depends_on"] == {"secretfs": {"condition": "service_healthy"}}
    # the app needs no privilege and runs as the policy's uid
    assert app["user"] == f"{APP_UID}:{APP_UID}" and app["cap_drop"] == ["ALL"]
    assert not {"devices", "cap_add", "privileged"} & set(app)
    # the store, the token and friends never go into the compose file itself
    assert "environment" not in side and "environment" not in app


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text):
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    assert not cur, "Dockerfile ends in a continuation"
    return out


def dockerfile_stages():
    ins = dockerfile_instructions(DOCKERFILE.read_text())
    args = {}
    stages = []
    for word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v
        elif word == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda g: args[g.group(1)], m.group(1))
            stages.append({"image": image, "name": m.group(2), "instructions": []})
        else:
            assert stages, f"{word} before FROM"
            stages[-1]["instructions"].append((word, rest))
    return stages


def apt_installed(stage):
    pkgs = []
    for word, rest in stage["instructions"]:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;", rest):
            t = cmd.split()
            if t[:2] == ["apt-get", "install"]:
                pkgs += [x for x in t[2:] if not x.startswith("-")]
    return pkgs


def makefile_list(name):
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(rf"^{name}\s*:=\s*(.*)$", text, re.M)
    return m.group(1).split()


def needed_packages(binary):
    """The Debian package of each library @binary links directly (DT_NEEDED)."""
    r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)
    assert "libfuse3.so.3" in sonames, sonames
    # where the loader finds each (ldd), so that dpkg names the native package
    r = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    found = dict(re.findall(r"^\s*(\S+) => (/\S+)", r.stdout, re.M))
    pkgs = {}
    for so in sonames:
        path = found[so]
        # usrmerge: dpkg knows a library under /lib or under /usr/lib
        alt = path[4:] if path.startswith("/usr/") else "/usr" + path
        r = subprocess.run(["dpkg", "-S", path, alt], capture_output=True, text=True,
                           timeout=CMD_TIMEOUT)
        owners = {line.split(":")[0] for line in r.stdout.splitlines()
                  if line.rsplit(": ", 1)[-1] in (path, alt)}
        assert len(owners) == 1, f"{so} ({path}): owned by {owners or 'no package'}"
        pkgs[so] = owners.pop()
    return pkgs


def test_dockerfile_stages_and_entrypoint():
    stages = dockerfile_stages()
    assert len(stages) == 2
    build, run = stages
    assert build["image"] == run["image"] == "debian:12-slim" and build["name"]
    # the build stage has what the Makefile builds with, and runs make
    assert set(makefile_list("DEB_BUILD")) <= set(apt_installed(build))
    assert any(w == "RUN" and re.match(r"make\b", r) for w, r in build["instructions"])
    # the runtime stage: root (mount(2)), secretfs -f in the foreground, health from the ready file
    words = [w for w, _ in run["instructions"]]
    assert words.count("ENTRYPOINT") == 1 and words.count("HEALTHCHECK") == 1
    ep = image_entrypoint()
    assert ep[:2] == ["secretfs", "-f"]
    users = [r for w, r in run["instructions"] if w == "USER"]
    assert users in ([], ["root"])
    hc = [r for w, r in run["instructions"] if w == "HEALTHCHECK"][0]
    assert json.loads(hc[hc.index("CMD") + 3:].strip()) == ["test", "-e", ready_file()]
    # the image's CMD is a valid default: the config file
    cmd = [json.loads(r) for w, r in run["instructions"] if w == "CMD"]
    assert cmd == [["--config", "/etc/secretfs/secretfs.conf"]]


def test_dockerfile_runtime_stage_holds_no_secrets():
    build, run = dockerfile_stages()
    # the runtime stage copies the binary from the build stage, and nothing else
    copies = [(w, r) for w, r in run["instructions"] if w in ("COPY", "ADD")]
    assert copies == [("COPY", f"--from={build['name']} /src/build/secretfs /usr/bin/secretfs")]
    # no secret-looking build arguments or environment in the image
    for w, r in run["instructions"]:
        if w in ("ENV", "ARG"):
            assert not re.search(r"TOKEN|PASSW|SECRET|_KEY|CREDENTIAL", r, re.I), (w, r)
    # the build stage copies only the sources make needs ...
    srcs = []
    for w, r in build["instructions"]:
        if w == "ADD":
            pytest.fail(f"ADD in the build stage: {r}")
        if w == "COPY":
            t = [x for x in r.split() if not x.startswith("--")]
            srcs += t[:-1]
    assert {s.rstrip("/") for s in srcs} == {"Makefile", "include", "src"}
    # ... and the build context is cut down to them (BuildKit's Dockerfile.dockerignore)
    ignore = [ln.strip() for ln in (CONTAINER_DIR / "Dockerfile.dockerignore").read_text()
              .splitlines() if ln.strip() and not ln.startswith("#")]
    assert ignore == ["*", "!Makefile", "!include/", "!src/"]
    # nothing that holds a secret lives under those
    for d in ("include", "src"):
        for p in (REPO / d).rglob("*"):
            assert p.suffix in ("", ".c", ".h"), p


@pytest.fixture(scope="module")
def image_binary(tmp_path_factory):
    """
    The build stage on this machine: only what its COPY lines take (and the
    Dockerfile.dockerignore lets through), then its `make`.  The binary the
    image would hold.
    """
    build, _ = dockerfile_stages()
    ctx = tmp_path_factory.mktemp("image-build")
    assert [r for w, r in build["instructions"] if w == "WORKDIR"] == ["/src"]
    for w, r in build["instructions"]:
        if w == "COPY":
            *srcs, dest = [x for x in r.split() if not x.startswith("--")]
            for src in srcs:
                if (REPO / src).is_dir():
                    shutil.copytree(REPO / src, ctx / dest)
                else:
                    shutil.copy(REPO / src, ctx / dest)
    env = {k: v for k, v in os.environ.items()
           if k not in ("CFLAGS", "LDFLAGS", "SANITIZER", "BUILD", "MAKEFLAGS", "MFLAGS",
                        "MAKELEVEL")}
    r = subprocess.run(["make", "-s", f"-j{os.cpu_count() or 2}"], cwd=ctx, env=env,
                       capture_output=True, text=True, timeout=CMD_TIMEOUT * 9)
    assert r.returncode == 0, f"make in the build stage's context:\n{r.stdout}\n{r.stderr}"
    binary = ctx / "build" / "secretfs"
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0 and r.stdout.startswith("secretfs "), r
    return binary


def test_dockerfile_build_stage_builds_from_what_it_copies(image_binary):
    # the runtime stage copies /src/build/secretfs: WORKDIR /src, make's build/
    assert image_binary.relative_to(image_binary.parents[1]) == Path("build/secretfs")
    assert os.access(image_binary, os.X_OK)


def test_dockerfile_installs_every_library_the_binary_links(image_binary):
    build, run = dockerfile_stages()
    installed = set(apt_installed(run))
    needed = needed_packages(str(image_binary))
    # libc6 and what it depends on are in every Debian image
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", "libc6"], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    base = {"libc6"} | {d.strip().split()[0] for d in r.stdout.split(",") if d.strip()}
    missing = {so: pkg for so, pkg in needed.items() if pkg not in installed and pkg not in base}
    assert not missing, f"the runtime stage does not install {missing}"
    assert set(makefile_list("DEB_RUN")) <= installed
    assert "fuse3" in installed  # fusermount3: auto_unmount and the preStop unmount
    # no -dev package, compiler or make at run time
    assert not [p for p in installed if p.endswith("-dev") or p in ("gcc", "make")]
    # every name is a Debian 12 package (from the apt lists when there are any)
    if list(Path("/var/lib/apt/lists").glob("*_Packages")):
        r = subprocess.run(["apt-cache", "show", "--no-all-versions", *sorted(installed)],
                           capture_output=True, text=True, timeout=CMD_TIMEOUT)
        assert r.returncode == 0, r.stderr
        assert set(re.findall(r"^Package: (\S+)$", r.stdout, re.M)) == installed
