"""The sweeper: finds work stuck in a non-final state, so that a lost broker message (a crash
between commit and enqueue, a worker killed mid-step) only ever delays work, never loses it.

Enqueueing twice is harmless (every actor checks the row's state), but a sweep enqueues only what
is not already waiting in the broker (`Due.without`), so a backlog is not enqueued again at every
sweep while it drains; the sweeper only has to make sure nothing waits forever. It also ends the `sending` state of replies whose worker died."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import timedelta

from mailagent.config import Settings
from mailagent.pipeline import helpdesk, outbox
from mailagent.store import db, sweep
from mailagent.store.models import now


@dataclass
class Due:
    process: list[int] = field(default_factory=list)
    draft: list[int] = field(default_factory=list)            # conversation ids
    resume: list[int] = field(default_factory=list)           # draft ids whose actions are decided
    deliver: list[int] = field(default_factory=list)
    save_to_sent: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    helpdesk_events: list[int] = field(default_factory=list)  # webhook deliveries stored, not handled yet
    helpdesk_posts: list[int] = field(default_factory=list)   # notes and replies not posted yet

    @property
    def count(self) -> int:
        return sum(len(refs) for _, refs in self.work())

    def work(self) -> list[tuple[str, list[int]]]:
        """(actor name, row ids) of everything due."""
        return [(actor, getattr(self, name)) for name, actor in ACTORS.items()]

    def without(self, queued: Collection[tuple[str, int]]) -> Due:
        """What is due and not already waiting in the broker's queues (`(actor, row id)` pairs):
        enqueued once, never again at every sweep while a backlog drains."""
        return replace(self, **{name: [ref for ref in getattr(self, name) if (actor, ref) not in queued]
                                for name, actor in ACTORS.items()})


# Due's fields and the actors that do their work.
ACTORS = {"process": "process_message", "draft": "draft_reply", "resume": "resume_draft", "deliver": "deliver",
          "save_to_sent": "save_to_sent", "helpdesk_events": "helpdesk_event", "helpdesk_posts": "helpdesk_post"}


def find_due(settings: Settings, stuck_after: timedelta) -> Due:
    """Rows to enqueue again; `stuck_after` spares work that was enqueued moments ago."""
    before = now() - stuck_after
    sent_folders = [name for name, m in settings.mailboxes.items() if m.imap and m.imap.sent_folder]
    with db.session(settings.database.url) as s:
        due = Due(unknown=outbox.mark_stale_sending(s, settings))
        due.process = sweep.unprocessed(s, before)
        due.draft = sweep.undrafted(s, before)
        due.resume = sweep.resumable(s)
        due.deliver = sweep.deliverable(s, now())
        due.save_to_sent = sweep.unsaved(s, sent_folders, before)
    if settings.helpdesks:
        due.helpdesk_events, due.helpdesk_posts = helpdesk.due(settings, stuck_after)
    return due

