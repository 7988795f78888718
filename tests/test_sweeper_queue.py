"""The sweeper enqueues what is due and not already queued: a backlog waiting in Redis is not
enqueued again at every sweep, and work whose broker message was lost is enqueued once more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from mailagent.pipeline.ingest import Inbound, store_many
from mailagent.pipeline.sweeper import Due
from mailagent.store import db
from mailagent.store.models import Message, now
from mailagent.worker import broker

from .conftest import make_settings
from .support.mails import mail

REDIS = os.environ.get("MAILAGENT_TEST_REDIS", "redis://127.0.0.1:6379/15")


def test_due_without_what_is_queued() -> None:
    due = Due(process=[1, 2, 3], draft=[2], deliver=[7])
    left = due.without({("process_message", 2), ("draft_reply", 2), ("deliver", 8)})
    assert (left.process, left.draft, left.deliver, left.count) == ([1, 3], [], [7], 3)


@pytest.fixture
def redis_settings(sqlite_url: str) -> Iterator:
    settings = make_settings(sqlite_url, broker={"url": REDIS, "namespace": f"sweeptest{os.getpid()}"})
    rb = broker.make_broker(settings.broker)
    for key in rb.client.keys(f"{settings.broker.namespace}:*"):
        rb.client.delete(key)
    yield settings, rb
    for key in rb.client.keys(f"{settings.broker.namespace}:*"):
        rb.client.delete(key)
    rb.close()


def test_a_waiting_backlog_is_not_enqueued_again_at_every_sweep(redis_settings) -> None:
    settings, rb = redis_settings
    ids = store_many(settings.database.url, [Inbound(mail(n), "file", "support") for n in range(40)])
    with db.session(settings.database.url) as s:      # stored long ago: due for the sweeper
        s.execute(update(Message).values(received_at=now() - timedelta(hours=1)))
    rb.enqueue(broker.message("fan_out", ids[:10]))   # what ingest handed over: one batch of ten
    ingest = f"{settings.broker.namespace}:ingest"

    assert broker.sweep(rb, settings) == 30            # the other thirty: their messages were lost
    assert rb.client.llen(ingest) == 31
    for _ in range(3):                                 # nothing is enqueued twice while it waits
        assert broker.sweep(rb, settings) == 0
    assert rb.client.llen(ingest) == 31
    assert {ref for actor, ref in broker.queued(rb) if actor == "process_message"} == set(ids)

    rb.flush("ingest")                                 # Redis lost the queue: everything is due again, once
    assert broker.sweep(rb, settings) == 40 and broker.sweep(rb, settings) == 0
    assert rb.client.llen(ingest) == 40
