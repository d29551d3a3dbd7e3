#!/usr/bin/env bash
# Pub/sub and queue throughput through two Switchyard nodes on a NATS
# JetStream cluster against one plain node, same generator, same machine, one
# after the other (docs/BENCHMARKS.md, "Through two nodes on a NATS cluster").
#   bench/compare-cluster.sh [SECONDS] [extra switchyard bench flags...]
# Starts, on loopback, in a temp dir, on free ports: three nats-servers routed
# into one JetStream cluster (the shape of tests/common/nats.rs), two
# `switchyard serve --nats` nodes a and b (a on the first NATS server, b on the
# second), and one plain `switchyard serve`. Each scenario runs packed and with
# `--per-frame 1`: against the single node; publisher/sender on a and
# subscribers/consumers on b (`a → b`); and subscribers/consumers spread over a
# and b (`a → a+b`). Prints every run's table, then a summary with the ratios
# and each process's CPU time over each run (utime + stime, /proc/PID/stat).
# SCENARIOS overrides the list (space-separated). Every process started here
# is stopped on exit. Installs Debian's nats-server if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
shift || true
scenarios="${SCENARIOS:-pubsub:1 pubsub:10 queue:1 queue:4 dqueue:1 dqueue:4}"
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
fi
nats_server="$(command -v nats-server || echo /usr/sbin/nats-server)"
cargo build --release -q
bin=target/release/switchyard
dir="$(mktemp -d "${TMPDIR:-/tmp}/switchyard-cluster-bench.XXXXXX")"
pids=()
cleanup() {
  # The nodes are started in command substitutions: their ids are in files.
  for f in "$dir"/*.pid; do [ -f "$f" ] && pids+=("$(cat "$f")"); done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# utime + stime of a process, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
tck="$(getconf CLK_TCK)"

# Three nats-servers, JetStream on, routed to each other.
declare -a client cluster monitor npid
for i in 0 1 2; do
  client[$i]="$(free_port)"; cluster[$i]="$(free_port)"; monitor[$i]="$(free_port)"
done
for i in 0 1 2; do
  name="n$((i + 1))"
  mkdir -p "$dir/$name"
  routes=""
  for j in 0 1 2; do
    [ "$j" = "$i" ] && continue
    routes="$routes${routes:+, }\"nats-route://127.0.0.1:${cluster[$j]}\""
  done
  cat >"$dir/$name.conf" <<CONF
server_name: $name
listen: 127.0.0.1:${client[$i]}
http: 127.0.0.1:${monitor[$i]}
max_payload: 1048576
jetstream { store_dir: "$dir/$name" }
cluster {
  name: switchyard-bench
  listen: 127.0.0.1:${cluster[$i]}
  routes: [$routes]
}
CONF
  "$nats_server" -c "$dir/$name.conf" >"$dir/$name.log" 2>&1 &
  npid[$i]=$!
  pids+=("${npid[$i]}")
done
for i in 0 1 2; do
  for _ in $(seq 200); do
    routed="$(curl -s "http://127.0.0.1:${monitor[$i]}/routez" | python3 -c 'import json,sys; print(json.load(sys.stdin)["num_routes"])' 2>/dev/null || echo 0)"
    if [ "$routed" -ge 2 ] && curl -sf "http://127.0.0.1:${monitor[$i]}/healthz" >/dev/null; then
      break
    fi
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:${monitor[$i]}/healthz" >/dev/null \
    || { echo "nats-server n$((i + 1)) not ready; its log:"; cat "$dir/n$((i + 1)).log"; exit 1; }
done

# A `switchyard serve` with the flags the bench gives the broker it starts
# itself; prints its URL. $1: a name for its files; the rest: extra flags.
serve() {
  local name="$1"; shift
  mkdir -p "$dir/$name"
  RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/$name" \
    --max-pending 67108864 --max-connections-per-ip 0 --max-connections 100000 \
    "$@" >"$dir/$name.out" 2>"$dir/$name.log" &
  pids+=($!)
  echo $! >"$dir/$name.pid"
  for _ in $(seq 200); do
    if grep -q "^switchyard listening on " "$dir/$name.out" 2>/dev/null; then
      sed -n 's/^switchyard listening on //p' "$dir/$name.out" | head -1
      return
    fi
    sleep 0.05
  done
  echo "switchyard serve $name did not start; its log:" >&2
  cat "$dir/$name.log" >&2
  exit 1
}
url_a="$(serve a --nats "nats://127.0.0.1:${client[0]}" --node a)"
url_b="$(serve b --nats "nats://127.0.0.1:${client[1]}" --node b)"
url_1="$(serve single)"
pid_a="$(cat "$dir/a.pid")"; pid_b="$(cat "$dir/b.pid")"; pid_1="$(cat "$dir/single.pid")"
pids+=("$pid_a" "$pid_b" "$pid_1")
rm -f "$dir"/*.pid
for node in "$url_a" "$url_b"; do
  port="$(echo "$node" | sed 's|ws://127.0.0.1:\([0-9]*\)/ws|\1|')"
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
done

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) before the runs"
echo "# nats-server $("$nats_server" --version | awk '{print $NF}'): n1 n2 n3 routed, JetStream, file storage in $dir"
echo "# node a at $url_a (NATS n1), node b at $url_b (NATS n2), single node at $url_1"
echo

summary="$dir/summary"
: >"$summary"
# run LABEL PUB_URL SUB_URLS SCENARIO FRAMING [flags]: one bench run, its table
# printed, its rate and every process's CPU (ms) appended to the summary.
run() {
  local mode="$1" url="$2" subs="$3" scenario="$4" framing="$5"; shift 5
  local procs=("${npid[@]}" "$pid_a" "$pid_b" "$pid_1")
  local before=() after=() cpu="" out
  for p in "${procs[@]}"; do before+=("$(ticks "$p")"); done
  local t0; t0="$(date +%s.%N)"
  out="$(RUST_BACKTRACE=0 /usr/bin/time -f "%U %S" -o "$dir/bench.time" "$bin" bench --url "$url" \
    ${subs:+--sub-url "$subs"} --seconds "$seconds" --scenarios "$scenario" "$@" 2>&1)" || true
  local t1; t1="$(date +%s.%N)"
  for p in "${procs[@]}"; do after+=("$(ticks "$p")"); done
  for k in "${!procs[@]}"; do
    cpu="$cpu $(( (after[k] - before[k]) * 1000 / tck ))"
  done
  # time(1) writes "Command exited with non-zero status" first when it did.
  cpu="$cpu $(awk 'END { printf "%d", ($1 + $2) * 1000 }' "$dir/bench.time" 2>/dev/null || echo 0)"
  echo "## $mode, $scenario, $framing"
  echo "$out"
  echo
  # The row: label in 16 columns, then msgs/s; a failed run has none.
  local rate note
  # The row's first field that is a grouped number (labels hold `1→4`).
  rate="$(echo "$out" | awk '/^[a-z]/ && !/^scenario / { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9][0-9,]*$/) { print $i; exit } }')"
  note="$(echo "$out" | grep -E '^ {16}|failed|Error|error' | sed 's/^ *//' | head -2 | tr '\n' ' ' || true)"
  [ -n "$rate" ] || rate="-"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$framing" "$mode" "$rate" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')$cpu" "$note" >>"$summary"
}

