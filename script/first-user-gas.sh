#!/usr/bin/env bash
# Measures a first-time user's full path on anvil: the deploy script's devnet, warmed up by one
# earlier user (as any live deployment is), then from wallets that have never sent a
# transaction:
#   PXToken path:  approve + mintWithKey (Basic plan) + first requestSync
#   coin path:     mintWithKey paying the native price + first requestSync
# plus the oracle's answer (fulfillOracleRequest2, paid by the oracle's sender). Prints the gas
# of each transaction as the receipts report it (21,000 base and calldata included).
#
#   script/first-user-gas.sh            (anvil on port 18545; PORT=... to change)
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
port=${PORT:-18545}
rpc="http://127.0.0.1:$port"
out=deployments/devnet/first-user-gas.json

anvil --port "$port" --silent >/dev/null 2>&1 &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null || true' EXIT INT TERM PIPE
for _ in $(seq 50); do cast chain-id --rpc-url "$rpc" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$anvil_pid" 2>/dev/null || { echo "anvil did not start (port $port in use?)" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
DEPLOYMENT_OUT=$out forge script script/Deploy.s.sol:Deploy --rpc-url "$rpc" --broadcast \
  >/dev/null 2>&1
field() { node -e "process.stdout.write(String(require('./$out')['$1']))"; }
nft=$(field storageNFT)
px=$(field pxToken)
operator=$(field operator)

# anvil's dev accounts: 0 deploys (admin, PX minter), 1 answers as the oracle, 2 is the storage
# node's registrar (script/Deploy.s.sol's devnet defaults).
dev_key() {
  cast wallet private-key --mnemonic "test test test test test test test test test test test junk" \
    --mnemonic-index "$1"
}
admin_key=$(dev_key 0)
oracle_key=$(dev_key 1)
registrar_key=$(dev_key 2)

send() { cast send --rpc-url "$rpc" --json "$@"; }
gas() { node -e "process.stdout.write(String(parseInt(JSON.parse(require('fs').readFileSync(0)).gasUsed)))"; }

# A wallet that has never sent a transaction, funded by the admin.
fresh_wallet() {
  local key
  key=$(cast keccak "px first-time user $1")
  local addr
  addr=$(cast wallet address --private-key "$key")
  send --private-key "$admin_key" --value 1ether "$addr" >/dev/null
  send --private-key "$admin_key" "$px" "mint(address,uint256)" "$addr" 1000ether >/dev/null
  echo "$key $addr"
}

# mintWithKey with a registrar assignment of key number $3; prints the receipt's gas.
mint_with_key() {
  local key=$1 addr=$2 n=$3 value=$4 max=$5
  local pub name deadline digest sig
  pub=$(cast keccak "ipns key $n")
  name="0x002408011220${pub#0x}"
  deadline=$(( $(date +%s) + 3600 ))
  digest=$(cast call --rpc-url "$rpc" "$nft" "keyAssignmentDigest(address,bytes,uint256)(bytes32)" \
    "$addr" "$name" "$deadline")
  sig=$(cast wallet sign --no-hash --private-key "$registrar_key" "$digest")
  send --private-key "$key" --value "$value" "$nft" \
    "mintWithKey(uint256,uint256,bytes,uint256,bytes)" 2 "$max" "$name" "$deadline" "$sig" | gas
  echo " $(cast call --rpc-url "$rpc" "$nft" "tokenOfKey(bytes32)(uint256)" "$pub")"
}

# requestSync, then the oracle's OK answer; prints both receipts' gas.
sync_once() {
  local key=$1 id=$2
  local receipt
  receipt=$(send --private-key "$key" "$nft" "requestSync(uint256)" "$id")
  local topic
  topic=$(cast keccak "OracleRequest(bytes32,address,bytes32,uint256,address,bytes4,uint256,uint256,bytes)")
  local data
  data=$(node -e "
    const r = JSON.parse(require('fs').readFileSync(0));
    const l = r.logs.find((l) => l.topics[0] === '$topic');
    process.stdout.write(l.data);" <<<"$receipt")
  local fields
  mapfile -t fields < <(cast decode-abi --input \
    "f(address,bytes32,uint256,address,bytes4,uint256,uint256,bytes)" "$data")
  local request_id=${fields[1]} payment=${fields[2]%% *} callback=${fields[3]}
  local selector=${fields[4]} expiration=${fields[5]%% *}
  local answer
  answer=$(cast abi-encode "f(bytes32,uint256,uint8,uint64,uint32,uint64,bytes)" \
    "$request_id" "$id" 0 1048576 3 1 0x01701220"$(cast keccak record | cut -c3-)")
  local fulfil
  fulfil=$(send --private-key "$oracle_key" --gas-limit 500000 "$operator" \
    "fulfillOracleRequest2(bytes32,uint256,address,bytes4,uint256,bytes)" \
    "$request_id" "$payment" "$callback" "$selector" "$expiration" "$answer" | gas)
  echo "$(gas <<<"$receipt") $fulfil"
}

# Warm-up, not measured: a live deployment already holds PX fees, and its Operator LINK.
read -r key0 addr0 < <(fresh_wallet 0)
send --private-key "$key0" "$px" "approve(address,uint256)" "$nft" 100ether >/dev/null
read -r _ id0 < <(mint_with_key "$key0" "$addr0" 0 0 100ether)
sync_once "$key0" "$id0" >/dev/null

read -r key1 addr1 < <(fresh_wallet 1)
approve=$(send --private-key "$key1" "$px" "approve(address,uint256)" "$nft" 100ether | gas)
read -r mint1 id1 < <(mint_with_key "$key1" "$addr1" 1 0 100ether)
read -r request1 fulfil1 < <(sync_once "$key1" "$id1")

read -r key2 addr2 < <(fresh_wallet 2)
read -r mint2 id2 < <(mint_with_key "$key2" "$addr2" 2 0.01ether 0)
read -r request2 fulfil2 < <(sync_once "$key2" "$id2")

cat <<EOF
| Step (fresh wallet, anvil) | PXToken path | coin path |
|---|---:|---:|
| \`PXToken.approve\` (plan price) | $approve | - |
| \`mintWithKey\` (Basic plan, key assigned by the node) | $mint1 | $mint2 |
| first \`requestSync\` | $request1 | $request2 |
| **user total** | **$((approve + mint1 + request1))** | **$((mint2 + request2))** |
| oracle's answer (\`fulfillOracleRequest2\`, paid by the oracle) | $fulfil1 | $fulfil2 |
EOF
