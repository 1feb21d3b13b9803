#!/usr/bin/env bash
# Runs ccserve's benchmarks: HTTP vs raw tiny_http (wrk), WebSocket echo vs raw tungstenite,
# memory per connection, streamed responses (res.flush(): 1 GiB throughput and server memory,
# time to first chunk) vs a raw Rust server, ccserve's lua-http API vs real lua-http 0.4
# running the same scripts under lua5.2 (HTTP with wrk, WebSocket echo) and vs ccserve's CraftOS
# API, ccserve's NodeMCU API (--nodemcu) vs its CraftOS API (HTTP hello world with wrk), HTTPS
# vs a raw rustls server (hello world with wrk over https://, keep-alive and a new handshake per
# request; RSS per idle TLS connection), and ccserve vs its peers in one invocation,
# alternating (benches/peers.rs): Lune, real lua-http 0.4, nginx with ngx_http_lua (1 worker,
# content_by_lua_block; HTTP only), raw tiny_http and raw tungstenite: hello world with wrk at
# -c1/-c32/-c256 and WebSocket echo (req/s or msgs/s, p50/p99, server CPU per request or message,
# every ratio against ccserve). Usage, from anywhere:
#
#     bash bench/run.sh
#
# Knobs (passed through): CCSERVE_BENCH_SECONDS (wrk duration per run, default 5),
# CCSERVE_BENCH_ROUNDS (rounds per comparison, default 3), CCSERVE_BENCH_STREAM_MIB (size of the
# streamed response, default 1024), CCSERVE_BENCH_TTFB_REQUESTS (first-chunk requests per run,
# default 1000), CCSERVE_BENCH_BIN, CCSERVE_BENCH_LUNE (a Lune binary to use), CCSERVE_BENCH_NGINX
# (an nginx binary to use), CARGO_TARGET_DIR.
# Installs when missing: wrk (required), lua5.2 and lua-http (real lua-http for the luahttp and
# peers benches), nginx and libnginx-mod-http-lua (for the peers bench), all with apt-get; and
# Lune, built with `cargo install lune --locked` into
# ${XDG_CACHE_HOME:-$HOME/.cache}/ccserve-bench/lune (several minutes, once) unless
# CCSERVE_BENCH_LUNE is set or `lune` is on PATH. A peer that cannot be installed is reported as
# missing in the tables, never dropped.
# Results: markdown tables on stdout and in
# <target dir>/bench-results/{http,ws,memory,stream,luahttp,nodemcu,tls,peers}.md.
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

# Real lua-http 0.4 for the luahttp and peers benches: Debian's lua-http (its dependencies,
# cqueues, luaossl and the rest, come with it) ships modules for Lua 5.1 to 5.3; the benches run
# it with lua5.2.
if ! lua5.2 -e 'require "http.server"; require "http.websocket"' >/dev/null 2>&1; then
    echo "real lua-http not found for lua5.2; installing lua5.2 and lua-http with apt-get" >&2
    apt_install lua5.2 lua-http || echo "warning: could not install lua5.2 and lua-http; the luahttp and peers benches will report real lua-http as missing" >&2
fi

# nginx with ngx_http_lua for the peers bench (Debian: libnginx-mod-http-lua, which brings NDK).
# The bench runs nginx itself, as the current user, with a config of its own; it looks for the
# module in the same directories as here.
have_nginx_lua() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || return 1
    for dir in /usr/lib/nginx/modules /usr/share/nginx/modules /usr/lib64/nginx/modules \
        /usr/local/nginx/modules /etc/nginx/modules; do
        [ -f "$dir/ngx_http_lua_module.so" ] && return 0
    done
    return 1
}
if [ -z "${CCSERVE_BENCH_NGINX:-}" ] && ! have_nginx_lua; then
    echo "nginx with ngx_http_lua not found; installing nginx and libnginx-mod-http-lua with apt-get" >&2
    apt_install nginx libnginx-mod-http-lua || echo "warning: could not install nginx and libnginx-mod-http-lua; the peers bench will report nginx as missing" >&2
fi

# Lune for the peers bench: $CCSERVE_BENCH_LUNE, else the cached build, else `lune` on PATH, else
# build it into the cache (the bench looks in the same places).
lune_root="${XDG_CACHE_HOME:-$HOME/.cache}/ccserve-bench/lune"
if [ -z "${CCSERVE_BENCH_LUNE:-}" ] && [ ! -x "$lune_root/bin/lune" ] && ! command -v lune >/dev/null 2>&1; then
    echo "Lune not found; building it with \`cargo install lune --locked --root $lune_root\` (this takes several minutes, once)" >&2
    cargo install lune --locked --root "$lune_root" || echo "warning: could not build Lune; the peers bench will report Lune as missing" >&2
fi

for bench in http ws memory stream luahttp nodemcu tls peers; do
    echo "== cargo bench --bench $bench" >&2
    cargo bench --bench "$bench"
done

echo
echo "Results: ${CARGO_TARGET_DIR:-$PWD/target}/bench-results/{http,ws,memory,stream,luahttp,nodemcu,tls,peers}.md"
