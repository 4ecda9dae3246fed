#!/usr/bin/env bash
# Regenerates the CSR inputs of tests/integration/acme_protocol_test's
# finalize cases (finalize-cases.json). The committed files are what the
# test uses; run this only to replace them. The test finalizes an order for
# exactly these two names, which every CSR here gets wrong in one way:
#   csr.acme.example.com, www.csr.acme.example.com
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$tmp/req.cnf"
both="DNS:csr.acme.example.com,DNS:www.csr.acme.example.com"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null"

req() {	# req OUT SUBJ SAN KEYOPTS...
	local out=$1 subj=$2 san=$3
	shift 3
	if [ -n "$san" ]; then set -- "$@" -addext "subjectAltName=$san"; fi
	openssl req -config "$tmp/req.cnf" -new "$@" -subj "$subj" -out "$out" \
		2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
}

req csr-good-reference.pem / "$both" $ec
req csr-extra-san.pem / "$both,DNS:evil.example.com" $ec
req csr-extra-ip-san.pem / "$both,IP:127.0.0.1" $ec
req csr-missing-san.pem / "DNS:csr.acme.example.com" $ec
req csr-cn-not-identifier.pem /CN=other.acme.example.com "$both" $ec
req csr-cn-only.pem /CN=csr.acme.example.com "" $ec
req csr-wildcard-san.pem / "DNS:*.csr.acme.example.com,DNS:www.csr.acme.example.com" $ec
req csr-rsa1024.pem / "$both" -newkey rsa:1024 -nodes -keyout /dev/null
openssl genpkey -genparam -algorithm DSA -pkeyopt dsa_paramgen_bits:2048 \
	-out "$tmp/dsa.param" 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
req csr-dsa2048.pem / "$both" -newkey "dsa:$tmp/dsa.param" -nodes -keyout /dev/null
req csr-ec-p192.pem / "$both" -newkey ec -pkeyopt ec_paramgen_curve:prime192v1 -nodes -keyout /dev/null
req csr-sha1.pem / "$both" $ec -sha1

# The reference CSR with the last byte of its ECDSA signature flipped:
# still valid DER, no longer a valid signature.
python3 - <<'PY'
import base64
lines = open("csr-good-reference.pem").read().splitlines()
der = bytearray(base64.b64decode("".join(l for l in lines if not l.startswith("-----"))))
der[-1] ^= 0x01
b64 = base64.b64encode(bytes(der)).decode()
body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
with open("csr-bad-signature.pem", "w") as f:
    f.write("-----BEGIN CERTIFICATE REQUEST-----\n" + body +
            "\n-----END CERTIFICATE REQUEST-----\n")
# The same request in BER: the outer SEQUENCE's length in a long form one
# byte longer than needed (signature and signed part untouched).
good = base64.b64decode("".join(l for l in lines if not l.startswith("-----")))
assert good[0] == 0x30 and good[1] == 0x82
ber = bytes([0x30, 0x83, 0x00]) + good[2:]
b64 = base64.b64encode(ber).decode()
body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
with open("csr-ber-length.pem", "w") as f:
    f.write("-----BEGIN CERTIFICATE REQUEST-----\n" + body +
            "\n-----END CERTIFICATE REQUEST-----\n")
PY
# OpenSSL 3.0's req -verify exits 0 even on failure: read what it says.
openssl req -in csr-good-reference.pem -noout -verify 2>&1 | grep -q "verify OK"
if ! openssl req -in csr-bad-signature.pem -noout -verify 2>&1 | grep -q "verify failure"; then
	echo "make-csrs.sh: csr-bad-signature.pem still verifies" >&2
	exit 1
fi
