"""Drive the whole pipeline in-process for tests: store, process, draft, decide, deliver."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from mailagent.config import DATA, Settings
from mailagent.knowledge.search import sync
from mailagent.pipeline import classify, drafting, outbox
from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.store import db
from mailagent.store.models import Draft, Outbound

SEND_EVERYTHING = """\
[defaults]
decision = "send"
min_confidence = 0.0
max_auto_sends_per_customer_per_day = 20
max_auto_sends_per_conversation = 10

[limits]
max_refund_amount = 1000000
refund_per_customer_per_day = 1000000
refund_total_per_day = 1000000

[[rules]]
name = "send everything"
when = {}
then = "send"

[[action_rules]]
name = "approve everything"
when = {}
then = "auto_approve"
"""

SEND_WHEN_SURE = """\
[defaults]
decision = "hold"
min_confidence = 0.5

[[rules]]
name = "send when sure"
when = { confidence_at_least = 0.5, needs_human = false }
then = "send"
"""


def policy_dir(tmp_path: Path, text: str) -> str:
    directory = tmp_path / "policies"
    directory.mkdir(exist_ok=True)
    (directory / "00-test.toml").write_text(text)
    return str(directory)


def synced(settings: Settings) -> Settings:
    sync(settings.database.url, DATA / "knowledge")
    return settings


def receive(settings: Settings, *raws: bytes) -> list[drafting.Outcome]:
    """Store, process and draft each message in turn, as the actors would."""
    outcomes = []
    for raw in raws:
        [message_id] = store_many(settings.database.url, [Inbound(raw, "file", "support")])
        assert message_id is not None
        processed = classify.process(settings, message_id)
        assert processed is not None
        outcome = drafting.draft_reply_sync(settings, processed.conversation.id)
        while outcome.step is drafting.Step.REDRAFT:
            outcome = drafting.draft_reply_sync(settings, processed.conversation.id)
        outcomes.append(outcome)
    return outcomes


def deliver_all(settings: Settings) -> None:
    with db.session(settings.database.url) as s:
        ids = s.exec(select(Outbound.id).where(Outbound.state == "queued")).all()
    for outbound_id in ids:
        outbox.deliver(settings, outbound_id)


def draft(settings: Settings, draft_id: int) -> Draft:
    with db.session(settings.database.url) as s:
        row = s.get(Draft, draft_id)
        assert row is not None
        return row


def fresh_queues() -> None:
    """The in-process broker outlives a test (the actors are declared once per process): retries
    left in its delay queues, requeued when a worker stops, would leave a later test waiting on
    a queue that never drains. Each test starts with empty queues."""
    from queue import Queue

    from mailagent.worker import actors

    for name in list(actors.broker.queues):
        actors.broker.queues[name] = Queue()
