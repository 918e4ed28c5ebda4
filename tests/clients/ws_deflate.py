"""Independent permessage-deflate client for tests/ws_deflate.rs (Python `websockets`, which
offers permessage-deflate by default).

    python3 ws_deflate.py echo HOST:PORT      echo messages of many sizes and kinds
    python3 ws_deflate.py room HOST:PORT ROOM two clients with deflate and one without join
                                              ROOM; one says a long message; all must get it

Prints one JSON line with what was negotiated; exits non-zero on any mismatch.
"""

import asyncio
import json
import sys

import websockets


def ext(ws):
    return ws.response.headers.get("Sec-WebSocket-Extensions")


async def echo(addr):
    out = {}
    async with websockets.connect(f"ws://{addr}/", max_size=None) as ws:
        out["extensions"] = ext(ws)
        chat = json.dumps([{"type": "msg", "text": "您好，请问有什么可以帮您？", "n": i} for i in range(2000)])
        for msg in ["", "x", "short text", "é" * 300, chat, b"\x00" * 100000, bytes(range(256)) * 40]:
            await ws.send(msg)
            got = await ws.recv()
            if got != msg:
                raise SystemExit(f"echo mismatch for a {type(msg).__name__} of {len(msg)}")
        out["echoed"] = 7
    print(json.dumps(out))


async def login(ws, name, room):
    await ws.send(json.dumps({"type": "login", "client_name": name, "room_id": room}))
    while True:
        m = json.loads(await ws.recv())
        if m["type"] == "login" and m["client_name"] == name:
            return


async def until_say(ws):
    while True:
        m = json.loads(await ws.recv())
        if m["type"] == "say":
            return m["content"]


async def room(addr, room_id):
    a = await websockets.connect(f"ws://{addr}/")
    b = await websockets.connect(f"ws://{addr}/")
    plain = await websockets.connect(f"ws://{addr}/", compression=None)
    for ws, name in [(a, "py-a"), (b, "py-b"), (plain, "py-plain")]:
        await login(ws, name, room_id)
    content = "客服 " + "the order ships tomorrow; " * 200
    await a.send(json.dumps({"type": "say", "to_client_id": "all", "content": content}))
    for ws in (a, b, plain):
        got = await asyncio.wait_for(until_say(ws), 10)
        if got != content:
            raise SystemExit("room message differs")
    print(json.dumps({"deflate": ext(a), "plain": ext(plain), "content_len": len(content.encode())}))
    for ws in (a, b, plain):
        await ws.close()


mode, addr = sys.argv[1], sys.argv[2]
if mode == "echo":
    asyncio.run(echo(addr))
else:
    asyncio.run(room(addr, sys.argv[3]))
