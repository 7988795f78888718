"""Actions backends: the demo tables on both engines, and the HTTP client against a local server
that implements docs/actions-api.md (signatures, idempotency, injected failures)."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time
from sqlmodel import func, select

from mailagent import config
from mailagent.actions import proposals
from mailagent.actions.backends import (
    BackendError,
    DemoBackend,
    HttpBackend,
    IdempotencyConflict,
    Mismatch,
    NotFound,
    Order,
    Refund,
    Rejected,
    Unavailable,
    make_backend,
)
from mailagent.actions.backends.demo import seed
from mailagent.actions.backends.http import signature
from mailagent.config import ConfigError
from mailagent.store import db
from mailagent.store.models import (
    DemoCustomer,
    DemoInvoice,
    DemoOperation,
    DemoOrder,
    DemoSubscription,
)
from mailagent.tomlfile import FileError

from .conftest import make_settings
from .support.actions_server import SAMPLE, ActionsServer

COUNTS = {"customers": 28, "subscriptions": 26, "orders": 32, "invoices": 30, "incidents": 3}
SECRET = "test-secret-7d1c0e"
SECRET_ENV = "MAILAGENT_TEST_ACTIONS_SECRET"
AS_OF: date = tomllib.loads(SAMPLE.read_text(encoding="utf-8"))["as_of"]     # the day the sample is written for


def seeded(when: date) -> date:
    """A date of the sample file as seeding it today makes it (datetimes too): as many days
    before today as it was before the file's `as_of`."""
    return when + (datetime.now(UTC).date() - AS_OF)


# --- demo backend ---------------------------------------------------------------------------

@pytest.fixture
def demo(any_db_url: str) -> DemoBackend:
    seed(any_db_url, SAMPLE)
    return DemoBackend(any_db_url)


def _order(backend: DemoBackend, order_id: str) -> Order:
    order = backend.lookup_order(order_id)
    assert order is not None
    return order


def _count(url: str, model: type) -> int:
    with db.session(url) as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_seed_loads_the_sample_and_seeding_again_restores_it_without_duplicates(any_db_url: str) -> None:
    assert seed(any_db_url, SAMPLE) == COUNTS
    backend = DemoBackend(any_db_url)
    backend.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="k-1")

    assert seed(any_db_url, SAMPLE) == COUNTS
    assert [_count(any_db_url, m) for m in (DemoCustomer, DemoOrder, DemoInvoice)] == [28, 32, 30]
    order = backend.lookup_order("NN-1017")
    assert order is not None and (order.status, order.refunded) == ("paid", Decimal("0.00"))


def test_lookups(demo: DemoBackend) -> None:
    customer = demo.lookup_customer("  Pieter@DeVries-Consultancy.example ")
    assert customer is not None
    assert (customer.id, customer.name, customer.country) == ("cus_1005", "Pieter de Vries", "NL")
    [subscription] = customer.subscriptions
    assert (subscription.id, subscription.status, subscription.renews_on, subscription.price_eur) == (
        "sub_2005", "canceled", seeded(date(2026, 11, 3)), Decimal("8.00"))
    assert demo.lookup_customer("nobody@example.com") is None

    order = demo.lookup_order("NN-1017")
    assert order is not None
    assert (order.customer_email, order.amount, order.refunded, order.status, order.invoice_id) == (
        "pieter@devries-consultancy.example", Decimal("8.00"), Decimal("0.00"), "paid", "INV-2026-1409")
    assert order.date == seeded(datetime(2026, 11, 3, 6, 0, 16, tzinfo=UTC))
    assert order.to_dict()["amount"] == "8.00"
    failed = demo.lookup_order("NN-1029")
    assert failed is not None and (failed.status, failed.invoice_id) == ("failed", None)
    refunded = demo.lookup_order("NN-1010")
    assert refunded is not None and refunded.refundable == Decimal("0.00")
    assert demo.lookup_order("NN-9999") is None

    invoices = demo.list_invoices("tom.nguyen@pixelharbor.example")
    assert [i.id for i in invoices] == ["INV-2026-1421", "INV-2026-1270", "INV-2026-1269"]     # newest first
    assert invoices[0].url.endswith("/INV-2026-1421") and invoices[0].date == seeded(date(2026, 11, 5))
    assert demo.list_invoices("nobody@example.com") == []

    assert [i.id for i in demo.incidents()] == ["INC-2026-043", "INC-2026-042", "INC-2026-041"]
    [active] = demo.incidents(active_only=True)
    assert (active.id, active.active, active.resolved_at) == ("INC-2026-043", True, None)
    assert active.to_dict()["components"] == ["Sync", "Web app", "API"]



