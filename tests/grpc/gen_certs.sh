#!/bin/sh
# gen_certs.sh DIR: test PKI made with openssl at test time (nothing checked
# in): two independent CAs, a server certificate for 127.0.0.1/localhost
# signed by CA 1, a client certificate signed by CA 1 and another client
# certificate signed by CA 2. EC P-256 keys, valid for 2 days.
set -eu
d=$1
mkdir -p "$d"
cd "$d"
umask 077
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -days 2 -subj "/CN=sfp test $1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        -out "$1.pem" 2>/dev/null
}
leaf() { # name ca ext
    key "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
ca ca1
ca ca2
leaf server ca1 "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf client ca1 "extendedKeyUsage=clientAuth"
leaf rogue ca2 "extendedKeyUsage=clientAuth"
rm -f ./*.csr ./*.ext ./*.srl
