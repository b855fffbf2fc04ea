"""The file store follows changes; open handles keep their version; bad reloads keep the old."""

import errno
import json
import os
import shutil

import pytest

from helpers import POLL_TIMEOUT, try_read, wait_until

KEEPING = "keeping the last good content"

BASE = {
    "app/token": "token-version-one",
    "app/db": {"password": "db-pass-version-one", "user": "app-db-user"},
    "app/gone-later": "soon-to-be-removed",
}


def test_open_handle_keeps_the_value_seen_at_open(secretfs):
    old = b"OLD-value-0123456789-abcdefghij"
    new = b"NEW-value-zyxwvu"
    fs = secretfs({"k": old.decode(), "other": "other-value-x"}, secrets=[new])
    fd = os.open(fs.path("k"), os.O_RDONLY)
    try:
        assert os.read(fd, 3) == b"OLD"
        fs.replace_store({"k": new.decode(), "other": "other-value-x"})
        fs.wait_value("k", new)  # a fresh open sees the rotation...
        assert os.read(fd, 4096) == old[3:]  # ...the old handle still reads the old value
        assert os.read(fd, 4096) == b""
        assert os.pread(fd, 5, 0) == old[:5]
    finally:
        os.close(fd)


def test_store_changes_reach_new_opens_and_listings(secretfs):
    fs = secretfs(BASE)
    assert try_read(fs.path("app/token")) == b"token-version-one"
    assert try_read(fs.path("app/db/password")) == b"db-pass-version-one"

    changed = {
        "app/token": "token-version-two-longer",
        "app/db": {"password": "db-pass-v2", "user": "app-db-user", "host": "db-host-new"},
        "app/added": "freshly-added-secret",
    }
    fs.replace_store(changed)
    fs.wait_value("app/token", b"token-version-two-longer")
    fs.wait_value("app/db/password", b"db-pass-v2")
    fs.wait_value("app/db/host", b"db-host-new")
    fs.wait_value("app/added", b"freshly-added-secret")
    wait_until(
        lambda: set(os.listdir(fs.path("app"))) == {"token", "db", "added"},
        what="the listing of app/ to follow the store",
    )
    wait_until(
        lambda: set(os.listdir(fs.path("app/db"))) == {"password", "user", "host"},
        what="the listing of app/db/ to follow the store",
    )

    def removed():
        try:
            os.stat(fs.path("app/gone-later"))
        except FileNotFoundError:
            return True
        return False

    wait_until(removed, what="app/gone-later to give ENOENT")
    # st_size follows too, once the attribute timeout (1s by default) has passed
    wait_until(
        lambda: os.stat(fs.path("app/token")).st_size == len("token-version-two-longer"),
        what="st_size of app/token to follow the rotation",
    )
    assert fs.stderr().count("store changed") >= 1


def test_in_place_edit_is_seen(secretfs):
    fs = secretfs(BASE)
    fs.secrets.append(b"edited-in-place-value")
    with open(fs.store, "w") as f:  # truncate and write: what `echo > store` does
        f.write('{"app/token": "edited-in-place-value"}')
    fs.wait_value("app/token", b"edited-in-place-value")


