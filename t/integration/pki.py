"""A throwaway PKI for the TLS tests, made with the openssl command line: a CA, server
certificates for given names (DNS or IP subjectAltNames), client certificates, and a second
CA that nothing trusts.

    p = Pki(dir);  p.server("a.test");  p.client("alice");  p.ca;  p.other_ca_client("mallory")
"""

import os
import subprocess


def _run(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, timeout=30)


class Cert:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key


class Pki:
    def __init__(self, directory, name="torii test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca, self.ca_key = self._ca("ca", name)
        self._other = None
        self.serial = 1

    def _ca(self, stem, cn):
        cert = os.path.join(self.dir, stem + ".pem")
        key = os.path.join(self.dir, stem + ".key")
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=" + cn)
        return cert, key

    def _issue(self, stem, cn, ext, ca=None, ca_key=None):
        ca = ca or self.ca
        ca_key = ca_key or self.ca_key
        cert = os.path.join(self.dir, stem + ".pem")
        key = os.path.join(self.dir, stem + ".key")
        csr = os.path.join(self.dir, stem + ".csr")
        extfile = os.path.join(self.dir, stem + ".ext")
        with open(extfile, "w") as f:
            f.write(ext + "\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + cn)
        self.serial += 1
        _run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial",
             str(self.serial), "-out", cert, "-days", "30", "-extfile", extfile)
        return Cert(cert, key)

    def server(self, name, stem=None):
        """A server certificate for `name` (a DNS name or an IP address)."""
        kind = "IP" if name.replace(".", "").isdigit() else "DNS"
        return self._issue(stem or name, name, "subjectAltName=%s:%s\nextendedKeyUsage=serverAuth"
                           % (kind, name))

    def client(self, cn):
        return self._issue("client-" + cn, cn, "extendedKeyUsage=clientAuth")

    def other_ca_client(self, cn):
        """A client certificate from a CA no torii config trusts."""
        if not self._other:
            self._other = self._ca("other-ca", "untrusted CA")
        return self._issue("untrusted-" + cn, cn, "extendedKeyUsage=clientAuth",
                           ca=self._other[0], ca_key=self._other[1])
