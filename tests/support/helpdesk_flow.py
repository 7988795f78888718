"""The helpdesk channel end to end in one process: the fake Zendesk and Help Scout servers, the
real webhook endpoint of `mailagent web` (signed deliveries, as the services send them), and the
real actors on the in-process broker (`mailagent run --until-idle`), with the offline model, the
demo backend and the shipped policy."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from starlette.testclient import TestClient

from mailagent.actions.backends.demo import seed
from mailagent.config import Settings
from mailagent.mail.html import html_to_text
from mailagent.store import db
from mailagent.store.models import (
    Action,
    AuditEntry,
    Conversation,
    Draft,
    Feedback,
    HelpdeskEvent,
    HelpdeskPost,
    Message,
)
from mailagent.web.app import create_app
from mailagent.worker import broker
from mailagent.worker.inprocess import InProcess

from ..conftest import make_settings
from .actions_flow import SAMPLE, policies
from .flow import synced
from .helpscout_server import HelpScoutServer
from .zendesk_server import ZendeskServer

SECRET = "whsec-3f9a-helpdesk-flow"
AGENT = {"company": "Nimbus Notes", "allowed_link_domains": ["nimbusnotes.example"],
         "docs_url": "https://docs.nimbusnotes.example"}
ENV = {"TEST_ZD_TOKEN": "zd-token", "TEST_ZD_SECRET": SECRET, "TEST_HS_SECRET": "app-secret",
       "TEST_HS_WEBHOOK": SECRET}

# Sample customers of the demo backend (examples/backend.toml)
DANIEL = ("Daniel Okafor", "daniel.okafor@brightpath.example")      # plus; order NN-1013, 400.00 EUR
JONAS = ("Jonas Becker", "jonas.becker@mailbox.example")

REFUND = ("<p>Hi,</p><p>I was charged for order NN-1013, but our team stopped using the app before the "
          "renewal. Could you please refund it?</p><p>Thanks,<br>Daniel</p>")
PASSWORD = "<p>Hello, I forgot my password and cannot log in. How do I reset it?</p><p>Jonas</p>"


def zendesk_desk(zd: ZendeskServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "zendesk", "base_url": zd.base_url, "email": "bot@acme.test", "api_token_env": "TEST_ZD_TOKEN",
            "bot_user_id": zd.bot, "webhook_secret_env": "TEST_ZD_SECRET", "timeout_seconds": 2, "max_retries": 1,
            **extra}


def helpscout_desk(hs: HelpScoutServer, **extra: Any) -> dict[str, Any]:
    return {"kind": "helpscout", "base_url": hs.base_url, "client_id": "app-id", "client_secret_env": "TEST_HS_SECRET",
            "bot_user_id": hs.bot["id"], "mailbox_id": 77, "webhook_secret_env": "TEST_HS_WEBHOOK",
            "timeout_seconds": 2, "max_retries": 1, **extra}


def desk_settings(url: str, tmp_path: Path, desks: dict[str, dict[str, Any]], **sections: Any) -> Settings:
    """The offline model, the demo backend with the sample company, the shipped policy, and the
    helpdesks `desks`; no mailbox has SMTP (nothing may go out as mail)."""
    seed(url, SAMPLE)
    return synced(make_settings(url, policy={"directory": str(policies(tmp_path)), "reload_seconds": 0},
                                agent=AGENT, helpdesks=desks, **sections))


@dataclass
class Desk:
    """Webhooks into the real endpoint, and the workers run until idle."""

    settings: Settings
    client: TestClient

    @staticmethod
    def of(settings: Settings) -> Desk:
        return Desk(settings, TestClient(create_app(settings)))

    def zendesk(self, ticket: int, *, actor: int, event: str = "ticket_updated", tags: str = "",
                name: str = "zd") -> dict[str, Any]:
        body = ZendeskServer.webhook_body(ticket, event=event, current_user=actor, tags=tags)
        return self.deliver(f"/hooks/zendesk/{name}", body, ZendeskServer.webhook_headers(SECRET, body))

    def helpscout(self, hs: HelpScoutServer, convo: int, event: str, *, name: str = "hs") -> dict[str, Any]:
        return self.helpscout_body(hs.payload(convo), event, name=name)

    def helpscout_body(self, body: bytes, event: str, *, name: str = "hs") -> dict[str, Any]:
        return self.deliver(f"/hooks/helpscout/{name}", body, HelpScoutServer.webhook_headers(SECRET, body, event))

    def deliver(self, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        answer = self.client.post(path, content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def run(self) -> None:
        """`mailagent run --until-idle`. Its in-process broker becomes this process's broker; it
        is put back after, so later tests that enqueue on Redis still do."""
        before = broker._installed
        try:
            with InProcess(self.settings) as app:
                app.until_idle()
        finally:
            broker._installed = before


# --- what happened ----------------------------------------------------------------------------

def rows(url: str, model: type[Any], *where: Any) -> list[Any]:
    with db.reading(url) as s:
        return list(s.exec(select(model).where(*where).order_by(col(model.id))))


def conversation(url: str, helpdesk: str, ticket: int | str) -> Conversation:
    [found] = rows(url, Conversation, Conversation.helpdesk == helpdesk, Conversation.ticket_id == str(ticket))
    return found


def drafts(url: str, conversation_id: int) -> list[Draft]:
    return rows(url, Draft, Draft.conversation_id == conversation_id)


def feedback(url: str, draft_id: int) -> list[Feedback]:
    return rows(url, Feedback, Feedback.draft_id == draft_id)


def posts(url: str, ticket: int | str) -> list[HelpdeskPost]:
    return rows(url, HelpdeskPost, HelpdeskPost.ticket_id == str(ticket))


def events(url: str) -> list[HelpdeskEvent]:
    return rows(url, HelpdeskEvent)


def messages(url: str, conversation_id: int) -> list[Message]:
    return rows(url, Message, Message.conversation_id == conversation_id)


def actions(url: str, conversation_id: int) -> list[Action]:
    return rows(url, Action, Action.conversation_id == conversation_id)


def audit(url: str, conversation_id: int) -> list[tuple[str, str]]:
    return [(e.actor, e.event) for e in rows(url, AuditEntry, AuditEntry.conversation_id == conversation_id)]


def html_text(html: str) -> str:
    return html_to_text(html).text


def diff(fb: Feedback) -> list[str]:
    """The final against the draft, line by line (blank lines aside: a helpdesk renders
    paragraphs its own way), as a reviewer of the learning loop reads it."""
    def lines(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.strip()]

    return [line for line in difflib.unified_diff(lines(fb.draft_text), lines(fb.final_text or ""), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("---", "+++")]
