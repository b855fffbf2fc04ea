"""
Issue 11, templates: config files for legacy software, rendered on open for
the reader at hand, through a real mount and read by real parsers.

- a shell sourcing a rendered .env (bash `set -a; . FILE`) gets exactly the
  store's values, hostile ones included; Python's urllib.parse takes the
  user and password back out of a rendered DATABASE_URL; configparser reads
  an ini render; nginx -t accepts a config that includes a render;
- per reader, with real uids: a reference the reader may not open fails the
  whole open with EACCES and the audit log names that reference, under the
  template's name; with access = template the same reader gets the render;
- rotation re-renders at the next open, while an open handle keeps its
  bytes; rendered bytes stay out of the page cache (cachestat); a store that
  fails (the Vault test server answering 500) leaves renders their stale
  inputs, and one render reads an object once for all its keys;
- errors: a missing reference is EIO with the log line the issue gives, a
  default fills in, missing = empty renders it empty; a broken template is a
  start-up error naming FILE:LINE:COL; on reload a broken template keeps the
  previous one in service; templates may not live in, nor read from, the
  meta directory; a template wins a clash with a stored secret;
- no value in the daemon's stderr (the fixture's known-value search) nor in
  the audit log.
"""

import configparser
import json
import os
import shutil
import signal
import subprocess
from urllib.parse import unquote, urlsplit

import pytest

from helpers import CMD_TIMEOUT, REPO, SECRETFS_BIN, sanitizer_env, wait_until
from policy_env import write_policy
from test_errors import cachestat

HOSTILE = "p@ss\"w$rd'`\\ #x;y%z é"
DOC = {
    "prod/db": {
        "username": "app-user-11",
        "password": HOSTILE,
        "host": "db.internal",
        "port": 5432,
    },
    "prod/api-token": "tok-11-abcdefgh",
    "prod/multiline": "line one\nline two\n",
    "prod/backslash": "ends-with-backslash\\",
    "shadowed": "store-value-shadowed-11",
}

ENV_TMPL = """\
# app.env, rendered by secretfs
DB_USER={{ prod/db/username }}
DB_PASSWORD={{ prod/db/password }}
API_TOKEN={{ prod/api-token }}
MULTI={{ prod/multiline }}
BACKSLASH={{ prod/backslash }}
DATABASE_URL=postgres://{{ prod/db/username | url }}:{{ prod/db/password | url }}@{{ prod/db/host | url }}:{{ prod/db/port | url }}/app
TIMEOUT={{ prod/db/timeout | default "30" }}
"""


def write_template(workdir, name, text):
    p = workdir / f"{name}.tmpl"
    p.write_text(text)
    os.chmod(p, 0o644)
    return p


def write_config(workdir, store, sections, extra="", name="secretfs.conf"):
    """A config naming @store and one [template NAME] per (name, settings) of @sections."""
    lines = ["[secretfs]", f"source = file:{store}", extra]
    for tname, settings in sections:
        lines.append(f"[template {tname}]")
        lines += [f"{k} = {v}" for k, v in settings.items()]
    cfg = workdir / name
    cfg.write_text("\n".join(lines) + "\n")
    os.chmod(cfg, 0o600)
    return cfg


@pytest.fixture
def tmount(secretfs, workdir):
    """Factory: mounts @doc with the templates @sections through a config file."""

    def start(sections, doc=DOC, options=(), extra="", **kw):
        holder = {}

        def argv(store, mnt):
            holder["cfg"] = write_config(workdir, store, sections, extra)
            return ["--config", str(holder["cfg"]), *options, str(mnt)]

        fs = secretfs(doc, argv=argv, **kw)
        fs.cfg = holder.get("cfg")
        return fs

    return start


