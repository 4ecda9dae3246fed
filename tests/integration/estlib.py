"""
estlib — EST (RFC 7030 / RFC 8951) helpers for tests/integration/est_test,
on top of pkidtest.

- EstHttp: EST requests from Python (http.client over TLS, optional HTTP
  Basic and TLS client certificate, TLS version caps), answering
  pkidtest.Response.
- curl(): one curl run with the INTEROP.md flags, answering a CurlResult
  (status, exact status line, headers, body).
- openssl-based key / CSR / PKCS#7 helpers, RFC 8951 base64 bodies and a
  multipart/mixed splitter for /serverkeygen.
- A manufacturer CA and IDevID certificates (python3-cryptography) for the
  bootstrap label, and a self-signed certificate nobody trusts.
- Snapshots of the inventory and of the EST requests, to show that a
  refused request stored nothing.
- tool_path(): the est_tlsunique client ($TOOLS, else build/tools, else
  compiled into the work directory).

Every child process runs through pkidtest.run(), so REQUESTS_CA_BUNDLE,
SSL_CERT_FILE, CURL_CA_BUNDLE and SSL_CERT_DIR never reach it.
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import pkidtest as pt
from pkidtest import Abort

EST_PREFIX = "/.well-known/est"
P10 = "application/pkcs10"
B64_COLUMNS = 64		# RFC 8951 answers: base64 wrapped at 64 columns
HTTP_TIMEOUT = 30.0
CURL_MAX_TIME = "30"		# seconds per curl run
TOOL_NAME = "est_tlsunique"
TOOL_SOURCE = os.path.join("tests", "tools", "est_tlsunique.c")
OID_CHALLENGE_PASSWORD = "challengePassword"	# as openssl asn1parse names it


def est_path(label, op):
    """/.well-known/est/OP or /.well-known/est/LABEL/OP."""
    if label:
        return "%s/%s/%s" % (EST_PREFIX, label, op)
    return "%s/%s" % (EST_PREFIX, op)


def basic_header(user, password):
    tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return "Basic " + tok


def clip(text, n=3000):
    """text cut to n characters for failure messages."""
    text = text.rstrip("\n")
    if len(text) > n:
        return text[:n] + "... (%d more characters)" % (len(text) - n)
    return text if text else "(empty)"


def serial_int(v):
    """An API serial (hex text, any case, colons allowed, or an int) as
    an int; None when it is neither."""
    if isinstance(v, int):
        return v
    try:
        return int(str(v).replace(":", ""), 16)
    except ValueError:
        return None


def request_id(label, der):
    """The EST request id of the contract: lowercase hex SHA-256 of
    label + NUL + CSR DER."""
    return hashlib.sha256(label.encode() + b"\0" + der).hexdigest()


# ---- bodies -----------------------------------------------------------------

def b64_body(der, columns=None, crlf=False):
    """RFC 8951 body: base64 of der, on one line (columns None) or
    wrapped at columns, lines ending in LF or CRLF."""
    s = base64.b64encode(der).decode()
    if not columns:
        return s.encode()
    nl = "\r\n" if crlf else "\n"
    lines = [s[i:i + columns] for i in range(0, len(s), columns)]
    return (nl.join(lines) + nl).encode()


def b64_decode_body(body):
    """Decodes a base64 body, tolerating CR/LF/space; raises Abort."""
    text = re.sub(rb"\s+", b"", body)
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, base64.binascii.Error) as e:
        raise Abort("body is not base64: %s" % e, body[:300])


def wrapped_at(body, columns=B64_COLUMNS):
    """None when the base64 body has the expected layout, else a
    description of the first offending line. columns: every line but the
    last exactly that long, the last not longer, no empty line inside;
    None: one line (a final line break allowed)."""
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        return "empty body"
    if columns is None:
        if len(lines) != 1:
            return "%d lines, want one" % len(lines)
        return None
    for i, line in enumerate(lines):
        last = i == len(lines) - 1
        if (not last and len(line) != columns) or len(line) > columns or \
                not line:
            return "line %d has %d characters" % (i + 1, len(line))
    return None


# ---- certificates and keys --------------------------------------------------

def load_cert(pem_or_der):
    if isinstance(pem_or_der, str):
        pem_or_der = pem_or_der.encode()
    if pem_or_der.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def spki(obj):
    """DER SubjectPublicKeyInfo of a certificate, CSR or key object."""
    key = obj.public_key() if hasattr(obj, "public_key") else obj
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_csr(der):
    return x509.load_der_x509_csr(der)


def dns_sans(obj):
    """DNS SANs of a certificate or CSR, sorted."""
    try:
        ext = obj.extensions.get_extension_for_class(
            x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return sorted(ext.value.get_values_for_type(x509.DNSName))


def ekus(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return set()
    return {o.dotted_string for o in ext.value}


EKU_SERVER = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
EKU_CLIENT = ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string


def is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def validity(cert):
    """(notBefore, notAfter) as aware datetimes (python3-cryptography 38,
    Debian 12's, lacks the *_utc properties)."""
    try:
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    except AttributeError:
        utc = datetime.timezone.utc
        return (cert.not_valid_before.replace(tzinfo=utc),
                cert.not_valid_after.replace(tzinfo=utc))


def not_after(cert):
    return validity(cert)[1].timestamp()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def split_pem(path, tmp, stem):
    """Writes each certificate of a PEM bundle to tmp/STEM-N.pem; returns
    the paths in order."""
    out = []
    for i, pem in enumerate(pt.pem_certs(pt.read(path))):
        out.append(pt.write(os.path.join(tmp, "%s-%d.pem" % (stem, i)), pem))
    return out


def gen_key(path, alg="ec256"):
    """A new private key (PEM, openssl genpkey): ec256, ec384, rsa2048."""
    opts = {"ec256": ["-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-256"],
            "ec384": ["-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-384"],
            "rsa2048": ["-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048"]}[alg]
    r = pt.openssl("genpkey", *opts, "-out", path)
    if not r.ok:
        raise Abort("openssl genpkey failed", r.describe())
    os.chmod(path, 0o600)
    return path


def make_csr(key, subject, sans, out, challenge=None):
    """A PKCS#10 request (openssl req) for key: subject in openssl form
    ("/CN=x/O=y"), DNS SANs, optional challengePassword. Writes DER to
    out and returns the DER."""
    args = ["req", "-new", "-key", key, "-subj", subject, "-outform", "DER",
            "-out", out]
    if sans:
        args += ["-addext", "subjectAltName=" +
                 ",".join("DNS:" + s for s in sans)]
    if challenge is not None:
        cnf = pt.write(out + ".cnf",
                       "[req]\ndistinguished_name = dn\nattributes = attrs\n"
                       "[dn]\n[attrs]\nchallengePassword = %s\n" % challenge)
        args += ["-config", cnf]
    r = pt.openssl(*args)
    if not r.ok:
        raise Abort("openssl req -new failed", r.describe())
    with open(out, "rb") as f:
        return f.read()


def p7_certs_openssl(der, tmp, stem):
    """`openssl pkcs7 -inform DER -print_certs` of der: the certificates
    as PEM strings (raises Abort when openssl refuses it)."""
    path = pt.write(os.path.join(tmp, stem + ".p7.der"), der)
    r = pt.openssl("pkcs7", "-inform", "DER", "-in", path, "-print_certs")
    if not r.ok:
        raise Abort("openssl pkcs7 -print_certs refused the body",
                    r.describe())
    return pt.pem_certs(r.stdout)


def b64d_pipeline(body, tmp, stem):
    """The INTEROP.md pipeline on a saved body: `base64 -d FILE`, then
    `openssl pkcs7 -inform DER -print_certs`. Returns the PEM
    certificates."""
    path = pt.write(os.path.join(tmp, stem + ".b64"), body)
    r = pt.run(["base64", "-d", path])
    if not r.ok:
        raise Abort("base64 -d refused the body", r.describe())
    return p7_certs_openssl(r.stdout_bytes, tmp, stem)


def leaf_of(pems):
    """The first non-CA certificate among PEM strings (cryptography
    object), or None."""
    for p in pems:
        c = load_cert(p)
        if not is_ca(c):
            return c
    return None


def openssl_verify(leaf_path, root_path, untrusted=None, purpose=None):
    args = ["verify", "-CAfile", root_path]
    if untrusted:
        args += ["-untrusted", untrusted]
    if purpose:
        args += ["-purpose", purpose]
    return pt.openssl(*(args + [leaf_path]))


# ---- a manufacturer CA (IDevID bootstrap) and untrusted certificates --------

def _name(cn, org="pkid EST tests"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path):
    pt.write(path, key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()), 0o600)


