"""The actors. Each is thin: it names a row, calls one pipeline stage (which loads the row, checks
its state and moves it forward in one transaction) and hands the follow-up work on, so a message
delivered twice does no harm.

Importing this module declares the actors on this process's broker (`broker.installed()`):
`mailagent run` installs the in-process one first; `dramatiq mailagent.worker.actors`, which
`mailagent worker` runs, builds the shared one from the config file.
"""

from __future__ import annotations

import functools
import logging

import dramatiq

from mailagent.config import current
from mailagent.evals import learning, quality
from mailagent.pipeline import classify, drafting, helpdesk, outbox, poll
from mailagent.review import helpdesk as helpdesk_events
from mailagent.worker.broker import QUEUES, installed
from mailagent.worker.broker import sweep as sweep_into
from mailagent.worker.failures import work_name
from mailagent.worker.runs import Runs

log = logging.getLogger(__name__)
broker = installed()


def _actor(**options: object):  # type: ignore[no-untyped-def]
    """`dramatiq.actor` on this process's broker, on the queue `broker.QUEUES` names."""
    def declare(fn):  # type: ignore[no-untyped-def]
        return dramatiq.actor(fn, broker=broker, queue_name=QUEUES[fn.__name__], **options)
    return declare


@_actor(max_retries=5, min_backoff=2_000)
def poll_mailbox(name: str) -> None:
    result = poll.poll(current(), name, enqueue=fan_out.send)
    if not result.busy:
        log.info("%s: fetched %d, stored %d new", name, result.fetched, len(result.stored))


@_actor(max_retries=10, min_backoff=1_000)
def fan_out(message_ids: list[int]) -> None:
    """One broker message per stored batch: the IMAP cursor loop pays one round trip to the
    broker per batch, not per message; a worker fans the batch out."""
    for message_id in message_ids:
        process_message.send(message_id)


@_actor(max_retries=10, min_backoff=1_000)
def process_message(message_id: int) -> None:
    """Process, then draft. A redelivered message (its worker died after processing) still asks
    for the draft: drafting claims only what is not answered or being answered."""
    settings = current()
    processed = classify.process(settings, message_id)
    conversation_id = processed.conversation.id if processed else classify.conversation_of(settings, message_id)
    if conversation_id is not None:
        draft_reply.send(conversation_id)


@functools.cache
def runs() -> Runs:
    """This process's agent runs (see `worker.runs`)."""
    return Runs(current().worker.inflight)


@_actor(max_retries=5, min_backoff=2_000)
def draft_reply(conversation_id: int) -> None:
    """Hands the drafting stage to this process's runs and returns: the run holds a lease on the
    draft, not this thread."""
    def then(outcome: drafting.Outcome) -> None:
        if outcome.step is drafting.Step.REDRAFT:
            draft_reply.send(conversation_id)
        _after_draft(outcome)

    runs().start(drafting.draft_reply(current(), conversation_id), then, work_name("draft_reply", conversation_id))


def _after_draft(outcome: drafting.Outcome) -> None:
    if outcome.outbound_id is not None:
        deliver.send(outcome.outbound_id)
    settings = current()
    if settings.helpdesks and outcome.draft_id is not None:     # a helpdesk ticket's reply or note
        for post_id in helpdesk.queued_posts(settings, outcome.draft_id):
            helpdesk_post.send(post_id)


@_actor(max_retries=5, min_backoff=2_000)
def resume_draft(draft_id: int) -> None:
    """Continue a draft whose proposed actions were all decided. If the backend did not answer,
    the draft goes back to `waiting` and the sweeper resumes it later: the same idempotency keys
    make the retry safe."""
    runs().start(drafting.resume_draft(current(), draft_id), _after_draft, work_name("resume_draft", draft_id))


@_actor(max_retries=10, min_backoff=1_000)
def deliver(outbound_id: int) -> None:
    settings = current()
    delivery = outbox.deliver(settings, outbound_id)
    if delivery is None:
        return
    if delivery.retry_in is not None:
        deliver.send_with_options(args=(outbound_id,), delay=int(delivery.retry_in.total_seconds() * 1000))
    elif delivery.outcome.status == "sent" and delivery.save_to_sent:
        save_to_sent.send(outbound_id)


@_actor(max_retries=10, min_backoff=5_000)
def save_to_sent(outbound_id: int) -> None:
    outbox.save_to_sent(current(), outbound_id)


@_actor(max_retries=10, min_backoff=1_000)
def helpdesk_event(event_id: int) -> None:
    """A stored webhook delivery: the loop guard, then the ticket read back, its new turns stored
    and reps' decisions applied (see `review.helpdesk`); the follow-ups go to their actors."""
    handled = helpdesk_events.handle(current(), event_id)
    if handled is None:
        return
    if handled.retry_in is not None:
        helpdesk_event.send_with_options(args=(event_id,), delay=int(handled.retry_in.total_seconds() * 1000))
        return
    if handled.draft and handled.conversation_id is not None:
        draft_reply.send(handled.conversation_id)
    for post_id in handled.posts:
        helpdesk_post.send(post_id)
    for draft_id in handled.resume:
        resume_draft.send(draft_id)


@_actor(max_retries=20, min_backoff=5_000, time_limit=15 * 60_000)
def helpdesk_post(post_id: int) -> None:
    """One attempt at posting a note or reply to a helpdesk, exactly once (see `pipeline.helpdesk`)."""
    outcome = helpdesk.post(current(), post_id)
    if outcome.retry_in is not None:
        helpdesk_post.send_with_options(args=(post_id,), delay=int(outcome.retry_in.total_seconds() * 1000))


@_actor(max_retries=0)
def sweep() -> None:
    """Enqueue work stuck in a non-final state that is not already waiting in a queue (see `sweeper`)."""
    count = sweep_into(broker, current())
    if count:
        log.info("sweep: %d stuck item(s) enqueued", count)


@_actor(max_retries=3, min_backoff=5_000)
def build_eval_cases() -> None:
    """Reps' new finals become eval cases, and those that add knowledge, suggestions (idempotent:
    the clock enqueues this every [evals] case_interval_seconds)."""
    built = learning.build(current())
    if built.cases or built.suggestions:
        log.info("learning loop: %d new eval case(s), %d new knowledge suggestion(s)", built.cases, built.suggestions)


@_actor(max_retries=0)
def record_quality() -> None:
    """Recompute today's and yesterday's live quality figures (the review page plots them)."""
    quality.refresh(current())


