"""
tests/secret-scan (make secret-scan): git-secrets with its AWS patterns and
the cheat sheet's, over a copy of this tree.  The clean tree passes; a
real-looking AWS key or a password set to hunter2 in a source file fails
the scan, naming the file; the same text under an allowed fixture path
(tests/data/) passes, so the allowance is by path and nothing else.

The bad strings are put together at run time, so this file does not trip
the scan itself.
"""

import shutil
import subprocess

import pytest

from helpers import CMD_TIMEOUT, REPO, SANITIZER

# The scan runs no code of ours: once, in the plain `make check`, is enough.
pytestmark = pytest.mark.skipif(bool(SANITIZER), reason="the scan runs no secretfs code")

SCAN = REPO / "tests" / "secret-scan"

AWS_KEY_ID = "AK" + "IA" + "Q3ZR7T2XWNB5KJ4M"
AWS_SECRET = "aws_secret_" + "access_key = \"" + "k7Qm2Xw9Rt4Lp8Zn1Vb6Hc3Jy5Fd0Gs2Ae7Uo9Wi" + "\""
PASSWORD = "pass" + "word = hunter2"
PRIVATE_KEY = "private" + "_key: ssh-ed25519-not-really"


def scan(tree):
    if not shutil.which("git-secrets"):
        pytest.fail("git-secrets is missing: Debian package git-secrets (make test-deps)")
    return subprocess.run([str(SCAN), str(tree)], capture_output=True, text=True,
                          timeout=CMD_TIMEOUT * 3)


@pytest.fixture
def tree(tmp_path):
    """A copy of the tree as files on disk (not a git checkout: the scan's other branch)."""
    dst = tmp_path / "tree"
    shutil.copytree(REPO, dst, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "build", "build-*", "__pycache__",
                                                  "*.pyc", "*.o"))
    return dst


def test_the_project_tree_is_clean():
    r = scan(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clean" in r.stdout


# Each a separate file; one scan must name every one of them.
BAD_FILES = [
    ("src/leak.c", f'static const char *id = "{AWS_KEY_ID}";'),  # an AWS key id in C
    ("src/backends/leak.c", f"/* {AWS_SECRET} */"),  # an AWS secret key
    ("src/conf.c", f"/* {PASSWORD} */"),
    ("tests/integration/test_leak.py", PASSWORD),  # tests are allowed fixture names only
    ("tests/unit/leak.c", f"/* {AWS_KEY_ID} */"),
    ("docs/notes.md", PRIVATE_KEY),
    ("examples/app.conf", PASSWORD),  # only examples/store.json's example line is allowed
]


def test_secrets_in_source_files_fail(tree):
    for rel, line in BAD_FILES:
        f = tree / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"{line}\n")
    with open(tree / "src" / "main.c", "a") as out:  # appended to an existing file
        out.write(f"/* {AWS_KEY_ID} */\n")
    r = scan(tree)
    assert r.returncode == 1, r.stdout + r.stderr
    for rel in [*(rel for rel, _ in BAD_FILES), "src/main.c"]:
        assert f"\n{rel}:" in "\n" + r.stderr, f"{rel} not reported:\n{r.stderr}"


def test_the_allowance_is_by_path(tree):
    """The copy (not a git checkout) is clean, and stays clean with the bad text in a fixture."""
    d = tree / "tests" / "data"
    (d / "made-up.txt").write_text(f"{AWS_KEY_ID}\n{PASSWORD}\n")
    r = scan(tree)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_new_file_in_a_git_checkout_is_scanned(tree):
    """In a checkout, untracked files (not ignored ones) are scanned too."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tree)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], check=True)
    assert scan(tree).returncode == 0
    (tree / "src" / "new.c").write_text(f"/* {PASSWORD} */\n")
    (tree / "build").mkdir(exist_ok=True)
    r = scan(tree)
    assert r.returncode == 1 and "src/new.c:" in r.stderr, r.stdout + r.stderr
    (tree / "src" / "new.c").unlink()
    (tree / "build" / "ignored.c").write_text(f"/* {PASSWORD} */\n")  # build/ is ignored
    assert scan(tree).returncode == 0
