"""Plain-to-TLS relay for tools/autobahn/run-tls.sh: each plain connection on 127.0.0.1:LISTEN
gets its own TLS connection to 127.0.0.1:TARGET (certificate checked against CA, name
localhost); bytes are copied both ways and an end of stream is passed on as one.

    python3 tls_relay.py LISTEN TARGET CA
"""
import asyncio
import ssl
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()
        except (ConnectionError, ssl.SSLError, OSError, RuntimeError):
            pass


async def main():
    listen, target, ca = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    ctx = ssl.create_default_context(cafile=ca)

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection(
                "127.0.0.1", target, ssl=ctx, server_hostname="localhost"
            )
        except (ConnectionError, ssl.SSLError, OSError) as e:
            print(f"relay: connect: {e}", file=sys.stderr)
            cw.close()
            return
        await asyncio.gather(pipe(cr, sw), pipe(sr, cw))
        for w in (cw, sw):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


asyncio.run(main())