def source_env(path, names):
    """What bash sees after `set -a; . FILE`: {NAME: value} through printenv, NUL-separated."""
    script = 'set -a; . "$1"; for n in "${@:2}"; do printenv "$n"; printf "\\0"; done'
    out = subprocess.run(
        ["bash", "-c", script, "bash", str(path), *names],
        capture_output=True,
        timeout=CMD_TIMEOUT,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    vals = out.stdout.split(b"\0")[: len(names)]
    # printenv adds a newline after each value.
    return {n: v[:-1].decode() for n, v in zip(names, vals)}


def test_a_shell_sourcing_the_env_gets_the_store_values(tmount, workdir):
    t = write_template(workdir, "app", ENV_TMPL)
    fs = tmount([("app-env", {"file": t, "path": "app/app.env", "format": "env"})])
    env = fs.path("app/app.env")
    got = source_env(env, ["DB_USER", "DB_PASSWORD", "API_TOKEN", "MULTI", "BACKSLASH",
                           "DATABASE_URL", "TIMEOUT"])
    assert got["DB_USER"] == "app-user-11"
    assert got["DB_PASSWORD"] == HOSTILE
    assert got["API_TOKEN"] == "tok-11-abcdefgh"
    assert got["MULTI"] == "line one\nline two\n"
    assert got["BACKSLASH"] == "ends-with-backslash\\"
    assert got["TIMEOUT"] == "30"
    url = urlsplit(got["DATABASE_URL"])
    assert (unquote(url.username), unquote(url.password)) == ("app-user-11", HOSTILE)
    assert (url.hostname, url.port, url.path) == ("db.internal", 5432, "/app")
    # st_size is the rendered length, read(2) gives exactly that many bytes.
    data = env.read_bytes()
    assert os.stat(env).st_size == len(data)
    assert os.stat(env).st_mode & 0o777 == 0o400
    assert sorted(os.listdir(fs.path("app"))) == ["app.env"]


def test_short_form_and_configparser_reads_an_ini_render(secretfs, workdir):
    t = write_template(
        workdir, "db",
        "[database]\nuser = {{ prod/db/username }}\npassword = {{ prod/db/password }}\n"
        "port = {{ prod/db/port }}\n",
    )
    fs = secretfs(DOC, options=["-o", f"template=conf/db.ini:{t}:ini"])
    cp = configparser.RawConfigParser()
    cp.read_string(fs.path("conf/db.ini").read_text())
    assert cp["database"]["user"] == "app-user-11"
    assert cp["database"]["password"] == HOSTILE
    assert cp["database"]["port"] == "5432"
    # A value an ini line cannot hold: EIO, logged with template, line, reference, format.
    bad = write_template(workdir, "bad", "x = 1\nm = {{ prod/multiline }}\n")
    fs2 = secretfs(DOC, options=["-o", f"template=conf/bad.ini:{bad}:ini"])
    with pytest.raises(OSError) as e:
        fs2.path("conf/bad.ini").read_bytes()
    assert e.value.errno == 5  # EIO
    fs2.wait_stderr("template conf/bad.ini line 2: prod/multiline: ")
    assert "(format ini)" in fs2.stderr()


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed (DEB_TEST)")
def test_nginx_includes_a_rendered_config(tmount, workdir):
    t = write_template(
        workdir, "upstream",
        "{{! nginx wants the token raw: it is a plain header value }}"
        'proxy_set_header Authorization "Bearer {{ prod/api-token | raw }}";\n',
    )
    fs = tmount([("nginx-auth", {"file": t, "path": "nginx/auth.conf", "format": "raw"})])
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"pid {workdir}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
        f"  access_log off;\n  server {{\n    listen 127.0.0.1:1;\n"
        f"    location / {{\n      include {fs.path('nginx/auth.conf')};\n"
        f"      proxy_pass http://127.0.0.1:2;\n    }}\n  }}\n}}\n"
    )
    r = subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["nginx", "-T", "-c", str(conf)], capture_output=True, text=True,
                       timeout=CMD_TIMEOUT)
    assert 'proxy_set_header Authorization "Bearer tok-11-abcdefgh";' in r.stdout


POLICY = """\
permit user:sfst-alice  app/**
permit user:sfst-alice  prod/**
permit user:sfst-carol  app/**
permit user:sfst-carol  prod/db/username
"""


