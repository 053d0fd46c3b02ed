#!/usr/bin/env bash
# Records how a real daemon answers the RPC commands px-node and px-oracle use:
# starts a throw-away daemon (tools/<flavor>/start.sh), sends each request with
# curl and prints request, HTTP status, content type and a body excerpt as
# Markdown. The summary of both runs is tools/RPC-FACTS.md.
#
#   tools/rpc-facts.sh kubo   > /tmp/facts-kubo.md
#   tools/rpc-facts.sh jsipfs > /tmp/facts-jsipfs.md
#   # belt and braces: in a network namespace that has only loopback
#   unshare -n bash -c 'ip link set lo up; tools/rpc-facts.sh kubo' > /tmp/facts-kubo.md
set -euo pipefail
flavor="${1:?usage: rpc-facts.sh kubo|jsipfs}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
eval "$("$here/$flavor/start.sh")"
[ "$flavor" = kubo ] && echo "(kubo started with PX_KUBO_MODE=${PX_KUBO_MODE:-dht})" >&2
trap '"$here/kubo/stop.sh" "$IPFS_PATH"' EXIT
A="$PX_IPFS_API/api/v0"
W="$(mktemp -d)"; trap '"$here/kubo/stop.sh" "$IPFS_PATH"; rm -rf "$W"' EXIT

# req LABEL PATH [curl args...]: POST (unless -X given), print a Markdown block.
req() {
    local label="$1" path="$2"; shift 2
    local code
    rm -f "$W/b" "$W/h"; : >"$W/b"; : >"$W/h"
    code="$(curl -sS -X POST --max-time 20 -D "$W/h" -o "$W/b" -w '%{http_code}' "$@" "$A/$path" 2>"$W/e" || true)"
    local ct te tr
    ct="$(sed -n 's/^[Cc]ontent-[Tt]ype: *//p' "$W/h" | tr -d '\r' | head -1)"
    te="$(sed -n 's/^[Tt]ransfer-[Ee]ncoding: *//p' "$W/h" | tr -d '\r' | head -1)"
    tr="$(grep -i '^x-stream-error\|^x-chunked-output\|^trailer' "$W/h" | tr -d '\r' | tr '\n' ' ' || true)"
    printf '#### %s\n`POST /api/v0/%s`' "$label" "$path"
    [ "$#" -gt 0 ] && printf ' (curl %s)' "$(printf '%q ' "$@" | sed 's#'"$W"'/##g')"
    printf '\n\n- status **%s**, content-type `%s`%s%s, %s bytes\n' "$code" "$ct" \
        "${te:+, transfer-encoding $te}" "${tr:+, headers: $tr}" "$(wc -c <"$W/b")"
    [ -s "$W/e" ] && printf -- '- curl: %s\n' "$(head -c 300 "$W/e")"
    if [ -s "$W/b" ]; then
        if LC_ALL=C grep -q '[^[:print:][:space:]]' "$W/b"; then
            printf -- '- body (binary, hex of first 48 bytes): `%s`\n' "$(head -c 48 "$W/b" | od -An -tx1 | tr -d ' \n')"
        else
            printf -- '- body:\n```\n%s\n```\n' "$(head -c 700 "$W/b")"
        fi
    fi
    echo
}
j() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().splitlines()[-1]); print(d'"$1"')' <"$W/b" 2>/dev/null || echo none; }

B=BOUNDARYpxfacts
mp() { # mp OUT "disposition-extra|content-type|data" ...
    local out="$1"; shift; : >"$out"
    for p in "$@"; do
        IFS='|' read -r disp ctype data <<<"$p"
        printf -- '--%s\r\nContent-Disposition: form-data; %s\r\n' "$B" "$disp" >>"$out"
        [ -n "$ctype" ] && printf 'Content-Type: %s\r\n' "$ctype" >>"$out"
        printf '\r\n%s\r\n' "$data" >>"$out"
    done
    printf -- '--%s--\r\n' "$B" >>"$out"
}
MPH="Content-Type: multipart/form-data; boundary=$B"

