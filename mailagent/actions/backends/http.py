"""The company's own actions API, as specified in docs/actions-api.md.

Every request is signed with the shared secret (read from the environment at each request, so it
can rotate). Read-only calls are retried freely. Side effects are retried only with the caller's
idempotency key, which makes a retry safe by contract: the server applies the change once and
answers later attempts with the original result (`409`, `Idempotent-Replayed: true`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from mailagent import config
from mailagent.actions.backends.base import (
    BackendError,
    Customer,
    IdempotencyConflict,
    Incident,
    Invoice,
    NotFound,
    Operation,
    Order,
    Refund,
    Rejected,
    Unavailable,
    check_idempotency_key,
    check_operation,
    check_refund,
    refund_amount,
)

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_BACKOFF_SECONDS = 2.0

T = TypeVar("T")


def signature(secret: str, timestamp: int, method: str, target: str, idempotency_key: str, body: bytes) -> str:
    """`v1=<hex>`: HMAC-SHA256 over `{timestamp}.{METHOD}.{target}.{idempotency_key}.` + body,
    where target is the path and query exactly as sent (docs/actions-api.md, "Authentication")."""
    message = f"{timestamp}.{method.upper()}.{target}.{idempotency_key}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class _Unreadable(BackendError):
    """A 2xx answer whose body cannot be read as the contract says (not JSON, missing fields, too
    large, cut off): for a side effect the outcome is uncertain until a retry with the same key
    gets a readable replay."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class _Watchdog:
    """The deadline of one attempt: when it passes, the connection's socket is shut down, so a
    read blocked on a server that trickles its answer byte by byte returns at once. The socket is
    known from the connection trace (connections are not reused, so every request connects)."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._stream: Any = None
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self._stream = info.get("return_value")

    def _fire(self) -> None:
        self.expired = True
        sock = self._stream.get_extra_info("socket") if self._stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class HttpBackend:
    """One `httpx.Client` (safe to share between threads) per instance. `make_backend` shares one
    per process; `close()` is for an instance made directly. Every call has an overall deadline
    (`deadline_seconds`, retries included) and answers are read up to `max_response_bytes`."""

    name = "http"

    def __init__(self, settings: config.HttpBackend, *, backoff_seconds: float = 0.25) -> None:
        self.settings = settings
        self._backoff = backoff_seconds
        self._client = httpx.Client(base_url=settings.base_url.rstrip("/"),
                                    timeout=httpx.Timeout(settings.timeout_seconds),
                                    limits=httpx.Limits(max_keepalive_connections=0),
                                    headers={"Accept": "application/json", "User-Agent": "mailagent"})

    def close(self) -> None:
        self._client.close()

    # lookups

    def lookup_customer(self, email: str) -> Customer | None:
        body = self._get("/v1/customers", {"email": email})
        return None if body is None else _parse(Customer.from_dict, body)

    def lookup_order(self, order_id: str) -> Order | None:
        body = self._get(f"/v1/orders/{quote(order_id, safe='')}")
        return None if body is None else _parse(Order.from_dict, body)

    def list_invoices(self, customer_email: str) -> list[Invoice]:
        body = self._get("/v1/invoices", {"customer_email": customer_email})
        return [] if body is None else _parse(lambda b: [Invoice.from_dict(i) for i in b["invoices"]], body)

    def incidents(self, *, active_only: bool = False) -> list[Incident]:
        body = self._get("/v1/incidents", {"active": "true"} if active_only else None)
        return [] if body is None else _parse(lambda b: [Incident.from_dict(i) for i in b["incidents"]], body)

    # side effects

    # Every answer is checked against the request: a backend that says it refunded another order,
    # another amount, or that the refund failed, has not done what was asked.

    def resend_invoice(self, invoice_id: str, *, to: str | None, idempotency_key: str) -> Operation:
        return self._post(f"/v1/invoices/{quote(invoice_id, safe='')}/resend", {"to": to}, idempotency_key,
                          lambda body, replayed: check_operation(
                              Operation("resend_invoice", _parse(dict, body), replayed), "invoice_id", invoice_id))

    def issue_refund(self, order_id: str, amount: Decimal, currency: str, reason: str, *,
                     idempotency_key: str) -> Refund:
        payload = {"order_id": order_id, "amount": str(refund_amount(amount)),
                   "currency": currency.strip().upper(), "reason": reason}
        return self._post("/v1/refunds", payload, idempotency_key,
                          lambda body, replayed: check_refund(_parse(lambda b: Refund.from_dict(b, replayed=replayed),
                                                                     body), order_id, amount, currency))

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Operation:
        return self._post(f"/v1/subscriptions/{quote(subscription_id, safe='')}/cancel", {}, idempotency_key,
                          lambda body, replayed: check_operation(
                              Operation("cancel_subscription", _parse(dict, body), replayed), "subscription_id",
                              subscription_id, "canceled"))

    # HTTP

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any | None:
        """The JSON body, or None when the API answers 404."""
        response = self._send("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.is_success:
            return _json(response)
        raise self._error(response)

    def _post(self, path: str, payload: dict[str, Any], idempotency_key: str,
              build: Callable[[Any, bool], T]) -> T:
        """`build(body, replayed)` of the answer; a `409` marked `Idempotent-Replayed` carries the
        original result. A success whose body cannot be read leaves the outcome uncertain: the same
        request (same key) is sent again, which the backend answers from its record, and the call
        is `Unavailable` (outcome unknown) if no readable answer comes. Never a guess."""
        check_idempotency_key(idempotency_key)
        deadline = time.monotonic() + self.settings.deadline_seconds
        failure = ""
        for _ in range(self.settings.max_retries + 1):
            response = self._send("POST", path, payload=payload, idempotency_key=idempotency_key, deadline=deadline)
            replayed = response.status_code == 409 and response.headers.get(REPLAYED_HEADER, "").lower() == "true"
            if not (response.is_success or replayed):
                raise self._error(response)
            try:
                return build(_json(response), replayed)
            except _Unreadable as exc:
                failure = str(exc)
                log.warning("actions API POST %s: unreadable answer, asking again with the same key: %s", path, exc)
        raise Unavailable(f"the actions API never gave a readable answer to POST {path} ({failure}); {_UNKNOWN}")

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              payload: dict[str, Any] | None = None, idempotency_key: str = "",
              deadline: float | None = None) -> httpx.Response:
        """The first answer that is not transient, after at most `max_retries` retries, each one
        signed afresh (a retry can come later than the server's 5-minute window allows), all
        within the call's deadline."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        deadline = time.monotonic() + self.settings.deadline_seconds if deadline is None else deadline
        attempts = self.settings.max_retries + 1
        failure = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS,
                               max(deadline - time.monotonic(), 0)))
            if time.monotonic() >= deadline:
                failure = f"{failure}; " if failure else ""
                failure += f"the {self.settings.deadline_seconds:g} s deadline passed"
                break
            request = self._signed(method, path, params, body, idempotency_key)
            try:
                response = self._exchange(request, deadline)
            except httpx.TransportError as exc:        # connection refused or reset, timeouts
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except _Unreadable as exc:                 # cut off at the deadline or the size cap
                failure = str(exc)
            else:
                code = _error_code(response)
                if response.status_code not in TRANSIENT_STATUS and code != "in_progress":
                    return response
                failure = f"HTTP {response.status_code} {code}".rstrip()
            log.warning("actions API %s %s: attempt %d of %d failed: %s", method, path, attempt + 1, attempts,
                        failure)
        unknown = f"; {_UNKNOWN}" if idempotency_key else ""
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise Unavailable(f"the actions API did not answer {method} {path} after {tries} ({failure}){unknown}")

    def _exchange(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """One request and its whole answer, within the deadline and the size cap."""
        cap = self.settings.max_response_bytes
        with _Watchdog(deadline - time.monotonic()) as watchdog:
            request.extensions["trace"] = watchdog.trace
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError:
                if watchdog.expired:
                    raise _Unreadable(f"no answer within the {self.settings.deadline_seconds:g} s deadline") from None
                raise
            try:
                if int(response.headers.get("content-length") or 0) > cap:
                    raise _Unreadable(f"an answer of {response.headers['content-length']} bytes, over the "
                                      f"{cap}-byte limit")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise _Unreadable(f"an answer of more than {cap} bytes")
                    chunks.append(chunk)
            except httpx.TransportError:
                if watchdog.expired:
                    raise _Unreadable(f"the answer did not end within the {self.settings.deadline_seconds:g} s "
                                      "deadline") from None
                raise
            finally:
                response.close()
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=request)

    def _signed(self, method: str, path: str, params: dict[str, str] | None, body: bytes,
                idempotency_key: str) -> httpx.Request:
        headers = {"Content-Type": "application/json"} if body else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        request = self._client.build_request(method, path, params=params, content=body, headers=headers)
        timestamp = int(time.time())
        target = request.url.raw_path.decode("ascii")
        request.headers["X-Mailagent-Timestamp"] = str(timestamp)
        request.headers["X-Mailagent-Signature"] = signature(self._secret(), timestamp, method, target,
                                                             idempotency_key, body)
        return request

    def _secret(self) -> str:
        try:
            return config.secret("actions.http.secret_env", self.settings.secret_env)
        except config.ConfigError as exc:
            raise BackendError(f"cannot sign requests to the actions API: {exc}", retryable=False) from None

    def _error(self, response: httpx.Response) -> BackendError:
        """The contract's error statuses as typed errors (see docs/actions-api.md, "Errors")."""
        status, code = response.status_code, _error_code(response) or "no error code"
        message = _error_message(response)
        if status == 404:
            return NotFound(message)
        if status == 422 and code == "idempotency_key_mismatch":
            return IdempotencyConflict(message)
        if status == 422:
            return Rejected(message)
        if status == 401:
            return BackendError(f"the actions API refused the request signature ({code}): check that "
                                f"{self.settings.secret_env} holds the secret the API expects and that this "
                                f"host's clock is right", retryable=False)
        return BackendError(f"the actions API answered HTTP {status} ({code}): {message}", retryable=False)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_code(response: httpx.Response) -> str:
    return "" if response.is_success else str(_error_body(response).get("code") or "")


def _error_message(response: httpx.Response) -> str:
    message = str(_error_body(response).get("message") or response.reason_phrase or "")
    return message[:500]


_UNKNOWN = ("the outcome is unknown: the change may or may not have been made. Calling again with the same "
            "idempotency key is safe and settles it")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise _Unreadable(f"the actions API answered HTTP {response.status_code} with a body that is not "
                          f"JSON") from None


def _parse(build: Callable[[Any], T], body: Any) -> T:
    """A result from a response body, or an error that says the body breaks the contract."""
    try:
        return build(body)
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise _Unreadable(f"the actions API answered with a body that does not follow the contract "
                          f"({type(exc).__name__}: {exc})") from None
