"""Leads curate the learning loop on the review page (in-process, Starlette's test client): the
knowledge suggestions and eval cases pages call the same verbs as `mailagent kb suggestions` and
`mailagent evals`, audit the lead, refuse reps and forged forms, and say why a step cannot apply
with nothing changed. The quality page plots stored eval runs and daily figures. The browser
versions of the main moves are in test_review_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from starlette.testclient import TestClient

from mailagent.config import Settings
from mailagent.evals import learning as loop
from mailagent.evals import quality
from mailagent.knowledge.search import search
from mailagent.store import db, metrics
from mailagent.store.models import AuditEntry, EvalCase, EvalRun, KnowledgeSuggestion
from mailagent.store.quality import daily
from mailagent.web import learning
from mailagent.web.charts import Series, bar_chart
from mailagent.web.textdiff import Piece, word_diff

from .support.learning import answer, ask, desk
from .support.web import SECRET
from .test_review_site import BASE, client, csrf_of, people, sign_in
from .test_suggestions import DARK, DARK_FINAL

PRINT = ("Printing notes", "Can I print a notebook with all its pages?")
PRINT_FINAL = "Hi Carol,\n\nYes: open the notebook, choose File → Print notebook and tick All pages.\n\nBest,\nAna"


@pytest.fixture
def desk_web(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, TestClient]]:
    """Two answered questions no article held: two cases, two suggestions; a lead signed in."""
    monkeypatch.setenv("MAILAGENT_WEB_SECRET", SECRET)
    settings = desk(sqlite_url)
    people(sqlite_url)
    answer(settings, ask(settings, *DARK), DARK_FINAL)
    answer(settings, ask(settings, *PRINT, sender="carol@customer.example"), PRINT_FINAL)
    assert loop.build(settings) == loop.Built(2, 2)
    with client(settings) as c:
        sign_in(c, "lea")
        yield settings, c


def flash(c: TestClient, response: Any) -> str:
    """Follow a form's redirect and read the message it left."""
    assert response.status_code == 303, response.text[:400]
    page = c.get(response.headers["location"])
    found = re.search(r'<div class="flash (ok|error)"[^>]*>([^<]*)</div>', page.text)
    assert found, page.text[:400]
    return f"{found.group(1)}: {found.group(2)}"


