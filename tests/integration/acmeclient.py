"""
acmeclient — a small ACME (RFC 8555) client for pkid's protocol tests.

Python 3 with python3-cryptography (the Debian package, 38.x, or newer).
It does what the packaged clients do not (keyChange, account
deactivation, ARI, orders-list paging) and lets a test corrupt any part
of a request:

    import acmeclient as ac
    c = ac.Client(directory_url, cafile)          # fresh ES256 key
    r = c.new_account(contact=["mailto:a@example.com"])
    r = c.new_order(["www.example.com"])
    r = c.post(url, "", nonce="forged")           # POST-as-GET, bad nonce
    r = c.post(url, {}, signature=ac.flip_last_bit)

Every request goes over a fresh TLS connection trusting only `cafile`
(with host-name checking) and is recorded in Client.log as (method, url,
Response) so a suite can check properties of every answer (Replay-Nonce,
Link rel="index"). Responses are pkidtest.Response objects; problem
documents are read with problem_type()/problem().

Keys: AccountKey.generate("ES256"|"ES384"|"ES512"|"RS256"|"EdDSA").
Nothing here retries: a badNonce on a request that should have worked is
the server's fault (dehydrated never retries one).
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (ec, ed25519, padding,
                                                       rsa, utils)
from cryptography.x509.oid import ExtensionOID, NameOID

import pkidtest as pt
from pkidtest import Abort

JOSE = "application/jose+json"
PROBLEM = "application/problem+json"
ERR = "urn:ietf:params:acme:error:"
POLL_TIMEOUT = 30.0		# seconds poll() waits for a final status
POLL_SLEEP_MAX = 0.25		# poll() never sleeps longer than this per round
ORDERS_PAGES_MAX = 100		# orders() gives up after this many pages

EC_ALGS = {
    "ES256": (ec.SECP256R1, hashes.SHA256, 32, "P-256"),
    "ES384": (ec.SECP384R1, hashes.SHA384, 48, "P-384"),
    "ES512": (ec.SECP521R1, hashes.SHA512, 66, "P-521"),
}
HMAC_ALGS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
             "HS512": hashlib.sha512}
USE_ACCOUNT = object()		# post(kid=...) default: the account URL


# ---- encodings ---------------------------------------------------------------

def b64u(data):
    """base64url without padding (RFC 7515 §2)."""
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def json_b64u(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def int_b64u(n, length=None):
    """A non-negative integer as big-endian bytes (minimal, or exactly
    length bytes), base64url."""
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return b64u(n.to_bytes(length, "big"))


# ---- account keys ------------------------------------------------------------

class AccountKey:
    """A private key with its JWS algorithm: ES256/ES384/ES512 (P-256,
    P-384, P-521), RS256 (RSA PKCS#1 v1.5 with SHA-256) or EdDSA
    (Ed25519)."""

    def __init__(self, private_key, alg):
        self.key = private_key
        self.alg = alg

    @classmethod
    def generate(cls, alg="ES256", rsa_bits=2048):
        if alg in EC_ALGS:
            return cls(ec.generate_private_key(EC_ALGS[alg][0]()), alg)
        if alg == "RS256":
            return cls(rsa.generate_private_key(public_exponent=65537,
                                                key_size=rsa_bits), alg)
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate(), alg)
        raise ValueError("unsupported JWS algorithm %s" % alg)

    @classmethod
    def from_pem(cls, pem):
        """Loads a PEM private key; the algorithm follows its type
        (RSA -> RS256, P-256/384/521 -> ES*, Ed25519 -> EdDSA)."""
        if isinstance(pem, str):
            pem = pem.encode()
        k = serialization.load_pem_private_key(pem, password=None)
        if isinstance(k, rsa.RSAPrivateKey):
            return cls(k, "RS256")
        if isinstance(k, ed25519.Ed25519PrivateKey):
            return cls(k, "EdDSA")
        for alg, (curve, _, _, _) in EC_ALGS.items():
            if isinstance(k, ec.EllipticCurvePrivateKey) and \
                    isinstance(k.curve, curve):
                return cls(k, alg)
        raise ValueError("unsupported key type %s" % type(k).__name__)

    def pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def public_pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self):
        """The public JWK (RFC 7517/7518/8037)."""
        pub = self.key.public_key()
        if self.alg in EC_ALGS:
            size, crv = EC_ALGS[self.alg][2], EC_ALGS[self.alg][3]
            n = pub.public_numbers()
            return {"kty": "EC", "crv": crv, "x": int_b64u(n.x, size),
                    "y": int_b64u(n.y, size)}
        if self.alg == "RS256":
            n = pub.public_numbers()
            return {"kty": "RSA", "n": int_b64u(n.n), "e": int_b64u(n.e)}
        raw = pub.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}

    def thumbprint(self):
        """RFC 7638 SHA-256 thumbprint, base64url."""
        return jwk_thumbprint(self.jwk())

    def sign(self, data):
        """The JWS signature of data (ECDSA as fixed-size r || s)."""
        if self.alg in EC_ALGS:
            _, h, size, _ = EC_ALGS[self.alg]
            der = self.key.sign(data, ec.ECDSA(h()))
            r, s = utils.decode_dss_signature(der)
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if self.alg == "RS256":
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data)


def jwk_thumbprint(jwk):
    """RFC 7638: SHA-256 over the required members, sorted, no
    whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canon = json.dumps({k: jwk[k] for k in required}, sort_keys=True,
                       separators=(",", ":"))
    return b64u(hashlib.sha256(canon.encode()).digest())


# ---- tampering helpers (for post(signature=...)) ---------------------------

def flip_last_bit(sig):
    """A signature with its last bit flipped (still the right length)."""
    if not sig:
        return b"\x01"
    return sig[:-1] + bytes([sig[-1] ^ 0x01])


def hmac_signer(alg, key):
    """sign= callback computing an HMAC (for alg HS256 etc.)."""
    def sign(data):
        return hmac.new(key, data, HMAC_ALGS[alg]).digest()
    return sign


# ---- identifiers, CSRs, certificates ---------------------------------------

def identifiers(names):
    """ACME identifiers for names: IP literals as "ip" (RFC 8738), the
    rest as "dns"."""
    out = []
    for n in names:
        try:
            ipaddress.ip_address(n)
            out.append({"type": "ip", "value": n})
        except ValueError:
            out.append({"type": "dns", "value": n})
    return out


def new_cert_key(kind="EC256"):
    """A certificate key: "EC256", "EC384", "RSA2048", "RSA1024" (too
    weak: for refusals) or "ED25519"."""
    if kind == "EC256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "EC384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("RSA"):
        return rsa.generate_private_key(public_exponent=65537,
                                        key_size=int(kind[3:]))
    if kind == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(kind)


def make_csr(names, key=None, cn=None, san=True):
    """A CSR (DER) for names as SANs (IP literals as IP SANs), with CN
    `cn` when given (cn=True: the first name); returns (der, key)."""
    if key is None:
        key = new_cert_key()
    b = x509.CertificateSigningRequestBuilder()
    if cn is True:
        cn = names[0]
    b = b.subject_name(x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []))
    if san and names:
        gns = []
        for n in names:
            try:
                gns.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                gns.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(gns), critical=False)
    alg = None if isinstance(key, ed25519.Ed25519PrivateKey) \
        else hashes.SHA256()
    csr = b.sign(key, alg)
    return csr.public_bytes(serialization.Encoding.DER), key


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_chain(pem_text):
    """The certificates of a PEM chain (cryptography objects)."""
    return [x509.load_pem_x509_certificate(p.encode())
            for p in pt.pem_certs(pem_text)]


