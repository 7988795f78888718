"""Helpers for the tests of actions with side effects: the demo backend seeded from
`examples/backend.toml`, the shipped policy (optionally with the small-refunds example), refund
mail from the sample customers, a config file for the CLI, and views of what happened (actions,
audit log, side effects in the demo tables)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from mailagent.actions import proposals
from mailagent.actions.backends import customer_of, make_backend
from mailagent.agent.run import DraftResult
from mailagent.agent.run import draft as run_agent
from mailagent.config import DATA
from mailagent.pipeline import classify, drafting
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.policy import Policy
from mailagent.store import db, tickets
from mailagent.store.models import (
    Action,
    AuditEntry,
    Conversation,
    DemoInvoice,
    DemoOperation,
    DemoOrder,
    DemoSubscription,
    Draft,
    DraftState,
)

SAMPLE = DATA / "examples" / "backend.toml"
SHIPPED_POLICIES = DATA / "policies"
SMALL_REFUNDS = SHIPPED_POLICIES / "examples" / "small-refunds.toml"
SMALL_REFUNDS_RULE = "policy:small refunds for paying customers"


def policies(tmp_path: Path, *, small_refunds: bool = False, name: str = "policies") -> Path:
    """A copy of the shipped policy files (what loads by default), optionally with the
    small-refunds example next to them, as its comment says to install it."""
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    for path in SHIPPED_POLICIES.glob("*.toml"):
        shutil.copy(path, directory / path.name)
    if small_refunds:
        add_small_refunds(directory)
    return directory


def add_small_refunds(directory: Path) -> Path:
    return Path(shutil.copy(SMALL_REFUNDS, directory / "50-small-refunds.toml"))


# --- sample customers ---------------------------------------------------------------------

@dataclass(frozen=True)
class Customer:
    name: str
    email: str

    @property
    def address(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def first_name(self) -> str:
        return self.name.split()[0]


DANIEL = Customer("Daniel Okafor", "daniel.okafor@brightpath.example")        # plus; NN-1013 400.00 EUR
LUKAS = Customer("Lukas Meier", "lukas.meier@fjord-labs.example")             # plus; NN-1026 16.00 EUR
NINA = Customer("Nina Hoffmann", "nina.hoffmann@lernwerk.example")            # plus; NN-1022 28.56 EUR
PIETER = Customer("Pieter de Vries", "pieter@devries-consultancy.example")   # plus; NN-1017 8.00, NN-1007 (old)
OLIVER = Customer("Oliver Brandt", "oliver.brandt@webmail.example")           # plus; NN-1024 9.52 EUR


_counter = iter(range(1, 1_000_000))


def refund_mail(customer: Customer, order: str, *, subject: str | None = None, body: str | None = None,
                in_reply_to: str | None = None, message_id: str | None = None) -> bytes:
    from .mails import mail

    n = next(_counter)
    return mail(n, sender=customer.address, subject=subject or f"Refund request - order {order}",
                body=body or (f"Hi,\n\nI was charged for order {order}, but our team stopped using the app "
                              f"before the renewal. Could you please refund it?\n\nThanks,\n{customer.first_name}"),
                message_id=message_id or f"refund{n}.{order.lower()}@customer.example", in_reply_to=in_reply_to)


# --- what happened ------------------------------------------------------------------------

def actions(url: str) -> list[Action]:
    with db.reading(url) as s:
        return list(s.exec(select(Action).order_by(col(Action.id))))


def audit(url: str) -> list[AuditEntry]:
    with db.reading(url) as s:
        return list(s.exec(select(AuditEntry).order_by(col(AuditEntry.id))))


def events(url: str, action_id: int | None = None) -> list[tuple[str, str]]:
    """(actor, event) of the audit log, for one action or all of them."""
    return [(e.actor, e.event) for e in audit(url) if action_id is None or e.action_id == action_id]


def drafts(url: str) -> list[Draft]:
    with db.reading(url) as s:
        return list(s.exec(select(Draft).order_by(col(Draft.id))))


def order(url: str, order_id: str) -> DemoOrder:
    with db.reading(url) as s:
        row = s.get(DemoOrder, order_id)
        assert row is not None
        return row


@dataclass(frozen=True)
class Effects:
    """The side effects the demo backend applied (its idempotency records are one per applied
    change) and the state they left."""

    operations: list[tuple[str, str, str | None]]      # (operation, target, amount) in order
    refunded: dict[str, float]                          # order -> refunded so far
    statuses: dict[str, str]                            # order or subscription -> status
    resent: dict[str, int]                              # invoice -> resent count


def effects(url: str) -> Effects:
    with db.reading(url) as s:
        operations = []
        for op in s.exec(select(DemoOperation).order_by(col(DemoOperation.created_at))):
            response = op.response
            target = (response.get("order_id") or response.get("subscription_id") or response.get("invoice_id") or "")
            operations.append((op.operation, str(target), response.get("amount")))
        orders = list(s.exec(select(DemoOrder)))
        subscriptions = list(s.exec(select(DemoSubscription)))
        invoices = list(s.exec(select(DemoInvoice)))
    return Effects(operations, {o.id: o.refunded for o in orders},
                   {**{o.id: o.status for o in orders}, **{x.id: x.status for x in subscriptions}},
                   {i.id: i.resent for i in invoices})


# --- pausing a run without deciding it (to build approvals by hand) ---------------------

def paused_run(settings: Any, raw: bytes) -> tuple[int, DraftResult]:
    """Store and thread `raw`, start its draft and run the agent up to its first pause; nothing
    is proposed yet (see `store_proposals`)."""
    [message_id] = store_many(settings.database.url, [Inbound(raw, "file", "support")])
    assert message_id is not None
    processed = classify.process(settings, message_id)
    assert processed is not None and processed.conversation.id is not None
    with db.session(settings.database.url) as s:
        claimed = tickets.claim_new(s, processed.conversation.id, "test", timedelta(minutes=5))
    assert claimed is not None
    with db.reading(settings.database.url) as s:
        ticket = tickets.load(s, *claimed)
    request = drafting.build_request(settings, ticket, customer_of(settings, ticket.customer_addr))
    result = asyncio.run(run_agent(settings, request))
    assert result.proposals, (result.flags, result.notes, result.error)
    return ticket.draft_id, result


def store_proposals(settings: Any, draft_id: int, result: DraftResult, policy: Policy) -> list[Action]:
    """What `drafting._pause` does: check each proposal with the backend, store and decide it with
    `proposals.propose` under `policy`, and park the run until it is resumed."""
    backend = make_backend(settings)
    with db.session(settings.database.url) as s:
        row = s.get(Draft, draft_id)
        assert row is not None
        conversation = s.get(Conversation, row.conversation_id)
        assert conversation is not None
        customer = conversation.customer_addr
        stored = [proposals.propose(s, policy, row, p.call_id, p.tool, p.arguments,
                                    proposals.check(backend, customer, p.tool, p.arguments))
                  for p in result.proposals]
        row.run_state, row.state = result.run_state, DraftState.WAITING
        s.flush()
        for action in stored:
            s.refresh(action)
        s.expunge_all()
    return stored


def extra_customers(tmp_path: Path, orders: dict[str, list[tuple[str, str]]]) -> tuple[Path, list[Customer]]:
    """A demo data file with more paying ("plus") customers: `{email: [(order id, amount EUR)]}`,
    each order charged yesterday. Seed it after the sample (rows are upserted by id)."""
    charged = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    customers, lines = [], []
    for i, (email, owned) in enumerate(orders.items()):
        customer = Customer(f"Extra Customer{i:02d}", email)
        customers.append(customer)
        lines += ["[[customers]]", f'id = "cus_9{i:03d}"', f'email = "{email}"', f'name = "{customer.name}"',
                  'tier = "plus"', 'created = 2026-01-01', ""]
        for order_id, amount in owned:
            lines += ["[[orders]]", f'id = "{order_id}"', f'customer_id = "cus_9{i:03d}"', f"date = {charged}",
                      f"amount = {amount}", 'currency = "EUR"', 'description = "Plus monthly"', 'status = "paid"', ""]
    path = tmp_path / f"extra-customers-{len(orders)}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, customers


def write_config(path: Path, url: str, *, policy_dir: Path, smtp_port: int | None = None,
                 http: dict[str, Any] | None = None, **sections: dict[str, Any]) -> Path:
    """A config.toml for the CLI (in-process or in a subprocess), with absolute paths."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    from .mails import MX

    sections = {"ingest": {"trusted_authserv_ids": [MX]}, **sections}
    lines = ["[database]", f"url = {value(url)}", "",
             "[policy]", f"directory = {value(policy_dir)}", "reload_seconds = 0", "",
             "[mailboxes.support]", 'address = "support@example.com"', 'display_name = "Example Support"', ""]
    if smtp_port is not None:
        lines += ["[mailboxes.support.smtp]", 'host = "127.0.0.1"', 'security = "none"', f"port = {smtp_port}", ""]
    for name, table in sections.items():
        lines += [f"[{name}]", *(f"{k} = {value(v)}" for k, v in table.items()), ""]
    if http is not None:
        lines += ["[actions]", 'backend = "http"', "", "[actions.http]",
                  *(f"{k} = {value(v)}" for k, v in http.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
