#!/usr/bin/env bash
# Publish JSON events over HTTP ingest with curl: a SAS token signed with openssl.
#   HEADWATER_CONNECTION_STRING="$(headwater connection-string)" ./send.sh HUB [HTTP_URL]
# HTTP_URL: the namespace's http_ingest_url (`headwater namespace`), default http://localhost:8081.
set -euo pipefail
HUB="${1:?usage: send.sh HUB [HTTP_URL]}"
URL="${2:-http://localhost:8081}"
CS="${HEADWATER_CONNECTION_STRING:?set HEADWATER_CONNECTION_STRING}"

field() { printf '%s' "$CS" | tr ';' '\n' | sed -n "s/^$1=//p"; }
urlencode() {  # RFC 3986: everything but letters, digits and -._~ as %XX
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in [a-zA-Z0-9.~_-]) out+="$c" ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
  done
  printf '%s' "$out"
}

RESOURCE=$(field Endpoint)            # the namespace, headwater://host:port/
KEY_NAME=$(field SharedAccessKeyName)
KEY=$(field SharedAccessKey)
EXPIRY=$(( $(date +%s) + 3600 ))
SR=$(urlencode "$RESOURCE")
SIG=$(printf '%s\n%s' "$SR" "$EXPIRY" | openssl dgst -sha256 -hmac "$KEY" -binary | base64)
TOKEN="SharedAccessSignature sr=$SR&sig=$(urlencode "$SIG")&se=$EXPIRY&skn=$(urlencode "$KEY_NAME")"

# A JSON array is one all-or-nothing batch; 201 with the sequence numbers.
curl -sS -X POST "$URL/$HUB/messages" \
  -H "Authorization: $TOKEN" -H "Content-Type: application/json" \
  -d '[{"tripId": "c1", "startLocation": "Seattle"}, {"tripId": "c2", "startLocation": "Portland"}]'
echo
# An error is {"error": {"reason", "message", "metadata"}} with an HTTP status (here 404).
curl -sS -X POST "$URL/no-such-hub/messages" -H "Authorization: $TOKEN" -d '{"tripId": "c3"}'
echo
