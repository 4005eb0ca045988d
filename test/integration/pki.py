"""A throwaway X.509 PKI for the DTLS certificate tests, made with the openssl command line.

Nothing here is kept in the repository: every test run makes fresh keys (EC P-256) and
certificates valid for one day in a directory of its own.
"""
import os
import subprocess

CLIENT_CNS = ("meter-a", "meter-b")


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{p.stderr}")


def _key(directory, name):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", f"{name}.key", cwd=directory)
    path = os.path.join(directory, f"{name}.key")
    os.chmod(path, 0o600)  # the gateway refuses private keys other users can read
    return path


def _ca(directory, name, cn):
    key = _key(directory, name)
    _openssl("req", "-x509", "-new", "-key", key, "-sha256", "-days", "1", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", f"{name}.pem", cwd=directory)
    return os.path.join(directory, f"{name}.pem"), key


def _leaf(directory, name, cn, ca, ca_key, extensions):
    key = _key(directory, name)
    ext_path = os.path.join(directory, f"{name}.ext")
    with open(ext_path, "w") as f:
        f.write("basicConstraints = critical,CA:FALSE\n"
                "keyUsage = critical,digitalSignature\n" + extensions)
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={cn}", "-out", f"{name}.csr",
             cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-sha256", "-days", "1", "-extfile", ext_path,
             "-out", f"{name}.pem", cwd=directory)
    for scratch in (ext_path, os.path.join(directory, f"{name}.csr")):
        os.remove(scratch)
    return os.path.join(directory, f"{name}.pem"), key


def make_pki(directory, prefix=""):
    """Writes a CA, a server certificate for 127.0.0.1 and client certificates CN=meter-a and
    CN=meter-b (each with its key) into `directory`; file names start with `prefix`.

    Returns {"ca": path, "ca_key": path, "server": (cert, key), "meter-a": (cert, key),
    "meter-b": (cert, key)}.
    """
    os.makedirs(directory, exist_ok=True)
    ca, ca_key = _ca(directory, f"{prefix}ca", f"lwm2m-gw test CA {prefix or 'main'}")
    out = {"ca": ca, "ca_key": ca_key}
    out["server"] = _leaf(directory, f"{prefix}server", "127.0.0.1", ca, ca_key,
                          "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n")
    for cn in CLIENT_CNS:
        # No subjectAltName: libcoap reports a DNS name from it before the CN.
        out[cn] = _leaf(directory, f"{prefix}{cn}", cn, ca, ca_key,
                        "extendedKeyUsage = clientAuth\n")
    return out
