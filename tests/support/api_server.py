"""What the fake helpdesk servers share: uvicorn on 127.0.0.1 in a background thread, a log of
every request, failures on demand, and a per-account rate limit that answers 429 like the real
services (so a client that ignores its budget is caught by the server, not by the test).

Injected failures apply to the next requests of the given kind (`"any"`, `"read"`, `"write"`),
one each, in order:
- `fail_next(status, headers=...)`: answer without handling (a 429 storm, a 503 ...);
- `delay_next(seconds)`: wait, then handle (a slow answer);
- `hold_next()`: handle the request, change included, then answer only when released or the
  client leaves: a write whose answer is lost, the case markers exist for.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Kind = Literal["any", "read", "write"]
Handler = Callable[[Request, bytes], Awaitable[Response]]


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    body: bytes
    at: float                       # time.monotonic() when it arrived
    status: int | None = None       # None: never answered
    applied: bool = False           # handled (a change took effect), whatever the client saw

    @property
    def write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "delay", "hold"]
    on: Kind
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class ApiServer:
    """Subclasses list their routes in `routes()` and handle requests with `endpoint(handler)`."""

    name = "api"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[Recorded] = []
        self._held: list[asyncio.Event] = []
        self._limits: list[tuple[Kind, int, float, int, str]] = []    # (on, limit, window, weight of writes, header)
        self._accepted: list[tuple[float, bool]] = []                  # (when, write) of requests the limit let through
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # lifecycle

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(Starlette(routes=self.routes()), loop="asyncio", http="h11", ws="none",
                                lifespan="off", log_config=None, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1)
        self._server = server = uvicorn.Server(config)

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve([sock])

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} server did not start")
            time.sleep(0.002)
        return self

    def close(self) -> None:
        if self._thread is None or self._server is None:
            return
        self.release()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self) -> list[Route]:
        raise NotImplementedError

    # failures, limits and inspection

    def fail_next(self, status: int = 503, *, times: int = 1, on: Kind = "any",
                  headers: dict[str, str] | None = None) -> None:
        self._queue(_Fault("fail", on, status=status, headers=headers or {}), times)

    def delay_next(self, seconds: float, *, times: int = 1, on: Kind = "any") -> None:
        self._queue(_Fault("delay", on, seconds=seconds), times)

    def hold_next(self, *, times: int = 1, on: Kind = "write") -> None:
        self._queue(_Fault("hold", on), times)

    def release(self) -> None:
        """Answer every held request now (the ones whose client is still there)."""
        if self._loop is None:
            return
        with self.lock:
            held, self._held = self._held, []
        for event in held:
            self._loop.call_soon_threadsafe(event.set)

    def rate_limit(self, limit: int, window: float, *, on: Kind = "any", write_weight: int = 1,
                   retry_header: str = "Retry-After") -> None:
        """Answer 429 (with `retry_header`) to requests over `limit` in the sliding `window`."""
        with self.lock:
            self._limits.append((on, limit, window, write_weight, retry_header))

    def _queue(self, fault: _Fault, times: int) -> None:
        with self.lock:
            self._faults.extend([fault] * times)

    @property
    def requests(self) -> list[Recorded]:
        with self.lock:
            return list(self._requests)

    def max_in_window(self, window: float, *, on: Kind = "any", write_weight: int = 1) -> int:
        """The most requests (writes weighted) any sliding `window` saw arrive, 429s included."""
        times = sorted((r.at, write_weight if r.write else 1) for r in self.requests if _matches(on, r.write))
        best, start, total = 0, 0, 0
        for at, weight in times:
            total += weight
            while times[start][0] <= at - window:
                total -= times[start][1]
                start += 1
            best = max(best, total)
        return best

    # HTTP

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            body = await request.body()
            recorded = Recorded(request.method, request.url.path, request.url.query, body, time.monotonic())
            with self.lock:
                self._requests.append(recorded)
                fault = next((f for f in self._faults if _matches(f.on, recorded.write)), None)
                if fault is not None:
                    self._faults.remove(fault)
                limited = self._over_limit(recorded)
            if fault is not None and fault.kind == "fail":
                return _answer(recorded, JSONResponse({"error": "injected", "description": "injected failure"},
                                                      fault.status, headers=fault.headers))
            if limited is not None:
                return _answer(recorded, limited)
            if fault is not None and fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            response = await handler(request, body)
            recorded.applied = response.status_code < 400
            if fault is not None and fault.kind == "hold":
                event = asyncio.Event()
                with self.lock:
                    self._held.append(event)
                while not event.is_set() and not await request.is_disconnected():
                    try:
                        await asyncio.wait_for(event.wait(), 0.05)
                    except TimeoutError:
                        pass
                if not event.is_set():
                    return response        # the client left: uvicorn drops the answer
            return _answer(recorded, response)

        return serve

    def _over_limit(self, recorded: Recorded) -> Response | None:
        """Under the lock: a 429 when any limit is exceeded, else the request is counted."""
        now = recorded.at
        for on, limit, window, write_weight, header in self._limits:
            if not _matches(on, recorded.write):
                continue
            used = sum((write_weight if w else 1) for at, w in self._accepted if at > now - window and _matches(on, w))
            weight = write_weight if recorded.write else 1
            if used + weight > limit:
                oldest = min((at for at, w in self._accepted if at > now - window and _matches(on, w)), default=now)
                wait = max(1, int(oldest + window - now + 0.999))
                return JSONResponse({"error": "TooManyRequests", "description": "rate limit exceeded"}, 429,
                                    headers={header: str(wait)})
        self._accepted.append((now, recorded.write))
        return None


def _matches(on: Kind, write: bool) -> bool:
    return on == "any" or (on == "write") == write


def _answer(recorded: Recorded, response: Response) -> Response:
    recorded.status = response.status_code
    return response


def route(server: ApiServer, path: str, handler: Handler, *methods: str) -> Route:
    return Route(path, server.endpoint(handler), methods=list(methods or ("GET",)))


def json_body(body: bytes) -> Any:
    import json

    return json.loads(body) if body else None