def cert_names(cert):
    """The SAN values (DNS names and IPs as text), sorted."""
    try:
        san = cert.extensions.get_extension_for_oid(
            ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    return sorted([str(v) for v in san.get_values_for_type(x509.DNSName)] +
                  [str(v) for v in san.get_values_for_type(x509.IPAddress)])


def cert_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def ari_cert_id(cert):
    """RFC 9773 certID: base64url(AKI keyIdentifier) "." base64url(the
    serial's DER INTEGER content octets)."""
    aki = cert.extensions.get_extension_for_oid(
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier
    return "%s.%s" % (b64u(aki), b64u(serial_bytes(cert.serial_number)))


def serial_bytes(serial):
    """Two's-complement big-endian bytes of a positive serial, as in DER."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big")


def parse_rfc3339(s):
    """Seconds since the epoch of an RFC 3339 timestamp (UTC "Z" or an
    offset, optional fraction); raises ValueError."""
    import datetime
    if not isinstance(s, str):
        raise ValueError("not a string: %r" % (s,))
    t = s.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    if "." in t:		# fromisoformat (3.9/3.10) wants 3 or 6 digits
        head, rest = t.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac = (rest[:digits] + "000000")[:6]
        t = head + "." + frac + rest[digits:]
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        raise ValueError("no time zone: %s" % s)
    return d.timestamp()


# ---- the client ----------------------------------------------------------------

class Client:
    """One ACME account (or would-be account) at one server."""

    def __init__(self, directory_url, cafile, key=None, alg="ES256"):
        self.directory_url = directory_url
        self.cafile = cafile
        self.key = key or AccountKey.generate(alg)
        self.account_url = None
        self.nonces = []		# Replay-Nonce values not used yet
        self.log = []			# (method, url, Response)
        self.lock = threading.Lock()	# nonces and log (concurrent flows)
        self._dir = None
        self._ctx = None

    # -- transport
    def _context(self):
        import ssl
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=self.cafile)
        return self._ctx

    def http(self, method, url, body=None, headers=None):
        """One request; records it and keeps its Replay-Nonce."""
        u = urllib.parse.urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        ctx = self._context() if u.scheme == "https" else None
        if isinstance(body, str):
            body = body.encode()
        r = pt.http_request(u.hostname, u.port or (443 if ctx else 80),
                            method, path or "/", body=body, headers=headers,
                            context=ctx)
        r.method, r.url = method, url
        n = r.header("replay-nonce")
        with self.lock:
            self.log.append((method, url, r))
            if n:
                self.nonces.append(n)
        return r

    def directory(self):
        if self._dir is None:
            r = self.http("GET", self.directory_url)
            if r.status != 200 or not isinstance(r.json, dict):
                raise Abort("GET %s: no directory" % self.directory_url,
                            r.describe())
            self._dir = r.json
        return self._dir

    def url(self, name):
        """A directory entry (newNonce, newAccount, ...)."""
        u = self.directory().get(name)
        if not isinstance(u, str):
            raise Abort("the directory has no %s" % name,
                        json.dumps(self.directory()))
        return u

    def new_nonce(self):
        """A fresh nonce from HEAD newNonce."""
        r = self.http("HEAD", self.url("newNonce"))
        n = r.header("replay-nonce")
        if not n:
            raise Abort("HEAD newNonce gave no Replay-Nonce", r.describe())
        with self.lock:
            if n in self.nonces:
                self.nonces.remove(n)
        return n

    def nonce(self):
        """An unused nonce: the newest one a response gave, else a new
        one."""
        with self.lock:
            if self.nonces:
                return self.nonces.pop()
        return self.new_nonce()

    # -- JWS
    def jws(self, url, payload, key=None, kid=USE_ACCOUNT, nonce=None,
            protected=None, payload_b64=None, sign=None, signature=None):
        """The flattened JWS (a dict) for payload (dict/list: JSON; "":
        POST-as-GET; a str other than "" is sent as given text) at url.

        key: AccountKey (default: the client's); kid: the "kid" value
        (default: the account URL; None/False: put "jwk" instead); nonce:
        the value to use (default: an unused one; None in `protected`
        removes it); protected: header parameters set after the defaults,
        a value of None removing one; payload_b64: the raw payload field;
        sign(signing_input) -> bytes replaces signing; signature(bytes) ->
        bytes alters the signature."""
        key = key or self.key
        if kid is USE_ACCOUNT:
            kid = self.account_url
        hdr = {"alg": key.alg, "nonce": nonce if nonce is not None
               else self.nonce(), "url": url}
        if kid:
            hdr["kid"] = kid
        else:
            hdr["jwk"] = key.jwk()
        for k, v in (protected or {}).items():
            if v is None:
                hdr.pop(k, None)
            else:
                hdr[k] = v
        prot = json_b64u(hdr)
        if payload_b64 is None:
            if isinstance(payload, (dict, list)):
                payload_b64 = json_b64u(payload)
            else:
                payload_b64 = b64u(payload or "")
        signing_input = ("%s.%s" % (prot, payload_b64)).encode()
        sig = sign(signing_input) if sign else key.sign(signing_input)
        if signature:
            sig = signature(sig)
        return {"protected": prot, "payload": payload_b64,
                "signature": b64u(sig)}

    def post(self, url, payload, key=None, kid=USE_ACCOUNT, nonce=None,
             protected=None, payload_b64=None, sign=None, signature=None,
             jws=None, body=None, content_type=JOSE, headers=None):
        """A signed POST (see jws() for the knobs). jws(dict) -> dict |
        str | bytes transforms the JWS before it is serialised; body sends
        these bytes instead of any JWS; content_type None sends no
        Content-Type."""
        if body is None:
            obj = self.jws(url, payload, key, kid, nonce, protected,
                           payload_b64, sign, signature)
            if jws:
                obj = jws(obj)
            body = obj if isinstance(obj, (str, bytes)) else json.dumps(obj)
        hdrs = {}
        if content_type:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        return self.http("POST", url, body=body, headers=hdrs)

    def get(self, url, **kw):
        """POST-as-GET."""
        return self.post(url, "", **kw)

    # -- accounts
    def new_account(self, contact=None, tos=True, only_existing=False,
                    eab=None, key=None, extra=None, adopt=True, **kw):
        """newAccount signed with `key` (default: the client's) via jwk.
        eab: (kid, hmac_key_b64url, alg) adds an externalAccountBinding.
        On 200/201 with a Location and adopt, the client uses that account
        (kid) from now on."""
        key = key or self.key
        payload = {}
        if contact is not None:
            payload["contact"] = contact
        if tos is not None:
            payload["termsOfServiceAgreed"] = tos
        if only_existing:
            payload["onlyReturnExisting"] = True
        if eab:
            payload["externalAccountBinding"] = eab_jws(
                eab[0], eab[1], eab[2] if len(eab) > 2 else "HS256",
                key.jwk(), self.url("newAccount"))
        payload.update(extra or {})
        r = self.post(self.url("newAccount"), payload, key=key, kid=None,
                      **kw)
        if adopt and r.status in (200, 201) and r.header("location") and \
                key is self.key:
            self.account_url = r.header("location")
        return r

    def account(self, **kw):
        return self.get(self.account_url, **kw)

    def update_account(self, payload, **kw):
        return self.post(self.account_url, payload, **kw)

    def deactivate(self, **kw):
        return self.post(self.account_url, {"status": "deactivated"}, **kw)

    def key_change(self, new_key, inner=None, inner_jws=None, adopt=True,
                   **kw):
        """keyChange to new_key (RFC 8555 §7.3.5). inner: dict of
        overrides of the inner JWS: "protected" (header parameters, None
        removes), "payload" (replaces {"account", "oldKey"}), "key" (signs
        the inner JWS with another key), "signature" (alters it);
        inner_jws(dict) -> dict transforms the inner JWS. On 200 and
        adopt, the client signs with new_key from now on."""
        inner = inner or {}
        url = self.url("keyChange")
        payload = inner.get("payload", {"account": self.account_url,
                                        "oldKey": self.key.jwk()})
        ikey = inner.get("key", new_key)
        hdr = {"alg": ikey.alg, "jwk": new_key.jwk(), "url": url}
        for k, v in inner.get("protected", {}).items():
            if v is None:
                hdr.pop(k, None)
            else:
                hdr[k] = v
        prot, pay = json_b64u(hdr), json_b64u(payload)
        sig = ikey.sign(("%s.%s" % (prot, pay)).encode())
        if inner.get("signature"):
            sig = inner["signature"](sig)
        obj = {"protected": prot, "payload": pay, "signature": b64u(sig)}
        if inner_jws:
            obj = inner_jws(obj)
        r = self.post(url, obj, **kw)
        if adopt and r.status == 200:
            self.key = new_key
        return r

    # -- orders
    def new_order(self, names, profile=None, replaces=None, extra=None, **kw):
        """newOrder for names (a list of str, or of identifier dicts)."""
        ids = [n if isinstance(n, dict) else identifiers([n])[0]
               for n in names]
        payload = {"identifiers": ids}
        if profile is not None:
            payload["profile"] = profile
        if replaces is not None:
            payload["replaces"] = replaces
        payload.update(extra or {})
        return self.post(self.url("newOrder"), payload, **kw)

    def respond(self, chall_url, **kw):
        """Tells the server to validate a challenge (payload {})."""
        return self.post(chall_url, {}, **kw)

    def poll(self, url, done=("valid", "invalid"), timeout=POLL_TIMEOUT):
        """POST-as-GET url until its status is in `done` (sleeping
        Retry-After, at most POLL_SLEEP_MAX); returns the last Response or
        raises Abort on an error answer or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(url)
            if r.status != 200 or not isinstance(r.json, dict):
                raise Abort("polling %s" % url, r.describe())
            if r.json.get("status") in done:
                return r
            if time.monotonic() > deadline:
                raise Abort("%s still %s after %d s" % (
                    url, r.json.get("status"), timeout), r.describe())
            try:
                wait = float(r.header("retry-after") or 0.2)
            except ValueError:
                wait = 0.2
            time.sleep(max(0.05, min(wait, POLL_SLEEP_MAX)))

    def finalize(self, order, csr_der, **kw):
        """POST the CSR to the order's finalize URL."""
        return self.post(order["finalize"], {"csr": b64u(csr_der)}, **kw)

    def download(self, cert_url, **kw):
        return self.get(cert_url, **kw)

    def orders(self):
        """Every page of the account's orders list: (list of order URLs,
        list of Responses)."""
        acct = self.account()
        if acct.status != 200 or not isinstance(acct.json, dict):
            raise Abort("account POST-as-GET failed", acct.describe())
        url, urls, pages = acct.json.get("orders"), [], []
        while url:
            if len(pages) >= ORDERS_PAGES_MAX:
                raise Abort("orders list: more than %d pages" %
                            ORDERS_PAGES_MAX)
            r = self.get(url)
            if r.status != 200 or not isinstance(r.json, dict) or \
                    not isinstance(r.json.get("orders"), list):
                raise Abort("orders list page %s" % url, r.describe())
            pages.append(r)
            urls.extend(r.json["orders"])
            nxt = r.links("next")
            url = nxt[0] if nxt else None
        return urls, pages

    def revoke(self, cert_der_bytes, reason=None, key=None, jwk=False, **kw):
        """revokeCert: signed by the account (kid), or with jwk=True by
        `key` (e.g. the certificate's own key, an AccountKey)."""
        payload = {"certificate": b64u(cert_der_bytes)}
        if reason is not None:
            payload["reason"] = reason
        if jwk:
            return self.post(self.url("revokeCert"), payload, key=key,
                             kid=None, **kw)
        return self.post(self.url("revokeCert"), payload, key=key, **kw)

    def renewal_info(self, cert_id):
        """GET renewalInfo/<certID> (RFC 9773, unauthenticated)."""
        base = self.url("renewalInfo").rstrip("/")
        return self.http("GET", base + "/" + cert_id)

    # -- challenges
    def key_authorization(self, token):
        return "%s.%s" % (token, self.key.thumbprint())

    def dns_txt(self, token):
        """The dns-01 TXT value for a token."""
        return b64u(hashlib.sha256(
            self.key_authorization(token).encode()).digest())

    # -- whole flows (the happy path; each step must work)
    def issue(self, names, solve, csr_key=None, profile=None, cn=None,
              replaces=None, chall_type="http-01"):
        """newOrder -> solve(authz, chall) for each pending authorization
        (it must make the challenge answerable) -> respond -> wait ready ->
        finalize -> wait valid -> download. Returns a dict with order
        (JSON), order_url, chain (PEM text), cert (leaf object), key and
        the responses of finalize/download; raises Abort naming the step
        that failed."""
        r = self.new_order(names, profile=profile, replaces=replaces)
        if r.status != 201 or not isinstance(r.json, dict):
            raise Abort("newOrder %s" % names, r.describe())
        order_url, order = r.header("location"), r.json
        for az_url in order.get("authorizations", []):
            az = self.get(az_url)
            if az.status != 200 or not isinstance(az.json, dict):
                raise Abort("authorization %s" % az_url, az.describe())
            if az.json.get("status") == "valid":
                continue
            ch = [c for c in az.json.get("challenges", [])
                  if c.get("type") == chall_type]
            if not ch:
                raise Abort("no %s challenge in %s" % (chall_type, az_url),
                            az.describe())
            solve(az.json, ch[0])
            rr = self.respond(ch[0]["url"])
            if rr.status != 200:
                raise Abort("responding to %s" % ch[0]["url"], rr.describe())
            done = self.poll(az_url)
            if done.json.get("status") != "valid":
                raise Abort("authorization %s is %s" % (
                    az_url, done.json.get("status")), done.describe())
        ready = self.poll(order_url, done=("ready", "invalid", "valid"))
        if ready.json.get("status") != "ready":
            raise Abort("order %s is %s, not ready" % (
                order_url, ready.json.get("status")), ready.describe())
        csr, key = make_csr([i["value"] for i in order["identifiers"]],
                            key=csr_key, cn=cn)
        fin = self.finalize(ready.json, csr)
        if fin.status != 200:
            raise Abort("finalize %s" % order_url, fin.describe())
        final = self.poll(order_url)
        if final.json.get("status") != "valid" or \
                not final.json.get("certificate"):
            raise Abort("order %s ended %s" % (order_url,
                                                final.json.get("status")),
                        final.describe())
        dl = self.download(final.json["certificate"])
        if dl.status != 200:
            raise Abort("certificate download", dl.describe())
        chain = load_chain(dl.text)
        if not chain:
            raise Abort("certificate download: no PEM certificate",
                        dl.describe())
        return {"order": final.json, "order_url": order_url,
                "chain": dl.text, "cert": chain[0], "key": key,
                "finalize": fin, "download": dl}


def eab_jws(kid, hmac_key_b64u, alg, account_jwk, url):
    """The externalAccountBinding JWS (RFC 8555 §7.3.4): the account's
    JWK MACed with the EAB key."""
    prot = json_b64u({"alg": alg, "kid": kid, "url": url})
    pay = json_b64u(account_jwk)
    mac = hmac.new(b64u_decode(hmac_key_b64u), ("%s.%s" % (prot, pay))
                   .encode(), HMAC_ALGS[alg]).digest()
    return {"protected": prot, "payload": pay, "signature": b64u(mac)}


def problem_type(r):
    """The ACME error type of a problem document without the
    "urn:ietf:params:acme:error:" prefix (the full type when it has
    another one), or None."""
    t = r.json.get("type") if isinstance(r.json, dict) else None
    if isinstance(t, str) and t.startswith(ERR):
        return t[len(ERR):]
    return t


def is_problem(r):
    """Whether r is an RFC 7807 problem document with an ACME type."""
    ct = (r.header("content-type") or "").split(";")[0].strip().lower()
    return ct == PROBLEM and isinstance(r.json, dict) and \
        isinstance(r.json.get("type"), str)


def random_token(n=32):
    return b64u(os.urandom(n))