# (store text, the line of the error, a secret that sits right at the error)
BROKEN = {
    "missing comma before a secret": (
        '{\n "app/token": "token-version-one",\n "app/x": "y" "LEAK-AFTER-VALUE-1"\n}\n',
        3,
        "LEAK-AFTER-VALUE-1",
    ),
    "control character in a secret": (
        '{\n "app/token": "token-version-one",\n "app/x": "LEAK-CONTROL-2\tzz"\n}\n',
        3,
        "LEAK-CONTROL-2",
    ),
    "bad escape in a secret": (
        '{\n "app/token": "token-version-one",\n\n "app/x": "LEAK-ESCAPE-3\\qzz"\n}\n',
        4,
        "LEAK-ESCAPE-3",
    ),
    "unterminated secret at the end": (
        '{\n "app/token": "token-version-one",\n "app/x": "LEAK-UNTERMINATED-4',
        3,
        "LEAK-UNTERMINATED-4",
    ),
    "bare word": (
        '{\n "app/token": "token-version-one",\n "app/x": LEAKBAREWORD5\n}\n',
        3,
        "LEAKBAREWORD5",
    ),
    "invalid utf-8 in a secret": (
        b'{\n "app/token": "token-version-one",\n "app/x": "LEAK-UTF8-6\xff\xfe"\n}\n',
        3,
        "LEAK-UTF8-6",
    ),
    "duplicate key": (
        '{\n "app/token": "token-version-one",\n "app/token": "LEAK-DUPLICATE-7"\n}\n',
        3,
        "LEAK-DUPLICATE-7",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_store_keeps_last_good_content(secretfs, case):
    text, line, leak = BROKEN[case]
    fs = secretfs(BASE, secrets=[leak])
    assert try_read(fs.path("app/token")) == b"token-version-one"
    before = fs.stderr().count(KEEPING)

    fs.replace_store(raw=text)
    err = fs.wait_stderr(KEEPING, count=before + 1)
    msg = [ln for ln in err.splitlines() if KEEPING in ln][-1]
    assert f"{fs.store}:{line}:" in msg, msg
    assert leak not in err  # the daemon drops jansson's "near '...'"

    # The old document is still served, whole.
    assert try_read(fs.path("app/token")) == b"token-version-one"
    assert try_read(fs.path("app/db/password")) == b"db-pass-version-one"
    assert try_read(fs.path("app/gone-later")) == b"soon-to-be-removed"
    assert try_read(fs.path("app/x")) is None

    # And a good store is picked up again.
    fs.replace_store({"app/token": "token-after-repair"})
    fs.wait_value("app/token", b"token-after-repair")


SEMANTIC = {
    "not an object": ('["LEAK-ARRAY-8"]', "must be a JSON object", "LEAK-ARRAY-8"),
    "bad base64": (
        '{"app/token": "token-version-one", "app/bin": {"$base64": "LEAK*BASE64*9"}}',
        "app/bin",
        "LEAK*BASE64*9",
    ),
    "bad secret path": ('{"app/../etc": "LEAK-PATH-10"}', "app/../etc", "LEAK-PATH-10"),
    "empty path component": ('{"app//x": "LEAK-EMPTY-11"}', "app//x", "LEAK-EMPTY-11"),
    "dot-dot key in an object": ('{"app/o": {"..": "LEAK-DOTDOT-12"}}', "'..'", "LEAK-DOTDOT-12"),
    "slash in an object key": ('{"app/o": {"a/b": "LEAK-SLASH-13"}}', "'a/b'", "LEAK-SLASH-13"),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_invalid_store_content_keeps_last_good_content(secretfs, case):
    text, reason_part, leak = SEMANTIC[case]
    fs = secretfs(BASE, secrets=[leak])
    fs.replace_store(raw=text)
    err = fs.wait_stderr(KEEPING)
    msg = [ln for ln in err.splitlines() if KEEPING in ln][-1]
    assert str(fs.store) in msg and reason_part in msg, msg
    assert leak not in err
    assert try_read(fs.path("app/token")) == b"token-version-one"
    assert try_read(fs.path("app/db/password")) == b"db-pass-version-one"


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_store_made_writable_by_others_is_refused_on_reload(secretfs, mode):
    fs = secretfs(BASE)
    fs.replace_store({"app/token": "from-an-unsafe-store"}, mode=mode)
    err = fs.wait_stderr(KEEPING)
    assert "writable by group or others" in err
    assert try_read(fs.path("app/token")) == b"token-version-one"
    os.chmod(fs.store, 0o600)  # IN_ATTRIB: reloaded, now acceptable
    fs.wait_value("app/token", b"from-an-unsafe-store")


def test_store_given_to_another_user_is_refused_on_reload(secretfs):
    fs = secretfs(BASE)
    fs.secrets.append(b"from-a-foreign-store")
    fs.replace_store({"app/token": "from-a-foreign-store"})
    fs.wait_value("app/token", b"from-a-foreign-store")
    os.chown(fs.store, 65534, -1)
    fs.wait_stderr(KEEPING)
    assert "owned by uid 65534" in fs.stderr()
    assert try_read(fs.path("app/token")) == b"from-a-foreign-store"


def test_secret_becoming_missing_gives_enoent_to_new_opens_only(secretfs):
    fs = secretfs(BASE)
    fd = os.open(fs.path("app/gone-later"), os.O_RDONLY)
    try:
        fs.replace_store({k: v for k, v in BASE.items() if k != "app/gone-later"})

        def gone():
            try:
                os.close(os.open(fs.path("app/gone-later"), os.O_RDONLY))
            except OSError as e:
                return e.errno == errno.ENOENT
            return False

        wait_until(gone, timeout=POLL_TIMEOUT, what="a fresh open of app/gone-later to fail")
        assert os.read(fd, 100) == b"soon-to-be-removed"
    finally:
        os.close(fd)


def _configmap_version(d, name, doc):
    """One kubelet 'atomic writer' step: a new ..TIMESTAMP dir, then ..data swapped by rename."""
    v = d / name
    v.mkdir(mode=0o755)
    f = v / "store.json"
    f.write_text(json.dumps(doc))
    os.chmod(f, 0o600)
    tmp = d / "..data_tmp"
    tmp.symlink_to(name)
    os.rename(tmp, d / "..data")  # atomic, as kubelet does it
    return v


def test_a_configmap_style_store_follows_the_swap(secretfs, workdir):
    """
    A Kubernetes Secret or ConfigMap volume: store.json -> ..data/store.json,
    ..data -> ..2026_A.  An update writes ..2026_B, swaps ..data by rename and
    removes ..2026_A.  The store must follow the link as given, not the
    directory it led to at start.
    """
    d = workdir / "volume"
    d.mkdir(mode=0o755)
    old = _configmap_version(d, "..2026_A", {"app/token": "cm-token-version-A"})
    (d / "store.json").symlink_to("..data/store.json")
    fs = secretfs(None, argv=lambda store, mnt: [f"file:{d / 'store.json'}", str(mnt)],
                  secrets=["cm-token-version-A", "cm-token-version-B", "cm-token-version-C"])
    assert try_read(fs.path("app/token")) == b"cm-token-version-A"

    _configmap_version(d, "..2026_B", {"app/token": "cm-token-version-B"})
    shutil.rmtree(old)
    fs.wait_value("app/token", b"cm-token-version-B")
    # and again: the watch still follows after a swap
    _configmap_version(d, "..2026_C", {"app/token": "cm-token-version-C"})
    shutil.rmtree(d / "..2026_B")
    fs.wait_value("app/token", b"cm-token-version-C")
    assert "keeping the last good content" not in fs.stderr(), fs.stderr()