def test_seeding_moves_every_date_from_the_files_day_to_the_seeding_day(sqlite_url: str) -> None:
    """The sample is written as of one day; seeded on any other, each order is as old as it was
    then (refund windows stay open), its description's billing period moves with it, and the
    ongoing incident started that morning. Ids keep their year: the sample mail quotes them."""
    later = timedelta(days=101)
    with freeze_time("2027-03-01 09:00:00"):
        seed(sqlite_url, SAMPLE)
        backend = DemoBackend(sqlite_url)
        order = _order(backend, "NN-1017")
        assert order.date == datetime(2026, 11, 3, 6, 0, 16, tzinfo=UTC) + later == datetime(2027, 2, 12, 6, 0, 16,
                                                                                             tzinfo=UTC)
        assert order.description == ("Plus monthly renewal, 1 seat (2027-02-12 to 2027-03-13), reverse charge; "
                                     "charged after the subscription was cancelled on 2027-02-06")
        assert order.invoice_id == "INV-2026-1409"
        [active] = backend.incidents(active_only=True)
        assert (active.id, active.started_at) == ("INC-2026-043", datetime(2027, 3, 1, 8, 42, tzinfo=UTC))
        wolf = "k.wolf@alpenblick-logistik.example"                        # an annual plan bought 3 days before
        checked = proposals.check(backend, wolf, "issue_refund", {"order_id": "NN-1032", "amount": "1500.00",
                                                                  "currency": "EUR"})
        assert (checked.order_age_days, checked.billing, checked.refusal) == (3.0, "annual", None)


def test_seeded_before_the_files_last_moment_nothing_lies_in_the_future(sqlite_url: str) -> None:
    """Seeded at 07:00, the incident the file starts "this morning" at 08:42 started yesterday
    (not in an hour); every other date moves by the same days as at any other hour."""
    with freeze_time("2027-03-01 07:00:00"):
        seed(sqlite_url, SAMPLE)
        backend = DemoBackend(sqlite_url)
        [active] = backend.incidents(active_only=True)
        assert active.started_at == datetime(2027, 2, 28, 8, 42, tzinfo=UTC)
        assert _order(backend, "NN-1017").date == datetime(2027, 2, 12, 6, 0, 16, tzinfo=UTC)


