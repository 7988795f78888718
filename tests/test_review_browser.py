"""The review page in a real headless Chromium against `mailagent web` running as its own process,
on the sample data `mailagent demo` leaves (SQLite, in-process broker: a decision's follow-up
runs in the web process, so replies reach the aiosmtpd server here), plus two hostile mails.

Screenshots of every page go to $MAILAGENT_TEST_ARTIFACTS/screenshots (else pytest's temporary
folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlmodel import col, select

from mailagent import config
from mailagent.evals import quality
from mailagent.store import accounts, db, metrics
from mailagent.store.models import (
    Action,
    Article,
    AuditEntry,
    Conversation,
    DemoOrder,
    Draft,
    EvalCase,
    EvalFlag,
    Feedback,
    KnowledgeSuggestion,
    Role,
)
from mailagent.store.quality import daily
from mailagent.web.passwords import hash_password

from .support import history
from .support.dovecot import free_port
from .support.hostile import Beacon, html_mail, plain_mail
from .support.smtpd import SmtpServer
from .support.web import PASSWORD, WebServer, artifacts, launch

pytestmark = pytest.mark.slow


@dataclass
class Site:
    server: WebServer
    config: Path
    url: str                        # the database
    smtp: SmtpServer
    beacon: Beacon
    shots: Path

    @property
    def base(self) -> str:
        return self.server.url + "/review"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(self.config, *args)


def _cli(config: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("review")
    port = free_port()
    demo = subprocess.run([sys.executable, "-m", "mailagent", "demo", "--dir", str(root / "demo"), "--smtp-port",
                           str(port)], capture_output=True, text=True, timeout=300, cwd=root)
    assert demo.returncode == 0, demo.stderr
    config = root / "demo" / "config.toml"
    beacon = Beacon()
    for name, raw in (("hostile-html.eml", html_mail(beacon.url)), ("hostile-plain.eml", plain_mail(beacon.url))):
        (root / name).write_bytes(raw)
    _cli(config, "ingest", "--mailbox", "support", str(root / "hostile-html.eml"), str(root / "hostile-plain.eml"))
    smtp = SmtpServer(port).start()
    _cli(config, "run", "--until-idle")
    url = f"sqlite:///{root / 'demo' / 'mailagent.db'}"
    history.add(url, history.sample(datetime.now(UTC)))             # two weeks of closed turns for the quality page
    with config.open("a") as f:
        f.write('\n[report]\ncurrency = "USD"\n\n[report.prices."gpt-4.1-mini"]\n'
                'input_per_million = 0.40\noutput_per_million = 1.60\n')
    for name, role in (("ben", Role.REP), ("cara", Role.REP), ("lea", Role.LEAD), ("ana", Role.OPS)):
        accounts.add(url, name, role, hash_password(PASSWORD))
    server = WebServer(config).start()
    try:
        yield Site(server, config, url, smtp, beacon, artifacts(tmp_path_factory))
    finally:
        server.stop()
        smtp.stop()
        beacon.stop()
        db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def sign_in(browser: Browser, contexts: list[BrowserContext], site: Site, name: str) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    contexts.append(context)
    page = context.new_page()
    page.goto(site.base + "/queue")
    assert page.url.startswith(site.base + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site.base + "/queue")
    return page


def shot(page: Page, site: Site, name: str) -> None:
    page.screenshot(path=str(site.shots / f"{name}.png"), full_page=True)


def draft_of(site: Site, customer: str) -> Draft:
    with db.reading(site.url) as s:
        row = s.exec(select(Draft).join(Conversation, col(Draft.conversation_id) == Conversation.id)
                     .where(Conversation.customer_addr == customer).order_by(col(Draft.id).desc())).first()
    assert row is not None, customer
    return row


def reload(site: Site, model: type[Any], ident: Any) -> Any:
    with db.reading(site.url) as s:
        return s.get(model, ident)


def delivered(site: Site, customer: str) -> list[bytes]:
    return [r.data for r in site.smtp.received if customer in r.recipients]


def audit(site: Site, **where: Any) -> list[tuple[str, str]]:
    with db.reading(site.url) as s:
        rows = s.exec(select(AuditEntry).order_by(col(AuditEntry.id))).all()
    return [(e.actor, e.event) for e in rows if all(getattr(e, k) == v for k, v in where.items())]


def flash(page: Page) -> str:
    return page.locator("#flash").inner_text()


def submit(page: Page, selector: str | None = None, key: str | None = None) -> None:
    """Press a form's button (or a shortcut) and wait for the page it leads to, even when that
    is the same address again."""
    with page.expect_navigation():
        if key:
            page.keyboard.press(key)
        else:
            page.click(selector or "")


# --- the tests ----------------------------------------------------------------------------------

def test_a_rep_signs_in_and_works_the_queue(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    page = sign_in(browser, contexts, site, "ben")
    rows = page.locator("#queue tr.item")
    total = rows.count()
    with db.reading(site.url) as s:
        waiting = len(s.exec(select(Draft).where(col(Draft.state).in_(["held", "escalated"]))).all()) + len(
            s.exec(select(Action).where(Action.state == "proposed")).all())
    assert total == waiting and total > 10
    ages = page.locator("#queue td.age").all_inner_texts()
    assert all(ages)
    shot(page, site, "queue")

    counts = {a.split(" ", 1)[1]: int(a.split(" ", 1)[0]) for a in page.locator(".reasons li a").all_inner_texts()}
    assert sum(counts.values()) == total and counts["action: issue_refund"] == 3
    submit(page, ".reasons a:has-text('unsure drafts are held')")
    assert page.locator("#queue tr.item").count() == counts["unsure drafts are held"]
    assert set(page.locator("#queue td.reason > div:first-child").all_inner_texts()) == {"unsure drafts are held"}

    page.goto(site.base + "/queue?language=de")
    german = page.locator("#queue tr.item")
    assert german.count() >= 1 and set(page.locator("#queue tr.item td:nth-child(5)").all_inner_texts()) == {"de"}

    page.goto(site.base + "/queue?kind=action")
    assert page.locator("#queue tr.item").count() == 3

    page.goto(site.base + "/queue")                   # keyboard: j j Enter opens the second item
    second = page.locator("#queue tr.item").nth(1).get_attribute("data-href")
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert "selected" in (page.locator("#queue tr.item").nth(1).get_attribute("class") or "")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{second.split('#')[0]}**")
    page.keyboard.press("q")
    page.wait_for_url(site.base + "/queue")


def test_approving_a_held_draft_sends_the_reply_once(site: Site, browser: Browser,
                                                    contexts: list[BrowserContext]) -> None:
    customer = "s.laurent@atelier-lumen.example"
    draft = draft_of(site, customer)
    assert draft.state == "held" and draft.text.strip()
    page = sign_in(browser, contexts, site, "ben")
    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    assert page.locator("[data-test=explain]").inner_text().startswith("Decision: hold")
    assert "unsure drafts are held" in page.locator("[data-test=explain]").inner_text()
    assert page.locator(".article summary").count() == len(draft.cited) >= 1
    shot(page, site, "conversation")
    page.once("dialog", lambda dialog: dialog.accept())
    submit(page, key="a")                             # the shortcut asks, then presses "Approve and send"
    assert page.url == site.base + "/queue"
    assert f"draft {draft.id} approved by ben" in flash(page) and "sent" in flash(page)

    [reply] = delivered(site, customer)
    assert draft.text.strip().splitlines()[0].encode() in reply.replace(b"=\r\n", b"")
    done = reload(site, Draft, draft.id)
    assert done.state == "sent" and done.reviewed_by == "ben"
    assert ("ben", "draft_approved") in audit(site, draft_id=draft.id)
    with db.reading(site.url) as s:
        [feedback] = s.exec(select(Feedback).where(Feedback.draft_id == draft.id)).all()
    assert feedback.verdict == "approved" and feedback.reviewer == "ben"

    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    assert "Sent by ben" in page.locator("#reviewed-by").inner_text()
    assert page.locator("#approve").count() == 0
    assert page.locator("article.mail.outbound").count() == 1


def test_edit_and_send_keeps_the_draft_and_the_edit(site: Site, browser: Browser,
                                                   contexts: list[BrowserContext]) -> None:
    customer = "lukas.meier@fjord-labs.example"
    draft = draft_of(site, customer)
    assert draft.state == "held"
    edited = ("Hi Lukas,\n\nthe orange block shows both versions of the page: keep the one you want and "
              "delete the other.\n\nBest regards,\nBen")
    page = sign_in(browser, contexts, site, "ben")
    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    page.keyboard.press("e")
    assert page.evaluate("document.activeElement.id") == "edit-text"
    page.fill("#edit-text", edited)
    submit(page, "#send-edit")
    assert page.url == site.base + "/queue"
    assert "edited and approved by ben" in flash(page)

    with db.reading(site.url) as s:
        [feedback] = s.exec(select(Feedback).where(Feedback.draft_id == draft.id)).all()
    assert feedback.verdict == "edited" and feedback.reviewer == "ben"
    assert feedback.draft_text == draft.text and feedback.final_text == edited      # CRLF from the form made LF
    assert metrics.edit_distance(feedback.draft_text, feedback.final_text) > 0
    [reply] = delivered(site, customer)
    assert b"keep the one you want" in reply.replace(b"=\r\n", b"")
    assert reload(site, Draft, draft.id).final_text == edited
    assert ("ben", "draft_edited") in audit(site, draft_id=draft.id)


def test_rejecting_needs_a_reason_and_sends_nothing(site: Site, browser: Browser,
                                                   contexts: list[BrowserContext]) -> None:
    customer = "mark@thompsonandreed.example"
    draft = draft_of(site, customer)
    page = sign_in(browser, contexts, site, "ben")
    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    page.keyboard.press("r")
    page.keyboard.type("wrong invoices: the customer needs the 2025 ones")
    submit(page, "#reject")
    assert page.url == site.base + "/queue"
    assert f"draft {draft.id} rejected by ben" in flash(page)
    assert reload(site, Draft, draft.id).state == "rejected" and delivered(site, customer) == []
    assert ("ben", "draft_rejected") in audit(site, draft_id=draft.id)


def test_approving_a_refund_runs_it_once(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    customer = "pieter@devries-consultancy.example"
    with db.reading(site.url) as s:
        action = s.exec(select(Action).where(Action.customer == customer, Action.state == "proposed")).one()
    assert reload(site, DemoOrder, "NN-1017").refunded == 0.0
    page = sign_in(browser, contexts, site, "ben")
    stale = page.context.new_page()
    stale.goto(site.base + "/actions")
    page.goto(site.base + "/actions")
    card = page.locator(f"#action-{action.id}")
    assert "8.00 EUR" in card.inner_text() and action.idempotency_key in card.inner_text()
    shot(page, site, "actions")
    submit(page, f"[data-action-approve='{action.id}']")
    # The reply that confirms it is shown to the rep who approved, on its conversation, and waits.
    assert page.url == f"{site.base}/conversations/{action.conversation_id}"
    assert f"action {action.id} (issue_refund) approved by ben" in flash(page)
    assert "the reply is held for you to send or edit" in flash(page)

    assert reload(site, DemoOrder, "NN-1017").refunded == 8.0
    assert reload(site, Action, action.id).state == "executed"
    assert [e for _, e in audit(site, action_id=action.id)] == ["proposed", "awaits_rep", "approved", "executed"]
    assert delivered(site, customer) == []
    page.once("dialog", lambda dialog: dialog.accept())
    submit(page, key="a")                                    # "Approve and send"
    [reply] = delivered(site, customer)
    assert b"8.00 EUR" in reply.replace(b"=\r\n", b"")

    submit(stale, f"[data-action-approve='{action.id}']")    # the same button on a page opened before
    assert "only proposed actions can be decided" in flash(stale) and "decided by ben" in flash(stale)
    assert reload(site, DemoOrder, "NN-1017").refunded == 8.0
    assert [e for _, e in audit(site, action_id=action.id)].count("executed") == 1
    assert len(delivered(site, customer)) == 1
    page.goto(site.base + "/actions")
    assert page.locator("table.list td:has-text('executed')").count() >= 1


def test_take_over_and_release(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    draft = draft_of(site, "greg.walsh@walsh-media.example")
    page = sign_in(browser, contexts, site, "ben")
    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    submit(page, "#takeover")
    assert "you took conversation" in flash(page)
    assert page.locator("#taken-by").inner_text() == "ben"
    assert reload(site, Conversation, draft.conversation_id).taken_by == "ben"

    other = sign_in(browser, contexts, site, "cara")
    other.goto(f"{site.base}/conversations/{draft.conversation_id}")
    assert other.locator("#taken-by").inner_text() == "ben"

    submit(page, key="t")                                     # the shortcut presses "Release"
    assert "handed back to the agent" in flash(page)
    assert reload(site, Conversation, draft.conversation_id).taken_by is None
    assert audit(site, conversation_id=draft.conversation_id)[-2:] == [("ben", "taken"), ("ben", "released")]


def test_a_post_without_the_csrf_token_is_refused(site: Site, browser: Browser,
                                                 contexts: list[BrowserContext]) -> None:
    draft = draft_of(site, "aylin.demir@kraftwerk-studio.example")
    assert draft.state == "held"
    page = sign_in(browser, contexts, site, "ben")
    target = f"{site.base}/drafts/{draft.id}/approve"
    bare = page.request.post(target, form={"conversation_id": str(draft.conversation_id)}, max_redirects=0)
    assert bare.status == 403 and "security token is missing or wrong" in bare.text()
    wrong = page.request.post(target, form={"csrf": "forged", "mode": "edit", "text": "pay me"}, max_redirects=0)
    assert wrong.status == 403

    page.goto(f"{site.base}/conversations/{draft.conversation_id}")      # the real form, its token removed
    page.evaluate("document.querySelector('#approve-form input[name=csrf]').remove()")
    submit(page, "#approve")
    assert "security token is missing or wrong" in page.locator(".error-page").inner_text()
    assert reload(site, Draft, draft.id).state == "held"
    assert delivered(site, "aylin.demir@kraftwerk-studio.example") == []
    assert audit(site, draft_id=draft.id) == []

    flagged = page.request.post(f"{site.base}/conversations/{draft.conversation_id}/take", form={}, max_redirects=0)
    assert flagged.status == 403 and reload(site, Conversation, draft.conversation_id).taken_by is None


def test_roles_a_rep_cannot_open_lead_or_ops_pages(site: Site, browser: Browser,
                                                  contexts: list[BrowserContext]) -> None:
    rep = sign_in(browser, contexts, site, "ben")
    for path, role in (("/ops", "ops"), ("/quality", "lead"), ("/flags", "lead")):
        response = rep.goto(site.base + path)
        assert response is not None and response.status == 403
        assert f"this page is for the {role} role" in rep.locator(".error-page").inner_text()
    assert rep.locator("header nav a").all_inner_texts() == ["Queue", "Actions"]

    lead = sign_in(browser, contexts, site, "lea")
    assert lead.goto(site.base + "/quality").status == 200                         # type: ignore[union-attr]
    assert lead.goto(site.base + "/ops").status == 403                             # type: ignore[union-attr]

    ops = sign_in(browser, contexts, site, "ana")
    assert ops.goto(site.base + "/ops").status == 200                              # type: ignore[union-attr]
    assert "The policy files and their fixtures are valid." in ops.inner_text("main")
    assert {"ben", "cara", "lea", "ana"} <= set(ops.locator("table.list td:first-child").all_inner_texts())
    shot(ops, site, "ops")


def test_hostile_customer_mail_renders_inert(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    page = sign_in(browser, contexts, site, "ben")
    dialogs: list[str] = []
    console: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: console.append(m.text))

    for customer in ("mallory@hostile.example", "eve@hostile.example"):
        draft = draft_of(site, customer)
        page.goto(f"{site.base}/conversations/{draft.conversation_id}")
        page.wait_for_load_state("networkidle")
        body = page.locator("[data-test=mail-body]")
        assert body.count() == 1
        active = ["SCRIPT", "IMG", "SVG", "IFRAME", "A", "LINK", "META", "STYLE", "OBJECT", "EMBED"]
        assert page.locator("article.mail.inbound *").evaluate_all(
            "(els, active) => els.filter(e => active.includes(e.tagName.toUpperCase())).length", active) == 0
        assert body.evaluate("e => e.children.length") == 0                     # text only, no elements
        warning = page.locator("[data-test=hidden-warning]")
        assert warning.is_visible()
        page.click("[data-test=hidden-warning] summary")
        assert "HIDDEN INSTRUCTION" in warning.inner_text()
        shot(page, site, f"hostile-{customer.split('@')[0]}")

    text = page.locator("[data-test=mail-body]").inner_text()               # eve's plain part, shown as text
    assert "<script>window.__xss_script = 1" in text and "javascript:window.__xss_link" in text
    assert '<img src=x onerror="window.__xss_file = 1">.pdf' in page.locator(".attachments").inner_text()
    assert page.locator("h1").inner_text() == '<img src=x onerror="window.__xss_subject2 = 1">'

    page.goto(site.base + "/queue")
    assert page.locator("#queue a:has-text('<script>window.__xss_subject = 1</script>')").count() == 1
    page.goto(f"{site.base}/conversations/{draft_of(site, 'mallory@hostile.example').conversation_id}")
    assert "<img src=x onerror" in page.locator("article.mail.inbound").inner_text()   # entity-escaped markup, as text

    assert page.evaluate("Object.keys(window).filter(k => k.startsWith('__xss'))") == []
    assert dialogs == [] and site.beacon.hits == []
    assert not [m for m in console if "Content Security Policy" in m]       # nothing even tried to run


def test_two_reps_approving_the_same_draft(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    customer = "raj@stackforge.example"
    draft = draft_of(site, customer)
    assert draft.state == "held"
    ben, cara = sign_in(browser, contexts, site, "ben"), sign_in(browser, contexts, site, "cara")
    for page in (ben, cara):
        page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    submit(ben, "#approve")
    assert ben.url == site.base + "/queue"
    submit(cara, "#approve")
    assert cara.url == f"{site.base}/conversations/{draft.conversation_id}"
    assert f"draft {draft.id} is sent (reviewed by ben)" in flash(cara)
    assert "Sent by ben" in cara.locator("#reviewed-by").inner_text()
    shot(cara, site, "two-reps-one-wins")
    assert len(delivered(site, customer)) == 1 and reload(site, Draft, draft.id).reviewed_by == "ben"
    assert [a for a, e in audit(site, draft_id=draft.id)] == ["ben"]


def test_a_flag_for_the_eval_set_is_stored_and_listed(site: Site, browser: Browser,
                                                     contexts: list[BrowserContext]) -> None:
    draft = draft_of(site, "nina.hoffmann@lernwerk.example")
    page = sign_in(browser, contexts, site, "ben")
    page.goto(f"{site.base}/conversations/{draft.conversation_id}")
    page.keyboard.press("f")
    page.keyboard.type("guest permissions: the answer must say that trainers need the Editor role")
    submit(page, "#flag")
    assert "flagged for the eval set" in flash(page)
    with db.reading(site.url) as s:
        [row] = s.exec(select(EvalFlag).where(EvalFlag.conversation_id == draft.conversation_id)).all()
    assert (row.flagged_by, row.draft_id) == ("ben", draft.id) and "Editor role" in row.note
    assert row.handled_at is not None and row.eval_case_id is not None        # the case is made at once
    with db.reading(site.url) as s:
        case = s.get(EvalCase, row.eval_case_id)
    assert case is not None and case.source == "flag" and case.draft_id == draft.id
    assert ("ben", "eval_flagged") in audit(site, conversation_id=draft.conversation_id)

    lead = sign_in(browser, contexts, site, "lea")
    lead.goto(site.base + "/flags")
    assert "Editor role" in lead.locator("table.list").inner_text()


def test_the_quality_page_shows_what_the_report_prints(site: Site, browser: Browser,
                                                      contexts: list[BrowserContext]) -> None:
    page = sign_in(browser, contexts, site, "lea")
    page.goto(site.base + "/quality")
    periods = page.locator("section.panel:not(#eval-runs):not(#stored-daily)")
    assert periods.locator("svg.chart").count() == 2 * len(metrics.PIPELINE.charts)
    assert periods.locator("svg.chart polyline").count() >= 2 * len(metrics.PIPELINE.charts)   # every chart has a line
    rows = json.loads(site.cli("report", "--json").stdout)
    for granularity in ("day", "week"):
        periods = [r for r in rows if r["granularity"] == granularity]
        shown = page.locator(f"[data-test=figures-{granularity}] tbody tr")
        assert shown.count() == len(periods) == {"day": 14, "week": 8}[granularity]
        for row, expected in zip(shown.all(), reversed(periods), strict=True):      # the page lists newest first
            assert row.locator("td").first.inner_text() == expected["period"]
            for figure in metrics.PIPELINE.figures:
                value = metrics.show(expected[figure.key], figure.unit, "USD")
                assert row.locator(f"td[data-key={figure.key}]").inner_text() == value, (expected["period"], figure.key)
    yesterday = [r for r in rows if r["granularity"] == "day"][-2]
    assert yesterday["drafts"] >= 8 and yesterday["cost_per_conversation"] is not None
    shot(page, site, "quality")


def test_signing_out_ends_the_session(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    page = sign_in(browser, contexts, site, "cara")
    cookies = page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "mailagent_session"]
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/review"
    submit(page, "text=Sign out")
    assert page.url == f"{site.base}/login"
    replay = browser.new_context()
    contexts.append(replay)
    replay.add_cookies([session])                             # the old cookie is worth nothing now
    again = replay.new_page()
    again.goto(site.base + "/queue")
    assert again.url.startswith(site.base + "/login")


# --- leads: the learning loop -------------------------------------------------------------------

EXTRA = "Outlook users: the mail may land in the Other tab of the Focused Inbox, so look there as well."
ANDROID_FINAL = ("Hi Ben,\n\nthe Android app signs you out when the system stops it in the background. Open Android "
                 "Settings → Apps → Nimbus Notes → Battery and choose Unrestricted, then sign in once more.\n\n"
                 "Best regards,\nCara")


def answered(site: Site, customer: str, final: str | None = None, edit: bool = True) -> Draft:
    """A rep has sent a reply to this customer (from the command line, as `drafts approve` does),
    and the learning step (`evals build`, what the clock runs) has made its case."""
    draft = draft_of(site, customer)
    if draft.state in ("held", "escalated"):
        text = final if final is not None else draft.text.replace(
            "If anything is still unclear", f"{EXTRA}\n\nIf anything is still unclear")
        assert text != draft.text
        path = site.config.with_name(f"final-{draft.id}.txt")
        path.write_text(text)
        site.cli("drafts", "approve", str(draft.id), "--edit", str(path), "--as", "cara")
    site.cli("evals", "build")
    return reload(site, Draft, draft.id)


def suggestion_for(site: Site, article_id: str) -> KnowledgeSuggestion:
    with db.reading(site.url) as s:
        found = s.exec(select(KnowledgeSuggestion).where(KnowledgeSuggestion.article_id == article_id)).first()
    assert found is not None, article_id
    return found


def test_a_lead_accepts_a_knowledge_suggestion(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    jonas = answered(site, "jonas.becker@mailbox.example")
    answered(site, "ben.schneider@mailbox.example", ANDROID_FINAL)
    edit = suggestion_for(site, "password-reset.en")
    assert edit.kind == "edit" and edit.state == "open" and jonas.conversation_id in edit.conversation_ids

    page = sign_in(browser, contexts, site, "lea")
    page.click("header nav a:has-text('Suggestions')")
    page.wait_for_url(site.base + "/suggestions")
    rows = page.locator("#suggestions tbody tr[data-id]")
    assert rows.count() >= 2
    shot(page, site, "suggestions")
    page.click(f"#suggestions tr[data-id='{edit.id}'] a")
    page.wait_for_url(f"{site.base}/suggestions/{edit.id}")
    assert page.locator("[data-test=article-diff] .added").first.inner_text().strip().startswith("##")
    assert EXTRA in page.locator("[data-test=article-diff] .added").all_inner_texts()[-1]
    assert page.locator("[data-test=article-diff] .removed").count() == 0      # an edit adds a section
    source = page.locator(f"#sources a[href$='/conversations/{jonas.conversation_id}']")
    assert "Password reset email never arrives" in source.inner_text()
    assert EXTRA in page.locator("#sources").inner_text()               # the rep's final it came from
    shot(page, site, "suggestion")

    page.select_option("#intent", "how_to")
    submit(page, "#accept")
    assert f"suggestion {edit.id} accepted by lea: article password-reset.en is now version 2" in flash(page)
    assert "Accepted by lea" in page.locator("#decided").inner_text()
    assert page.locator("#accept").count() == 0

    page.click("#decided a")                                                   # the article as the agent reads it
    page.wait_for_url(f"{site.base}/knowledge/password-reset.en")
    assert EXTRA in page.locator("#article-body").inner_text()
    newest = page.locator("#versions tbody tr").first.inner_text()
    assert newest.startswith("2") and f"suggestion {edit.id}" in newest and "lea" in newest
    shot(page, site, "article")
    page.click("header nav a:has-text('Knowledge')")
    page.fill("#q", "outlook focused inbox other tab")
    submit(page, "button:has-text('Search')")
    assert page.locator("#hits tbody tr").first.locator("code").inner_text() == "password-reset.en"
    shot(page, site, "knowledge-search")
    [hit, *_] = json.loads(site.cli("kb", "search", "outlook", "focused", "inbox", "--json").stdout)
    assert hit["id"] == "password-reset.en"                          # the CLI, another process, too
    assert ("lea", "suggestion_accepted") in audit(site)


def test_a_lead_curates_eval_cases(site: Site, browser: Browser, contexts: list[BrowserContext]) -> None:
    jonas = answered(site, "jonas.becker@mailbox.example")
    with db.reading(site.url) as s:
        case = s.exec(select(EvalCase).where(EvalCase.draft_id == jonas.id)).one()
    assert case.source == "edit"
    page = sign_in(browser, contexts, site, "lea")
    page.goto(site.base + "/evals")
    page.select_option("#case-filters select[name=source]", "edit")
    submit(page, "#case-filters button")
    chips = page.locator("#cases tbody td:nth-child(3)").all_inner_texts()
    assert chips and set(chips) == {"edit"}
    assert page.locator(f"#cases tr[data-id='{case.id}']").count() == 1
    shot(page, site, "eval-cases")

    page.click(f"#cases tr[data-id='{case.id}'] a")
    page.wait_for_url(f"{site.base}/evals/{case.id}")
    assert "Password reset email never arrives" in page.locator("h1").inner_text()
    assert "reset" in page.locator("[data-test=latest]").inner_text()            # the snapshot: what the agent saw
    assert EXTRA not in page.locator("#draft").inner_text() and EXTRA in page.locator("#reference").inner_text()
    assert EXTRA in " ".join(page.locator("[data-test=case-diff] .added").all_inner_texts())
    shot(page, site, "eval-case")

    page.fill("#tag-add", "topic:password")
    submit(page, "#tag")
    assert f"case {case.id} tagged by lea" in flash(page)
    assert "topic:password" in page.locator("#tags").inner_text()
    submit(page, "#drop")
    assert f"dropped by lea: case(s) {case.id}" in flash(page)
    assert page.locator("#state").inner_text() == "dropped"
    done = reload(site, EvalCase, case.id)
    assert (done.state, done.curated_by) == ("dropped", "lea") and "topic:password" in done.tags
    with db.reading(site.url) as s:
        events = [(e.actor, e.event) for e in s.exec(select(AuditEntry)) if e.details.get("case_id") == case.id]
    assert events == [("lea", "eval_case_tagged"), ("lea", "eval_case_dropped")]

    page.goto(site.base + "/evals?tag=topic:password")                          # filter by tag and state
    assert page.locator("#cases tbody tr[data-id]").count() == 1
    page.goto(site.base + "/evals?state=new")
    waiting = page.locator("#cases tbody tr[data-id]")
    ids = [waiting.nth(i).get_attribute("data-id") for i in range(min(2, waiting.count()))]
    assert ids
    for ident in ids:
        page.check(f"#cases tr[data-id='{ident}'] input[type=checkbox]")
    submit(page, "#accept-selected")
    assert f"accepted by lea: case(s) {', '.join(ids)}" in flash(page)
    assert page.url == site.base + "/evals?state=new"                          # back to the same filters
    assert all(reload(site, EvalCase, int(i)).state == "accepted" for i in ids)


def test_leads_pages_refuse_reps_and_forged_forms(site: Site, browser: Browser,
                                                  contexts: list[BrowserContext]) -> None:
    android = answered(site, "ben.schneider@mailbox.example", ANDROID_FINAL)
    with db.reading(site.url) as s:
        [new] = [k for k in s.exec(select(KnowledgeSuggestion)) if android.conversation_id in k.conversation_ids]
        case = s.exec(select(EvalCase).where(EvalCase.draft_id == android.id)).one()
    assert new.kind == "new" and new.state == "open" and case.source == "rep-written"
    state = case.state                                                      # another test may have curated it

    rep = sign_in(browser, contexts, site, "ben")
    for path in ("/suggestions", f"/suggestions/{new.id}", "/evals", f"/evals/{case.id}", "/knowledge"):
        response = rep.goto(site.base + path)
        assert response is not None and response.status == 403, path
        assert "this page is for the lead role" in rep.locator(".error-page").inner_text()
    token = rep.locator("form[action$='/logout'] input[name=csrf]").get_attribute("value")
    for path, form in ((f"/suggestions/{new.id}/accept", {}), (f"/suggestions/{new.id}/reject", {"reason": "r"}),
                       ("/evals/drop", {"id": str(case.id)}), (f"/evals/{case.id}/tag", {"add": "x"})):
        refused = rep.request.post(site.base + path, form={"csrf": token or "", **form}, max_redirects=0)
        assert refused.status == 403, path                                    # a rep's own valid token

    lead = sign_in(browser, contexts, site, "lea")
    lead.goto(f"{site.base}/suggestions/{new.id}")
    bare = lead.request.post(f"{site.base}/suggestions/{new.id}/accept", form={"intent": "how_to"}, max_redirects=0)
    assert bare.status == 403 and "security token is missing or wrong" in bare.text()
    lead.evaluate("document.querySelector('#accept-form input[name=csrf]').remove()")   # the real form, no token
    submit(lead, "#accept")
    assert "security token is missing or wrong" in lead.locator(".error-page").inner_text()
    forged = lead.request.post(f"{site.base}/evals/drop", form={"csrf": "forged", "id": str(case.id)}, max_redirects=0)
    assert forged.status == 403
    assert reload(site, KnowledgeSuggestion, new.id).state == "open" and reload(site, EvalCase, case.id).state == state
    with db.reading(site.url) as s:
        assert s.get(Article, new.article_id) is None                         # no article written
        assert not [e for e in s.exec(select(AuditEntry)) if e.details.get("suggestion_id") == new.id]


def test_the_quality_page_plots_eval_runs_and_daily_figures(site: Site, browser: Browser,
                                                            contexts: list[BrowserContext]) -> None:
    answered(site, "jonas.becker@mailbox.example")
    cases = json.loads(site.cli("evals", "list", "--json").stdout)
    site.cli("evals", "accept", *[str(c["id"]) for c in cases if c["state"] == "new"], "--as", "lea")
    empty = site.config.with_name("no-articles")
    empty.mkdir(exist_ok=True)
    without = site.config.with_name("candidate-without-articles.toml")     # a candidate run between two live ones
    without.write_text(f'[knowledge]\ndirectory = "{empty}"\n')
    for extra in ((), ("--config", str(without), "--baseline", "last"), ("--baseline", "last")):
        run = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(site.config), "eval", "run", *extra],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode in (0, 1) and "gate:" in run.stdout, run.stderr      # 1: the gate failed, stored too
    runs = json.loads(site.cli("eval", "runs", "--set", "default", "--json").stdout)
    assert len(runs) >= 3 and all(r["state"] == "done" for r in runs)
    settings = config.load(site.config)
    today = datetime.now(UTC).date()
    assert quality.refresh(settings, [today - timedelta(days=n) for n in range(14)]) > 0   # what record_quality does
    stored = daily(site.url, since=today - timedelta(days=13))

    page = sign_in(browser, contexts, site, "lea")
    page.goto(site.base + "/quality")
    chart = page.locator("[data-test=chart-runs] svg.chart")
    assert chart.locator("circle").count() == 2 * len(runs)                  # score and pass rate, one point per run
    assert chart.locator("circle.gate-fail").count() == sum(r["gate_passed"] is False for r in runs)
    assert chart.locator("text.tick").last.text_content() == f"#{runs[-1]['id']}"
    bars = page.locator("[data-test=chart-passfail] rect")
    assert bars.count() == sum((r["passed"] > 0) + (r["cases"] > r["passed"]) for r in runs)
    table = page.locator("[data-test=eval-runs] tbody tr")
    assert table.count() == len(runs)
    assert table.first.locator("td[data-key=score]").inner_text() == f"{runs[-1]['score']:.3f}"
    names = {r["name"] for r in stored}
    assert {"auto_send_rate", "approved_unedited_rate", "edit_distance"} <= names
    assert any(n.startswith("grade:") for n in names)
    daily_charts = page.locator("[data-test=daily-chart]")
    titles = daily_charts.locator("figcaption").all_inner_texts()
    assert any(t.startswith("Auto-sent and approved without edit") for t in titles)
    assert any(t.startswith("Pre-send grader scores") for t in titles)
    grades = daily_charts.filter(has_text="Pre-send grader scores").locator("circle")
    assert grades.count() == sum(r["name"].startswith("grade:") for r in stored)      # a point per stored day and grade
    page.locator("#eval-runs").scroll_into_view_if_needed()
    shot(page, site, "quality-loop")
    page.set_viewport_size({"width": 1400, "height": 1250})
    page.evaluate("document.getElementById('eval-runs').scrollIntoView()")
    page.screenshot(path=str(site.shots / "quality-runs.png"))