def test_each_reference_is_checked_for_the_reader(tmount, workdir, agents):
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    audit = workdir / "audit.log"
    t = write_template(workdir, "app", "U={{ prod/db/username }}\nP={{ prod/db/password }}\n")
    fs = tmount(
        [
            ("app-env", {"file": t, "path": "app/app.env", "format": "env"}),
            ("whole", {"file": t, "path": "app/whole.env", "format": "env",
                       "access": "template"}),
        ],
        options=["-o", f"policy={policy}", "-o", f"audit={audit}"],
    )
    alice, bob, carol = agents["alice"], agents["bob"], agents["carol"]
    want = b'U="app-user-11"\nP="' + HOSTILE.replace("\\", "\\\\").replace('"', '\\"') \
        .replace("$", "\\$").replace("`", "\\`").encode() + b'"\n'
    assert alice.read(fs.path("app/app.env")) == want
    # carol may open the template's path and the user name, not the password.
    assert carol.read(fs.path("app/app.env")) == "EACCES"
    assert carol.read(fs.path("prod/db/password")) == "EACCES"
    # bob may not open the template's path at all.
    assert bob.read(fs.path("app/app.env")) == "EACCES"
    assert bob.read(fs.path("app/whole.env")) == "EACCES"
    # access = template: the rendered file as a unit, for whoever may open its path.
    assert carol.read(fs.path("app/whole.env")) == want

    def records():
        return [json.loads(line) for line in audit.read_text().splitlines()]

    wait_until(lambda: any(r["op"] == "render" and r["decision"] == "deny" for r in records()),
               what="a denied render record")
    recs = records()
    denied = [r for r in recs if r["op"] == "render" and r["decision"] == "deny"]
    assert [(r["path"], r["template"], r["uid"]) for r in denied] == [
        ("prod/db/password", "app-env", agents["carol"].user.uid)]
    ok = [r for r in recs if r["op"] == "render" and r["uid"] == agents["alice"].user.uid]
    assert sorted(r["path"] for r in ok) == ["prod/db/password", "prod/db/username"]
    assert all(r["template"] == "app-env" and r["decision"] == "permit" and r["version"]
               for r in ok)
    # access = template still records what the render read, as permitted.
    whole = [r for r in recs if r["op"] == "render" and r["template"] == "whole"
             and r["uid"] == carol.user.uid]
    assert sorted((r["path"], r["decision"]) for r in whole) == [
        ("prod/db/password", "permit"), ("prod/db/username", "permit")]
    opens = [r for r in recs if r["op"] == "open" and r.get("template")]
    assert {(r["path"], r["errno"]) for r in opens if r["uid"] == carol.user.uid} == {
        ("app/app.env", 13), ("app/whole.env", 0)}
    text = audit.read_bytes()
    for v in fs.secrets:
        assert v not in text or len(v) < 6, "a value in the audit log"
    assert HOSTILE.encode() not in text


def test_hide_denied_size_hides_a_render_with_a_denied_reference(tmount, workdir, agents):
    """A render's length sums its references' lengths: with hide_denied_size a
    reader permitted the template's path but not one reference (carol) sees
    size 0, as for the secret itself, and nothing is audited as read."""
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    audit = workdir / "audit.log"
    t = write_template(workdir, "app", "P={{ prod/db/password }}\n")
    fs = tmount(
        [
            ("app-env", {"file": t, "path": "app/app.env", "format": "raw"}),
            ("whole", {"file": t, "path": "app/whole.env", "format": "raw",
                       "access": "template"}),
        ],
        options=["-o", f"policy={policy}", "-o", f"audit={audit}", "-o", "hide_denied_size"],
    )
    alice, carol = agents["alice"], agents["carol"]
    full = len(b"P=" + HOSTILE.encode() + b"\n")
    assert alice.size(fs.path("app/app.env")) == full
    assert carol.size(fs.path("prod/db/password")) == 0
    assert carol.size(fs.path("app/app.env")) == 0
    # access = template grants the render as a unit, its size with it.
    assert carol.size(fs.path("app/whole.env")) == full
    assert alice.read(fs.path("app/app.env")) == b"P=" + HOSTILE.encode() + b"\n"
    recs = [json.loads(line) for line in audit.read_text().splitlines()]
    # Only alice's open read the value: the stats audited no render.
    assert [(r["path"], r["uid"]) for r in recs if r["op"] == "render"
            and r["template"] == "app-env"] == [("prod/db/password", alice.user.uid)]


