#!/bin/sh
# make-pki.sh OUTDIR - make the CMP interop test PKI with the openssl CLI (3.0 or later).
#
# Fixed names and serials, fresh keys on every run; EC keys are P-256, signatures SHA-256.
#   root.crt/.key            CN=CMP Interop Root CA (self-signed, serial 1)
#   ca.crt/.key              CN=CMP Interop Issuing CA (by root, pathlen 0, serial 2)
#   server.crt/.key          CN=CMP Interop Server, EKU cmcCA + cmcRA (serial 0x10)
#   client.crt/.key          CN=CMP Interop Client EC (serial 0x20)
#   client-rsa.crt/.key      CN=CMP Interop Client RSA, RSA-2048 (serial 0x21)
#   client-ed25519.crt/.key  CN=CMP Interop Client Ed25519 (serial 0x22)
#   new.key/.pub/.crt/.csr   CN=CMP Interop Client (serial 0x30): the key to certify and
#                            the fixed cert the OpenSSL 3.0 mock server returns
#   ca-chain.crt, server-chain.crt, client-chain.crt   leaf first
#   secret.txt, ref.txt      MAC secret (interop-secret-0123) and senderKID (interop-ref-4711)
#   ext.cnf                  the extension sections (v3_ee is used for issuing more EE certs)
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
OUT=$1
SECRET=${CMP_SECRET:-interop-secret-0123}
REF=${CMP_REF:-interop-ref-4711}
CA_DAYS=7300
EE_DAYS=3650

mkdir -p "$OUT"
cd "$OUT"
OPENSSL_CONF=/dev/null
export OPENSSL_CONF

cat > ext.cnf <<'CNF'
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = placeholder
[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
# id-kp-cmcCA, id-kp-cmcRA (RFC 9483 section 3.1)
extendedKeyUsage = 1.3.6.1.5.5.7.3.27, 1.3.6.1.5.5.7.3.28
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_ee]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

# p256 FILE: a new EC P-256 key
p256() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
}

# issue NAME SUBJECT SECTION ISSUER SERIAL DAYS: certify NAME.key, write NAME.crt
issue() {
  openssl req -new -config ext.cnf -key "$1.key" -subj "$2" -out "$1.req.tmp"
  if ! openssl x509 -req -in "$1.req.tmp" -CA "$4.crt" -CAkey "$4.key" \
      -set_serial "$5" -days "$6" -sha256 -extfile ext.cnf -extensions "$3" \
      -out "$1.crt" 2>"$1.err.tmp"; then
    cat "$1.err.tmp" >&2
    exit 1
  fi
  rm -f "$1.req.tmp" "$1.err.tmp"
}

p256 root.key
openssl req -new -x509 -config ext.cnf -key root.key -subj "/CN=CMP Interop Root CA" \
  -set_serial 1 -days "$CA_DAYS" -sha256 -extensions v3_root -out root.crt

p256 ca.key
issue ca "/CN=CMP Interop Issuing CA" v3_ca root 2 "$CA_DAYS"

p256 server.key
issue server "/CN=CMP Interop Server" v3_server ca 0x10 "$EE_DAYS"

p256 client.key
issue client "/CN=CMP Interop Client EC" v3_ee ca 0x20 "$EE_DAYS"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client-rsa.key 2>/dev/null
issue client-rsa "/CN=CMP Interop Client RSA" v3_ee ca 0x21 "$EE_DAYS"
openssl genpkey -algorithm ED25519 -out client-ed25519.key
issue client-ed25519 "/CN=CMP Interop Client Ed25519" v3_ee ca 0x22 "$EE_DAYS"

p256 new.key
issue new "/CN=CMP Interop Client" v3_ee ca 0x30 "$EE_DAYS"
openssl req -new -config ext.cnf -key new.key -subj "/CN=CMP Interop Client" -sha256 -out new.csr
openssl pkey -in new.key -pubout -out new.pub

cat ca.crt root.crt > ca-chain.crt
cat server.crt ca.crt > server-chain.crt
cat client.crt ca.crt > client-chain.crt

printf '%s\n' "$SECRET" > secret.txt
printf '%s\n' "$REF" > ref.txt
chmod 600 ./*.key
pwd
