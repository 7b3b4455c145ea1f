#!/bin/sh
# gen_peer_certs.sh DIR: test PKI for TLS between peer daemons, made with
# openssl at test time: a CA and one node certificate for 127.0.0.1 that
# serves (serverAuth) and calls its peers (clientAuth). EC P-256, 2 days.
set -eu
d=$1
mkdir -p "$d"
cd "$d"
umask 077
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -days 2 -subj "/CN=sfp peer test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out ca.pem 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out node.key 2>/dev/null
openssl req -new -key node.key -subj "/CN=sfp-node" -out node.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > node.ext
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile node.ext -out node.pem 2>/dev/null
rm -f ./*.csr ./*.ext ./*.srl
