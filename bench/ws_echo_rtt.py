#!/usr/bin/env python3
"""Round-trip benchmark for ccserve's WebSocket server.

Sends N sequential 32-byte text messages to a running ccserve echo server and waits for each
echo, then does the same against a minimal Python `websockets` echo server started in this
process (the baseline), and prints messages/s, round-trip p50/p99 (microseconds) and the ratio.

    pip install websockets
    ccserve --bind 127.0.0.1 examples/ws_echo.lua 8081 &
    python3 bench/ws_echo_rtt.py 8081            # or: --messages 10000 --host 127.0.0.1

Both runs use the same client code and no compression (ccserve negotiates none).
"""
import argparse
import asyncio
import statistics
import time

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

PAYLOAD = "x" * 32
WARMUP = 200


async def run(url, messages):
    """Sends `messages` echo round trips on one connection; returns (msgs_per_s, p50_us, p99_us)."""
    async with connect(url, compression=None, max_size=None, ping_interval=None) as ws:
        for _ in range(WARMUP):
            await ws.send(PAYLOAD)
            assert await ws.recv() == PAYLOAD
        rtts = []
        start = time.perf_counter()
        for _ in range(messages):
            t0 = time.perf_counter_ns()
            await ws.send(PAYLOAD)
            reply = await ws.recv()
            rtts.append(time.perf_counter_ns() - t0)
            if reply != PAYLOAD:
                raise SystemExit(f"bad echo: {reply!r}")
        elapsed = time.perf_counter() - start
    rtts.sort()
    p50 = rtts[len(rtts) // 2] / 1000
    p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] / 1000
    return messages / elapsed, p50, p99, statistics.mean(rtts) / 1000


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int, help="port of the running ccserve echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args()

    rows = []
    ccserve = await run(f"ws://{args.host}:{args.port}/", args.messages)
    rows.append(("ccserve", ccserve))
    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None,
                     ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        baseline = await run(f"ws://127.0.0.1:{port}/", args.messages)
    rows.append(("python websockets (in-process)", baseline))

    print(f"{args.messages} sequential {len(PAYLOAD)}-byte text messages, one connection")
    print(f"{'server':32} {'msgs/s':>10} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    for name, (rate, p50, p99, mean) in rows:
        print(f"{name:32} {rate:10.0f} {p50:9.1f} {p99:9.1f} {mean:9.1f}")
    print(f"ratio ccserve/baseline: throughput {ccserve[0] / baseline[0]:.2f}x, "
          f"p50 {ccserve[1] / baseline[1]:.2f}x, p99 {ccserve[2] / baseline[2]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
