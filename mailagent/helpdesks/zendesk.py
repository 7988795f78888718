"""Zendesk Support: signed webhooks from triggers, ticket comments, internal notes, public
replies under a rep's name, tags.

API facts used (developer.zendesk.com, Ticketing API):
- auth: basic `{email}/token:{api_token}`;
- comments: `GET /api/v2/tickets/{id}/comments.json` with cursor pagination (`page[size]`,
  `meta.has_more`, `links.next`), `include=users` side-loads the authors (their `role`);
- a comment is added by Update Ticket, `PUT /api/v2/tickets/{id}.json` with
  `ticket.comment = {html_body, public, author_id}`; `ticket.additional_tags` / `remove_tags`;
  `ticket.metadata` (up to 1 KB) lands in the audit's `metadata.custom`: that is where our marker
  goes, and `GET /api/v2/tickets/{id}/audits.json` is where a retry finds it;
- Update Ticket is limited to 100 requests per minute per account; a 429 carries `Retry-After`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mailagent import config
from mailagent.config import Helpdesk as HelpdeskSettings
from mailagent.helpdesks.api import Api, Auth, Cost, numeric_id, timestamp
from mailagent.helpdesks.base import (
    EventKind,
    HelpdeskError,
    Person,
    Posted,
    Role,
    Ticket,
    Turn,
    WebhookEvent,
    WebhookRejected,
)
from mailagent.helpdesks.budget import Budget

NAME = "Zendesk"
SIGNATURE = "x-zendesk-webhook-signature"
TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
MARKER_KEY = "mailagent_marker"
PAGE_SIZE = 100
EVENTS = {"ticket_created": EventKind.TICKET_CREATED, "ticket_updated": EventKind.TICKET_UPDATED,
          "tags_changed": EventKind.TAGS_CHANGED}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body)): the timestamp header and the raw body, no separator."""
    return base64.b64encode(hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def _timestamp(value: str) -> float:
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejected(401, f"malformed signature timestamp {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def verify(settings: HelpdeskSettings, secret: str, headers: Mapping[str, str], body: bytes, now: float) -> WebhookEvent:
    """A Zendesk webhook delivery, checked: signed with our secret over timestamp and body, fresh,
    and a JSON object naming a ticket. `headers` has lower-case names."""
    given, stamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    if not given or not stamp:
        raise WebhookRejected(401, "unsigned: X-Zendesk-Webhook-Signature and -Timestamp are required")
    expected = signature(secret, stamp, body)
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise WebhookRejected(401, "the signature does not match (wrong secret, or the body was changed)")
    age = now - _timestamp(stamp)
    if abs(age) > settings.freshness_seconds:
        raise WebhookRejected(401, f"stale: signed {age:.0f} s ago, outside the {settings.freshness_seconds:.0f} s window")
    payload = _object(body)
    ticket_id = str(payload.get("ticket_id", "")).strip()
    if not ticket_id.isdigit():
        raise WebhookRejected(400, "malformed: the body needs \"ticket_id\" (the trigger's {{ticket.id}})")
    name = str(payload.get("event", "ticket_updated"))
    actor = str(payload.get("current_user_id", "")).strip()
    tags = payload.get("tags", "")
    return WebhookEvent(
        kind=EVENTS.get(name, EventKind.OTHER), name=name, ticket_id=ticket_id,
        dedup_key="zendesk:" + hashlib.sha256(stamp.encode() + b"\n" + body).hexdigest(),
        actor_id=actor if actor.isdigit() else None,
        tags=tuple(str(tags).split()) if isinstance(tags, str) else tuple(str(t) for t in tags if isinstance(t, str)),
    )


def _object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "malformed: the body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "malformed: the body is not a JSON object")
    return payload


class TokenAuth(Auth):
    def __init__(self, settings: HelpdeskSettings, name: str) -> None:
        self.settings, self.name = settings, name

    def headers(self) -> dict[str, str]:
        token = config.secret(f"helpdesks.{self.name}.api_token_env", self.settings.api_token_env)
        basic = base64.b64encode(f"{self.settings.email}/token:{token}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}


class Zendesk:
    """One Zendesk account (`[helpdesks.NAME] kind = "zendesk"`)."""

    drafts = False          # no draft replies through the API: a held draft is an internal note

    def __init__(self, settings: HelpdeskSettings, name: str, budget: Budget, **api: Any) -> None:
        self.settings, self.name = settings, name
        self.api = Api(settings, name, budget, TokenAuth(settings, name), retry_after_header="Retry-After", **api)
        self._read = Cost((("requests", settings.requests_per_minute, 1),))
        self._update = Cost((("requests", settings.requests_per_minute, 1),
                             ("updates", settings.updates_per_minute, 1)))

    def close(self) -> None:
        self.api.close()

    # reads

    def whoami(self) -> str:
        user = self._get("/api/v2/users/me.json", "the API user")["user"]
        return f"user {user.get('id')} ({user.get('email')}, role {user.get('role')})"

    def ticket(self, ticket_id: str) -> Ticket:
        ticket = self._get(f"/api/v2/tickets/{numeric_id(ticket_id, NAME)}.json", f"ticket {ticket_id}")["ticket"]
        requester = str(ticket.get("requester_id") or "")
        comments, users = self._pages(f"/api/v2/tickets/{numeric_id(ticket_id, NAME)}/comments.json", "comments",
                                      {"page[size]": PAGE_SIZE, "include": "users"})
        people = {str(u.get("id")): u for u in users}
        bot = str(self.settings.bot_user_id)
        turns = []
        for c in comments:
            if c.get("id") is None:
                continue
            author = str(c.get("author_id", ""))
            person = people.get(author) or {}
            role = (Role.US if author == bot else
                    Role.CUSTOMER if author == requester or person.get("role") == "end-user" else Role.AGENT)
            turns.append(Turn.from_html(id=str(c["id"]), author_id=author, role=role, public=bool(c.get("public")),
                                        html=str(c.get("html_body") or ""), created_at=timestamp(c.get("created_at")),
                                        author_name=str(person.get("name") or ""),
                                        author_email=str(person.get("email") or ""),
                                        raw=json.dumps(c, ensure_ascii=False).encode()))
        who = people.get(requester) or {}
        return Ticket(id=str(ticket["id"]), subject=str(ticket.get("subject") or ""), requester_id=requester,
                      requester_email=str(who.get("email") or ""), requester_name=str(who.get("name") or ""),
                      tags=tuple(str(t) for t in ticket.get("tags") or ()),
                      turns=tuple(sorted(turns, key=lambda t: (t.created_at, int(t.id) if t.id.isdigit() else 0))))

    def user(self, user_id: str) -> Person:
        user = self._get(f"/api/v2/users/{numeric_id(user_id, NAME)}.json", f"user {user_id}")["user"]
        return Person(id=str(user.get("id")), name=str(user.get("name") or ""), email=str(user.get("email") or ""),
                      agent=user.get("role") in ("agent", "admin"))

    def find_marker(self, ticket_id: str, marker: str) -> str | None:
        audits, _ = self._pages(f"/api/v2/tickets/{numeric_id(ticket_id, NAME)}/audits.json", "audits", {"page[size]": PAGE_SIZE})
        for audit in audits:
            custom = (audit.get("metadata") or {}).get("custom") or {}
            if isinstance(custom, dict) and custom.get(MARKER_KEY) == marker:
                return _comment_id(audit) or f"audit:{audit.get('id')}"
        return None

    # writes

    def post_note(self, ticket_id: str, html: str, *, marker: str, tags: tuple[str, ...] = (),
                  remove_tags: tuple[str, ...] = ()) -> Posted:
        return self._comment(ticket_id, html, marker=marker, public=False, author_id=None, tags=tags,
                             remove_tags=remove_tags)

    def post_reply(self, ticket_id: str, html: str, *, marker: str, author_id: str | None = None,
                   draft: bool = False, tags: tuple[str, ...] = (), remove_tags: tuple[str, ...] = ()) -> Posted:
        if draft:
            raise HelpdeskError(f"{self.name}: Zendesk has no draft replies through the API: post an internal note",
                                retryable=False)
        return self._comment(ticket_id, html, marker=marker, public=True, author_id=author_id, tags=tags,
                             remove_tags=remove_tags)

    def change_tags(self, ticket_id: str, *, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> None:
        ticket: dict[str, Any] = {}
        if add:
            ticket["additional_tags"] = list(add)
        if remove:
            ticket["remove_tags"] = list(remove)
        if ticket:
            self._put(ticket_id, {"ticket": ticket}, write_what=f"tags of ticket {ticket_id}")

    def _comment(self, ticket_id: str, html: str, *, marker: str, public: bool, author_id: str | None,
                 tags: tuple[str, ...], remove_tags: tuple[str, ...]) -> Posted:
        """One Update Ticket: the comment, our marker in the audit's metadata, and the tag changes
        (so a rep's decision tag goes away with the reply that carries out the decision)."""
        author = int(author_id) if author_id else self.settings.bot_user_id
        ticket: dict[str, Any] = {"comment": {"html_body": html, "public": public, "author_id": author},
                                  "metadata": {MARKER_KEY: marker}}
        if tags:
            ticket["additional_tags"] = list(tags)
        if remove_tags:
            ticket["remove_tags"] = list(remove_tags)
        body = self._put(ticket_id, {"ticket": ticket}, write_what=f"a comment on ticket {ticket_id}")
        comment = _comment_id((body or {}).get("audit") or {})
        if comment is None:
            raise HelpdeskError(f"{self.name}: ticket {ticket_id} updated, but the answer names no new comment",
                                retryable=False)
        return Posted(comment)

    # HTTP

    def _get(self, url: str, what: str, params: dict[str, Any] | None = None) -> Any:
        return self.api.json(self.api.request("GET", url, self._read, params=params), what)

    def _put(self, ticket_id: str, payload: dict[str, Any], *, write_what: str) -> Any:
        response = self.api.request("PUT", f"/api/v2/tickets/{numeric_id(ticket_id, NAME)}.json", self._update, write=True,
                                    json=payload)
        return self.api.json(response, write_what)

    def _pages(self, url: str, key: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every item of a cursor-paginated list (and side-loaded users), following `links.next`."""
        items: list[dict[str, Any]] = []
        users: list[dict[str, Any]] = []
        next_url: str | None = url
        query: dict[str, Any] | None = params
        seen: set[str] = set()
        while next_url:
            body = self._get(next_url, key, query)
            items += [i for i in body.get(key) or [] if isinstance(i, dict)]
            users += [u for u in body.get("users") or [] if isinstance(u, dict)]
            has_more = bool((body.get("meta") or {}).get("has_more"))
            next_url = (body.get("links") or {}).get("next") if has_more else None
            if next_url in seen:      # a server that loops: stop instead of reading forever
                raise HelpdeskError(f"{self.name}: {key}: the next page repeats an earlier one", retryable=False)
            seen.add(next_url or "")
            query = None              # the next link carries the query
        return items, users


CLIENT = Zendesk


def _comment_id(audit: dict[str, Any]) -> str | None:
    for event in audit.get("events") or ():
        if isinstance(event, dict) and event.get("type") == "Comment" and event.get("id") is not None:
            return str(event["id"])
    return None


def setup(settings: HelpdeskSettings, name: str, hook_url: str) -> str:
    """What a Zendesk admin creates, step by step (printed by `mailagent helpdesk check`)."""
    bot, tags = settings.bot_user_id, settings.tags
    body = json.dumps({"event": "EVENT", "ticket_id": "{{ticket.id}}", "current_user_id": "{{current_user.id}}",
                       "tags": "{{ticket.tags}}", "via": "{{ticket.via}}"}, indent=2)
    return f"""\
Zendesk setup for [helpdesks.{name}] ({settings.api_url})

1. Webhook (Admin Center > Apps and integrations > Webhooks > Create webhook > Trigger or automation):
     Endpoint URL:   {hook_url}
     Request method: POST      Request format: JSON      Authentication: none
   Open the webhook, reveal its signing secret and put it in the environment variable
   {settings.webhook_secret_env} of the web process.

2. Trigger "mailagent: new public comment" (a customer wrote, or a rep replied) (Objects and rules > Triggers):
     Meet ALL of:  Comment  Is  Public
                   Current user  Is not  (the API user, id {bot})
     Meet ANY of:  Ticket  Is  Created
                   Ticket  Is  Updated
     Actions:      Notify by > Active webhook > this webhook, JSON body (EVENT = ticket_updated):
{_indent(body.replace('EVENT', 'ticket_updated'), 21)}

3. Trigger "mailagent: rep decided" (approve / reject / release by tag):
     Meet ALL of:  Ticket  Is  Updated
                   Current user  Is not  (the API user, id {bot})
     Meet ANY of:  Ticket > Tags  Contains at least one of  {tags.approve} {tags.reject} {tags.release}
     Actions:      Notify by > Active webhook > this webhook, the same JSON body with
                   "event": "tags_changed"

4. Macros for reps (Workspaces > Agent tools > Macros):
     "Approve AI draft":  Add tags  {tags.approve}   (the draft, or every action it proposes)
     "Reject AI draft":   Add tags  {tags.reject}    (write the reason as an internal note first)
     "Hand back to AI":   Add tags  {tags.release}
   One action decided differently from the rest: add its own tag ({tags.approve}_ID or
   {tags.reject}_ID, named in the note) with the macro; the trigger listens for the macro's tag.

Notes: `Current user is not <API user>` is the loop guard: nothing we post calls us back. The
webhook's signature and timestamp are checked (window {settings.freshness_seconds:.0f} s); a replayed
delivery is answered 200 and processed once.
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())