class ManufacturerCA:
    """A self-signed P-256 root standing for a device maker; issue()
    makes IDevID client certificates with any validity window."""

    def __init__(self, tmp, name="Manufacturer Root CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = _name(name, "Example Devices Inc")
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        self.cert = (x509.CertificateBuilder()
                     .subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True,
                                                          path_length=0),
                                    critical=True)
                     .add_extension(x509.KeyUsage(
                         digital_signature=False, content_commitment=False,
                         key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=True,
                         crl_sign=True, encipher_only=False,
                         decipher_only=False), critical=True)
                     .add_extension(ski, critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.path = pt.write(os.path.join(tmp, "manufacturer-ca.pem"),
                             cert_pem(self.cert))

    def issue(self, tmp, stem, cn, not_before, not_after_):
        """An IDevID for cn valid between the two datetimes; writes
        STEM.pem and STEM.key; returns (cert path, key path)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(_name(cn, "Example Devices Inc"))
                .issuer_name(self.name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after_)
                .add_extension(x509.BasicConstraints(ca=False,
                                                     path_length=None),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier
                               .from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))
        cpath = pt.write(os.path.join(tmp, stem + ".pem"), cert_pem(cert))
        kpath = os.path.join(tmp, stem + ".key")
        _write_key(key, kpath)
        return cpath, kpath


def self_signed(tmp, stem, cn):
    """A self-signed client certificate nobody trusts: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(cn)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cpath = pt.write(os.path.join(tmp, stem + ".pem"), cert_pem(cert))
    kpath = os.path.join(tmp, stem + ".key")
    _write_key(key, kpath)
    return cpath, kpath


# ---- HTTP from Python -------------------------------------------------------

class EstHttp:
    """EST requests to one pkid over TLS trusting cafile. cert is a
    (cert path, key path) pair presented as TLS client certificate;
    basic a (user, password) pair; tls_max "1.2" caps the version."""

    def __init__(self, srv, cafile):
        self.srv = srv
        self.cafile = cafile
        self._ctx = {}

    def context(self, cert=None, tls_max=None):
        k = (cert, tls_max)
        if k not in self._ctx:
            ctx = ssl.create_default_context(cafile=self.cafile)
            if cert:
                ctx.load_cert_chain(cert[0], cert[1])
            if tls_max == "1.2":
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            self._ctx[k] = ctx
        return self._ctx[k]

    def request(self, method, label, op, body=None, content_type=P10,
                basic=None, cert=None, headers=None, path=None,
                tls_max=None):
        hdrs = {}
        if content_type is not None and body is not None:
            hdrs["Content-Type"] = content_type
        if basic is not None:
            hdrs["Authorization"] = basic_header(*basic)
        hdrs.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        return pt.http_request("127.0.0.1", self.srv.ports["https"], method,
                               path or est_path(label, op), body=body,
                               headers=hdrs,
                               context=self.context(cert, tls_max))

    def connection(self, cert=None):
        """A keep-alive HTTPSConnection (the caller closes it)."""
        return http.client.HTTPSConnection(
            "127.0.0.1", self.srv.ports["https"],
            context=self.context(cert), timeout=HTTP_TIMEOUT)


def one_line_reason(r):
    """None when the response carries a one-line text/plain reason, else
    what is wrong."""
    ct = (r.header("content-type") or "").lower()
    if not ct.startswith("text/plain"):
        return "content type %r, want text/plain" % r.header("content-type")
    text = r.text
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text.strip():
        return "empty reason"
    if "\n" in text or "\r" in text:
        return "reason spans several lines: %r" % r.text[:300]
    return None


# ---- curl -------------------------------------------------------------------

class CurlResult:
    """status (int, 0 when no HTTP answer), status_line, headers (lower
    names; the last response's block), body (bytes), res (pt.Result)."""

    def __init__(self, res, hdr_text, body):
        self.res = res
        self.body = body
        self.text = body.decode("utf-8", "replace")
        self.status = 0
        self.status_line = ""
        self.headers = {}
        blocks = [b for b in re.split(r"\r?\n\r?\n", hdr_text) if b.strip()]
        if blocks:
            lines = blocks[-1].splitlines()
            self.status_line = lines[0]
            m = re.match(r"HTTP/\S+ (\d{3})", lines[0])
            if m:
                self.status = int(m.group(1))
            for line in lines[1:]:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()

    def header(self, name):
        return self.headers.get(name.lower())

    def describe(self):
        return "%s\nstatus line: %r\nheaders: %s\nbody: %s" % (
            self.res.describe(), self.status_line,
            json.dumps(self.headers), clip(self.text))


def curl(args, tmp, stem):
    """Runs curl -sS with the given arguments, the headers to STEM.hdr
    and the body to STEM.body in tmp."""
    hdr = os.path.join(tmp, stem + ".hdr")
    body = os.path.join(tmp, stem + ".body")
    for p in (hdr, body):
        if os.path.exists(p):
            os.unlink(p)
    res = pt.run(["curl", "-sS", "--max-time", CURL_MAX_TIME, "-D", hdr,
                  "-o", body] + [str(a) for a in args], timeout=60)
    hdr_text = pt.read(hdr) if os.path.exists(hdr) else ""
    data = b""
    if os.path.exists(body):
        with open(body, "rb") as f:
            data = f.read()
    return CurlResult(res, hdr_text, data)


# ---- multipart/mixed --------------------------------------------------------

def multipart_parts(content_type, body):
    """Splits a multipart body (RFC 2046): [(headers dict with lower-case
    names, payload bytes)]. Raises Abort when it is not multipart."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "", re.I)
    if not (content_type or "").lower().startswith("multipart/") or not m:
        raise Abort("not a multipart content type: %r" % content_type)
    delim = b"--" + m.group(1).strip().encode()
    pieces = body.split(delim)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece[2:] if piece.startswith(b"\r\n") else \
            piece[1:] if piece.startswith(b"\n") else piece
        if b"\r\n\r\n" in piece:
            head, payload = piece.split(b"\r\n\r\n", 1)
        elif b"\n\n" in piece:
            head, payload = piece.split(b"\n\n", 1)
        else:
            head, payload = piece, b""
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        elif payload.endswith(b"\n"):
            payload = payload[:-1]
        hdrs = {}
        for line in head.decode("utf-8", "replace").splitlines():
            k, _, v = line.partition(":")
            if k.strip():
                hdrs[k.strip().lower()] = v.strip()
        parts.append((hdrs, payload))
    if not parts:
        raise Abort("no parts in the multipart body", body[:500])
    return parts


# ---- pkictl -----------------------------------------------------------------

def pkictl_cmd(srv, args, json_out=True):
    """A pkictl command line against srv with the admin token and
    DATA/ca-bundle.pem (--json unless json_out is False)."""
    cmd = [srv.pkictl, "--url", srv.mgmt_url, "--token-file",
           srv.admin_token_path, "--cacert", srv.ca_bundle]
    if json_out:
        cmd.append("--json")
    return cmd + [str(a) for a in args]


# ---- inventory --------------------------------------------------------------

def find_issued(srv, cert):
    """The inventory entry and version holding cert (by serial):
    (entry, version) or (None, None). Entries are looked up by the
    certificate's CN (else its first DNS SAN), which the name filter of
    GET /api/v1/certificates matches in names and SANs; every version of
    each candidate is compared."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    hint = cns[0].value if cns else (dns_sans(cert) or [None])[0]
    if hint:
        obj = srv.api_json("GET", "/api/v1/certificates?limit=1000&name=" +
                           urllib.parse.quote(hint, safe=""))
        entries = obj.get("certificates") or []
    else:
        entries = srv.inventory()
    for c in entries:
        vs = srv.api_json("GET", "/api/v1/certificates/%s/versions" %
                          c.get("id"))
        for v in vs.get("versions") or []:
            if serial_int(v.get("serial")) == cert.serial_number:
                return c, v
    return None, None


# ---- store snapshots --------------------------------------------------------

def est_requests(srv, status=None):
    path = "/api/v1/est/requests?limit=1000"
    if status:
        path += "&status=" + status
    obj = srv.api_json("GET", path)
    if not isinstance(obj, dict) or not isinstance(obj.get("est_requests"),
                                                  list):
        raise Abort("GET %s: expected {\"est_requests\": [...]}" % path,
                    json.dumps(obj)[:pt.OUTPUT_SHOWN])
    return obj["est_requests"]


def snapshot(srv):
    """Inventory entries and EST requests as the API lists them."""
    certs = sorted(srv.inventory(), key=lambda c: str(c.get("id")))
    reqs = sorted(est_requests(srv), key=lambda r: str(r.get("id")))
    return {"certificates": certs, "est_requests": reqs}


def snapshot_diff(a, b):
    lines = []
    for key in sorted(set(a) | set(b)):
        ia = {json.dumps(x, sort_keys=True) for x in a.get(key, [])}
        ib = {json.dumps(x, sort_keys=True) for x in b.get(key, [])}
        for x in sorted(ib - ia):
            lines.append("%s: new or changed: %s" % (key, x[:400]))
        for x in sorted(ia - ib):
            lines.append("%s: gone or changed: %s" % (key, x[:400]))
    return "\n".join(lines)


def settled_snapshot(srv, tries=5, pause=0.5):
    """A snapshot equal to the one taken `pause` seconds earlier (work
    queued by earlier steps has landed)."""
    after = snapshot(srv)
    for _ in range(tries):
        time.sleep(pause)
        before, after = after, snapshot(srv)
        if before == after:
            break
    return after


# ---- the tls-unique tool ----------------------------------------------------

def tool_path(tmp):
    """The est_tlsunique binary: $TOOLS/est_tlsunique (make test), else
    build/tools/est_tlsunique of this checkout, else compiled now into
    tmp with cc and pkg-config openssl. Raises Abort."""
    d = os.environ.get("TOOLS")
    if d:
        p = os.path.join(d, TOOL_NAME)
        if os.access(p, os.X_OK):
            return p
        raise Abort("TOOLS=%s has no executable %s (make test builds it)" %
                    (d, TOOL_NAME))
    p = os.path.join(pt.repo_dir(), "build", "tools", TOOL_NAME)
    if os.access(p, os.X_OK) and os.path.getmtime(p) >= os.path.getmtime(
            os.path.join(pt.repo_dir(), TOOL_SOURCE)):
        return p
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        raise Abort("no C compiler to build %s" % TOOL_SOURCE)
    flags = pt.run(["pkg-config", "--cflags", "--libs", "openssl"])
    if not flags.ok:
        raise Abort("pkg-config openssl failed", flags.describe())
    out = os.path.join(tmp, TOOL_NAME)
    r = pt.run([cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror",
                "-D_GNU_SOURCE", "-o", out,
                os.path.join(pt.repo_dir(), TOOL_SOURCE)] +
               flags.stdout.split())
    if not r.ok:
        raise Abort("cannot compile %s" % TOOL_SOURCE, r.describe())
    return out


class ToolResult:
    """Parsed est_tlsunique output: tls_version, tls_unique, csr
    ("new"/"replayed"), status, status_line, headers, body (text)."""

    def __init__(self, res):
        self.res = res
        self.tls_version = self.tls_unique = self.csr = None
        self.status = 0
        self.status_line = ""
        self.headers = {}
        self.body = ""
        out = res.stdout
        head, sep, raw = out.partition("response:\n")
        for line in head.splitlines():
            k, _, v = line.partition(": ")
            if k == "tls_version":
                self.tls_version = v
            elif k == "tls_unique":
                self.tls_unique = v
            elif k == "csr":
                self.csr = v
        if not sep:
            return
        hblock, _, self.body = raw.partition("\r\n\r\n")
        lines = hblock.split("\r\n")
        self.status_line = lines[0]
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if m:
            self.status = int(m.group(1))
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def describe(self):
        return self.res.describe()
