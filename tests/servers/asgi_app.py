"""ASGI app for uvicorn: `/slow` takes SLOW_SECONDS (default 2) and announces itself on stdout, `/fast` answers
at once. Every body is sent with a Content-Length, so a client can tell a complete response from a cut one."""
import asyncio
import os

SLOW_SECONDS = float(os.environ.get("SLOW_SECONDS", "2"))


def say(line):
    os.write(1, (line + "\n").encode())


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        say("slow-start %d" % os.getpid())
        await asyncio.sleep(SLOW_SECONDS)
        status, body = 200, b"slow done\n"
    elif scope["path"] == "/fast":
        status, body = 200, b"fast\n"
    else:
        status, body = 404, b""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
