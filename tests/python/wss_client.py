#!/usr/bin/env python3
"""A real wss client: joins over TLS trusting only the given CA certificate,
reads the start frames, and round-trips a ping.

usage: wss_client.py wss://127.0.0.1:PORT/ws?... ca.pem
"""
import asyncio
import json
import ssl
import sys

import websockets


async def main(url: str, ca: str) -> None:
    context = ssl.create_default_context(cafile=ca)
    async with websockets.connect(url, ssl=context) as ws:
        kinds = [json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] for _ in range(2)]
        if kinds != ["chat.sync", "presence.snapshot"]:
            sys.exit(f"unexpected start frames: {kinds}")
        await ws.send(json.dumps({"action": "system.ping"}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if pong["type"] != "system.pong":
            sys.exit(f"expected system.pong, got {pong}")
    print("ok: wss join and ping over TLS")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
