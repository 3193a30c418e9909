#!/usr/bin/env bash
# Regenerates the TLS test certificates in this folder (test use only: the private keys
# are public). Two independent CAs: `ca` signs the server's and the trusted client's
# certificates; `other-ca` signs a client certificate the server must refuse. Valid for
# 100 years so the tests do not start failing on a date.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  key "$1-key.pem"
  openssl req -x509 -new -key "$1-key.pem" -sha256 -days $days -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem"
}
leaf() { # name ca subject extensions
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "$3" -out "$1.csr"
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2-key.pem" -CAcreateserial -sha256 \
    -days $days -extfile "$1.ext" -out "$1-cert.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "/O=Natrium Test/CN=Natrium Test CA"
ca other-ca "/O=Elsewhere/CN=Untrusted Test CA"
leaf server ca "/O=Natrium Test/CN=localhost" \
  "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1')"
leaf client ca "/O=Natrium Test/OU=Clients/CN=alice" \
  "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=email:alice@example.com')"
leaf stranger other-ca "/O=Elsewhere/CN=mallory" \
  "$(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
rm -f ./*.srl other-ca-key.pem ca-key.pem
