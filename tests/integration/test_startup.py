"""Start-up: every failure is loud, exits non-zero and mounts nothing; --help, --version."""

import os
import re
import shutil

import pytest

from helpers import (
    REPO,
    SECRETFS_BIN,
    force_unmount,
    is_mounted,
    kill_pids,
    pids_serving,
    run_secretfs,
    session_mounts,
    write_store,
)

GOOD = {"app/token": "startup-token-value", "app/db": {"password": "startup-db-pass"}}
SECRET_VALUES = ["startup-token-value", "startup-db-pass"]

OUR_OPTIONS = [
    "ttl",
    "stale_ttl",
    "negative_ttl",
    "attr_timeout",
    "fetch_timeout",
    "cache_max_entries",
    "cache_max_bytes",
    "config",
]

MODES = {"foreground": ["-f"], "daemon": []}


def expect_failure(mnt, args, needles, *, prefix=(), forbidden=()):
    """Runs secretfs @args: it must exit non-zero, say every @needle on stderr, mount nothing."""
    before = session_mounts(mnt)
    r = run_secretfs(args, prefix=prefix, timeout=10)
    mounted = is_mounted(mnt)
    if mounted or r.returncode == 0:  # clean up whatever it started before failing the test
        force_unmount(mnt)
        kill_pids(pids_serving(str(mnt)))
    assert not mounted, f"{mnt} was mounted; stderr:\n{r.stderr}"
    assert r.returncode != 0, f"exit status 0; stderr:\n{r.stderr}"
    assert r.stderr.strip(), "no message on stderr"
    for n in needles:
        assert n in r.stderr, f"{n!r} not in stderr:\n{r.stderr}"
    for s in [*SECRET_VALUES, *forbidden]:
        assert s not in r.stderr + r.stdout, f"secret {s!r} printed:\n{r.stderr}"
    assert session_mounts(mnt) - before == set(), "a new fuse.secretfs mount appeared"
    return r


@pytest.fixture
def env(workdir):
    """A good store and an empty mountpoint, to break one at a time."""
    store = workdir / "store.json"
    write_store(store, GOOD)
    mnt = workdir / "mnt"
    mnt.mkdir()
    return store, mnt


@pytest.fixture(params=sorted(MODES))
def mode(request):
    return MODES[request.param]


@pytest.mark.parametrize("perm", [0o620, 0o660, 0o602, 0o622, 0o666])
def test_store_writable_by_group_or_world_is_refused(env, mode, perm):
    store, mnt = env
    os.chmod(store, perm)
    expect_failure(
        mnt,
        [*mode, f"file:{store}", str(mnt)],
        [str(store), "writable by group or others", f"{perm:04o}"],
    )


def test_store_readable_by_others_is_accepted(secretfs):
    # Only writability matters: 0644 is allowed (the control for the test above).
    fs = secretfs(GOOD, store_mode=0o644)
    assert (fs.store.stat().st_mode & 0o777) == 0o644
    assert fs.path("app/token").read_bytes() == b"startup-token-value"


def test_store_owned_by_another_uid_is_refused(env, mode):
    store, mnt = env
    os.chown(store, 65534, 65534)
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [str(store), "owned by uid 65534"])


def test_missing_store_is_refused(env, mode):
    store, mnt = env
    missing = store.parent / "no-such-store.json"
    expect_failure(
        mnt, [*mode, f"file:{missing}", str(mnt)], [str(missing), "No such file or directory"]
    )


def test_store_that_is_a_directory_is_refused(env, mode):
    store, mnt = env
    d = store.parent / "store-dir"
    d.mkdir(mode=0o700)
    expect_failure(mnt, [*mode, f"file:{d}", str(mnt)], [str(d), "not a regular file"])


def test_malformed_store_is_refused_with_file_and_line(env, mode):
    store, mnt = env
    leak = "LEAK-AT-STARTUP-ERROR"
    write_store(store, raw='{\n "app/token": "x",\n\n "app/db": "y" "' + leak + '"\n}\n')
    r = expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [f"{store}:4:"], forbidden=[leak])
    assert re.search(re.escape(str(store)) + r":4:\d+: ", r.stderr), r.stderr


