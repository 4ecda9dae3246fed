#!/usr/bin/env bash
# Regenerates the PEM inputs of the hostile-input cases in this directory.
# The committed files are what the tests use; run this only to replace them.
#   csr-valid.pem         P-256 CSR, CN and SAN device1.example.com
#   csr-badsig.pem        csr-valid.pem with the last signature byte flipped
#   csr-evil-org.pem      valid CSR for evil.org (outside an example.com policy)
#   import-cert.pem       self-signed P-256 certificate, 100 years
#   import-wrong-key.pem  a P-256 key that does NOT belong to import-cert.pem
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/req.cnf" <<'CNF'
[req]
distinguished_name = dn
[dn]
[v3_self]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:legacy.example.net
subjectKeyIdentifier = hash
CNF
newkey="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null"
openssl req -config "$tmp/req.cnf" -new $newkey -subj /CN=device1.example.com \
	-addext subjectAltName=DNS:device1.example.com -out csr-valid.pem
openssl req -config "$tmp/req.cnf" -new $newkey -subj /CN=evil.org \
	-addext subjectAltName=DNS:evil.org -out csr-evil-org.pem
openssl req -config "$tmp/req.cnf" -x509 -extensions v3_self $newkey \
	-subj /CN=legacy.example.net -days 36500 -out import-cert.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out import-wrong-key.pem
chmod 644 import-wrong-key.pem
python3 - <<'PY'
import base64
lines = open("csr-valid.pem").read().splitlines()
der = bytearray(base64.b64decode("".join(l for l in lines if not l.startswith("-----"))))
der[-1] ^= 0x01		# last byte of the ECDSA signature's s: still valid DER
b64 = base64.b64encode(bytes(der)).decode()
body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
with open("csr-badsig.pem", "w") as f:
    f.write("-----BEGIN CERTIFICATE REQUEST-----\n" + body +
            "\n-----END CERTIFICATE REQUEST-----\n")
PY
# OpenSSL 3.0's req -verify exits 0 even on failure: read what it says.
openssl req -in csr-valid.pem -noout -verify 2>&1 | grep -q "verify OK"
if ! openssl req -in csr-badsig.pem -noout -verify 2>&1 | grep -q "verify failure"; then
	echo "make-pems.sh: csr-badsig.pem still verifies" >&2
	exit 1
fi
