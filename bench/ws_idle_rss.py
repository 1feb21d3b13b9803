#!/usr/bin/env python3
"""Memory of a ccserve WebSocket server with N idle clients.

Usage: start the server, then run this with its port and process id:
    ccserve --bind 127.0.0.1 examples/ws_echo.lua 8081 &
    python3 bench/ws_idle_rss.py 8081 $(pgrep -x ccserve) [N=200]

It reads the server's RSS and thread count from /proc before any client connects, opens N
clients (each exchanges one message, then stays idle), waits a second, and reads them again.
Needs `pip install websockets`.
"""
import asyncio
import sys

import websockets


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


async def main(port, pid, n):
    rss0, threads0 = status(pid)
    clients = []
    for _ in range(n):
        clients.append(await websockets.connect(f"ws://127.0.0.1:{port}/", compression=None))
    for ws in clients:
        await ws.send("x")
        await ws.recv()
    await asyncio.sleep(1)
    rss1, threads1 = status(pid)
    print(f"idle server:         RSS {rss0 / 1024:.1f} MiB, {threads0} threads")
    print(f"with {n} idle clients: RSS {rss1 / 1024:.1f} MiB, {threads1} threads "
          f"(+{(rss1 - rss0) / n:.0f} KiB per client)")
    for ws in clients:
        await ws.close()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 200))
