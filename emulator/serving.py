"""Serving an aiohttp application on a real socket: the one way dmemu listens.

Owns: runner set-up and clean-up on failure, learning the port when 0 was asked for, the
base URL (IPv6 hosts bracketed, https with a TLS context), answering an application's
direct routes ahead of aiohttp's router, stopping a standalone server on SIGINT/SIGTERM, a
run on SIGTERM (by cancelling it, as Ctrl-C does), and settling a long-lived process's
start-up heap. Must not: build applications.

Direct routes
-------------
A protocol endpoint that senders drive at full speed (a ChannelURI, the token endpoint) pays
for aiohttp's application layer on every request: resolving the route, freezing its match
info, the response-prepare signal. Measured with callgrind on the fake WNS push path, that is
about 14k of 314k instructions per push. :func:`add_direct_route` registers such an endpoint
on the router as usual (every method, exact path) and also in the application's table of
direct routes; :func:`listen` then puts a front door before the router that hands requests
for those paths straight to their handler. Everything else, and any request that asks for
``Expect: 100-continue`` (answered by the router's expect handler), goes through the router.
A direct route therefore sees no middleware, no ``on_response_prepare`` signal and no
``request.match_info``/``request.app``; its handler must bind what it needs. Served any other
way (``aiohttp_client`` in tests), the same handler is reached through the router.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import signal
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import hdrs, web

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]  # a route's handler
ServerHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]  # web.Server's

#: An application's direct routes, by exact path (see the module docstring).
DIRECT_ROUTES: web.AppKey[dict[str, Handler]] = web.AppKey("dmemu_direct_routes")


def add_direct_route(app: web.Application, path: str, handler: Handler) -> None:
    """Route every method of ``path`` to ``handler``, ahead of the router when served by
    :func:`listen`. The handler must not rely on middlewares, signals or ``request.app``."""
    app.router.add_route("*", path, handler)
    app.setdefault(DIRECT_ROUTES, {})[path] = handler


@dataclass(frozen=True, slots=True)
class Listening:
    runner: web.AppRunner  # clean it up to stop serving
    url: str  # e.g. http://127.0.0.1:43121
    port: int


async def listen(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> Listening:
    """Serve ``app`` on ``host:port`` (0 = any free port). Raises OSError if it cannot."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    direct = app.get(DIRECT_ROUTES)
    if direct and runner.server is not None:
        # web.Server's public request_handler is the application's own (router) handler.
        runner.server.request_handler = _front_door(direct, runner.server.request_handler)
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    sockets = getattr(site._server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    scheme = "https" if ssl_context else "http"
    url_host = f"[{host}]" if ":" in host else host
    return Listening(runner, f"{scheme}://{url_host}:{actual}", actual)


def _front_door(direct: Mapping[str, Handler], routed: ServerHandler) -> ServerHandler:
    """A request handler answering ``direct`` paths itself and passing the rest to ``routed``."""

    async def front_door(request: web.BaseRequest) -> web.StreamResponse:
        handler = direct.get(request.path)
        if handler is None or hdrs.EXPECT in request.headers:
            return await routed(request)
        return await handler(request)  # type: ignore[arg-type]  # made by the app: a Request

    return front_door


def stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (call it before start-up, from the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """SIGTERM (a CI timeout, ``kill``) stops the run as Ctrl-C does: by cancelling it, so
    it ends with what it has (asyncio.run already turns Ctrl-C into that cancellation)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    # signal handlers need the main thread and a Unix event loop (tests may call run() from
    # elsewhere): without them SIGTERM keeps its default action
    if (
        task is None
        or sys.platform == "win32"
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


#: The collector's young-generation threshold while serving or running (CPython's default is
#: 700 allocations). A server with many requests in flight keeps thousands of young objects
#: alive, and each young collection walks all of them: with the default, that happens every
#: few requests. Measured with callgrind on the fake WNS under 32 connections: 2% fewer
#: instructions per push.
YOUNG_THRESHOLD = 10_000


@contextmanager
def settled_heap() -> Iterator[None]:
    """While inside, the garbage collector stays out of a long-lived world's way.

    A server or a run builds its world once and then serves many short requests. Inside:
    what was built before is frozen (``gc.freeze``), so full collections no longer walk the
    whole start-up heap again, and young collections run every :data:`YOUNG_THRESHOLD`
    allocations. Objects made inside are collected as usual. On leaving, the frozen objects
    become collectable again and the thresholds are restored, so a process that runs many
    worlds, such as the test suite, keeps no garbage.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def request_once_more(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    read: Callable[[aiohttp.ClientResponse], Awaitable[T]],
    **kwargs: Any,
) -> T:
    """A client request, sent once more on a new connection when the server closed a
    kept-alive one just as it was reused (``ServerDisconnectedError``: its idle timer ran
    out, which a leap of time under ``--server-cmd`` provokes); the request never reached
    it (also a reset or broken pipe while sending). ``read`` turns the response into the
    result inside the request's context."""
    for attempt in (1, 2):
        try:
            async with session.request(method, url, **kwargs) as resp:
                return await read(resp)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            dropped = not isinstance(exc, aiohttp.ClientOSError) or exc.errno in _DROPPED
            if attempt == 2 or not dropped:
                raise
    raise AssertionError("not reached")  # pragma: no cover - the loop returns or raises


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """A response body up to ``cap`` bytes (one past a limit, so the parser can say the
    body was too big). ``read(n)`` returns what has arrived, which may be less than ``n``,
    so this loops until the cap or the end."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        chunk = await resp.content.read(cap - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


#: a connection the server closed under a request being sent (reset, broken pipe)
_DROPPED = (errno.ECONNRESET, errno.EPIPE)
