"""
Issue 11, format views: .secretfs/view/FMT/PATH through a real mount, read
back by the real parsers of each format (golden tests over hostile values):

- env and shell: bash (`set -a; . FILE`, then the variables as bash holds
  them), and systemd's own EnvironmentFile= parser through systemd-run
  (skipped, saying why, when systemd is not PID 1: containers);
- json and yaml: Python's json and PyYAML (Debian python3-yaml), which must
  give back the store's types (5432 stays a number);
- properties: java.util.Properties.load() of the machine's Java, a tiny
  program compiled by the test into a temporary directory (skipped when
  there is no javac).

Then what a format cannot hold (EIO, logged without the value), the meta
directory itself (hidden unless -o show_meta, renamed by -o meta_dir, wins a
clash with a stored name), st_size, the page cache, a rotation under an open
handle, and per-reader checks with real uids and the audit log.
"""

import errno
import json
import os
import shutil
import subprocess
import textwrap

import pytest

from helpers import CMD_TIMEOUT, read_file
from policy_env import DOC as POLICY_DOC
from policy_env import EACCES, VALUES
from test_errors import cachestat

V = ".secretfs/view"

# Every value is long enough (>= 6 bytes) for the leak checks, except the empty one.
HOSTILE = {
    "quotes": "vw-\"double\" 'single' \"'mixed'\"",
    "dollar": "vw-$HOME ${PATH} $(id -u) $$ $1",
    "backquote": "vw-`id` `uname -a`",
    "newline": "vw-line one\nline two\n\nline four\n",
    "cr": "vw-cr\r\nhalf\rdone\r",
    "trailing_backslash": "vw-ends with a backslash\\",
    "backslashes": "vw-\\n is not a newline, \\\\ two, \\\" three",
    "unicode": "vw-café 日本語 🔑 \u2028 \u0085 ß",
    "long": "vw-" + "0123456789abcdef" * 6000,  # a 96 KiB line
    "empty": "",
    "blanks": "  vw-leading and trailing blanks  ",
    "specials": "vw-a=b:c#d!e;f%g&h|i<j>k*l?m[n]o{p}q~r^s",
    "tab": "vw-\ttab\tseparated\t",
    "yes": "vw-key that YAML 1.1 would take for true",
}
TYPED = {
    "port": 5432,
    "ratio": 0.5,
    "huge": 1e22,
    "negative": -17,
    "on": True,
    "off": False,
    "nothing": None,
    "list": [1, "two", 3.5, None],
    "nested": {"a": {"b": [True, "x"]}, "empty": {}},
    "name": "vw-typed-name",
}
DOC = {
    "app/hostile": HOSTILE,
    "app/typed": TYPED,
    "app/plain": "vw-plain-secret-value",
    "app/binary": {"der": {"$base64": "MIIB/w=="}, "ok": "vw-binary-ok-value"},
    "app/nul": {"k": "vw-nul\u0000inside"},
    "app/dashed": {"db-password": "vw-dashed-password", "dbUser": "vw-camel-user"},
    "app/empty-object": {},
}


def cat_values(fs, doc):
    """Each key of object @doc as cat shows it: what env, shell and properties readers get."""
    return {k: read_file(fs.path(doc, k)).decode() for k in DOC[doc]}


@pytest.fixture
def fs(secretfs):
    return secretfs(DOC)


def view(fs, fmt, path):
    return fs.path(V, fmt, path)


# ---------------------------------------------------------------- bash


BASH_READ = r"""
set -a
. "$1"
shift
for k in "$@"; do printf '%s\0' "${!k}"; done
"""


