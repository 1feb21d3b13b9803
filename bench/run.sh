#!/usr/bin/env bash
# Runs ccserve's benchmarks: HTTP vs raw tiny_http (wrk), WebSocket echo vs raw tungstenite,
# memory per connection, and streamed responses (res.flush(): 1 GiB throughput and server memory,
# time to first chunk) vs a raw Rust server. Usage, from anywhere:
#
#     bash bench/run.sh
#
# Knobs (passed through): CCSERVE_BENCH_SECONDS (wrk duration per run, default 5),
# CCSERVE_BENCH_ROUNDS (rounds per comparison, default 3), CCSERVE_BENCH_STREAM_MIB (size of the
# streamed response, default 1024), CCSERVE_BENCH_TTFB_REQUESTS (first-chunk requests per run,
# default 1000), CCSERVE_BENCH_BIN, CARGO_TARGET_DIR.
# Results: markdown tables on stdout and in <target dir>/bench-results/{http,ws,memory,stream}.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found; installing it with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq wrk
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq wrk
    else
        echo "error: wrk is needed for the HTTP benchmark: install it (apt-get install wrk) and rerun" >&2
        exit 1
    fi
fi

for bench in http ws memory stream; do
    echo "== cargo bench --bench $bench" >&2
    cargo bench --bench "$bench"
done

echo
echo "Results: ${CARGO_TARGET_DIR:-$PWD/target}/bench-results/{http,ws,memory,stream}.md"