def test_rotation_rerenders_and_an_open_handle_keeps_its_bytes(tmount, workdir):
    t = write_template(workdir, "tok", "TOKEN={{ prod/api-token }}\n")
    fs = tmount([("tok", {"file": t, "path": "tok.env", "format": "env"})],
                options=["-o", "ttl=0"])
    p = fs.path("tok.env")
    with open(p, "rb") as held:
        assert p.read_bytes() == b'TOKEN="tok-11-abcdefgh"\n'
        doc = dict(DOC, **{"prod/api-token": "tok-11-rotated"})
        fs.replace_store(doc)
        fs.wait_value("tok.env", b'TOKEN="tok-11-rotated"\n')
        assert held.read() == b'TOKEN="tok-11-abcdefgh"\n'
        # The rendered bytes never reach the page cache.
        assert cachestat(held.fileno())[0] == 0
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.read(fd, 4096) == b'TOKEN="tok-11-rotated"\n'
        assert cachestat(fd)[0] == 0
        assert os.fstat(fd).st_size == len(b'TOKEN="tok-11-rotated"\n')
    finally:
        os.close(fd)


def test_missing_references(tmount, workdir):
    t = write_template(workdir, "m", "A=1\nB=2\nP={{ prod/db/pasword }}\n")
    e = write_template(workdir, "e", "P={{ prod/db/pasword }}\nQ={{ nope | default \"d\" }}\n")
    fs = tmount([("app-env", {"file": t, "path": "m.env", "format": "env"}),
                 ("empty", {"file": e, "path": "e.env", "format": "env", "missing": "empty"})])
    with pytest.raises(OSError) as err:
        fs.path("m.env").read_bytes()
    assert err.value.errno == 5
    fs.wait_stderr("template app-env line 3: prod/db/pasword: not found")
    assert fs.path("e.env").read_bytes() == b'P=""\nQ="d"\n'


def run_daemon(argv):
    return subprocess.run([SECRETFS_BIN, "-f", *argv], capture_output=True, text=True,
                          timeout=CMD_TIMEOUT, env=sanitizer_env())


def test_a_broken_template_is_a_startup_error(workdir):
    store = workdir / "store.json"
    store.write_text(json.dumps(DOC))
    os.chmod(store, 0o600)
    mnt = workdir / "mnt"
    mnt.mkdir()
    cases = [
        ("x=1\ny={{ prod/db/password | nope }}\n", ":2:25: unknown filter 'nope'"),
        ("x={{ prod/db/password\n", ":1:3: '{{' without a closing '}}'"),
        ("x={{ .secretfs/view/env/prod/db }}\n", ":1:3: '.secretfs/view/env/prod/db' is inside"),
    ]
    for i, (text, want) in enumerate(cases):
        t = write_template(workdir, f"broken{i}", text)
        r = run_daemon(["-o", f"template=x.env:{t}:env", f"file:{store}", str(mnt)])
        assert r.returncode != 0
        assert f"secretfs: {t}{want}" in r.stderr, r.stderr
        assert HOSTILE not in r.stderr
    t = write_template(workdir, "ok", "x={{ prod/api-token }}\n")
    for path, want in [(".secretfs/x.env", ".secretfs/ is reserved"),
                       ("../x.env", "not a mount path")]:
        r = run_daemon(["-o", f"template={path}:{t}", f"file:{store}", str(mnt)])
        assert r.returncode != 0 and want in r.stderr, r.stderr
    # Templates do not refer to templates (nor to the stored secret one hides).
    t2 = write_template(workdir, "nest", "a\n  {{ x.env }}\n")
    r = run_daemon(["-o", f"template=x.env:{t}", "-o", f"template=y.env:{t2}",
                    f"file:{store}", str(mnt)])
    assert r.returncode != 0
    assert f"{t2}:2:3: 'x.env' is the path of [template x.env]" in r.stderr, r.stderr
    # The template file gets the trust checks of the store and the policy.
    os.chmod(t, 0o666)
    r = run_daemon(["-o", f"template=x.env:{t}", f"file:{store}", str(mnt)])
    assert r.returncode != 0 and "writable by group or others" in r.stderr, r.stderr


