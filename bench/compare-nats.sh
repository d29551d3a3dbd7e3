#!/usr/bin/env bash
# Runs the same load generator against nats-server (WebSocket listener on) and
# Switchyard on this machine, one after the other, and prints both tables.
#   bench/compare-nats.sh [SECONDS] [extra switchyard bench flags...]
# Then the slow-reader burst (`slow:MB`, SLOW_MB=80 by default, 0 to skip)
# against both with the same 8 MiB outbound limit per client (nats-server's
# max_pending, Switchyard's default --max-pending).
# Installs Debian's nats-server if it is missing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
slow_mb="${SLOW_MB:-80}"
shift || true
if ! command -v nats-server >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
fi
cargo build --release -q
bin=target/release/switchyard
conf="$(mktemp -d)/nats.conf"
cat >"$conf" <<CONF
listen: 127.0.0.1:4222
max_payload: 1048576
websocket {
  listen: "127.0.0.1:4280"
  no_tls: true
  compression: false
}
CONF
nats-server -c "$conf" >/dev/null 2>&1 &
nats=$!
trap 'kill $nats 2>/dev/null || true' EXIT
sleep 1
echo "nats-server $(nats-server --version | awk '{print $NF}'), $(nproc) cores"
"$bin" bench --target nats --url ws://127.0.0.1:4280 --seconds "$seconds" --scenarios pubsub:1,pubsub:10,pubsub:100 "$@"
kill $nats; wait $nats 2>/dev/null || true
"$bin" bench --seconds "$seconds" --scenarios pubsub:1,pubsub:10,pubsub:100 "$@"
if [ "$slow_mb" -gt 0 ]; then
  cat >>"$conf" <<CONF
max_pending: 8388608
CONF
  nats-server -c "$conf" >/dev/null 2>&1 &
  nats=$!
  sleep 1
  "$bin" bench --target nats --url ws://127.0.0.1:4280 --scenarios "slow:$slow_mb"
  kill $nats; wait $nats 2>/dev/null || true
  data="$(mktemp -d)"
  "$bin" serve --listen 127.0.0.1:7410 --data-dir "$data" >/dev/null 2>&1 &
  sy=$!
  trap 'kill $sy 2>/dev/null || true; rm -rf "$data"' EXIT
  sleep 1
  "$bin" bench --url ws://127.0.0.1:7410/ws --scenarios "slow:$slow_mb"
  kill $sy; wait $sy 2>/dev/null || true
fi