def test_store_that_is_not_an_object_is_refused(env, mode):
    store, mnt = env
    write_store(store, raw='["startup-token-value"]')
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [str(store), "JSON object"])


def test_empty_store_file_is_refused(env, mode):
    store, mnt = env
    write_store(store, raw="")
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [str(store)])


def test_store_larger_than_64_mib_is_refused(env, mode):
    store, mnt = env
    with open(store, "r+b") as f:
        f.truncate(64 * 1024 * 1024 + 1)  # sparse: the size check comes before reading
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [str(store), "larger than 64 MiB"])


@pytest.mark.parametrize("bad_id", ["app/../etc", "/abs", "trailing/", "a//b", "."])
def test_store_with_unusable_secret_path_is_refused(env, bad_id):
    store, mnt = env
    write_store(store, {"app/token": "startup-token-value", bad_id: "startup-db-pass"})
    expect_failure(mnt, ["-f", f"file:{store}", str(mnt)], [str(store), f"'{bad_id}'"])


def test_missing_mountpoint_is_refused(env, mode):
    store, mnt = env
    missing = mnt.parent / "no-such-dir"
    expect_failure(
        missing,
        [*mode, f"file:{store}", str(missing)],
        ["mountpoint", str(missing), "No such file or directory"],
    )


def test_mountpoint_not_empty_is_refused(env, mode):
    store, mnt = env
    (mnt / "existing-file").write_text("x")
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt)], [str(mnt), "not empty"])


def test_mountpoint_that_is_a_file_is_refused(env, mode):
    store, mnt = env
    f = mnt.parent / "a-file"
    f.write_text("")
    expect_failure(f, [*mode, f"file:{store}", str(f)], [str(f), "not a directory"])


def test_missing_dev_fuse_is_refused(env, mode):
    # Hide /dev behind an empty tmpfs in a private mount namespace: the host is untouched.
    if not shutil.which("unshare"):
        pytest.skip("unshare(1) is missing (util-linux)")
    store, mnt = env
    prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        'mount -t tmpfs -o size=64k,mode=755 none /dev && exec "$0" "$@"',
    ]
    expect_failure(
        mnt,
        [*mode, f"file:{store}", str(mnt)],
        ["/dev/fuse", "No such file or directory", "modprobe fuse"],
        prefix=prefix,
    )
    assert os.path.exists("/dev/fuse"), "the host's /dev/fuse disappeared"


def test_unknown_fuse_option_is_refused(env, mode):
    store, mnt = env
    expect_failure(mnt, [*mode, "-o", "bogus_option", f"file:{store}", str(mnt)], ["bogus_option"])


def test_unknown_backend_is_refused(env, mode):
    store, mnt = env
    expect_failure(mnt, [*mode, "nosuchbackend:x", str(mnt)], ["nosuchbackend"])


def test_source_without_scheme_is_refused(env, mode):
    store, mnt = env
    expect_failure(mnt, [*mode, str(store), str(mnt)], ["SOURCE", "SCHEME:REST"])


def test_extra_argument_is_refused(env, mode):
    store, mnt = env
    expect_failure(mnt, [*mode, f"file:{store}", str(mnt), "extra"], ["unexpected argument"])


def test_no_mountpoint_is_refused(env):
    store, mnt = env
    expect_failure(mnt, ["-f", f"file:{store}"], ["no MOUNTPOINT"])


@pytest.mark.parametrize(
    "opt, needle",
    [
        ("ttl=abc", "expected a duration"),
        ("stale_ttl=-1", "expected a duration"),
        ("negative_ttl=5parsecs", "expected a duration"),
        ("attr_timeout=2h", "at most 1h"),
        ("fetch_timeout=0", "more than 0"),
        ("cache_max_entries=0", "at least 1"),
        ("cache_max_entries=many", "whole number"),
        ("cache_max_bytes=1K", "at least 4096"),
        ("cache_max_bytes=lots", "size"),
        ("ttl=", "empty value"),
    ],
)
def test_bad_value_of_our_option_is_refused(env, mode, opt, needle):
    store, mnt = env
    expect_failure(
        mnt, [*mode, "-o", opt, f"file:{store}", str(mnt)], [f"-o {opt}", needle]
    )