def bash_values(path, keys, export=False):
    """The variables @keys after bash sources @path (set -a), as bash holds them."""
    r = subprocess.run(
        ["env", "-i", "/bin/bash", "--noprofile", "--norc", "-c", BASH_READ, "bash", str(path),
         *keys],
        capture_output=True,
        timeout=CMD_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    assert r.stderr == b"", r.stderr.decode(errors="replace")
    vals = r.stdout.split(b"\0")[:-1]
    return dict(zip(keys, (v.decode() for v in vals)))


@pytest.mark.parametrize("fmt", ["env", "shell"])
@pytest.mark.parametrize("doc", ["app/hostile", "app/typed"])
def test_bash_sources_env_and_shell_views(fs, fmt, doc):
    want = cat_values(fs, doc)
    assert want["port" if doc == "app/typed" else "quotes"] in ("5432", HOSTILE["quotes"])
    assert bash_values(view(fs, fmt, doc), sorted(want)) == want


def test_a_script_sourcing_the_env_view_gets_the_values(fs, workdir):
    """The legacy case: a shell script that sources a .env and uses it."""
    script = workdir / "app.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        set -a
        . '{view(fs, "env", "app/hostile")}'
        printf '%s' "$quotes" > '{workdir}/out-quotes'
        printf '%s' "$dollar" > '{workdir}/out-dollar'
        printf '%s' "$newline" > '{workdir}/out-newline'
        """))
    script.chmod(0o700)
    r = subprocess.run(["/bin/sh", str(script)], capture_output=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    for k in ("quotes", "dollar", "newline"):
        assert (workdir / f"out-{k}").read_text() == HOSTILE[k]


# ---------------------------------------------------------------- systemd


def systemd_is_pid1():
    try:
        return os.readlink("/proc/1/exe").endswith("/systemd")
    except OSError:
        return False


@pytest.mark.skipif(not systemd_is_pid1(),
                    reason="systemd is not PID 1 here (a container): systemd-run cannot start "
                           "a unit, so systemd's EnvironmentFile= parser cannot be asked")
def test_systemd_environment_file_reads_the_env_view(fs, workdir):
    doc = HOSTILE
    keys = sorted(k for k in doc if k != "long")  # the unit's environment block has a limit
    out = workdir / "systemd-env.out"
    r = subprocess.run(
        ["systemd-run", "--wait", "--quiet", "--collect",
         f"--property=EnvironmentFile={view(fs, 'env', 'app/hostile')}",
         "/bin/sh", "-c", f"/usr/bin/env -0 > '{out}'"],
        capture_output=True, timeout=CMD_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    env = dict(e.split(b"=", 1) for e in out.read_bytes().split(b"\0") if e)
    assert {k: env.get(k.encode(), b"").decode() for k in keys} == {k: doc[k] for k in keys}


# ---------------------------------------------------------------- json and yaml


@pytest.mark.parametrize("doc", ["app/hostile", "app/typed", "app/empty-object"])
def test_json_view_is_the_object_with_its_types(fs, doc):
    got = json.loads(read_file(view(fs, "json", doc)))
    assert got == DOC[doc]
    assert type(got.get("port", 0)) is int and type(got.get("ratio", 0.0)) is float


@pytest.mark.parametrize("doc", ["app/hostile", "app/typed", "app/empty-object"])
def test_yaml_view_is_the_object_with_its_types(fs, doc):
    yaml = pytest.importorskip("yaml", reason="python3-yaml is missing (DEB_TEST has it)")
    got = yaml.safe_load(read_file(view(fs, "yaml", doc)))
    assert got == DOC[doc]
    if doc == "app/typed":
        assert type(got["port"]) is int and type(got["huge"]) is float
        assert got["on"] is True and got["nothing"] is None


def test_the_issue_example(secretfs):
    fs = secretfs({"prod/db": {"password": "s3cr3t-example", "port": 5432, "username": "app"}})
    assert read_file(view(fs, "env", "prod/db")) == (
        b'password="s3cr3t-example"\nport="5432"\nusername="app"\n')
    assert read_file(view(fs, "json", "prod/db")) == (
        b'{"password":"s3cr3t-example","port":5432,"username":"app"}\n')
    assert read_file(view(fs, "shell", "prod/db")) == (
        b"export password='s3cr3t-example'\nexport port='5432'\nexport username='app'\n")


# ---------------------------------------------------------------- java.util.Properties


READ_PROPS = """\
import java.io.FileInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import java.util.TreeSet;

public class ReadProps {
    static String hex(String s) {
        StringBuilder b = new StringBuilder("x");
        for (byte x : s.getBytes(StandardCharsets.UTF_8))
            b.append(String.format("%02x", x));
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            p.load(in);
        }
        for (String k : new TreeSet<>(p.stringPropertyNames()))
            System.out.println(hex(k) + " " + hex(p.getProperty(k)));
    }
}
"""


@pytest.fixture(scope="module")
def read_props(tmp_path_factory):
    javac, java = shutil.which("javac"), shutil.which("java")
    if not javac or not java:
        pytest.skip("no JDK (javac) on this machine: the properties view is checked by the "
                    "escaper's unit tests only")
    d = tmp_path_factory.mktemp("java")
    (d / "ReadProps.java").write_text(READ_PROPS)
    r = subprocess.run([javac, "-d", str(d), str(d / "ReadProps.java")], capture_output=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr

    def run(path):
        r = subprocess.run([java, "-cp", str(d), "ReadProps", str(path)], capture_output=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        out = {}
        for line in r.stdout.decode().splitlines():
            k, v = line.split(" ")
            out[bytes.fromhex(k[1:]).decode()] = bytes.fromhex(v[1:]).decode()
        return out

    return run


@pytest.mark.parametrize("doc", ["app/hostile", "app/typed", "app/dashed"])
def test_java_properties_reads_the_properties_view(fs, read_props, doc):
    assert read_props(view(fs, "properties", doc)) == cat_values(fs, doc)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("fmt,doc,why", [
    ("json", "app/binary", "key 'der': json cannot hold invalid UTF-8"),
    ("yaml", "app/binary", "key 'der': yaml cannot hold invalid UTF-8"),
    ("properties", "app/binary", "key 'der': properties cannot hold invalid UTF-8"),
    ("env", "app/nul", "key 'k': env cannot hold a NUL"),
    ("shell", "app/nul", "key 'k': shell cannot hold a NUL"),
    ("env", "app/dashed", "key 'db-password' is not a valid env name"),
    ("shell", "app/dashed", "key 'db-password' is not a valid shell name"),
])
def test_a_view_the_format_cannot_hold_is_eio_and_logged(fs, fmt, doc, why):
    with pytest.raises(OSError) as e:
        read_file(view(fs, fmt, doc))
    assert e.value.errno == errno.EIO
    fs.wait_stderr(why)
    assert f"{V}/{fmt}/{doc}" in fs.stderr()


def test_other_formats_of_the_same_object_still_render(fs):
    # The binary key refuses json; env keeps bytes as they are, and the other key is there.
    assert b'ok="vw-binary-ok-value"' in read_file(view(fs, "env", "app/binary"))
    assert json.loads(read_file(view(fs, "json", "app/nul"))) == DOC["app/nul"]


def test_view_env_case_upper(secretfs):
    fs = secretfs(DOC, options=["-o", "view_env_case=upper"])
    assert read_file(view(fs, "env", "app/dashed")) == (
        b'DB_PASSWORD="vw-dashed-password"\nDB_USER="vw-camel-user"\n')
    assert bash_values(view(fs, "shell", "app/dashed"), ["DB_PASSWORD", "DB_USER"]) == {
        "DB_PASSWORD": "vw-dashed-password", "DB_USER": "vw-camel-user"}
    # json keeps the store's keys
    assert json.loads(read_file(view(fs, "json", "app/dashed"))) == DOC["app/dashed"]


def test_only_object_secrets_have_views(fs):
    for p, err in [("app/plain", errno.ENOENT), ("app/nope", errno.ENOENT),
                   ("app/hostile/quotes", errno.ENOTDIR)]:
        with pytest.raises(OSError) as e:
            read_file(view(fs, "env", p))
        assert e.value.errno == err, (p, e.value)
    for fmt in ("raw", "ini", "url", "base64"):
        assert not os.path.exists(fs.path(V, fmt))


# ---------------------------------------------------------------- the meta directory


def test_meta_directory_layout_and_listing(fs):
    assert ".secretfs" not in os.listdir(fs.mnt)  # listed only with show_meta
    assert sorted(os.listdir(fs.path(".secretfs"))) == ["at", "versions", "view"]
    assert sorted(os.listdir(fs.path(V))) == ["env", "json", "properties", "shell", "yaml"]
    assert set(os.listdir(fs.path(V, "env"))) == {"app"}
    # a folder's view directory lists what the folder lists
    assert set(os.listdir(fs.path(V, "env", "app"))) == set(k.split("/")[1] for k in DOC)
    assert os.path.isdir(fs.path(V, "yaml", "app"))
    assert os.path.isfile(view(fs, "yaml", "app/typed"))


def test_show_meta_and_meta_dir(secretfs):
    doc = {".secretfs": "vw-stored-dot-secretfs", "app/db": {"user": "vw-meta-dir-user"}}
    fs = secretfs(doc, options=["-o", "show_meta"])
    assert sorted(os.listdir(fs.mnt)) == [".secretfs", "app"]
    # the meta directory wins the clash, and says so once
    assert os.path.isdir(fs.path(".secretfs"))
    os.listdir(fs.mnt)
    fs.wait_stderr("the store's '.secretfs' is hidden by the meta directory")
    assert fs.stderr().count("is hidden by the meta directory") == 1

    fs2 = secretfs(doc, options=["-o", "meta_dir=_meta"])
    assert sorted(os.listdir(fs2.mnt)) == [".secretfs", "app"]  # the store's own, a file
    assert read_file(fs2.path(".secretfs")) == b"vw-stored-dot-secretfs"
    assert read_file(fs2.path("_meta/view/env/app/db")) == b'user="vw-meta-dir-user"\n'
    assert "hidden by the meta directory" not in fs2.stderr()


def test_a_stored_object_named_like_the_meta_directory_is_hidden_in_views_too(secretfs):
    doc = {".secretfs": {"k": "vw-hidden-object-value"}, "app/db": {"user": "vw-user-2"}}
    fs = secretfs(doc)
    assert os.listdir(fs.path(V, "json")) == ["app"]
    assert not os.path.exists(fs.path(V, "json", ".secretfs"))
    assert not os.path.exists(fs.path(".secretfs", "k"))


# ---------------------------------------------------------------- the file itself


@pytest.mark.parametrize("fmt", ["env", "shell", "json", "yaml", "properties"])
def test_st_size_is_the_rendered_length(fs, fmt):
    p = view(fs, fmt, "app/hostile")
    assert os.stat(p).st_size == len(read_file(p)) > 96000


def test_a_view_stays_out_of_the_page_cache(fs):
    fd = os.open(view(fs, "json", "app/hostile"), os.O_RDONLY)
    try:
        data = b"".join(iter(lambda: os.read(fd, 65536), b""))
        assert json.loads(data) == HOSTILE
        assert cachestat(fd)[0] == 0, "a rendered view's pages are in the page cache"
    finally:
        os.close(fd)


def test_rotation_rerenders_at_the_next_open_and_an_open_handle_keeps_its_bytes(fs):
    p = view(fs, "env", "app/dashed")
    fs2 = {"db_password": "vw-before-rotation", "user": "vw-user-before"}
    fs.replace_store({**DOC, "app/dashed": fs2})
    before = b'db_password="vw-before-rotation"\nuser="vw-user-before"\n'
    fs.wait_value(f"{V}/env/app/dashed", before)
    fd = os.open(p, os.O_RDONLY)
    try:
        assert os.pread(fd, 10, 0) == before[:10]
        fs.replace_store({**DOC, "app/dashed": {"db_password": "vw-after-rotation!",
                                                "user": "vw-user-after"}})
        after = b'db_password="vw-after-rotation!"\nuser="vw-user-after"\n'
        fs.wait_value(f"{V}/env/app/dashed", after)
        # the handle opened before still reads the rendering of its open, whole
        assert os.pread(fd, 4096, 0) == before
    finally:
        os.close(fd)


# ---------------------------------------------------------------- per reader


def audit_records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_view_needs_every_key_and_a_denial_is_audited(policy_fs, agents, workdir):
    audit = workdir / "audit-views.log"
    fs = policy_fs(options=["-o", f"audit={audit}"])
    p = view(fs, "env", "app/db")
    want_env = (f'password="{POLICY_DOC["app/db"]["password"]}"\n'
                f'user="{POLICY_DOC["app/db"]["user"]}"\n').encode()
    got = {w: agents[w].read(p) for w in ("alice", "bob", "carol", "root")}
    assert got == {
        "alice": want_env,  # group app: app/** permitted
        "bob": EACCES,      # nothing under app
        "carol": EACCES,    # app/db/user yes, but app/db/password is denied to her
        "root": EACCES,
    }
    # what carol may read of the object, she still reads key by key
    assert agents["carol"].read(fs.path("app/db/user")) == VALUES["app/db/user"]

    recs = audit_records(audit)
    carol = agents["carol"].user.uid
    mine = [r for r in recs if r["uid"] == carol and r["path"] != "app/db/user"]
    assert [(r["op"], r["path"], r["decision"], r["errno"]) for r in mine] == [
        ("view", "app/db/password", "deny", 13),
        ("open", f"{V}/env/app/db", "deny", 13),
    ]
    assert mine[0]["rule"] and mine[0]["rule"].endswith(":4")  # the deny of line 4
    alice = agents["alice"].user.uid
    arec = [r for r in recs if r["uid"] == alice and r["path"] == f"{V}/env/app/db"]
    assert [(r["op"], r["decision"], r["errno"]) for r in arec] == [("open", "permit", 0)]
    # no value in the audit log (the autouse check of test_audit covers its own files)
    text = audit.read_bytes()
    assert not [v for v in VALUES.values() if v in text]


def test_view_directories_follow_the_policy(policy_fs, agents):
    fs = policy_fs()
    assert agents["alice"].listdir(fs.path(V, "json", "app")) == ["db", "token"]
    assert agents["bob"].listdir(fs.path(V, "json", "app")) == EACCES
    assert agents["bob"].listdir(fs.path(V, "json")) == ["public", "team"]
    assert agents["alice"].read(view(fs, "json", "team/alice")) == "ENOENT"  # not an object
    assert json.loads(agents["alice"].read(view(fs, "json", "app/db"))) == POLICY_DOC["app/db"]


def test_access_and_hidden_size_of_a_view_follow_every_key(policy_fs, agents):
    fs = policy_fs(options=["-o", "hide_denied_size"])
    p = view(fs, "json", "app/db")
    size = len(agents["alice"].read(p))  # root may not read app/db: alice may
    assert size > 0
    # access(2) answers as open would: carol is refused one key, so the view
    assert {w: agents[w].access(p) for w in ("alice", "carol", "bob")} == {
        "alice": True, "carol": False, "bob": False}
    # with hide_denied_size a reader the view refuses sees size 0, whoever asked first
    assert {w: agents[w].size(p) for w in ("carol", "alice", "bob")} == {
        "carol": 0, "alice": size, "bob": 0}