def test_a_file_without_as_of_is_seeded_as_written(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "backend.toml"
    path.write_text('[[customers]]\nid = "c1"\nemail = "a@b.example"\nname = "A"\ntier = "plus"\n\n'
                    '[[orders]]\nid = "o1"\ncustomer_id = "c1"\ndate = 2026-01-02T03:04:05Z\namount = 1.00\n'
                    'currency = "EUR"\nstatus = "paid"\ndescription = "Plus monthly (2026-01-02 to 2026-02-01)"\n')
    seed(sqlite_url, path)
    order = _order(DemoBackend(sqlite_url), "o1")
    assert (order.date, order.description) == (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                                "Plus monthly (2026-01-02 to 2026-02-01)")

REFUSED_REFUNDS = [   # order, amount, currency, what the refusal says
    ("NN-1017", "8.01", "EUR", "still refundable"),
    ("NN-1017", "8.00", "USD", "charged in EUR"),
    ("NN-1010", "1.00", "EUR", "is refunded"),
    ("NN-1029", "1.00", "EUR", "is failed"),
    ("NN-1017", "-1.00", "EUR", "more than 0"),
    ("NN-1017", "0", "EUR", "more than 0"),
    ("NN-1017", "1.005", "EUR", "two decimal places"),
]


def test_refund_rules_reject_and_change_nothing(demo: DemoBackend, any_db_url: str) -> None:
    for n, (order_id, amount, currency, says) in enumerate(REFUSED_REFUNDS):
        before = demo.lookup_order(order_id)
        with pytest.raises(Rejected, match=says) as caught:
            demo.issue_refund(order_id, Decimal(amount), currency, "test", idempotency_key=f"k-{n}")
        assert caught.value.retryable is False
        assert demo.lookup_order(order_id) == before
    assert _count(any_db_url, DemoOperation) == 0


def test_partial_refunds_up_to_the_amount_charged(demo: DemoBackend) -> None:
    first = demo.issue_refund("NN-1017", Decimal("3.00"), "eur", "test", idempotency_key="k-1")
    assert (first.amount, first.currency, first.status, first.replayed) == (Decimal("3.00"), "EUR", "succeeded", False)
    assert _order(demo, "NN-1017").status == "partially_refunded"
    demo.issue_refund("NN-1017", Decimal(5), "EUR", "test", idempotency_key="k-2")
    order = _order(demo, "NN-1017")
    assert (order.status, order.refunded, order.refundable) == ("refunded", Decimal("8.00"), Decimal("0.00"))
    with pytest.raises(Rejected):
        demo.issue_refund("NN-1017", Decimal("0.01"), "EUR", "test", idempotency_key="k-3")


def test_a_replayed_key_returns_the_same_refund_and_refunds_once(demo: DemoBackend) -> None:
    first = demo.issue_refund("NN-1017", Decimal("8.00"), "EUR", "charged after cancel", idempotency_key="act-1")
    again = demo.issue_refund("NN-1017", Decimal("8.00"), "EUR", "charged after cancel", idempotency_key="act-1")
    assert again.replayed and not first.replayed
    assert again.refund_id == first.refund_id and again.amount == first.amount
    assert again.to_dict()["replayed"] is True
    assert _order(demo, "NN-1017").refunded == Decimal("8.00")


def test_a_key_reused_for_another_request_is_a_conflict(demo: DemoBackend) -> None:
    demo.issue_refund("NN-1032", Decimal("100.00"), "EUR", "test", idempotency_key="act-1")
    with pytest.raises(IdempotencyConflict) as caught:
        demo.issue_refund("NN-1032", Decimal("200.00"), "EUR", "test", idempotency_key="act-1")
    assert caught.value.retryable is False
    with pytest.raises(IdempotencyConflict):
        demo.cancel_subscription("sub_2006", idempotency_key="act-1")
    assert _order(demo, "NN-1032").refunded == Decimal("100.00")
    customer = demo.lookup_customer("k.wolf@alpenblick-logistik.example")
    assert customer is not None and customer.subscriptions[0].status == "active"


def test_concurrent_calls_with_one_key_refund_once_and_other_keys_never_over_refund(demo: DemoBackend) -> None:
    results: list[Refund | Rejected] = []

    def refund(key: str, amount: str) -> None:
        try:
            results.append(demo.issue_refund("NN-1017", Decimal(amount), "EUR", "test", idempotency_key=key))
        except Rejected as exc:
            results.append(exc)

    threads = [threading.Thread(target=refund, args=("same", "6.00")) for _ in range(4)]
    threads += [threading.Thread(target=refund, args=(f"other-{n}", "6.00")) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(threads)
    assert len([r for r in results if isinstance(r, Refund) and not r.replayed]) == 1
    assert _order(demo, "NN-1017").refunded == Decimal("6.00")


def test_cancel_twice(demo: DemoBackend, any_db_url: str) -> None:
    first = demo.cancel_subscription("sub_2002", idempotency_key="cancel-1")
    assert first.to_dict() == {"operation": "cancel_subscription", "subscription_id": "sub_2002",
                               "status": "canceled", "active_until": seeded(date(2026, 12, 8)).isoformat(),
                               "replayed": False}
    assert demo.cancel_subscription("sub_2002", idempotency_key="cancel-1").replayed
    with pytest.raises(Rejected, match="already canceled"):
        demo.cancel_subscription("sub_2002", idempotency_key="cancel-2")
    with db.session(any_db_url) as s:
        assert s.get_one(DemoSubscription, "sub_2002").status == "canceled"


def test_resend_invoice_goes_to_the_address_on_file_once_per_key(demo: DemoBackend, any_db_url: str) -> None:
    sent = demo.resend_invoice("INV-2026-1401", to=None, idempotency_key="r-1")
    assert sent.details == {"invoice_id": "INV-2026-1401", "sent_to": "ingrid.larsen@nordlys-arkitekter.example"}
    assert demo.resend_invoice("INV-2026-1401", to=None, idempotency_key="r-1").replayed
    demo.resend_invoice("INV-2026-1401", to="Ingrid.Larsen@nordlys-arkitekter.example", idempotency_key="r-2")
    with pytest.raises(Rejected, match="address on file"):
        demo.resend_invoice("INV-2026-1401", to="regnskap@nordlys-arkitekter.example", idempotency_key="r-3")
    with db.session(any_db_url) as s:
        assert s.get_one(DemoInvoice, "INV-2026-1401").resent == 2


def test_side_effects_on_unknown_targets_and_bad_keys(demo: DemoBackend) -> None:
    with pytest.raises(NotFound):
        demo.issue_refund("NN-9999", Decimal("1.00"), "EUR", "test", idempotency_key="k-1")
    with pytest.raises(NotFound):
        demo.cancel_subscription("sub_9999", idempotency_key="k-2")
    with pytest.raises(NotFound):
        demo.resend_invoice("INV-0", to=None, idempotency_key="k-3")
    with pytest.raises(ValueError, match="idempotency key"):
        demo.cancel_subscription("sub_2002", idempotency_key="")


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("amount = 1500.00\n", 'amount = "lots"\n', "orders[0].amount: input should be a valid decimal"),
    ('tier = "plus"\n', 'vip = true\ntier = "plus"\n', "customers[0].vip: unknown key"),
    ('customer_id = "cus_1014"\n', 'customer_id = "cus_0000"\n',
     "subscriptions[12].customer_id: no customer 'cus_0000' in this file"),
    ('id = "NN-1002"\n', 'id = "NN-1001"  # a copy\n', "orders[1].id: 'NN-1001' is also used by orders[0]"),
    ('status = "identified"', 'status = "identified', "TOML syntax error"),
])
def test_a_bad_seed_file_names_file_line_and_key_and_loads_nothing(any_db_url: str, tmp_path: Path, old: str,
                                                                   new: str, problem: str) -> None:
    text = SAMPLE.read_text(encoding="utf-8").replace(old, new, 1)
    line = text[:text.index(new)].count("\n") + 1
    path = tmp_path / "backend.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FileError) as caught:
        seed(any_db_url, path)
    assert f"{path}:{line}: {problem}" in str(caught.value)
    assert _count(any_db_url, DemoCustomer) == 0