for framing in packed "1 per frame"; do
  flags=()
  [ "$framing" = packed ] || flags=(--per-frame 1)
  for scenario in $scenarios; do
    run single "$url_1" "" "$scenario" "$framing" "${flags[@]}" "$@"
    # With --nats every queue is a stream: an in-memory queue is refused.
    case "$scenario" in queue:*) continue ;; esac
    run "a → b" "$url_a" "$url_b" "$scenario" "$framing" "${flags[@]}" "$@"
    run "a → a+b" "$url_a" "$url_a,$url_b" "$scenario" "$framing" "${flags[@]}" "$@"
  done
done

echo "# load $(cut -d' ' -f1-3 /proc/loadavg) after the runs"
echo
echo "| scenario | framing | single node | two nodes, a → b | a → b / single | a → a+b | a → a+b / single |"
echo "|---|---|---:|---:|---:|---:|---:|"
python3 - "$summary" <<'PY'
import sys
rows = {}
order = []
for line in open(sys.argv[1], encoding="utf-8"):
    scenario, framing, mode, rate, cpu, note = line.rstrip("\n").split("\t")
    key = (scenario, framing)
    if key not in rows:
        rows[key] = {}
        order.append(key)
    rows[key][mode] = (rate, cpu.split(), note.strip())
def num(r):
    try:
        return float(r.replace(",", ""))
    except ValueError:
        return None
for key in order:
    m = rows[key]
    single = num(m.get("single", ("-",))[0])
    cells = []
    for mode in ("single", "a → b", "a → a+b"):
        rate = m.get(mode, ("n/a",))[0]
        cells.append(rate)
        if mode != "single":
            r = num(rate)
            cells.append(f"{r / single:.2f}" if r and single else "-")
    print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
print()
print("CPU time of each process over each run (ms; the run's wall time first, s; bench: the generator):")
print()
print("| scenario | framing | mode | wall s | n1 | n2 | n3 | node a | node b | single | bench | note |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for key in order:
    for mode, (rate, cpu, note) in rows[key].items():
        print(f"| {key[0]} | {key[1]} | {mode} | " + " | ".join(cpu) + f" | {note} |")
PY
