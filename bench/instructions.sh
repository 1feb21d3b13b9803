#!/usr/bin/env bash
# Instructions per request on the HTTP request path, counted by valgrind's callgrind (all threads
# of the ccserve process: connection thread, Lua thread, everything in between). Instruction counts
# do not depend on the machine's load or clock, so two builds can be compared exactly where wall
# time is noisy. Usage, from anywhere:
#
#     bash bench/instructions.sh [BINARY...]      # default: target/release/ccserve (built if missing)
#
# For each binary it runs `examples/hello.lua` (or the hello world named by CCSERVE_BENCH_SCRIPT,
# e.g. examples/luahttp_hello.lua; it must answer `Hello, world!\n` on the port given as its first
# argument; CCSERVE_BENCH_FLAGS adds options before it, e.g. `--nodemcu` for
# examples/nodemcu_hello.lua) under callgrind twice, once serving nothing and
# once serving N keep-alive GETs on one connection (CCSERVE_BENCH_REQUESTS, default 2000), and
# prints (instructions with N - instructions with none) / N. Needs valgrind and python3
# (apt-get install valgrind). Exact to about ±1 %: lock and channel hand-offs spin a little
# differently from run to run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v valgrind >/dev/null || { echo "error: valgrind is needed: apt-get install valgrind" >&2; exit 1; }
requests=${CCSERVE_BENCH_REQUESTS:-2000}
script=${CCSERVE_BENCH_SCRIPT:-examples/hello.lua}
read -r -a flags <<< "${CCSERVE_BENCH_FLAGS:-}"
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
    [ -x target/release/ccserve ] || cargo build --release --bin ccserve >&2
    bins=(target/release/ccserve)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Sends `count` GETs on one keep-alive connection to 127.0.0.1:port (after waiting, bounded, for
# the port to accept: valgrind starts slowly) and checks each answer.
client() {
    python3 - "$1" "$2" <<'PY'
import http.client, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("ccserve under callgrind did not accept connections within 60 s")
        time.sleep(0.05)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for _ in range(count):
    conn.request("GET", "/")
    body = conn.getresponse().read()
    assert body == b"Hello, world!\n", body
PY
}

# Total instructions of one run of `bin` serving `count` requests.
count_run() {
    local bin=$1 count=$2 port out pid
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    out="$work/cg.$count.$RANDOM"
    valgrind --tool=callgrind --callgrind-out-file="$out" -q \
        "$bin" --bind 127.0.0.1 ${flags[@]+"${flags[@]}"} "$script" "$port" >/dev/null 2>"$work/stderr" &
    pid=$!
    client "$port" 1 # one warm-up request: first-use costs are not the request path's
    client "$port" "$count" >/dev/null
    kill -INT "$pid"
    wait "$pid" || true # exits 130 on the interrupt
    awk '/^summary:/ { print $2 }' "$out"
}

printf '| binary | instructions per request (%s requests) |\n|---|---|\n' "$requests"
for bin in "${bins[@]}"; do
    none=$(count_run "$bin" 0)
    some=$(count_run "$bin" "$requests")
    printf '| `%s` | %s |\n' "$bin" "$(( (some - none) / requests ))"
done