# --- HTTP backend ---------------------------------------------------------------------------

@pytest.fixture
def server() -> Iterator[ActionsServer]:
    with ActionsServer(SECRET) as running:
        yield running


def _client(server: ActionsServer, monkeypatch: pytest.MonkeyPatch, secret: str = SECRET,
            max_retries: int = 2) -> HttpBackend:
    monkeypatch.setenv(SECRET_ENV, secret)
    settings = config.HttpBackend(base_url=server.base_url, secret_env=SECRET_ENV, timeout_seconds=0.3,
                                  max_retries=max_retries)
    return HttpBackend(settings, backoff_seconds=0.01)


@pytest.fixture
def client(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpBackend]:
    backend = _client(server, monkeypatch)
    yield backend
    backend.close()


def test_http_lookups_match_the_demo_backend(client: HttpBackend, server: ActionsServer, sqlite_url: str) -> None:
    seed(sqlite_url, SAMPLE)
    demo = DemoBackend(sqlite_url)
    for email in ("pieter@devries-consultancy.example", "k.wolf@alpenblick-logistik.example", "nobody@example.com"):
        assert client.lookup_customer(email) == demo.lookup_customer(email)
        assert client.list_invoices(email) == demo.list_invoices(email)
    for order_id in ("NN-1017", "NN-1010", "NN-1029", "NN-9999", "NN/../1017"):
        assert client.lookup_order(order_id) == demo.lookup_order(order_id)
    assert client.incidents() == demo.incidents()
    assert client.incidents(active_only=True) == demo.incidents(active_only=True)

    targets = [r.target for r in server.requests]
    assert "/v1/customers?email=pieter%40devries-consultancy.example" in targets
    assert "/v1/orders/NN%2F..%2F1017" in targets and "/v1/incidents?active=true" in targets
    for request in server.requests:
        assert request.status in (200, 404) and "idempotency-key" not in request.headers
        assert request.headers["x-mailagent-signature"].startswith("v1=")
        assert abs(int(request.headers["x-mailagent-timestamp"]) - time.time()) < 5
        assert SECRET not in str(request.headers)


