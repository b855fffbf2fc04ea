"""
OpenSSH reads a private key from the mount: what owner= and mode= are for.

ssh-keygen (like ssh and sshd) refuses a private key file that it owns and
that group or others may read ("WARNING: UNPROTECTED PRIVATE KEY FILE!",
"bad permissions"); a key owned by another user it does not check (OpenSSH's
sshkey_perm_ok).  An ed25519 key made at test time is put into the store and
presented by the policy to one user as that user's 0600 file: `ssh-keygen -y
-f MOUNT/ssh/id_ed25519`, run as that user, prints the public key that
ssh-keygen generated.  The same key presented to the same user as a 0644
file is refused, and another user may not open it at all.
"""

import os
import shutil
import stat
import subprocess

import pytest

from helpers import CMD_TIMEOUT
from users import run_as

SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
pytestmark = pytest.mark.skipif(not os.access(SSH_KEYGEN, os.X_OK),
                                reason="ssh-keygen is missing (Debian package openssh-client)")


def test_ssh_keygen_accepts_the_key_only_as_the_users_private_file(secretfs, workdir, sfs_users):
    user, other = sfs_users.alice, sfs_users.bob
    keyfile = workdir / "id_ed25519"
    r = subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "secretfs-test",
                        "-f", str(keyfile)], capture_output=True, text=True, timeout=CMD_TIMEOUT)
    assert r.returncode == 0, r.stderr
    private = keyfile.read_text()
    public = (workdir / "id_ed25519.pub").read_text().split()[:2]  # type and key, no comment

    policy = workdir / "policy"
    policy.write_text(
        f"permit user:{user.name}  ssh/id_ed25519        owner={user.name} mode=0600\n"
        f"permit user:{user.name}  ssh/loose/id_ed25519  owner={user.name} mode=0644\n")
    os.chmod(policy, 0o644)
    fs = secretfs({"ssh/id_ed25519": private, "ssh/loose/id_ed25519": private},
                  options=["-o", f"policy={policy}"])
    good, loose = fs.path("ssh/id_ed25519"), fs.path("ssh/loose/id_ed25519")
    for p, mode in ((good, 0o600), (loose, 0o644)):
        st = os.stat(p)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, mode)

    # the user's own 0600 file: ssh-keygen derives the public key from it
    r = run_as(user, [SSH_KEYGEN, "-y", "-f", str(good)], env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == public

    # the same key as a 0644 file of the user's: refused for its permissions
    r = run_as(user, [SSH_KEYGEN, "-y", "-f", str(loose)], env={"PATH": os.environ["PATH"]})
    assert r.returncode != 0
    assert "UNPROTECTED PRIVATE KEY FILE" in r.stderr and "bad permissions" in r.stderr, r.stderr
    assert public[1] not in r.stdout

    # anyone else: the policy refuses the open
    r = run_as(other, [SSH_KEYGEN, "-y", "-f", str(good)], env={"PATH": os.environ["PATH"]})
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    assert public[1] not in r.stdout
