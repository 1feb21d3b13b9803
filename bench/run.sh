#!/usr/bin/env bash
# Runs ccserve's benchmarks: HTTP vs raw tiny_http (wrk), WebSocket echo vs raw tungstenite,
# memory per connection, streamed responses (res.flush(): 1 GiB throughput and server memory,
# time to first chunk) vs a raw Rust server, and ccserve's lua-http API vs real lua-http 0.4
# running the same scripts under lua5.2 (HTTP with wrk, WebSocket echo) and vs ccserve's CraftOS
# API. Usage, from anywhere:
#
#     bash bench/run.sh
#
# Knobs (passed through): CCSERVE_BENCH_SECONDS (wrk duration per run, default 5),
# CCSERVE_BENCH_ROUNDS (rounds per comparison, default 3), CCSERVE_BENCH_STREAM_MIB (size of the
# streamed response, default 1024), CCSERVE_BENCH_TTFB_REQUESTS (first-chunk requests per run,
# default 1000), CCSERVE_BENCH_BIN, CARGO_TARGET_DIR.
# Installs with apt-get when missing: wrk (required), lua5.2 and lua-http (real lua-http for the
# luahttp bench; if they cannot be installed, that bench reports lua-http as missing).
# Results: markdown tables on stdout and in
# <target dir>/bench-results/{http,ws,memory,stream,luahttp}.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# apt_install PACKAGE...: installs Debian packages with apt-get, as root or with sudo.
apt_install() {
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && apt-get install -y -qq "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo apt-get install -y -qq "$@"
    else
        return 1
    fi
}

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk not found; installing it with apt-get" >&2
    apt_install wrk || {
        echo "error: wrk is needed for the HTTP benchmarks: install it (apt-get install wrk) and rerun" >&2
        exit 1
    }
fi

# Real lua-http 0.4 for the luahttp bench: Debian's lua-http (its dependencies, cqueues, luaossl
# and the rest, come with it) ships modules for Lua 5.1 to 5.3; the bench runs it with lua5.2.
if ! lua5.2 -e 'require "http.server"; require "http.websocket"' >/dev/null 2>&1; then
    echo "real lua-http not found for lua5.2; installing lua5.2 and lua-http with apt-get" >&2
    apt_install lua5.2 lua-http || echo "warning: could not install lua5.2 and lua-http; the luahttp bench will report real lua-http as missing" >&2
fi

for bench in http ws memory stream luahttp; do
    echo "== cargo bench --bench $bench" >&2
    cargo bench --bench "$bench"
done

echo
echo "Results: ${CARGO_TARGET_DIR:-$PWD/target}/bench-results/{http,ws,memory,stream,luahttp}.md"
