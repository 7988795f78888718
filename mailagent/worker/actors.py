"""The broker and the actors. Actors are thin: each names a row, and the module it calls loads the
row, checks its state and moves it forward, so a message delivered twice does no harm.

`dramatiq mailagent.tasks` (what `mailagent worker` runs) imports this module; the broker comes
from `[broker] url`: `memory://` for one process (`mailagent run`), `redis://...` for workers.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from mailagent.pipeline import classify
from mailagent.pipeline import ingest
from mailagent.pipeline import outbox
from mailagent.pipeline import drafting
from mailagent.pipeline import sweep
from mailagent.config import Broker, current

log = logging.getLogger(__name__)


def make_broker(cfg: Broker) -> dramatiq.Broker:
    """Redis with a short heartbeat and frequent maintenance, so a killed worker's messages come
    back within a minute rather than many (dramatiq's defaults)."""
    if cfg.in_process:
        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
    else:
        broker = RedisBroker(url=cfg.url, namespace=cfg.namespace,
                             heartbeat_timeout=cfg.heartbeat_timeout_ms,
                             maintenance_chance=cfg.maintenance_chance)
    return broker


broker = make_broker(current().broker)
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=5, min_backoff=2_000)
def poll_mailbox(name: str) -> None:
    result = ingest.poll(current(), name, enqueue=enqueue_processing)
    if not result.busy:
        log.info("%s: fetched %d, stored %d new", name, result.fetched, len(result.stored))


def enqueue_processing(message_ids: list[int]) -> None:
    """One broker message per stored batch: the IMAP cursor loop pays one round trip to the
    broker per batch, not per message; a worker fans the batch out."""
    fan_out.send(message_ids)


@dramatiq.actor(max_retries=10, min_backoff=1_000)
def fan_out(message_ids: list[int]) -> None:
    for message_id in message_ids:
        process_message.send(message_id)


@dramatiq.actor(max_retries=10, min_backoff=1_000)
def process_message(message_id: int) -> None:
    processed = classify.process(current(), message_id)
    if processed is not None:
        draft_reply.send(processed.conversation.id)


@dramatiq.actor(max_retries=5, min_backoff=2_000, time_limit=15 * 60_000)
def draft_reply(conversation_id: int) -> None:
    outcome = drafting.draft_reply(current(), conversation_id)
    if outcome.step is drafting.Step.REDRAFT:
        draft_reply.send(conversation_id)
    _after_draft(outcome)


def _after_draft(outcome: drafting.Outcome) -> None:
    if outcome.outbound_id is not None:
        deliver.send(outcome.outbound_id)


@dramatiq.actor(max_retries=8, min_backoff=5_000, time_limit=15 * 60_000)
def resume_draft(draft_id: int) -> None:
    """Continue a draft whose proposed actions were all decided. If the backend did not answer,
    `OutcomeUnknown` propagates and dramatiq retries later: the same idempotency keys make the
    retry safe."""
    _after_draft(drafting.resume_draft(current(), draft_id))


@dramatiq.actor(queue_name="outbox", max_retries=10, min_backoff=1_000)
def deliver(outbound_id: int) -> None:
    settings = current()
    delivery = outbox.deliver(settings, outbound_id)
    if delivery is None:
        return
    if delivery.retry_in is not None:
        deliver.send_with_options(args=(outbound_id,), delay=int(delivery.retry_in.total_seconds() * 1000))
    elif delivery.outcome.status == "sent" and delivery.save_to_sent:
        save_to_sent.send(outbound_id)


@dramatiq.actor(queue_name="outbox", max_retries=10, min_backoff=5_000)
def save_to_sent(outbound_id: int) -> None:
    outbox.save_to_sent(current(), outbound_id)


@dramatiq.actor(max_retries=0)
def sweep() -> None:
    """Re-enqueue work stuck in a non-final state (see `sweeper`)."""
    settings = current()
    enqueue_due(sweep.find_due(settings, timedelta(seconds=settings.clock.stuck_after_seconds)))


def enqueue_due(due: sweep.Due) -> int:
    for message_id in due.process:
        process_message.send(message_id)
    for conversation_id in due.draft:
        draft_reply.send(conversation_id)
    for draft_id in due.resume:
        resume_draft.send(draft_id)
    for outbound_id in due.deliver:
        deliver.send(outbound_id)
    for outbound_id in due.save_to_sent:
        save_to_sent.send(outbound_id)
    return due.count
