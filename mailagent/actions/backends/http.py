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


class HttpBackend:
    """One `httpx.Client` (a connection pool, safe to share between threads) per instance.
    `make_backend` shares one per process; `close()` is for an instance made directly."""

    name = "http"

    def __init__(self, settings: config.HttpBackend, *, backoff_seconds: float = 0.25) -> None:
        self.settings = settings
        self._backoff = backoff_seconds
        self._client = httpx.Client(base_url=settings.base_url.rstrip("/"),
                                    timeout=httpx.Timeout(settings.timeout_seconds),
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

    def resend_invoice(self, invoice_id: str, *, to: str | None, idempotency_key: str) -> Operation:
        body, replayed = self._post(f"/v1/invoices/{quote(invoice_id, safe='')}/resend", {"to": to},
                                    idempotency_key)
        return Operation("resend_invoice", _parse(dict, body), replayed)

    def issue_refund(self, order_id: str, amount: Decimal, currency: str, reason: str, *,
                     idempotency_key: str) -> Refund:
        payload = {"order_id": order_id, "amount": str(refund_amount(amount)),
                   "currency": currency.strip().upper(), "reason": reason}
        body, replayed = self._post("/v1/refunds", payload, idempotency_key)
        return _parse(lambda b: Refund.from_dict(b, replayed=replayed), body)

    def cancel_subscription(self, subscription_id: str, *, idempotency_key: str) -> Operation:
        body, replayed = self._post(f"/v1/subscriptions/{quote(subscription_id, safe='')}/cancel", {},
                                    idempotency_key)
        return Operation("cancel_subscription", _parse(dict, body), replayed)

    # HTTP

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any | None:
        """The JSON body, or None when the API answers 404."""
        response = self._send("GET", path, params=params)
        if response.status_code == 404:
            return None
        if response.is_success:
            return _json(response)
        raise self._error(response)

    def _post(self, path: str, payload: dict[str, Any], idempotency_key: str) -> tuple[Any, bool]:
        """`(body, replayed)`: a `409` marked `Idempotent-Replayed` carries the original result."""
        check_idempotency_key(idempotency_key)
        response = self._send("POST", path, payload=payload, idempotency_key=idempotency_key)
        if response.is_success:
            return _json(response), False
        if response.status_code == 409 and response.headers.get(REPLAYED_HEADER, "").lower() == "true":
            return _json(response), True
        raise self._error(response)

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              payload: dict[str, Any] | None = None, idempotency_key: str = "") -> httpx.Response:
        """The first answer that is not transient, after at most `max_retries` retries, each one
        signed afresh (a retry can come later than the server's 5-minute window allows)."""
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        attempts = self.settings.max_retries + 1
        failure = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
            request = self._signed(method, path, params, body, idempotency_key)
            try:
                response = self._client.send(request)
            except httpx.TransportError as exc:        # connection refused or reset, timeouts
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                code = _error_code(response)
                if response.status_code not in TRANSIENT_STATUS and code != "in_progress":
                    return response
                failure = f"HTTP {response.status_code} {code}".rstrip()
            log.warning("actions API %s %s: attempt %d of %d failed: %s", method, path, attempt + 1, attempts,
                        failure)
        unknown = ("; the outcome is unknown: the change may or may not have been made. Calling again "
                   "with the same idempotency key is safe and settles it") if idempotency_key else ""
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise Unavailable(f"the actions API did not answer {method} {path} after {tries} ({failure}){unknown}")

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


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise BackendError(f"the actions API answered HTTP {response.status_code} with a body that is not "
                           f"JSON", retryable=False) from None


def _parse(build: Callable[[Any], T], body: Any) -> T:
    """A result from a response body, or a `BackendError` that says the body breaks the contract."""
    try:
        return build(body)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise BackendError(f"the actions API answered with a body that does not follow the contract "
                           f"({type(exc).__name__}: {exc})", retryable=False) from None
