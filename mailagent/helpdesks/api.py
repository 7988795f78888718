"""HTTP to a helpdesk API, shared by every helpdesk module: the account's budget before each
request, 429 + Retry-After (pausing every process of the account), retries with backoff for
reads, and for writes the one rule that keeps posts single: a write whose answer was lost is
`OutcomeUnknown` (read the ticket back first), never blindly sent again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.helpdesks.base import HelpdeskError, OutcomeUnknown
from mailagent.helpdesks.budget import Budget, BudgetExhausted, acquire

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 600.0
MAX_THROTTLED = 20          # 429s in a row before the work goes back to the queue


@dataclass(frozen=True)
class Cost:
    """What one request takes from the budget: `(bucket, limit, weight)` for each bucket it counts in."""

    buckets: tuple[tuple[str, int, int], ...]


class Auth:
    """Credentials for a request; `refresh` after a 401 (OAuth tokens expire)."""

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def refresh(self) -> bool:
        """Get new credentials; False when there is nothing to refresh (a 401 is final)."""
        return False


class Api:
    def __init__(self, settings: HelpdeskSettings, name: str, budget: Budget, auth: Auth, *,
                 retry_after_header: str, sleep: Callable[[float], None] = time.sleep,
                 backoff_seconds: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        self.settings, self.name, self.budget, self.auth = settings, name, budget, auth
        self._retry_after_header = retry_after_header
        self._sleep = sleep
        self._backoff = backoff_seconds
        self.client = httpx.Client(base_url=settings.api_url, transport=transport,
                                   timeout=httpx.Timeout(settings.timeout_seconds, connect=min(5.0, settings.timeout_seconds)),
                                   headers={"Accept": "application/json", "User-Agent": "mailagent"})

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, url: str, cost: Cost, *, write: bool = False, json: Any = None,
                params: dict[str, Any] | None = None, data: dict[str, str] | None = None) -> httpx.Response:
        """The first answer that is neither a 429, a 401 we could refresh, nor (for reads) a 5xx."""
        attempts = self.settings.max_retries + 1
        refreshed = False
        failure = ""
        attempt = throttled = 0
        while attempt < attempts:
            for bucket, limit, weight in cost.buckets:
                try:
                    acquire(self.budget, bucket, limit, weight, sleep=self._sleep,
                            max_wait_seconds=2 * self.settings.budget_window_seconds + 10)
                except BudgetExhausted as exc:
                    raise HelpdeskError(f"{self.name}: {exc}", retryable=True) from None
            try:
                response = self.client.request(method, url, json=json, params=params, data=data,
                                               headers=self.auth.headers())
            except httpx.ConnectError as exc:                     # never reached the server: safe to retry
                failure = f"cannot connect: {exc}"
            except httpx.TransportError as exc:
                if write:
                    raise OutcomeUnknown(f"{self.name}: {method} {url} sent, no answer ({type(exc).__name__})") from None
                failure = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 429:
                    seconds = retry_after(response.headers.get(self._retry_after_header)
                                          or response.headers.get("Retry-After"))
                    log.warning("%s: 429 on %s %s: the account pauses %.0f s", self.name, method, url, seconds)
                    self.budget.pause(seconds)
                    throttled += 1
                    if throttled >= MAX_THROTTLED:
                        raise HelpdeskError(f"{self.name}: {method} {url}: still 429 after {throttled} tries",
                                            retryable=True)
                    continue                                      # a 429 was not applied: not an attempt
                if status == 401 and not refreshed and self.auth.refresh():
                    refreshed = True
                    continue
                if status >= 500:
                    if write:
                        raise OutcomeUnknown(f"{self.name}: {method} {url} answered HTTP {status}")
                    failure = f"HTTP {status}"
                else:
                    return response
            attempt += 1
            log.warning("%s: %s %s attempt %d of %d failed: %s", self.name, method, url, attempt, attempts, failure)
            if attempt < attempts:
                self._sleep(min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
        raise HelpdeskError(f"{self.name}: {method} {url} failed after {attempts} attempts ({failure})", retryable=True)

    def json(self, response: httpx.Response, what: str) -> Any:
        """The body of a successful answer; a clear error for anything else."""
        if response.status_code == 401:
            raise HelpdeskError(f"{self.name}: the API refused our credentials (HTTP 401) on {what}: check "
                                "the credentials named in the config", retryable=False)
        if response.status_code == 404:
            raise HelpdeskError(f"{self.name}: {what}: not found (HTTP 404)", retryable=False)
        if not response.is_success:
            raise HelpdeskError(f"{self.name}: {what}: HTTP {response.status_code}: {response.text[:300]}",
                                retryable=False)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise HelpdeskError(f"{self.name}: {what}: the answer is not JSON", retryable=False) from None


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After value (seconds; an HTTP date is read as the default 60 s),
    kept within reason so a hostile or broken header cannot stall the account for a day."""
    try:
        seconds = float(value) if value is not None else 60.0
    except ValueError:
        seconds = 60.0
    if seconds != seconds:      # NaN
        seconds = 60.0
    return min(max(seconds, 1.0), MAX_RETRY_AFTER_SECONDS)


def numeric_id(value: str, helpdesk: str) -> str:
    """An id that goes into an API path: digits only, so nothing a webhook claims can change the path."""
    if not str(value).isdigit():
        raise HelpdeskError(f"not a {helpdesk} id: {value!r}", retryable=False)
    return str(value)


def timestamp(value: Any) -> datetime:
    """An API's ISO 8601 time; the epoch when it is missing or malformed (ordering only)."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
