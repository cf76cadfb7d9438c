"""Candidate designs of the data plane's proxy hop, each a minimal invocation proxy to one
replica: ``--server uvicorn|granian|aiohttp`` x ``--client pool|aiohttp|httpx``.

    python peers/router_candidates.py --server uvicorn --client pool --port N --upstream M

Every candidate reads the whole body, POSTs it to the replica's ``/invocations`` on a
keep-alive connection and returns the answer with its content type (what the data plane
does, less auth, routing and metrics). ``pool`` is ``orchestrator.dataplane.pool``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository, for the pool

ARGS: argparse.Namespace | None = None


def forwarder(client: str, upstream: int) -> Any:
    url = f"http://127.0.0.1:{upstream}"
    if client == "pool":
        import asyncio
        import importlib.util

        # The module alone: the package's __init__ brings the whole data plane (pydantic...).
        path = Path(__file__).resolve().parents[3] / "orchestrator" / "dataplane" / "pool.py"
        spec = importlib.util.spec_from_file_location("dataplane_pool", path)
        assert spec is not None and spec.loader is not None
        pool = importlib.util.module_from_spec(spec)
        sys.modules["dataplane_pool"] = pool  # dataclasses look their module up
        spec.loader.exec_module(pool)
        pools = pool.Pools()
        headers = b"content-type: application/json\r\n"

        async def pool_forward(body: bytes) -> tuple[int, bytes, bytes]:
            replica = pools.get(url)
            deadline = asyncio.get_running_loop().time() + 60
            a = await replica.post(
                replica.head(b"/invocations", len(body), headers), body, deadline
            )
            return a.status, a.content_type, a.body

        return pool_forward
    if client == "aiohttp":
        import aiohttp

        session: aiohttp.ClientSession | None = None

        async def aiohttp_forward(body: bytes) -> tuple[int, bytes, bytes]:
            nonlocal session
            if session is None:
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=512), auto_decompress=False
                )
            async with session.post(
                f"{url}/invocations", data=body, headers={"content-type": "application/json"}
            ) as r:
                return r.status, r.headers.get("content-type", "").encode(), await r.read()

        return aiohttp_forward
    import httpx

    http: httpx.AsyncClient | None = None

    async def httpx_forward(body: bytes) -> tuple[int, bytes, bytes]:
        nonlocal http
        if http is None:
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
            http = httpx.AsyncClient(limits=limits, trust_env=False)
        r = await http.post(
            f"{url}/invocations", content=body, headers={"content-type": "application/json"}
        )
        return r.status_code, r.headers.get("content-type", "").encode(), r.content

    return httpx_forward


def asgi_app(client: str, upstream: int) -> Any:
    forward = forwarder(client, upstream)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/ping":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        status, content_type, body = await forward(b"".join(chunks))
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def granian_app() -> Any:
    """The import target granian loads (``router_candidates:granian_app``, a factory)."""
    import os

    return asgi_app(os.environ["CANDIDATE_CLIENT"], int(os.environ["CANDIDATE_UPSTREAM"]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--server", choices=["uvicorn", "granian", "aiohttp"], required=True)
    p.add_argument("--client", choices=["pool", "aiohttp", "httpx"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", type=int, required=True)
    args = p.parse_args()
    if args.server == "uvicorn":
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", args.port))
        config = uvicorn.Config(
            asgi_app(args.client, args.upstream), loop="uvloop", http="httptools",
            log_level="warning", access_log=False, proxy_headers=False,
        )  # fmt: skip
        uvicorn.Server(config).run(sockets=[sock])
    elif args.server == "granian":
        import os

        from granian import Granian
        from granian.constants import Interfaces, Loops

        os.environ["CANDIDATE_CLIENT"] = args.client
        os.environ["CANDIDATE_UPSTREAM"] = str(args.upstream)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        Granian(
            "router_candidates:granian_app", address="127.0.0.1", port=args.port,
            interface=Interfaces.ASGI, workers=1, loop=Loops.uvloop, factory=True,
            log_enabled=False,
        ).serve()  # fmt: skip
    else:
        import uvloop
        from aiohttp import web

        forward = forwarder(args.client, args.upstream)

        async def handle(request: web.Request) -> web.Response:
            status, content_type, body = await forward(await request.read())
            return web.Response(
                status=status, body=body, headers={"content-type": content_type.decode()}
            )

        async def ping(_request: web.Request) -> web.Response:
            return web.Response(text="{}")

        app = web.Application()
        app.router.add_post("/invocations", handle)
        app.router.add_get("/ping", ping)
        uvloop.install()
        web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