echo "## $flavor${PX_KUBO_MODE:+ (PX_KUBO_MODE=$PX_KUBO_MODE)}: $(curl -s -X POST "$A/version" | head -c 200)"
echo
echo "### daemon, identity"
req "version" version
req "version with GET" version -X GET
req "id" id
req "unknown command" no/such/command

echo "### add"
mp "$W/m1" 'name="file"; filename="file"|application/octet-stream|hello px'
req "add, node's upload options, one part with filename and Content-Type" \
    "add?pin=true&cid-version=0&raw-leaves=false&chunker=size-262144&progress=false" -H "$MPH" --data-binary "@$W/m1"
CID="$(j '["Hash"]')"
mp "$W/m2" 'name="file"; filename="0"||index object zero' 'name="file"; filename="1"||index object one'
req "add, two parts, digit-only filenames, no Content-Type on parts (node's index objects)" \
    "add?pin=false&cid-version=0&progress=false" -H "$MPH" --data-binary "@$W/m2"
C0="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[0])["Hash"])' <"$W/b" 2>/dev/null || echo none)"
mp "$W/m3" 'name="file"; filename="0"|application/octet-stream|index object zero' 'name="file"; filename="1"|application/octet-stream|index object one'
req "add, two parts, digit-only filenames, with Content-Type" \
    "add?pin=false&cid-version=0&progress=false" -H "$MPH" --data-binary "@$W/m3"
[ "$C0" = none ] && C0="$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read().splitlines()[0])["Hash"])' <"$W/b" 2>/dev/null || echo none)"
mp "$W/m4" 'name="path"|application/octet-stream|crate style part'
req "add, part name=\"path\" without filename (ipfs-api crate style)" \
    "add?pin=true&cid-version=0" -H "$MPH" --data-binary "@$W/m4"
mp "$W/m5" 'name="file"; filename="file"|application/octet-stream|with progress'
req "add, progress default" "add?pin=false&cid-version=0" -H "$MPH" --data-binary "@$W/m5"
printf -- '--%s\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: application/octet-stream\r\n\r\nabc' "$B" >"$W/m6"
req "add, multipart body cut off before the closing boundary (trailer shown if any)" "add?pin=true&cid-version=0" -H "$MPH" --data-binary "@$W/m6"
req "add, no body" "add?pin=true"
req "add, bad cid-version" "add?cid-version=7" -H "$MPH" --data-binary "@$W/m1"
head -c 300000 /dev/zero | tr '\0' 'x' > "$W/big"
req "add, 300000 bytes via curl -F (CIDv0, chunker size-262144)" \
    "add?pin=true&cid-version=0&raw-leaves=false&chunker=size-262144&progress=false" -F "file=@$W/big;type=application/octet-stream"
BIG="$(j '["Hash"]')"

echo "### pin"
req "pin/ls arg=<pinned cid>" "pin/ls?arg=$CID"
req "pin/ls arg=<unpinned cid>" "pin/ls?arg=$C0"
req "pin/ls type=recursive" "pin/ls?type=recursive"
req "pin/ls bad CID" "pin/ls?arg=notacid"
req "pin/add arg=<unpinned cid>" "pin/add?arg=$C0"
req "pin/add two args (one already pinned)" "pin/add?arg=$C0&arg=$CID"
req "pin/add missing arg" "pin/add"
req "pin/add bad CID" "pin/add?arg=notacid"
req "pin/add absent CID (10 s cap)" "pin/add?arg=QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51" --max-time 10
req "pin/rm arg=<pinned>&recursive=true" "pin/rm?arg=$C0&recursive=true"
req "pin/rm again (not pinned)" "pin/rm?arg=$C0&recursive=true"
req "pin/rm missing arg" "pin/rm"
req "pin/rm bad CID" "pin/rm?arg=notacid"

