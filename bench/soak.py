#!/usr/bin/env python3
"""Soak test: mixed HTTP and WebSocket load with slow and vanishing clients, against a running
ccserve, for a fixed time; then checks that every request was answered and that memory, file
descriptors and threads came back to where they started.

    cargo build --release
    target/release/ccserve --bind 127.0.0.1 --header-timeout 2 --keep-alive-timeout 2 \\
        bench/soak.lua 18700 18701 &
    python3 bench/soak.py 18700 18701 $! 600      # the server's pid ($!), seconds

Needs `pip install websockets`. Loopback only.
"""
import asyncio
import os
import random
import sys
import time

import websockets


def sample(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(fields["VmRSS"].split()[0]), fds, int(fields["Threads"])


stats = {"http_ok": 0, "http_unanswered": 0, "ws_ok": 0, "ws_lost": 0,
         "slow": 0, "vanished": 0, "ws_dropped": 0}


async def connect(port):
    """Opens a connection; a refusal or a timeout counts as unanswered and gives None."""
    try:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except Exception:
        stats["http_unanswered"] += 1
        await asyncio.sleep(1)
        return None


async def http_worker(port, stop):
    while time.monotonic() < stop:
        connection = await connect(port)
        if connection is None:
            continue
        reader, writer = connection
        for _ in range(random.randint(1, 50)):
            if time.monotonic() >= stop:
                break
            body = b"x" * random.randint(0, 2000)
            writer.write(b"POST /soak HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await asyncio.wait_for(reader.readexactly(length), 10)
                stats["http_ok"] += 1
            except Exception:
                stats["http_unanswered"] += 1
                break
        writer.close()


async def slow_client(port, stop):
    """Sends half a request head and stalls: the server must answer 408 and close."""
    while time.monotonic() < stop:
        connection = await connect(port)
        if connection is None:
            continue
        reader, writer = connection
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        try:
            data = await asyncio.wait_for(reader.read(), 30)
            if b" 408 " in data:
                stats["slow"] += 1
            else:
                stats["http_unanswered"] += 1
        except Exception:
            stats["http_unanswered"] += 1
        writer.close()


async def vanishing_client(port, ws_port, stop):
    """Connects, sends part of a request or message, and disappears without closing properly."""
    while time.monotonic() < stop:
        connection = await connect(port)
        if connection is None:
            continue
        reader, writer = connection
        writer.write(b"POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
        await asyncio.sleep(0.01)
        writer.transport.abort()
        stats["vanished"] += 1
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{ws_port}/", compression=None)
            await ws.send("bye")
            ws.transport.abort()
            stats["ws_dropped"] += 1
        except Exception:
            stats["ws_lost"] += 1
        await asyncio.sleep(0.05)


async def ws_worker(ws_port, stop):
    while time.monotonic() < stop:
        try:
            async with websockets.connect(f"ws://127.0.0.1:{ws_port}/", compression=None) as ws:
                for i in range(random.randint(10, 500)):
                    if time.monotonic() >= stop:
                        break
                    msg = f"m{i}" * random.randint(1, 100)
                    await ws.send(msg)
                    reply = await asyncio.wait_for(ws.recv(), 10)
                    if reply == msg:
                        stats["ws_ok"] += 1
                    else:
                        stats["ws_lost"] += 1
        except Exception:
            stats["ws_lost"] += 1


async def sampler(pid, stop, every=60):
    """Prints RSS, fds and threads every `every` seconds, to show a trend, not just two ends."""
    start = time.monotonic()
    while time.monotonic() + every < stop:
        await asyncio.sleep(every)
        rss, fds, threads = sample(pid)
        print(f"  {time.monotonic() - start:5.0f} s: RSS {rss} KiB, {fds} fds, {threads} threads",
              flush=True)


def load(port, ws_port, stop):
    tasks = [http_worker(port, stop) for _ in range(8)]
    tasks += [ws_worker(ws_port, stop) for _ in range(8)]
    tasks += [slow_client(port, stop) for _ in range(4)]
    tasks += [vanishing_client(port, ws_port, stop) for _ in range(2)]
    return tasks


async def main(port, ws_port, pid, seconds):
    # Warm up with the full mix for a while, so allocator arenas and lazily created state exist
    # before the baseline: "flat" means no growth after that.
    await asyncio.gather(*load(port, ws_port, time.monotonic() + 15))
    await asyncio.sleep(8)
    before = sample(pid)
    print(f"start: RSS {before[0]} KiB, {before[1]} fds, {before[2]} threads", flush=True)
    for k in stats:
        stats[k] = 0
    stop = time.monotonic() + seconds
    await asyncio.gather(*load(port, ws_port, stop), sampler(pid, stop))
    # Let keep-alive and close grace periods pass, then compare.
    await asyncio.sleep(8)
    after = sample(pid)
    print(f"end:   RSS {after[0]} KiB, {after[1]} fds, {after[2]} threads", flush=True)
    print("counts:", stats, flush=True)
    growth = (after[0] - before[0]) / before[0] * 100
    print(f"RSS change {growth:+.1f} %", flush=True)
    ok = (stats["http_unanswered"] == 0 and stats["ws_lost"] == 0 and growth <= 10
          and after[1] <= before[1] and after[2] <= before[2])
    print("SOAK PASSED" if ok else "SOAK FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    sys.exit(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
