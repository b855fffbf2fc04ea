#!/usr/bin/env python3
"""Test PKI for the Vault test server, made with the `openssl` CLI only.

generate_certs(dir) writes (PEM):

  ca.pem / ca.key                 test CA (CA:TRUE)
  server.pem / server.key         signed by ca; SAN IP:127.0.0.1, DNS:localhost;
                                  EKU serverAuth
  client.pem / client.key         signed by ca; CN=secretfs-client; EKU clientAuth
  rogue-ca.pem / rogue-ca.key     an unrelated CA
  rogue-client.pem / .key         client cert signed by the rogue CA (must be refused)
  wronghost.pem / wronghost.key   signed by ca but only for DNS:wrong.invalid
                                  (hostname verification must fail for 127.0.0.1)

and returns a Certs object with those paths as attributes (ca, ca_key, server,
server_key, client, client_key, rogue_ca, rogue_client, rogue_client_key,
wronghost, wronghost_key, dir).

generate_expired_cert(dir) adds expired.pem / expired.key: signed by the ca
of that directory, SAN IP:127.0.0.1, DNS:localhost, but valid only in the
past (openssl 3.0's x509 cannot back-date, so it is signed with `openssl
ca -startdate/-enddate`).

CLI:  certs.py DIR   (prints the JSON of paths)
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

__all__ = ["generate_certs", "generate_expired_cert", "Certs"]


class Certs:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def as_dict(self):
        return dict(self.__dict__)

    def __repr__(self):
        return f"Certs({self.__dict__!r})"


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def _newkey_args(key_type):
    if key_type == "rsa":
        return ["-newkey", "rsa:2048"]
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    raise ValueError("key_type must be 'ec' or 'rsa'")


def _make_ca(d, name, cn, days, key_type):
    _run(["req", "-x509", "-nodes", *_newkey_args(key_type), "-sha256",
          "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", str(days),
          "-subj", f"/O=secretfs tests/CN={cn}",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-addext", "subjectKeyIdentifier=hash"], d)


def _make_leaf(d, name, ca, cn, days, key_type, ext_lines):
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("\n".join([
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid,issuer",
            *ext_lines,
        ]) + "\n")
    _run(["req", "-new", "-nodes", *_newkey_args(key_type), "-sha256",
          "-keyout", f"{name}.key", "-out", f"{name}.csr",
          "-subj", f"/O=secretfs tests/CN={cn}"], d)
    _run(["x509", "-req", "-sha256", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
          "-CAkey", f"{ca}.key", "-set_serial", "0x" + secrets.token_hex(8),
          "-days", str(days), "-extfile", ext, "-out", f"{name}.pem"], d)
    os.unlink(os.path.join(d, f"{name}.csr"))
    os.unlink(ext)


def generate_certs(directory=None, *, days=7, key_type="ec", extras=True):
    """Create the test PKI in `directory` (a new temp dir if None)."""
    d = directory or tempfile.mkdtemp(prefix="vault-certs-")
    os.makedirs(d, exist_ok=True)
    _make_ca(d, "ca", "secretfs test CA", days, key_type)
    _make_leaf(d, "server", "ca", "localhost", days, key_type,
               ["extendedKeyUsage=serverAuth",
                "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    _make_leaf(d, "client", "ca", "secretfs-client", days, key_type,
               ["extendedKeyUsage=clientAuth"])
    paths = {
        "dir": d,
        "ca": os.path.join(d, "ca.pem"),
        "ca_key": os.path.join(d, "ca.key"),
        "server": os.path.join(d, "server.pem"),
        "server_key": os.path.join(d, "server.key"),
        "client": os.path.join(d, "client.pem"),
        "client_key": os.path.join(d, "client.key"),
    }
    if extras:
        _make_ca(d, "rogue-ca", "rogue CA", days, key_type)
        _make_leaf(d, "rogue-client", "rogue-ca", "rogue-client", days, key_type,
                   ["extendedKeyUsage=clientAuth"])
        _make_leaf(d, "wronghost", "ca", "wrong.invalid", days, key_type,
                   ["extendedKeyUsage=serverAuth", "subjectAltName=DNS:wrong.invalid"])
        paths.update({
            "rogue_ca": os.path.join(d, "rogue-ca.pem"),
            "rogue_client": os.path.join(d, "rogue-client.pem"),
            "rogue_client_key": os.path.join(d, "rogue-client.key"),
            "wronghost": os.path.join(d, "wronghost.pem"),
            "wronghost_key": os.path.join(d, "wronghost.key"),
        })
    for name in os.listdir(d):
        if name.endswith(".key"):
            os.chmod(os.path.join(d, name), 0o600)
    return Certs(**paths)


def generate_expired_cert(directory, *, name="expired", ca="ca", key_type="ec",
                          ended_days_ago=1, lasted_days=1):
    """
    A server certificate (SAN IP:127.0.0.1, DNS:localhost) signed by @ca of
    @directory (made by generate_certs) whose validity ended @ended_days_ago
    days ago.  Returns (pem path, key path).
    """
    d = directory
    end = (datetime.datetime.now(datetime.timezone.utc)
           - datetime.timedelta(days=ended_days_ago))
    start = end - datetime.timedelta(days=lasted_days)
    db = os.path.join(d, f"{name}-ca.db")
    shutil.rmtree(db, ignore_errors=True)
    os.makedirs(db)
    open(os.path.join(db, "index.txt"), "w").close()
    cnf = os.path.join(d, f"{name}-ca.cnf")
    with open(cnf, "w") as f:
        f.write("\n".join([
            "[ca]", "default_ca = this_ca",
            "[this_ca]",
            f"database = {db}/index.txt",
            f"new_certs_dir = {db}",
            "rand_serial = yes",
            "default_md = sha256",
            "policy = any_names",
            "unique_subject = no",
            "email_in_dn = no",
            "copy_extensions = none",
            "[any_names]", "organizationName = optional", "commonName = supplied",
        ]) + "\n")
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("\n".join([
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid,issuer",
            "extendedKeyUsage=serverAuth",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]) + "\n")
    _run(["req", "-new", "-nodes", *_newkey_args(key_type), "-sha256",
          "-keyout", f"{name}.key", "-out", f"{name}.csr",
          "-subj", "/O=secretfs tests/CN=localhost"], d)
    _run(["ca", "-batch", "-notext", "-config", cnf, "-cert", f"{ca}.pem",
          "-keyfile", f"{ca}.key", "-in", f"{name}.csr", "-out", f"{name}.pem",
          "-startdate", start.strftime("%Y%m%d%H%M%SZ"),
          "-enddate", end.strftime("%Y%m%d%H%M%SZ"), "-extfile", ext], d)
    for leftover in (f"{name}.csr", ext, cnf):
        os.unlink(os.path.join(d, leftover))
    shutil.rmtree(db)
    os.chmod(os.path.join(d, f"{name}.key"), 0o600)
    return os.path.join(d, f"{name}.pem"), os.path.join(d, f"{name}.key")


if __name__ == "__main__":
    out = generate_certs(sys.argv[1] if len(sys.argv) > 1 else None)
    print(json.dumps(out.as_dict(), indent=2))