def audit(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    with db.reading(url) as s:
        return [(e.actor, e.event, e.details) for e in s.exec(select(AuditEntry).order_by(col(AuditEntry.id)))
                if e.event.startswith(("suggestion_", "eval_case_"))]


def suggestion(url: str, ident: int) -> KnowledgeSuggestion:
    with db.reading(url) as s:
        found = s.get(KnowledgeSuggestion, ident)
    assert found is not None
    return found


def case(url: str, ident: int) -> EvalCase:
    with db.reading(url) as s:
        found = s.get(EvalCase, ident)
    assert found is not None
    return found


def test_a_lead_accepts_a_suggestion_and_the_article_is_searchable_at_once(desk_web: tuple[Settings, TestClient]
                                                                           ) -> None:
    settings, c = desk_web
    listed = c.get(f"{BASE}/suggestions")
    assert listed.status_code == 200 and "Dark mode?" in listed.text and "Printing notes" in listed.text
    page = c.get(f"{BASE}/suggestions/1")
    assert page.status_code == 200
    assert "conversation 1: Dark mode?" in page.text and "Settings → Appearance → Theme" in page.text
    assert '<span class="added"># Dark mode?' in page.text                      # a new article: all of it added
    assert not [h for h in search(settings.database.url, "dark theme night", locale="en") if h.id == "dark-mode.en"]

    done = c.post(f"{BASE}/suggestions/1/accept", data={"csrf": csrf_of(page.text), "intent": "how_to",
                                                         "title": "Dark mode"})
    assert flash(c, done) == ("ok: suggestion 1 accepted by lea: article dark-mode.en is now version 1, "
                              "searchable at once")
    [hit, *_] = search(settings.database.url, "Is there a dark theme?", locale="en")
    assert (hit.id, hit.title, hit.intent) == ("dark-mode.en", "Dark mode", "how_to")
    found = c.get(f"{BASE}/knowledge", params={"q": "dark theme"})
    assert '<a href="/review/knowledge/dark-mode.en">' in found.text
    article = c.get(f"{BASE}/knowledge/dark-mode.en")
    assert "Settings → Appearance → Theme" in article.text and "suggestion 1</a>" in article.text
    assert suggestion(settings.database.url, 1).decided_by == "lea"
    assert audit(settings.database.url) == [("lea", "suggestion_accepted",
                                             {"suggestion_id": 1, "article_id": "dark-mode.en", "version": 1})]

    again = c.post(f"{BASE}/suggestions/1/accept", data={"csrf": csrf_of(page.text)})   # a second tab, say
    assert flash(c, again) == "error: suggestion 1 is accepted (by lea): only open suggestions can be decided"
    assert c.get(f"{BASE}/suggestions/9").status_code == 404


def test_rejecting_a_suggestion_needs_a_reason(desk_web: tuple[Settings, TestClient]) -> None:
    settings, c = desk_web
    token = csrf_of(c.get(f"{BASE}/suggestions/2").text)
    assert flash(c, c.post(f"{BASE}/suggestions/2/reject", data={"csrf": token, "reason": "  "})) == \
        "error: a rejection needs a reason"
    assert suggestion(settings.database.url, 2).state == "open"
    bad = c.post(f"{BASE}/suggestions/2/accept", data={"csrf": token, "intent": "nonsense"})
    assert flash(c, bad).startswith("error: intent must be one of") and suggestion(settings.database.url, 2).state == "open"
    done = c.post(f"{BASE}/suggestions/2/reject", data={"csrf": token, "reason": "printing is a plan feature"})
    assert flash(c, done) == "ok: suggestion 2 rejected by lea: nothing changed"
    assert (suggestion(settings.database.url, 2).state, suggestion(settings.database.url, 2).reason) == (
        "rejected", "printing is a plan feature")
    assert "printing is a plan feature" in c.get(f"{BASE}/suggestions?state=rejected").text
    assert "Printing notes" not in c.get(f"{BASE}/suggestions").text                 # open ones by default


def test_a_lead_curates_eval_cases(desk_web: tuple[Settings, TestClient]) -> None:
    settings, c = desk_web
    url = settings.database.url
    listed = c.get(f"{BASE}/evals")
    assert listed.status_code == 200 and listed.text.count('<tr data-id="') == 2
    assert c.get(f"{BASE}/evals", params={"tag": "language:en", "state": "new"}).text.count('<tr data-id="') == 2
    assert c.get(f"{BASE}/evals", params={"source": "edit"}).text.count('<tr data-id="') == 0
    shown = c.get(f"{BASE}/evals/1")
    assert "Is there a dark mode in the Nimbus app?" in shown.text and "Open Settings → Appearance" in shown.text
    token = csrf_of(shown.text)

    accepted = c.post(f"{BASE}/evals/accept", data={"csrf": token, "id": ["1", "2"], "back": "/evals?state=new"})
    assert accepted.headers["location"] == "/review/evals?state=new"
    assert flash(c, accepted) == "ok: accepted by lea: case(s) 1, 2"
    assert c.get(f"{BASE}/evals", params={"state": "accepted"}).text.count('<tr data-id="') == 2
    counts = c.get(f"{BASE}/evals").text
    assert ">new (0)</option>" in counts and ">accepted (2)</option>" in counts
    assert '<option value="language:en" >language:en</option>' in counts                # the tags in use
    dropped = c.post(f"{BASE}/evals/drop", data={"csrf": token, "id": "2", "back": "/evals/2"})
    assert flash(c, dropped) == "ok: dropped by lea: case(s) 2"
    assert (case(url, 2).state, case(url, 2).curated_by) == ("dropped", "lea")
    tagged = c.post(f"{BASE}/evals/1/tag", data={"csrf": token, "add": "topic:ui, night", "remove": "language:en"})
    assert flash(c, tagged).startswith("ok: case 1 tagged by lea:")
    assert "topic:ui" in case(url, 1).tags and "night" in case(url, 1).tags and "language:en" not in case(url, 1).tags
    assert [(a, e) for a, e, _ in audit(url)] == [("lea", "eval_case_accepted"), ("lea", "eval_case_accepted"),
                                                  ("lea", "eval_case_dropped"), ("lea", "eval_case_tagged")]

    for path, form, message in (
            ("/evals/accept", {"id": ["1", "9"]}, "error: no eval case with id 9"),
            ("/evals/drop", {}, "error: choose at least one case"),
            ("/evals/drop", {"id": "x"}, "error: choose at least one case"),
            ("/evals/1/tag", {"add": " ", "remove": ""}, "error: say what to change"),
            ("/evals/9/tag", {"add": "a"}, "error: no eval case with id 9")):
        assert flash(c, c.post(BASE + path, data={"csrf": token, **form})).startswith(message), path
    assert case(url, 1).state == "accepted" and len(audit(url)) == 4                 # nothing changed
    offsite = c.post(f"{BASE}/evals/drop", data={"csrf": token, "id": "1", "back": "//evil.example/x"})
    assert offsite.headers["location"] == "/review/evals"


def test_reps_and_forged_forms_change_nothing(desk_web: tuple[Settings, TestClient]) -> None:
    settings, lead = desk_web
    rep = client(settings)
    sign_in(rep, "ben")
    rep_token = csrf_of(rep.get(f"{BASE}/queue").text)
    for path in ("/suggestions", "/suggestions/1", "/evals", "/evals/1", "/knowledge"):
        response = rep.get(BASE + path)
        assert response.status_code == 403 and "this page is for the lead role" in response.text, path
    for path in ("/suggestions/1/accept", "/suggestions/1/reject", "/evals/accept", "/evals/drop", "/evals/1/tag"):
        response = rep.post(BASE + path, data={"csrf": rep_token, "id": "1", "reason": "r", "add": "t"})
        assert response.status_code == 403, path
        for form in ({}, {"csrf": "forged"}):
            refused = lead.post(BASE + path, data={**form, "id": "1", "reason": "r", "add": "t"})
            assert refused.status_code == 403 and "security token" in refused.text, (path, form)
    assert suggestion(settings.database.url, 1).state == "open" and case(settings.database.url, 1).state == "new"
    assert audit(settings.database.url) == []


def test_the_quality_page_plots_stored_eval_runs_and_daily_figures(desk_web: tuple[Settings, TestClient]) -> None:
    settings, c = desk_web
    url = settings.database.url
    empty = c.get(f"{BASE}/quality")
    assert "No eval run stored yet" in empty.text and "No stored daily figures" in empty.text
    start = datetime.now(UTC) - timedelta(days=3)
    with db.session(url) as s:
        s.add(EvalRun(set_name="smoke", state="done", cases=1, passed=1, score=1.0, gate={"passed": True},
                      started_at=start, finished_at=start))
        for i, (passed, score, gate) in enumerate(((2, 0.9, True), (1, 0.55, False), (2, 0.93, True))):
            s.add(EvalRun(set_name="default", state="done", cases=2, passed=passed, score=score,
                          gate={"passed": gate, "reasons": [] if gate else ["case 2 passed before, fails now"]},
                          started_at=start + timedelta(hours=i), finished_at=start + timedelta(hours=i, minutes=1)))
    assert quality.refresh(settings, [date.today()]) > 0

    page = c.get(f"{BASE}/quality").text                      # the set run last is shown first
    runs = page[page.index('id="eval-runs"'):page.index('id="stored-daily"')]
    score_chart = runs[runs.index('data-test="chart-runs"'):runs.index('data-test="chart-passfail"')]
    assert score_chart.count("<circle") == 6 and score_chart.count('class="gate-fail"') == 1   # 3 runs, 2 lines
    bars = runs[runs.index('data-test="chart-passfail"'):]
    assert bars.count("<rect") == 4                            # 2+1+2 passed, 1 failed
    assert runs.count('<td data-key="score">') == 3 and "0.550" in runs
    assert c.get(f"{BASE}/quality", params={"set": "smoke"}).text.count('<td data-key="score">') == 1
    plotted = page[page.index('id="stored-daily"'):]
    assert "Auto-sent and approved without edit" in plotted and "Pre-send grader scores" in plotted
    stored = daily(url)
    assert {"auto_send_rate", "grade:tone"} <= {r["name"] for r in stored}
    for row in stored:                                       # today's row of the table: the stored values
        unit = learning.unit(row["name"])
        assert f'<td data-key="{row["name"]}">{metrics.show(row["value"], unit)}</td>' in plotted, row


def test_customer_text_in_cases_and_suggestions_is_shown_as_text(desk_web: tuple[Settings, TestClient]) -> None:
    settings, c = desk_web
    hostile = '<script>window.__x = 1</script><img src=x onerror="window.__y = 1">'
    draft = ask(settings, f"Sync {hostile}", f"Does sync work offline? {hostile}", sender="mallory@hostile.example")
    answer(settings, draft, "Hi,\n\nYes: offline edits sync when the device reconnects, within a minute.\n\nBest,\nAna")
    loop.build(settings)
    with db.reading(settings.database.url) as s:
        case_id = s.exec(select(EvalCase.id).where(EvalCase.draft_id == draft)).one()
        [suggested] = [k.id for k in s.exec(select(KnowledgeSuggestion)) if case_id in k.case_ids]
    for path in (f"/evals/{case_id}", "/evals", f"/suggestions/{suggested}", "/suggestions"):
        text = c.get(BASE + path).text
        assert "<script>window" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;window.__x = 1&lt;/script&gt;" in text, path


# --- pure parts ---------------------------------------------------------------------------------

def test_word_diff_keeps_whitespace_and_marks_changes() -> None:
    assert word_diff("Open Settings now.\nThanks", "Open Settings → Theme now.\nThanks") == [
        Piece("same", "Open Settings "), Piece("added", "→ Theme "), Piece("same", "now.\nThanks")]
    assert word_diff("", "new text") == [Piece("added", "new text")]
    assert word_diff("a b", "a c") == [Piece("same", "a "), Piece("removed", "b"), Piece("added", "c")]
    pieces = word_diff("x <script>", "<b>x</b>")
    assert "".join(p.text for p in pieces if p.op != "removed") == "<b>x</b>"


def test_run_charts_mark_failed_gates_and_stack_cases() -> None:
    runs = [{"id": 1, "score": 0.8, "cases": 4, "passed": 3, "gate_passed": True},
            {"id": 2, "score": None, "cases": 0, "passed": 0, "gate_passed": None},
            {"id": 3, "score": 0.4, "cases": 4, "passed": 1, "gate_passed": False}]
    score, bars = learning.run_charts(runs)
    assert str(score.svg).count("<circle") == 4 and 'class="gate-fail"' in str(score.svg)
    assert ">#3<" in str(score.svg) and str(bars.svg).count("<rect") == 4       # none for an empty run
    assert "failed, #3: 3" in str(bars.svg) and "passed, #2" not in str(bars.svg)
    hostile = str(bar_chart("<b>t</b>", ["<i>"], [Series("<s>", [1.0])], "count"))
    assert "<b>" not in hostile and "<i>" not in hostile and "&lt;s&gt;" in hostile
    assert "no data yet" in str(bar_chart("t", ["a"], [Series("s", [0.0])], "count"))


def test_daily_charts_draw_what_is_stored() -> None:
    figures = learning.by_name([{"day": "2026-12-01", "name": "grade:tone", "value": 0.8, "count": 3},
                                {"day": "2026-12-02", "name": "grade:safety", "value": 1.0, "count": 3},
                                {"day": "2026-12-02", "name": "case_seconds", "value": 21.0, "count": 3}])
    charts = learning.daily_charts(["2026-12-01", "2026-12-02"], figures)
    assert [c.title for c in charts] == ["Pre-send grader scores (mean of the day's drafts)",
                                         "From a rep's final to its eval case"]
    assert charts[0].legend == ["safety", "tone"] and charts[1].legend == ["to case (mean)", "to case (longest)"]
    assert learning.unit("grade:tone") == "rate" and learning.unit("case_seconds_max") == "seconds"
    assert learning.label("label:urgency:high") == "urgency: high"
