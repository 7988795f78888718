"""After a command changed a row: hand the follow-up to the workers, or, when this process is the
only one (the in-process broker of `mailagent run` on one machine), do it right here. The one
place that knows the difference, for the CLI, the review page and the helpdesk endpoints."""

from __future__ import annotations

from dataclasses import dataclass

from mailagent.config import Settings


def _send(settings: Settings, actor: str, *args: object) -> None:
    """Enqueue on the shared broker; dramatiq and redis are imported only by a process that does."""
    from mailagent.worker import broker

    broker.send(settings, actor, *args)



@dataclass(frozen=True)
class Done:
    """What a follow-up did when it ran here; None from the functions below means "queued"."""

    summary: str


def stored(settings: Settings, message_ids: list[int]) -> None:
    """New messages: the workers process them (with the in-process broker, `run` finds them)."""
    if message_ids and not settings.broker.in_process:
        _send(settings, "fan_out", message_ids)


def helpdesk_event(settings: Settings, event_id: int) -> None:
    """A stored webhook delivery: the workers apply the loop guard (with the in-process broker of
    `mailagent run`, its sweeper finds the stored event)."""
    if not settings.broker.in_process:
        _send(settings, "helpdesk_event", event_id)


def helpdesk_post(settings: Settings, post_id: int) -> Done | None:
    """A note or reply for a helpdesk: the workers post it (in-process: posted here)."""
    if not settings.broker.in_process:
        _send(settings, "helpdesk_post", post_id)
        return None
    from mailagent.pipeline import helpdesk

    outcome = helpdesk.post(settings, post_id)
    return Done(f"post {post_id} to the helpdesk: {outcome.state} ({outcome.detail})")


def reply(settings: Settings, outbound_id: int | None, post_id: int | None) -> Done | None:
    """An approved reply, in its channel: mail to deliver, or a public post to a helpdesk."""
    if post_id is not None:
        return helpdesk_post(settings, post_id)
    assert outbound_id is not None, "an approved reply is mail or a helpdesk post"
    return deliver(settings, outbound_id)


def deliver(settings: Settings, outbound_id: int) -> Done | None:
    if not settings.broker.in_process:
        _send(settings, "deliver", outbound_id)
        return None
    from mailagent.pipeline import outbox

    delivery = outbox.deliver(settings, outbound_id)
    if delivery is None:
        return Done(f"reply {outbound_id}: not due for delivery")
    return Done(f"reply {outbound_id}: {delivery.outcome.status} ({delivery.outcome.detail})")


def resume(settings: Settings, draft_id: int) -> Done | None:
    """A draft whose actions were decided continues (approved actions run there, once)."""
    if not settings.broker.in_process:
        _send(settings, "resume_draft", draft_id)
        return None
    from mailagent.pipeline import drafting

    outcome = drafting.resume_draft_sync(settings, draft_id)
    if outcome.step is drafting.Step.WAITING:
        return Done(f"draft {draft_id} still waits for other actions")
    if outcome.step is not drafting.Step.DECIDED:
        return Done(f"draft {draft_id}: nothing to continue")
    lines = [f"draft {draft_id}: {outcome.decision}"]
    if outcome.outbound_id is not None:
        sent = deliver(settings, outcome.outbound_id)
        lines.append(sent.summary if sent else "")
    if settings.helpdesks:
        from mailagent.pipeline import helpdesk

        for post_id in helpdesk.queued_posts(settings, draft_id):
            posted = helpdesk_post(settings, post_id)
            lines.append(posted.summary if posted else "")
    return Done("\n".join(filter(None, lines)))
