"""`run --until-idle` ends whatever a stage does: work that raises, or stays due without raising, is
handed on at most `[worker] max_attempts` + 1 times in a run, and reported.
The stage here is broken on purpose (the sent-folder copy), inside the real in-process worker."""

from __future__ import annotations

import pytest

from mailagent.pipeline import outbox
from mailagent.store import db
from mailagent.store.models import Conversation, Outbound, OutboundState, now
from mailagent.worker.inprocess import InProcess


def _sent_reply(url: str) -> int:
    with db.session(url) as s:
        conversation = Conversation(mailbox="support", customer_addr="alice@customer.example", subject="Hi")
        s.add(conversation)
        s.flush()
        row = Outbound(conversation_id=conversation.id, mailbox="support", message_id="r1@example.com",
                       sender="support@example.com", recipients=["alice@customer.example"], subject="Re: Hi",
                       body_text="Hello", raw=b"Subject: Re: Hi\r\n\r\nHello\r\n", state=OutboundState.SENT,
                       sent_at=now())
        s.add(row)
        s.flush()
        return row.id


@pytest.mark.parametrize(("stage", "expected"), [
    ("raises", "save_to_sent({id}): RuntimeError: the Sent folder is broken ({n} attempts)"),
    ("does nothing", "save_to_sent({id}): still due after {n} passes in this run"),
])
def test_a_stage_that_keeps_failing_ends_the_run_with_a_report(sqlite_url: str, settings_for, imap_user: str,
                                                               monkeypatch: pytest.MonkeyPatch, stage: str,
                                                               expected: str) -> None:
    settings = settings_for(sqlite_url, imap_user, sent_folder="Sent")
    outbound_id = _sent_reply(sqlite_url)
    calls: list[int] = []

    def broken(_settings: object, row_id: int) -> bool:
        calls.append(row_id)
        if stage == "raises":
            raise RuntimeError("the Sent folder is broken")
        return False

    monkeypatch.setattr(outbox, "save_to_sent", broken)
    with InProcess(settings) as app:
        failures = app.until_idle()
    passes = settings.worker.max_attempts + 1
    assert [f.line() for f in failures] == [expected.format(id=outbound_id, n=passes)]
    assert calls == [outbound_id] * passes