def test_reload_keeps_the_previous_template_on_error(tmount, workdir):
    t = write_template(workdir, "r", "V={{ prod/api-token }}\n")
    fs = tmount([("r", {"file": t, "path": "r.env", "format": "env"})],
                options=["-o", f"control={workdir / 'ctl.sock'}"])
    assert fs.path("r.env").read_bytes() == b'V="tok-11-abcdefgh"\n'
    t.write_text("V={{ prod/api-token | bogus }}\n")
    os.kill(fs.pid, signal.SIGHUP)
    fs.wait_stderr(f"{t}:1:23: unknown filter 'bogus'")
    fs.wait_stderr("keeping the previous templates")
    assert fs.path("r.env").read_bytes() == b'V="tok-11-abcdefgh"\n'
    t.write_text("W={{ prod/api-token | shell }}\n")
    os.kill(fs.pid, signal.SIGHUP)
    fs.wait_stderr("1 template reloaded")
    assert fs.path("r.env").read_bytes() == b"W='tok-11-abcdefgh'\n"
    # secretfs ctl reload answers the same, first error included.
    sock = str(workdir / "ctl.sock")
    t.write_text("X={{ prod/api-token }\n")
    r = subprocess.run([SECRETFS_BIN, "ctl", "--socket", sock, "reload"], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 1, r
    assert r.stderr == f"error: {t}:1:21: expected '|' or '}}}}'; keeping the previous templates\n"
    assert fs.path("r.env").read_bytes() == b"W='tok-11-abcdefgh'\n"
    t.write_text("X={{ prod/api-token }}\n")
    r = subprocess.run([SECRETFS_BIN, "ctl", "--socket", sock, "reload"], capture_output=True,
                       text=True, timeout=CMD_TIMEOUT)
    assert (r.returncode, r.stdout) == (0, "ok reloaded 1 template\n"), r
    assert fs.path("r.env").read_bytes() == b'X="tok-11-abcdefgh"\n'


def test_a_template_wins_a_clash_with_the_store(tmount, workdir):
    t = write_template(workdir, "s", "{{ prod/api-token | raw }}")
    fs = tmount([("shadow", {"file": t, "path": "shadowed", "format": "raw"})])
    assert fs.path("shadowed").read_bytes() == b"tok-11-abcdefgh"
    assert os.listdir(fs.mnt).count("shadowed") == 1
    fs.wait_stderr("'shadowed' is both template shadow and a stored secret or folder")


def test_expand_gives_the_format_view_and_checks_every_key(tmount, workdir, agents):
    """{{* PATH }} is byte for byte the view; a reader denied one key gets EACCES."""
    policy = workdir / "policy.conf"
    write_policy(policy, POLICY)
    t = write_template(workdir, "all", "# all of prod/db\n{{* prod/db }}")
    fs = tmount([("all", {"file": t, "path": "app/db.env", "format": "env"}),
                 ("alljson", {"file": t, "path": "app/db.json", "format": "json"})],
                options=["-o", f"policy={policy}"])
    alice, carol = agents["alice"], agents["carol"]
    view = alice.read(fs.path(".secretfs/view/env/prod/db"))
    assert isinstance(view, bytes), view
    rendered = alice.read(fs.path("app/db.env"))
    assert rendered == b"# all of prod/db\n" + view
    copy = workdir / "db.env"  # what alice read, for a root shell to source
    copy.write_bytes(rendered)
    got = source_env(copy, ["password", "username", "port"])
    copy.unlink()
    assert got == {"password": HOSTILE, "username": "app-user-11", "port": "5432"}
    body = alice.read(fs.path("app/db.json"))
    assert json.loads(body.split(b"\n", 1)[1])["port"] == 5432
    # carol may read prod/db/username but not the other keys: no partial file.
    assert carol.read(fs.path("app/db.env")) == "EACCES"


EXAMPLES = REPO / "examples" / "templates"

PROPS_READER = """
import java.io.FileInputStream;
import java.util.Properties;
public class ReadProps {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties();
        try (FileInputStream in = new FileInputStream(a[0])) { p.load(in); }
        for (String k : new java.util.TreeSet<>(p.stringPropertyNames())) {
            StringBuilder h = new StringBuilder();
            for (byte b : p.getProperty(k).getBytes("UTF-8")) h.append(String.format("%02x", b));
            System.out.println(k + " " + h);
        }
    }
}
"""


def test_every_example_renders(secretfs, workdir):
    """examples/templates/: its config, with paths moved here, against examples/store.json."""
    store_doc = json.loads((REPO / "examples" / "store.json").read_text())
    doc = dict(store_doc, **{"prod/db": dict(store_doc["prod/db"], password=HOSTILE)})
    tdir = workdir / "templates"
    tdir.mkdir()
    for t in EXAMPLES.glob("*.tmpl"):
        shutil.copy(t, tdir / t.name)
    conf = (EXAMPLES / "secretfs.conf").read_text().replace("/etc/secretfs/templates", str(tdir))
    renders = {}

    def argv(store, mnt):
        cfg = workdir / "secretfs.conf"
        cfg.write_text(conf.replace("file:/etc/secretfs/store.json", f"file:{store}")
                       .replace("mountpoint = /secrets", f"mountpoint = {mnt}"))
        os.chmod(cfg, 0o600)
        return ["--config", str(cfg)]

    fs = secretfs(doc, argv=argv)
    sections = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    sections.read_string(conf)
    paths = [sections[s]["path"] for s in sections.sections() if s.startswith("template ")]
    assert len(paths) == len(list(EXAMPLES.glob("*.tmpl"))) == 3
    for p in paths:
        renders[p] = fs.path(p).read_bytes()

    env = source_env(fs.path("app/app.env"), ["DB_USER", "DB_PASSWORD", "DB_PORT", "API_KEY",
                                              "DATABASE_URL"])
    assert env["DB_PASSWORD"] == HOSTILE and env["DB_PORT"] == "5432"
    assert env["API_KEY"] == doc["prod/api-key"]
    url = urlsplit(env["DATABASE_URL"])
    assert (unquote(url.username), unquote(url.password), url.port) == ("app", HOSTILE, 5432)

    assert renders["nginx/upstream-auth.conf"] == \
        f'proxy_set_header X-Api-Key "{doc["prod/api-key"]}";\n'.encode()

    props = renders["app/application.properties"]
    if shutil.which("java"):
        src = workdir / "ReadProps.java"
        src.write_text(PROPS_READER)
        r = subprocess.run(["java", str(src), str(fs.path("app/application.properties"))],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        got = {k: bytes.fromhex(v).decode() for k, v in
               (line.split(" ") for line in r.stdout.splitlines())}
        assert got["spring.datasource.password"] == HOSTILE
        assert got["spring.datasource.username"] == "app"
        assert got["spring.datasource.url"] == "jdbc:postgresql://db.internal:5432/app"
    else:
        assert b"spring.datasource.username=app\n" in props


# A transient store failure: the inputs are served stale, as plain files are (Vault test server).
from test_vault import vault_server, vmount, vs  # noqa: E402,F401  (fixtures)


def test_a_failing_store_serves_stale_inputs(vs, vmount, workdir):
    t = write_template(workdir, "v", "P={{ app/db/password }}\nU={{ app/db/user }}\n")
    d = vmount(vs, options=["-o", "ttl=1", "-o", "max_attempts=1",
                            "-o", f"template=v.env:{t}:env"])
    want = b'P="s3cr3t-pa55word"\nU="app-user-77"\n'
    assert d.path("v.env").read_bytes() == want
    reads = vs.secret_count("secret/app/db", "read")
    # One render reads the object once for both keys.
    assert reads == 1
    vs.add_fault(kind="status", status=500, path="/data/")
    seen = []

    def refetched():
        # Past the ttl a read starts a refresh, which the store now fails.
        seen.append(d.path("v.env").read_bytes())
        return vs.secret_count("secret/app/db", "read") > reads

    wait_until(refetched, what="a refetch of app/db past its ttl")
    # The store answers 500 and the value expired: every render still had its inputs.
    assert d.path("v.env").read_bytes() == want
    assert set(seen) == {want}
    vs.clear_faults()