def test_http_side_effects_carry_the_callers_key_and_replays_are_answered_409(client: HttpBackend,
                                                                           server: ActionsServer) -> None:
    refund = client.issue_refund("NN-1017", Decimal(8), "EUR", "charged after cancel", idempotency_key="act-1")
    assert (refund.amount, refund.status, refund.replayed) == (Decimal("8.00"), "succeeded", False)
    again = client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "charged after cancel", idempotency_key="act-1")
    assert again.replayed and again.refund_id == refund.refund_id
    assert len(server.refunds) == 1

    [first, second] = server.requests
    assert (first.method, first.path, first.status, second.status) == ("POST", "/v1/refunds", 201, 409)
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "act-1"
    assert first.json() == {"order_id": "NN-1017", "amount": "8.00", "currency": "EUR",
                            "reason": "charged after cancel"}

    cancel = client.cancel_subscription("sub_2002", idempotency_key="act-2")
    assert cancel.to_dict() == {"operation": "cancel_subscription", "subscription_id": "sub_2002",
                                "status": "canceled", "active_until": seeded(date(2026, 12, 8)).isoformat(),
                               "replayed": False}
    resend = client.resend_invoice("INV-2026-1401", to=None, idempotency_key="act-3")
    assert resend.details["sent_to"] == "ingrid.larsen@nordlys-arkitekter.example"
    assert (server.cancellations, server.resends) == (["sub_2002"], ["INV-2026-1401"])


def test_http_errors_are_typed(client: HttpBackend, server: ActionsServer) -> None:
    with pytest.raises(NotFound):
        client.issue_refund("NN-9999", Decimal("1.00"), "EUR", "test", idempotency_key="k-1")
    with pytest.raises(Rejected, match="still refundable"):
        client.issue_refund("NN-1017", Decimal("8.01"), "EUR", "test", idempotency_key="k-2")
    with pytest.raises(Rejected, match="already canceled"):
        client.cancel_subscription("sub_2005", idempotency_key="k-3")
    with pytest.raises(Rejected, match="address on file"):
        client.resend_invoice("INV-2026-1401", to="someone@else.example", idempotency_key="k-4")
    with pytest.raises(Rejected, match="more than 0"):          # refused before anything is sent
        client.issue_refund("NN-1017", Decimal(-1), "EUR", "test", idempotency_key="k-5")
    assert [r.status for r in server.requests] == [404, 422, 422, 422]
    assert server.refunds == [] and server.cancellations == [] and server.resends == []


def test_a_key_reused_with_a_different_body_is_a_conflict(client: HttpBackend, server: ActionsServer) -> None:
    client.issue_refund("NN-1032", Decimal("100.00"), "EUR", "test", idempotency_key="act-1")
    with pytest.raises(IdempotencyConflict):
        client.issue_refund("NN-1032", Decimal("200.00"), "EUR", "test", idempotency_key="act-1")
    assert [r.status for r in server.requests] == [201, 422]
    assert len(server.refunds) == 1