echo "### cat, block/stat"
req "cat arg=/ipfs/<cid>" "cat?arg=/ipfs/$CID"
req "cat arg=<cid>&offset=2&length=3" "cat?arg=$CID&offset=2&length=3"
req "cat length=0" "cat?arg=$CID&length=0"
req "cat offset past the end" "cat?arg=$CID&offset=100"
req "cat negative offset" "cat?arg=$CID&offset=-1"
req "cat 300000-byte file offset=262140&length=8 (crosses a chunk)" "cat?arg=$BIG&offset=262140&length=8"
req "cat missing arg" "cat"
req "cat bad CID" "cat?arg=notacid"
req "cat absent CID (10 s cap)" "cat?arg=QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51" --max-time 10
req "block/stat arg=<cid>" "block/stat?arg=$CID"
req "block/stat arg=<300000-byte root>" "block/stat?arg=$BIG"
req "block/stat missing arg" "block/stat"
req "block/stat bad CID" "block/stat?arg=notacid"
req "block/stat absent CID (10 s cap)" "block/stat?arg=QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51" --max-time 10

echo "### keys"
req "key/gen arg=k0&type=ed25519&size=0 (what ipfs-api 0.6's key_gen(name, Ed25519, 0) sends)" "key/gen?arg=k0&type=ed25519&size=0"
req "key/gen arg=k1&type=ed25519 (no ipns-base)" "key/gen?arg=k1&type=ed25519"
req "key/gen arg=k2&type=ed25519&ipns-base=base36" "key/gen?arg=k2&type=ed25519&ipns-base=base36"
K2ID="$(j '["Id"]')"
req "key/gen duplicate name" "key/gen?arg=k2&type=ed25519"
req "key/gen missing arg" "key/gen?type=ed25519"
req "key/gen bad type" "key/gen?arg=k3&type=nope"
req "key/list" "key/list"
req "key/list l=true&ipns-base=base36" "key/list?l=true&ipns-base=base36"
# the base36 (k51...) form of k2's name, whatever form the daemon printed
K2="$(python3 - "$K2ID" <<'PY'
import sys
s = sys.argv[1]
A58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
A36 = '0123456789abcdefghijklmnopqrstuvwxyz'
if s.startswith('k51'):
    print(s); sys.exit()
n = 0
for c in s: n = n * 58 + A58.index(c)
zeros = len(s) - len(s.lstrip('1'))  # leading '1's are leading zero bytes
mh = b'\0' * zeros + n.to_bytes((n.bit_length() + 7) // 8, 'big')
b = bytes([1, 0x72]) + mh  # CIDv1, libp2p-key
n = int.from_bytes(b, 'big'); out = ''
while n: n, r = divmod(n, 36); out = A36[r] + out
print('k' + out)
PY
)"
echo "k2's name as printed: \`$K2ID\`; base36 CIDv1 form used below: \`$K2\`"
echo

K1="$(curl -s -X POST "$A/key/list?l=true&ipns-base=base36" | python3 -c 'import json,sys; print(([k["Id"] for k in json.load(sys.stdin)["Keys"] if k["Name"]=="k1"] + ["none"])[0])')"
echo "k1 (never published): \`$K1\`"
echo

echo "### name/publish, name/resolve"
req "name/publish without allow-offline" "name/publish?arg=/ipfs/$CID&key=k2&lifetime=24h"
req "name/publish arg=/ipfs/<cid>&key=k2&allow-offline=true&lifetime=86400s&ttl=60s&resolve=true" \
    "name/publish?arg=/ipfs/$CID&key=k2&allow-offline=true&lifetime=86400s&ttl=60s&resolve=true"
req "name/publish with ipns-base=base36" "name/publish?arg=/ipfs/$CID&key=k2&allow-offline=true&lifetime=24h&ipns-base=base36"
req "name/publish unknown key" "name/publish?arg=/ipfs/$CID&key=nokey&allow-offline=true"
req "name/publish bad path" "name/publish?arg=/ipfs/notacid&key=k2&allow-offline=true"
req "name/publish missing arg" "name/publish?key=k2&allow-offline=true"
req "name/resolve arg=/ipns/<k51 name>" "name/resolve?arg=/ipns/$K2"
req "name/resolve arg=/ipns/<name as key/gen printed>" "name/resolve?arg=/ipns/$K2ID"
req "name/resolve recursive=false&nocache=true (node's request)" "name/resolve?arg=/ipns/$K2&recursive=false&nocache=true"
req "name/resolve nocache=true, name as printed" "name/resolve?arg=/ipns/$K2ID&nocache=true"
req "name/resolve never-published k51 name (k1's)" "name/resolve?arg=/ipns/$K1"
req "name/resolve bad name" "name/resolve?arg=/ipns/notakey"
req "name/resolve missing arg (resolves self)" "name/resolve"

