"""150 mutated real mails through the whole pipeline (the seeded small set of bench/fuzz.py): no
stalls, every message processed or failed with its reason, every draft decided, raw bytes intact."""

from __future__ import annotations

from pathlib import Path

import dramatiq
import pytest

from mailagent.store.models import DraftState, MessageState
from mailagent.worker import broker

from .support import fuzz
from .support.flow import fresh_queues
from .support.smtpd import SmtpServer


def test_mutations_are_seeded_distinct_and_of_every_kind() -> None:
    first, again = fuzz.mutated(40, seed=7), fuzz.mutated(40, seed=7)
    assert first == again and {kind for kind, _ in first} == set(fuzz.MUTATIONS)
    assert len({raw for _, raw in first}) == 40 and fuzz.mutated(40, seed=8) != first


def test_150_mutated_mails_through_the_whole_pipeline_stall_nothing(
        sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker, "_installed", broker._installed)
    monkeypatch.setattr(dramatiq.broker, "global_broker", dramatiq.broker.global_broker)
    from mailagent.worker.inprocess import InProcess

    settings = fuzz.settings_for(sqlite_url, tmp_path, smtp_server.port)
    items = fuzz.mutated(150, seed=20261206)
    ids = fuzz.store(settings, items)
    try:
        with InProcess(settings) as app:
            app.until_idle()
    finally:
        fresh_queues()
    report = fuzz.check(settings, items, ids)
    assert report.not_stored == 0 and report.raw_mismatches == 0
    assert report.stalls == 0, report
    assert sum(report.messages.values()) == 150
    assert set(report.messages) <= {MessageState.PROCESSED, MessageState.FAILED}
    assert set(report.drafts) <= fuzz.DECIDED | {DraftState.WAITING}
    assert report.drafts[DraftState.SENT] > 0 and len(smtp_server.received) == report.outbound["sent"]
