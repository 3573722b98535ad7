#!/bin/sh
# Provision the gate's serving certificate without cert-manager.
#
#   deploy/make-serving-cert.sh OUT_DIR            write ca.pem, tls.crt, tls.key into OUT_DIR
#   deploy/make-serving-cert.sh OUT_DIR --apply    also create the Secret opkey-admission-tls
#                                                  and set the webhook's caBundle (kubectl)
#
# It makes a CA of its own (ECDSA P-256, valid 1 year; its key stays in OUT_DIR, keep it
# offline or delete it) and a serving certificate for the Service's DNS names, valid 90 days.
# Run it again before the certificate expires; the gate reloads the Secret's files.
# NAMESPACE, SERVICE and KUBECTL may be set in the environment.
set -eu
out=${1:?usage: make-serving-cert.sh OUT_DIR [--apply]}
apply=${2:-}
namespace=${NAMESPACE:-opkey-system}
service=${SERVICE:-opkey-admission}
kubectl=${KUBECTL:-kubectl}
umask 077
mkdir -p "$out"
cd "$out"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 365 -subj "/CN=$service-ca" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out tls.key.ec
openssl pkcs8 -topk8 -nocrypt -in tls.key.ec -out tls.key
rm tls.key.ec
openssl req -new -key tls.key -subj "/CN=$service.$namespace.svc" -out tls.csr
printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local" \
    >tls.ext
openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 90 \
    -extfile tls.ext -out tls.crt 2>/dev/null
rm -f tls.csr tls.ext ca.srl
if [ "$apply" = "--apply" ]; then
    "$kubectl" -n "$namespace" create secret tls "$service-tls" --cert=tls.crt --key=tls.key \
        --dry-run=client -o yaml | "$kubectl" apply -f -
    bundle=$(base64 <ca.pem | tr -d '\n')
    "$kubectl" patch validatingwebhookconfiguration "$service" --type=json \
        -p "[{\"op\":\"add\",\"path\":\"/webhooks/0/clientConfig/caBundle\",\"value\":\"$bundle\"}]"
fi
echo "serving certificate for $service.$namespace.svc in $out"