def test_a_wrong_secret_is_refused_and_not_retried(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = _client(server, monkeypatch, secret="not-the-secret")
    with pytest.raises(BackendError, match="refused the request signature") as caught:
        wrong.lookup_order("NN-1017")
    assert not caught.value.retryable and "not-the-secret" not in str(caught.value)
    assert [r.status for r in server.requests] == [401]


def test_a_stale_signature_is_refused(server: ActionsServer) -> None:
    target = "/v1/orders/NN-1017"
    for age, status in ((0, 200), (301, 401)):
        stamp = int(time.time()) - age
        response = httpx.get(server.base_url + target, headers={
            "X-Mailagent-Timestamp": str(stamp),
            "X-Mailagent-Signature": signature(SECRET, stamp, "GET", target, "", b""),
        })
        assert response.status_code == status
    assert response.json()["error"]["code"] == "stale_timestamp"


def test_a_missing_secret_fails_before_sending(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _client(server, monkeypatch)
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(BackendError, match=f"names {SECRET_ENV}, which is not set"):
        backend.lookup_order("NN-1017")
    assert server.requests == []


def test_reads_are_retried_after_5xx_and_timeouts(client: HttpBackend, server: ActionsServer) -> None:
    server.fail_next(503)
    assert client.lookup_order("NN-1017") is not None
    server.delay_next(5.0)
    assert client.lookup_customer("pieter@devries-consultancy.example") is not None
    assert [r.status for r in server.requests] == [503, 200, None, 200]


def test_a_timed_out_refund_is_retried_with_the_same_key(client: HttpBackend, server: ActionsServer) -> None:
    server.delay_next(5.0)
    refund = client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert not refund.replayed                      # the retry applied it; the slow first attempt never ran yet
    assert [r.headers["idempotency-key"] for r in server.requests] == ["act-1", "act-1"]
    assert len(server.refunds) == 1


@pytest.mark.parametrize(("status", "code"), [(500, "injected_failure"), (503, "unavailable"), (409, "in_progress")])
def test_a_refund_after_a_transient_error_is_retried_with_the_same_key(client: HttpBackend, server: ActionsServer,
                                                                       status: int, code: str) -> None:
    server.fail_next(status, code=code)
    refund = client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert not refund.replayed
    assert [(r.status, r.headers["idempotency-key"]) for r in server.requests] == [(status, "act-1"), (201, "act-1")]
    assert len(server.refunds) == 1


def test_a_lost_response_is_replayed_and_the_refund_happens_once(client: HttpBackend, server: ActionsServer) -> None:
    server.drop_response_next()
    refund = client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert refund.replayed and refund.refund_id == server.refunds[0]["refund_id"]
    assert [(r.status, r.headers["idempotency-key"]) for r in server.requests] == [(None, "act-1"), (409, "act-1")]
    assert len(server.refunds) == 1
    assert server.orders["NN-1017"]["refunded"] == Decimal("8.00")


def test_when_every_attempt_fails_the_outcome_is_unknown(client: HttpBackend, server: ActionsServer) -> None:
    server.fail_next(503, times=3)
    with pytest.raises(Unavailable, match="after 3 attempts .*the outcome is unknown") as caught:
        client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert caught.value.retryable
    assert server.refunds == [] and len(server.requests) == 3

    server.fail_next(500, times=3)
    with pytest.raises(Unavailable) as read:
        client.lookup_order("NN-1017")
    assert "unknown" not in str(read.value)


def test_a_server_that_is_down_is_unavailable(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _client(server, monkeypatch, max_retries=1)
    server.close()
    with pytest.raises(Unavailable, match="after 2 attempts \\(ConnectError.*the outcome is unknown"):
        backend.cancel_subscription("sub_2002", idempotency_key="act-1")


# --- choosing a backend ---------------------------------------------------------------------

def test_make_backend_follows_the_settings_and_shares_one_backend(sqlite_url: str) -> None:
    demo = make_backend(make_settings(sqlite_url))
    assert isinstance(demo, DemoBackend) and demo.url == sqlite_url
    http_settings = {"backend": "http", "http": {"base_url": "http://api.example"}}
    http = make_backend(make_settings(sqlite_url, actions=http_settings))
    assert isinstance(http, HttpBackend) and http.name == "http"
    assert make_backend(make_settings(sqlite_url, actions=http_settings)) is http      # one connection pool
    with pytest.raises(ConfigError, match=r"actions\.http: backend = \"http\" needs"):
        make_backend(make_settings(sqlite_url, actions={"backend": "http"}))


# --- a backend that lies, stalls or floods (issue 12) ----------------------------------------

def _hostile_client(server: ActionsServer, monkeypatch: pytest.MonkeyPatch, **kw: object) -> HttpBackend:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    settings = config.HttpBackend(base_url=server.base_url, secret_env=SECRET_ENV, **{
        "timeout_seconds": 5, "max_retries": 2, "deadline_seconds": 3, **kw})  # type: ignore[arg-type]
    return HttpBackend(settings, backoff_seconds=0.01)


def test_a_refund_reported_as_failed_is_not_executed(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _hostile_client(server, monkeypatch)
    server.answer_after_next(201, lambda refund: {**refund, "status": "failed"})
    with pytest.raises(Rejected, match="'failed', not done"):
        client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")


@pytest.mark.parametrize("lie", [
    {"order_id": "NN-1013", "amount": "500.00", "currency": "USD"},
    {"amount": "80.00"},
    {"currency": "USD"},
])
def test_a_refund_answer_for_something_else_is_a_mismatch(server: ActionsServer, monkeypatch: pytest.MonkeyPatch,
                                                          lie: dict[str, str]) -> None:
    client = _hostile_client(server, monkeypatch)
    server.answer_after_next(201, lambda refund: {**refund, **lie})
    with pytest.raises(Mismatch, match="asked to refund 8.00 EUR on order NN-1017"):
        client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert len(server.requests) == 1            # a contradiction is not retried


def test_a_cancellation_answered_for_another_subscription_is_a_mismatch(
        server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _hostile_client(server, monkeypatch)
    server.answer_after_next(200, lambda result: {**result, "subscription_id": "sub_9999"})
    with pytest.raises(Mismatch, match="sub_9999"):
        client.cancel_subscription("sub_2002", idempotency_key="act-1")


@pytest.mark.parametrize("answer", [(201, b"OK, refunded!"), (201, b'{"order_id": "NN-1017"}'), (500, None)])
def test_an_uncertain_answer_after_the_refund_is_settled_by_the_same_key(
        server: ActionsServer, monkeypatch: pytest.MonkeyPatch, answer: tuple[int, bytes | None]) -> None:
    """The refund was made, then the answer was unreadable (not JSON, fields missing) or a 500:
    the same request with the same key gets the backend's record, and nothing is paid twice."""
    client = _hostile_client(server, monkeypatch)
    status, body = answer
    server.answer_after_next(status, body if body is not None else b'{"error": {"code": "boom", "message": "x"}}')
    refund = client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    assert refund.replayed and refund.refund_id == server.refunds[0]["refund_id"]
    assert [(r.status, r.headers["idempotency-key"]) for r in server.requests] == [(status, "act-1"), (409, "act-1")]
    assert len(server.refunds) == 1


def test_a_trickling_answer_is_cut_off_at_the_deadline(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _hostile_client(server, monkeypatch, deadline_seconds=1.5, max_retries=1)
    server.trickle_next(0.5, times=2)
    with pytest.raises(Unavailable, match="deadline.*the outcome is unknown"):
        client.issue_refund("NN-1017", Decimal("8.00"), "EUR", "test", idempotency_key="act-1")
    server.trickle_next(0.5, times=2)
    with pytest.raises(Unavailable, match="deadline"):
        client.lookup_order("NN-1013")


def test_a_huge_answer_is_never_read_into_memory(server: ActionsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    client = _hostile_client(server, monkeypatch, deadline_seconds=30, max_retries=0)
    server.flood_next(150_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(Unavailable, match="more than 2000000 bytes"):
            client.lookup_order("NN-1013")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, peak
    assert client.lookup_order("NN-1013") is not None       # the next call is not affected
