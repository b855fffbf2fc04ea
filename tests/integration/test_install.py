"""
`make install` and the man pages.

`make install DESTDIR=TMP PREFIX=/usr` puts exactly the binary, the two
systemd units, secretfs(8), secretfs.conf(5), the README and the examples
(examples/container/ and examples/kubernetes/ included) in their usual places
with the usual modes, and `make uninstall` takes them away again.  The
installed man pages render with `man -l` and with groff's warnings on without
a single warning, have the usual sections, and between them name every
setting of src/config.c's table (secretfs.conf(5) under the right
[section]), so the documentation cannot fall behind the code.
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from helpers import CMD_TIMEOUT, REPO, SANITIZER, SECRETFS_BIN

MAN_PAGES = {"secretfs.8": "man8", "secretfs.conf.5": "man5"}


def make(*args):
    build = Path(SECRETFS_BIN).parent  # the binary under test: no rebuild with other flags
    r = subprocess.run(["make", "-s", "-C", str(REPO), *args, f"BUILD={build}",
                        f"SANITIZER={SANITIZER}"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT * 6)
    assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r


def unit_dir():
    """Where the Makefile puts units for PREFIX=/usr: systemd's own answer, as Debian's."""
    r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "/lib/systemd/system"


@pytest.fixture(scope="module")
def destdir():
    if not os.access(SECRETFS_BIN, os.X_OK):
        pytest.skip(f"{SECRETFS_BIN} is not built")
    d = Path(tempfile.mkdtemp(prefix="secretfs-install-"))
    try:
        make("install", f"DESTDIR={d}", "PREFIX=/usr")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tree(root):
    """{relative path: mode} of every non-directory under @root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


def expected_files():
    units = unit_dir().lstrip("/")
    want = {
        "usr/bin/secretfs": 0o755,
        f"{units}/secretfs.service": 0o644,
        f"{units}/secretfs@.service": 0o644,
        "usr/share/man/man8/secretfs.8": 0o644,
        "usr/share/man/man5/secretfs.conf.5": 0o644,
        "usr/share/doc/secretfs/README.md": 0o644,
    }
    # the examples with their folders (container/, kubernetes/)
    for ex in sorted((REPO / "examples").rglob("*")):
        if ex.is_file():
            want[f"usr/share/doc/secretfs/examples/{ex.relative_to(REPO / 'examples')}"] = 0o644
    return want


def test_install_file_list_and_modes(destdir):
    got = tree(destdir)
    assert got == expected_files()
    for p in got:
        assert not (destdir / p).is_symlink(), p
    # the binary is the one under test, the units run it from /usr/bin
    assert (destdir / "usr/bin/secretfs").read_bytes() == Path(SECRETFS_BIN).read_bytes()
    for unit in ("secretfs.service", "secretfs@.service"):
        text = (destdir / unit_dir().lstrip("/") / unit).read_text()
        assert re.search(r"^ExecStart=/usr/bin/secretfs -f ", text, re.M), unit
    for name in ("secretfs.8", "secretfs.conf.5"):
        assert (destdir / "usr/share/man" / MAN_PAGES[name] / name).read_bytes() == \
            (REPO / "docs" / name).read_bytes()


def test_default_prefix_is_usr_local_with_units_on_systemds_path():
    d = Path(tempfile.mkdtemp(prefix="secretfs-install-"))
    try:
        make("install", f"DESTDIR={d}")
        got = tree(d)
        assert got["usr/local/bin/secretfs"] == 0o755
        # /usr/local/lib/systemd/system is on systemd's unit search path
        unit = d / "usr/local/lib/systemd/system/secretfs.service"
        assert re.search(r"^ExecStart=/usr/local/bin/secretfs -f ", unit.read_text(), re.M)
        assert "usr/local/share/man/man8/secretfs.8" in got
        make("uninstall", f"DESTDIR={d}")
        assert tree(d) == {}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_uninstall_removes_every_installed_file():
    d = Path(tempfile.mkdtemp(prefix="secretfs-install-"))
    try:
        make("install", f"DESTDIR={d}", "PREFIX=/usr")
        assert tree(d)
        make("uninstall", f"DESTDIR={d}", "PREFIX=/usr")
        assert tree(d) == {}
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- man pages


def need(tool, package):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is missing (Debian package {package})")


def render_man(path):
    need("man", "man-db")
    env = {**os.environ, "MANWIDTH": "80", "MAN_DISABLE_SECCOMP": "1", "LC_ALL": "C.UTF-8"}
    r = subprocess.run(["man", "--warnings", "-l", str(path)], capture_output=True, text=True,
                       env=env, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", f"man -l {path.name} warns:\n{r.stderr}"
    return r.stdout


@pytest.mark.parametrize("name", sorted(MAN_PAGES))
def test_man_page_renders_without_warnings(destdir, name):
    need("groff", "groff-base")
    page = destdir / "usr/share/man" / MAN_PAGES[name] / name
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0 and r.stderr == "", f"groff warns on {name}:\n{r.stderr}"
    text = render_man(page)
    headings = set(re.findall(r"^([A-Z][A-Z ]+)$", text, re.M))
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "SEE ALSO"):
        assert section in headings, f"{name}: no {section} section (has {sorted(headings)})"
    title = name.rsplit(".", 1)
    assert text.lstrip().startswith(f"{title[0].upper()}({title[1]})"), text[:80]


def config_table():
    """(option name, section, key) of every setting in src/config.c."""
    table = (REPO / "src" / "config.c").read_text()
    rows = re.findall(r'^\s*\{ "([a-z_0-9]+)", "([a-z]+)", "([a-z_]+)", OPT_', table, re.M)
    assert len(rows) > 20, "the option table was not found in src/config.c"
    return rows


def conf_sections(text):
    """{section: its text} from the OPTIONS of the rendered secretfs.conf(5)."""
    body = text.split("\nOPTIONS\n", 1)[1].split("\nEXAMPLE\n", 1)[0]
    parts = re.split(r"^   \[([a-z]+)\]$", body, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_setting_is_documented(destdir):
    man8 = render_man(destdir / "usr/share/man/man8/secretfs.8")
    man5 = render_man(destdir / "usr/share/man/man5/secretfs.conf.5")
    # man breaks and hyphenates lines; join them before searching
    flat = re.sub(r"\s+", " ", re.sub(r"(\w)[\u2010-]\n\s+(\w)", r"\1\2", man8 + man5))
    sections = conf_sections(man5)
    spelled_otherwise = {"source", "mountpoint", "foreground", "debug", "fuse_options"}
    problems = []
    for name, section, key in config_table():
        if name not in spelled_otherwise and not re.search(rf"-o {name}\b", flat):
            problems.append(f"-o {name} is in neither man page")
        if section not in sections:
            problems.append(f"secretfs.conf(5) has no [{section}] section")
        elif not re.search(rf"^       {key} = ", sections[section], re.M) and \
                not re.search(rf"\b{key} = ", sections[section]):
            problems.append(f"secretfs.conf(5) [{section}] does not describe '{key} ='")
    assert not problems, "\n".join(problems)


def test_readme_links_the_man_pages():
    readme = (REPO / "README.md").read_text()
    assert "docs/secretfs.8" in readme and "docs/secretfs.conf.5" in readme
    assert "secretfs.1" not in readme
    assert not (REPO / "docs" / "secretfs.1").exists()
