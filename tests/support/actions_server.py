"""The actions API of docs/actions-api.md on 127.0.0.1, for tests: in-memory data loaded from
`examples/backend.toml` (read as the demo backend seeds it: its dates as of today), real signature checks (401 on a bad or stale signature), real
idempotency (409 replays, 422 on a reused key), and failures on demand.

    with ActionsServer(secret="s3cret") as server:
        server.drop_response_next()              # apply the next request, never answer it
        ...
        assert len(server.refunds) == 1          # side effects actually applied
        assert [r.status for r in server.requests] == [None, 409]

Injected failures apply to the next requests, one request each, in the order they were queued,
before the signature is checked (as a proxy in front of the API would fail); with `only=PATH`, only
to requests whose path starts with it:
- `fail_next(status, times=n, code=...)`: answer an error without handling the request;
- `delay_next(seconds)`: wait, then handle the request as usual (a client with a shorter timeout
  has given up and retried by then); a server that stops meanwhile drops it unhandled;
- `drop_response_next()`: handle the request, side effect included, then send nothing until the
  client gives up: the case that idempotency keys exist for.

Hostile answers (a backend that lies, stalls or floods), also one request each:
- `answer_after_next(status, body)`: handle the request, side effect included, then answer
  `status` with `body` instead: raw bytes (not JSON), or a function of the real result (a dict)
  returning the dict to send ("201 for another order", `"status": "failed"` after a refund);
- `trickle_next(seconds_per_byte)`: handle the request, then send the real answer one byte at a
  time, `seconds_per_byte` apart;
- `flood_next(size)`: answer `200` with a JSON-looking body of `size` bytes (streamed, never held
  in memory here either).

The server handles one request at a time on its event loop, so a key is never seen in flight;
`fail_next(409, code="in_progress")` plays that answer.

This is an implementation of the contract written from the document, independent of the client
(`mailagent/actions/backends/http.py`), so the tests check one against the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mailagent.actions.backends.demo import read
from mailagent.config import DATA

SAMPLE = DATA / "examples" / "backend.toml"
SIGNATURE_WINDOW_SECONDS = 300

Handler = Callable[[Request, dict[str, Any]], tuple[int, dict[str, Any]]]


@dataclass
class RecordedRequest:
    method: str
    target: str                     # path and query exactly as sent: what the client signed
    headers: dict[str, str]         # lower-case names
    body: bytes
    status: int | None = None       # None: no answer was sent (dropped, or still pending)

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class _Fault:
    kind: Literal["fail", "delay", "drop", "after", "trickle", "flood"]
    status: int = 0
    code: str = ""
    seconds: float = 0.0
    body: bytes | Callable[[dict[str, Any]], dict[str, Any]] | None = None
    size: int = 0
    only: str | None = None         # a path prefix: requests to other paths pass this fault by


@dataclass(frozen=True)
class _Done:
    fingerprint: str
    body: dict[str, Any]


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ActionsServer:
    """Served by uvicorn from a background thread; `base_url` once started."""

    def __init__(self, secret: str, data: Path = SAMPLE) -> None:
        self.secret = secret
        raw = read(data).model_dump()
        self.customers = {c["id"]: dict(c) for c in raw["customers"]}
        self.subscriptions = {s["id"]: dict(s) for s in raw["subscriptions"]}
        self.orders = {o["id"]: {**o, "amount": _money(o["amount"]),
                                 "refunded": _money(o["amount"] if o["status"] == "refunded" else 0)}
                       for o in raw["orders"]}
        self.invoices = {i["id"]: {**i, "amount": _money(i["amount"])} for i in raw["invoices"]}
        self.incidents = [dict(i) for i in raw["incidents"]]
        self.refunds: list[dict[str, Any]] = []         # side effects actually applied
        self.resends: list[str] = []
        self.cancellations: list[str] = []
        self._done: dict[str, _Done] = {}
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    # lifecycle

    def start(self) -> Self:
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it every reply written in two parts waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self._app(), loop="asyncio", http="h11", ws="none", lifespan="off",
                                log_config=None, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1)
        self._server = server = uvicorn.Server(config)   # off the main thread: no signal handlers

        async def serve() -> None:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            await server.serve([sock])

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), name=f"actions-server-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the actions server did not start")
            time.sleep(0.002)
        return self

    def close(self) -> None:
        """Stop: pending delays and dropped replies end at once, then uvicorn shuts down."""
        if self._thread is None or self._server is None or self._loop is None or self._stopping is None:
            return
        self._server.should_exit = True
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # failure injection and inspection

    def fail_next(self, status: int = 500, *, times: int = 1, code: str = "injected_failure",
                  only: str | None = None) -> None:
        self._queue(_Fault("fail", status=status, code=code, only=only), times)

    def delay_next(self, seconds: float, *, times: int = 1) -> None:
        self._queue(_Fault("delay", seconds=seconds), times)

    def drop_response_next(self, *, times: int = 1) -> None:
        self._queue(_Fault("drop"), times)

    def answer_after_next(self, status: int, body: bytes | Callable[[dict[str, Any]], dict[str, Any]], *,
                          times: int = 1, only: str | None = None) -> None:
        self._queue(_Fault("after", status=status, body=body, only=only), times)

    def trickle_next(self, seconds_per_byte: float, *, times: int = 1) -> None:
        self._queue(_Fault("trickle", seconds=seconds_per_byte), times)

    def flood_next(self, size: int, *, times: int = 1) -> None:
        self._queue(_Fault("flood", size=size), times)

    def _queue(self, fault: _Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in arrival order (a copy of the list)."""
        with self._lock:
            return list(self._requests)

    # HTTP

    def _app(self) -> Starlette:
        def route(path: str, handler: Handler, methods: tuple[str, ...] = ("GET",), *, effect: bool = False) -> Route:
            async def endpoint(request: Request) -> Response:
                return await self._serve(request, handler, effect)
            return Route(path, endpoint, methods=list(methods))

        return Starlette(routes=[
            route("/v1/customers", self._customer),
            route("/v1/orders/{order_id}", self._order),
            route("/v1/invoices", self._invoices),
            route("/v1/incidents", self._incidents),
            route("/v1/invoices/{invoice_id}/resend", self._resend, ("POST",), effect=True),
            route("/v1/refunds", self._refund, ("POST",), effect=True),
            route("/v1/subscriptions/{subscription_id}/cancel", self._cancel, ("POST",), effect=True),
            route("/{path:path}", self._unknown, ("GET", "POST", "PUT", "PATCH", "DELETE")),
        ])

    async def _serve(self, request: Request, handler: Handler, effect: bool) -> Response:
        """Record, inject the next failure, then authenticate and handle."""
        query = request.scope["query_string"].decode("latin-1")
        recorded = RecordedRequest(
            method=request.method,
            target=request.scope["raw_path"].decode("latin-1") + (f"?{query}" if query else ""),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        with self._lock:
            self._requests.append(recorded)
            fault = next((f for f in self._faults if f.only is None or recorded.path.startswith(f.only)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.kind == "fail":
            return _answer(recorded, _error(fault.status, fault.code, "injected failure"))
        if fault is not None and fault.kind == "delay" and await self._stopped_within(fault.seconds):
            return _error(503, "unavailable", "the server is stopping")
        if fault is not None and fault.kind == "flood":
            return _answer(recorded, StreamingResponse(_flood(fault.size), 200, media_type="application/json"))
        response = self._handle(request, recorded, handler, effect)
        if fault is not None and fault.kind == "drop":
            await self._until_client_leaves(request)
            return response         # uvicorn discards it: the client is gone
        if fault is not None and fault.kind == "after":
            body = fault.body if isinstance(fault.body, bytes) else json.dumps(
                fault.body(json.loads(response.body))).encode()  # type: ignore[misc]
            return _answer(recorded, Response(body, fault.status, media_type="application/json"))
        if fault is not None and fault.kind == "trickle":
            return _answer(recorded, StreamingResponse(self._trickle(bytes(response.body), fault.seconds),
                                                       response.status_code, media_type="application/json"))
        return _answer(recorded, response)

    async def _trickle(self, body: bytes, seconds: float) -> AsyncIterator[bytes]:
        for i in range(len(body)):
            yield body[i:i + 1]
            if await self._stopped_within(seconds):
                return

    def _handle(self, request: Request, recorded: RecordedRequest, handler: Handler, effect: bool) -> Response:
        try:
            self._authenticate(recorded)
            body = _body(recorded)
            if not effect:
                status, result = handler(request, body)
                return JSONResponse(result, status)
            return self._idempotent(request, recorded, body, handler)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message)

    def _authenticate(self, recorded: RecordedRequest) -> None:
        timestamp = recorded.headers.get("x-mailagent-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
            raise _ApiError(401, "stale_timestamp", "the request timestamp is missing or more than 5 minutes off")
        key = recorded.headers.get("idempotency-key", "")
        message = f"{timestamp}.{recorded.method}.{recorded.target}.{key}.".encode() + recorded.body
        expected = "v1=" + hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), recorded.headers.get("x-mailagent-signature", "").encode()):
            raise _ApiError(401, "invalid_signature", "the request signature does not match")

    def _idempotent(self, request: Request, recorded: RecordedRequest, body: dict[str, Any],
                    handler: Handler) -> Response:
        key = recorded.headers.get("idempotency-key")
        if not key:
            raise _ApiError(400, "idempotency_key_missing", "this request needs an Idempotency-Key header")
        fingerprint = hashlib.sha256(f"{recorded.method} {recorded.target}\n".encode()
                                     + json.dumps(body, sort_keys=True).encode()).hexdigest()
        done = self._done.get(key)
        if done is not None:
            if done.fingerprint != fingerprint:
                raise _ApiError(422, "idempotency_key_mismatch",
                                "this Idempotency-Key was used for a different request")
            return JSONResponse(done.body, 409, headers={"Idempotent-Replayed": "true"})
        status, result = handler(request, body)      # a refusal raises: not recorded
        self._done[key] = _Done(fingerprint, result)
        return JSONResponse(result, status)

    async def _stopped_within(self, seconds: float) -> bool:
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _until_client_leaves(self, request: Request) -> None:
        """Until the client disconnects (it timed out) or the server stops."""
        assert self._stopping is not None

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        waits = [asyncio.ensure_future(disconnected()), asyncio.ensure_future(self._stopping.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()

    # endpoints

    def _customer(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        email = request.query_params.get("email", "").strip().lower()
        customer = next((c for c in self.customers.values() if c["email"].lower() == email), None)
        if customer is None:
            raise _not_found("customer")
        subscriptions = [s for s in self.subscriptions.values() if s["customer_id"] == customer["id"]]
        return 200, {
            **{k: customer[k] for k in ("id", "email", "name", "tier", "company", "country")},
            "subscriptions": [{**{k: s[k] for k in ("id", "plan", "seats", "interval", "status")},
                               "renews_on": _iso(s.get("renews_on")), "price_eur": _text(_money(s["price_eur"]))}
                              for s in subscriptions],
        }

    def _order(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        order = self.orders.get(request.path_params["order_id"])
        if order is None:
            raise _not_found("order")
        invoice = next((i["id"] for i in self.invoices.values() if i["order_id"] == order["id"]), None)
        return 200, {
            "id": order["id"], "customer_id": order["customer_id"],
            "customer_email": self.customers[order["customer_id"]]["email"], "date": _iso(order["date"]),
            "amount": _text(order["amount"]), "currency": order["currency"], "description": order["description"],
            "status": order["status"], "refunded": _text(order["refunded"]), "invoice_id": invoice,
        }

    def _invoices(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        email = request.query_params.get("customer_email", "").strip().lower()
        owners = {c["id"] for c in self.customers.values() if c["email"].lower() == email}
        found = sorted((i for i in self.invoices.values() if i["customer_id"] in owners),
                       key=lambda i: (i["date"], i["id"]), reverse=True)
        return 200, {"invoices": [{"id": i["id"], "order_id": i["order_id"], "date": _iso(i["date"]),
                                   "amount": _text(i["amount"]), "currency": i["currency"], "url": i["url"]}
                                  for i in found]}

    def _incidents(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        active_only = request.query_params.get("active") == "true"
        found = [i for i in self.incidents if not active_only or i["status"] != "resolved"]
        found.sort(key=lambda i: i["started_at"], reverse=True)
        return 200, {"incidents": [{**i, "started_at": _iso(i["started_at"]), "resolved_at": _iso(i.get("resolved_at"))}
                                   for i in found]}

    def _resend(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        invoice = self.invoices.get(request.path_params["invoice_id"])
        if invoice is None:
            raise _not_found("invoice")
        on_file = self.customers[invoice["customer_id"]]["email"]
        to = body.get("to")
        if to is not None and str(to).strip().lower() != on_file.lower():
            raise _ApiError(422, "rejected", "invoices are only sent to the customer's address on file")
        self.resends.append(invoice["id"])
        return 200, {"invoice_id": invoice["id"], "sent_to": on_file}

    def _refund(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            order_id, currency, amount = str(body["order_id"]), str(body["currency"]), body["amount"]
            if not isinstance(amount, str):
                raise TypeError
            amount = Decimal(amount)
        except (KeyError, TypeError, InvalidOperation):
            raise _ApiError(400, "invalid_request", 'order_id, currency and amount (a string such as "8.00") '
                                                    "are required") from None
        order = self.orders.get(order_id)
        if order is None:
            raise _not_found("order")
        if order["status"] not in ("paid", "partially_refunded"):
            raise _ApiError(422, "rejected", f"order {order_id} is {order['status']}: only paid orders can be refunded")
        if currency != order["currency"]:
            raise _ApiError(422, "rejected", f"order {order_id} was charged in {order['currency']}, not {currency}")
        refundable = order["amount"] - order["refunded"]
        if not 0 < amount <= refundable:
            raise _ApiError(422, "rejected", f"{amount} {currency} is not between 0 and the {refundable} "
                                             f"{currency} still refundable on order {order_id}")
        order["refunded"] += amount
        order["status"] = "refunded" if amount == refundable else "partially_refunded"
        refund = {"refund_id": f"re_{len(self.refunds) + 1:06d}", "order_id": order_id, "amount": _text(amount),
                  "currency": currency, "status": "succeeded"}
        self.refunds.append(refund)
        return 201, refund

    def _cancel(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        subscription = self.subscriptions.get(request.path_params["subscription_id"])
        if subscription is None:
            raise _not_found("subscription")
        if subscription["status"] == "canceled":
            raise _ApiError(422, "rejected", f"subscription {subscription['id']} is already canceled")
        subscription["status"] = "canceled"
        self.cancellations.append(subscription["id"])
        return 200, {"subscription_id": subscription["id"], "status": "canceled",
                     "active_until": _iso(subscription.get("renews_on"))}

    def _unknown(self, request: Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        raise _not_found("endpoint")


async def _flood(size: int) -> AsyncIterator[bytes]:
    chunk = b" " * 65536
    yield b'{"padding": "'
    for _ in range(size // len(chunk)):
        yield chunk
    yield b'"}'


def _answer(recorded: RecordedRequest, response: Response) -> Response:
    recorded.status = response.status_code
    return response


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status)


def _not_found(what: str) -> _ApiError:
    return _ApiError(404, "not_found", f"no such {what}")


def _body(recorded: RecordedRequest) -> dict[str, Any]:
    if not recorded.body:
        return {}
    try:
        body = json.loads(recorded.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _ApiError(400, "invalid_request", "the body must be a JSON object")
    return body


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _text(amount: Decimal) -> str:
    return f"{amount:.2f}"


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()