# ---- config file errors ----

CONFIG_OK = """\
# a config for the tests
[secretfs]
source = file:{store}

[cache]
ttl = 5m
"""


@pytest.mark.parametrize(
    "extra, key, needle",
    [
        ("bogus = 1", "bogus", "unknown key"),
        ("stale_ttl = abc", "stale_ttl", "expected a duration"),
        ("max_entries = 0", "max_entries", "at least 1"),
        ("attr_timeout = 5s # comment", "attr_timeout", "'#' starts a comment"),
        ("negative_ttl = \"30s\"", "negative_ttl", "not quoted"),
        ("ttl = 1m", "ttl", "given twice"),
    ],
)
def test_bad_config_file_is_refused_with_file_line_and_key(env, workdir, mode, extra, key, needle):
    store, mnt = env
    conf = workdir / "bad.conf"
    text = CONFIG_OK.format(store=store) + extra + "\n"
    conf.write_text(text)
    line = text.count("\n")  # the bad line is the last one
    expect_failure(
        mnt, [*mode, "--config", str(conf), str(mnt)], [f"{conf}:{line}:", f"'{key}'", needle]
    )


def test_unknown_config_section_is_refused(env, workdir, mode):
    store, mnt = env
    conf = workdir / "bad.conf"
    conf.write_text(CONFIG_OK.format(store=store) + "[vault]\naddress = x\n")
    expect_failure(mnt, [*mode, "--config", str(conf), str(mnt)], [f"{conf}:8:", "[vault]"])


def test_missing_config_file_is_refused(env, workdir, mode):
    store, mnt = env
    conf = workdir / "no-such.conf"
    expect_failure(
        mnt, [*mode, "--config", str(conf), str(mnt)], [str(conf), "No such file or directory"]
    )


def test_config_with_bad_source_is_refused(env, workdir):
    store, mnt = env
    conf = workdir / "bad.conf"
    conf.write_text("[secretfs]\nsource = /no/scheme\n")
    expect_failure(mnt, ["-f", "--config", str(conf), str(mnt)], [f"{conf}:2:", "'source'"])


# ---- --help and --version ----


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_option_and_exits_0(flag):
    r = run_secretfs([flag])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: secretfs"), r.stdout[:200]
    for name in OUR_OPTIONS:
        assert re.search(rf"-o {name}=", r.stdout), f"-o {name}= missing from --help"
    assert "--config FILE" in r.stdout
    assert "file:PATH" in r.stdout


def _makefile_version():
    m = re.search(r"^VERSION\s*:?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    return m.group(1) if m else None


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_version_and_exits_0(flag):
    r = run_secretfs([flag])
    assert r.returncode == 0, r.stderr
    m = re.match(r"secretfs (\d+\.\d+\.\d+\S*)\n", r.stdout)
    assert m, r.stdout
    want = _makefile_version()
    if want and os.path.realpath(SECRETFS_BIN).startswith(str(REPO)):
        assert m.group(1) == want
    assert re.search(r"^libfuse \d+\.\d+", r.stdout, re.M), r.stdout


def test_help_names_every_setting_of_the_config_table():
    """Every -o setting in src/config.c's table is in --help, so the help cannot fall behind."""
    table = (REPO / "src" / "config.c").read_text()
    names = re.findall(r'^\s*\{ "([a-z_0-9]+)", "[a-z]+", "[a-z_]+", OPT_', table, re.M)
    assert len(names) > 20, "the option table was not found in src/config.c"
    # Positional arguments and -f/-d have their own spelling; fuse_options is for the file.
    spelled_otherwise = {"source", "mountpoint", "foreground", "debug", "fuse_options"}
    text = run_secretfs(["--help"]).stdout
    missing = [n for n in names if n not in spelled_otherwise and not re.search(rf"\b{n}\b", text)]
    assert not missing, f"settings missing from --help: {missing}"