echo "### routing"
req "name/get arg=/ipns/<k51 name> (raw record)" "name/get?arg=/ipns/$K2"
[ "$(head -c 1 "$W/b" | od -An -tx1 | tr -d ' ')" = 0a ] && cp "$W/b" "$W/rec-name-get"
req "name/get never-published name" "name/get?arg=/ipns/$K1"
req "routing/get arg=/ipns/<k51 name> (default encoding)" "routing/get?arg=/ipns/$K2"
cp "$W/b" "$W/get-json"
req "routing/get arg=/ipns/<k51 name>&encoding=text" "routing/get?arg=/ipns/$K2&encoding=text"
cp "$W/b" "$W/rec"
if [ -s "$W/get-json" ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$W/get-json" 2>/dev/null; then
    python3 - "$W/get-json" "$W/rec" <<'PY'
import base64, json, sys
d = json.load(open(sys.argv[1])); raw = open(sys.argv[2], 'rb').read()
x = base64.b64decode(d.get('Extra', ''))
print(f"JSON keys {sorted(d)}; Extra is {len(x)} bytes of base64-decoded record; equal to the encoding=text body ({len(raw)} bytes): {x == raw}\n")
PY
fi
[ "$(head -c 1 "$W/rec" | od -An -tx1 | tr -d ' ')" = 0a ] || rm -f "$W/rec"
[ -s "$W/rec" ] || { [ -s "$W/rec-name-get" ] && cp "$W/rec-name-get" "$W/rec"; } || true
if [ -s "$W/rec" ]; then
    echo "The IPNS record this daemon published (protobuf fields present):"
    python3 - "$W/rec" <<'PY'
import sys
b = open(sys.argv[1], 'rb').read()
names = {1: 'value', 2: 'signatureV1', 3: 'validityType', 4: 'validity', 5: 'sequence', 6: 'ttl', 7: 'pubKey', 8: 'signatureV2', 9: 'data'}
def varint(b, i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7f) << s; s += 7
        if c < 0x80: return n, i
i = 0; out = []
while i < len(b):
    k, i = varint(b, i); f, t = k >> 3, k & 7
    if t == 0:
        v, i = varint(b, i); out.append(f"{names.get(f, f)}={v}")
    elif t == 2:
        l, i = varint(b, i); v = b[i:i + l]; i += l
        shown = v.decode() if f in (1, 4) else f"<{l} bytes>"
        if f == 9: shown = f"<{l} bytes CBOR: {v.hex()[:40]}...>"
        out.append(f"{names.get(f, f)}={shown}")
    else:
        out.append(f"field {f} wire type {t}"); break
print("```\n" + "\n".join(out) + f"\n({len(b)} bytes)\n```\n")
PY
fi
if [ ! -s "$W/rec" ]; then echo "(no record could be read; the routing/put requests below send the bytes 'garbage')"; echo; echo garbage >"$W/rec"; fi
req "routing/get never-published name" "routing/get?arg=/ipns/$K1"
req "routing/get bad key" "routing/get?arg=/ipns/notakey"
req "routing/get missing arg" "routing/get"
req "routing/put arg=/ipns/<k51 name> (record from routing/get), no allow-offline" "routing/put?arg=/ipns/$K2" -F "file=@$W/rec"
req "routing/put with allow-offline=true" "routing/put?arg=/ipns/$K2&allow-offline=true" -F "file=@$W/rec"
req "routing/put k2's record under k1's name" "routing/put?arg=/ipns/$K1&allow-offline=true" -F "file=@$W/rec"
echo garbage >"$W/garbage"
req "routing/put garbage under k1's name" "routing/put?arg=/ipns/$K1&allow-offline=true" -F "file=@$W/garbage"
req "routing/get k1 after the two puts above" "routing/get?arg=/ipns/$K1"
req "dht/get arg=/ipns/<k51 name>" "dht/get?arg=/ipns/$K2"
