"""What every helpdesk looks like to the rest of mailagent: typed webhook events, typed turns of a
ticket, and the few writes we make (internal note, public reply, tags). One module per helpdesk
implements `Helpdesk`; adding Freshdesk or Front is one more module and its config kind.

Webhook verification is a pure function per helpdesk (`verify`), so the web process checks a
delivery without a client, a network or a database. Everything a helpdesk sends us is a claim:
signed events only say "look at ticket N"; what a ticket holds is read back through the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.mail.html import html_to_text


class HelpdeskError(Exception):
    """The helpdesk API failed; `retryable` says whether trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class OutcomeUnknown(HelpdeskError):
    """A write was sent and no answer came back: it may have been applied. Read the ticket back
    (`find_marker`) before trying again."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class WebhookRejected(Exception):
    """A webhook delivery that must not be stored: `status` is the HTTP answer (400, 401, 413),
    `reason` what the log says."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class EventKind(StrEnum):
    TICKET_CREATED = "ticket_created"
    CUSTOMER_REPLIED = "customer_replied"
    AGENT_REPLIED = "agent_replied"       # a public reply by a person (or by us)
    NOTE_ADDED = "note_added"             # an internal note
    TAGS_CHANGED = "tags_changed"
    TICKET_UPDATED = "ticket_updated"     # something changed; read the ticket to know what
    OTHER = "other"                       # an event we do not act on (kept, marked ignored)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery: which ticket, what happened by the sender's account, and who did it."""

    kind: EventKind
    name: str                  # the helpdesk's own event name (`convo.customer.reply.created`, ...)
    ticket_id: str
    dedup_key: str             # derived from the signed bytes: a replay or retry has the same key
    actor_id: str | None = None    # the helpdesk user who caused it, when the payload says
    tags: tuple[str, ...] = ()
    scope: str | None = None       # Help Scout: the mailbox the conversation is in


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"            # a person on the support team
    US = "us"                  # our API user (our notes, drafts and auto-sent replies)


@dataclass(frozen=True)
class Turn:
    """One comment (Zendesk) or thread (Help Scout) of a ticket, as data.

    `html` is kept exactly as the helpdesk returned it (hostile markup included); `text` is what
    a reader sees, rendered by `mail.html`, and `hidden` what the markup hid from the reader."""

    id: str
    author_id: str
    role: Role
    public: bool               # False: an internal note (or an unsent draft)
    html: str
    text: str
    hidden: str
    created_at: datetime
    draft: bool = False        # Help Scout: a draft reply nobody sent yet
    markers: tuple[str, ...] = field(default=())  # our markers found in or on this comment

    @staticmethod
    def from_html(*, id: str, author_id: str, role: Role, public: bool, html: str, created_at: datetime,
                  draft: bool = False, markers: tuple[str, ...] = ()) -> Turn:
        rendered = html_to_text(html)
        return Turn(id=id, author_id=author_id, role=role, public=public, html=html, text=rendered.text,
                    hidden=rendered.hidden, created_at=created_at, draft=draft, markers=markers)


@dataclass(frozen=True)
class Ticket:
    """What a ticket is, read back through the API: its requester, subject, tags and every turn."""

    id: str
    subject: str
    requester_id: str
    requester_email: str
    tags: tuple[str, ...]
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Posted:
    """A note or reply we wrote: the helpdesk's id for it (for reading it back and for logs)."""

    comment_id: str
    replayed: bool = False     # found already posted (a retry after a crash), not posted again


class Helpdesk(Protocol):
    """One helpdesk account, through its API. Writes carry our `marker` so a retry can read the
    ticket back and find them (no helpdesk offers an idempotency key for comments)."""

    settings: HelpdeskSettings

    def ticket(self, ticket_id: str) -> Ticket:
        """The ticket with all its turns (every page), oldest first."""
        ...

    drafts: bool
    """Whether the helpdesk takes draft replies a rep sends from its UI (Help Scout), or a held
    draft must be an internal note (Zendesk)."""

    def post_note(self, ticket_id: str, html: str, *, marker: str, tags: tuple[str, ...] = ()) -> Posted:
        """An internal note only the team sees (and tags to add with it)."""
        ...

    def post_reply(self, ticket_id: str, html: str, *, marker: str, author_id: str | None = None,
                   draft: bool = False, tags: tuple[str, ...] = ()) -> Posted:
        """A public reply the customer receives, under `author_id` (a rep) or our own user; with
        `draft`, a draft reply the rep sends (only where `drafts` is true)."""
        ...

    def change_tags(self, ticket_id: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        ...

    def find_marker(self, ticket_id: str, marker: str) -> str | None:
        """The id of the comment we wrote with `marker`, if the helpdesk has it."""
        ...

    def whoami(self) -> str:
        """Who the credentials act as (for `mailagent helpdesk check`)."""
        ...

    def close(self) -> None:
        ...


class Verifier(Protocol):
    """The pure webhook check of one helpdesk kind (a module-level function in its module)."""

    def __call__(self, settings: HelpdeskSettings, secret: str, headers: Mapping[str, str], body: bytes,
                 now: float) -> WebhookEvent:
        ...
