"""Knowledge base: reading article files, syncing them, and searching on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from mailagent.config import DATA
from mailagent.knowledge.articles import ArticleFile, read_articles
from mailagent.knowledge.search import SyncResult, search, sync
from mailagent.store import db
from mailagent.store.models import Article
from mailagent.tomlfile import FileError

SHIPPED = DATA / "knowledge"


def write(directory: Path, id: str, title: str, body: str, *, tags: str = "[]") -> Path:
    """An article file; its locale is the one in its name."""
    path = directory / f"{id}.md"
    locale = id.rpartition(".")[2]
    path.write_text(f"---\ntitle: {title}\ntags: {tags}\nlocale: {locale}\nupdated: 2026-09-14\n---\n\n{body}\n")
    return path


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A small knowledge base in three languages."""
    directory = tmp_path / "knowledge"
    directory.mkdir()
    write(directory, "password-reset.en", "Reset your password", """# Reset your password

1. Go to the login page and click **Forgot password?**
2. Enter your email address and click **Send reset link**. The link is valid for 60 minutes.

## The reset email does not arrive

Wait five minutes and check your spam or junk folder. Company filters sometimes quarantine automated mail.

## Change your password

Open **Settings → Security**, enter your current password and then the new one twice. Other
devices are signed out after the change.""", tags="[account, password, login]")
    write(directory, "download-invoices.en", "Download invoices", """Every payment creates an invoice.

Open **Settings → Billing → Invoice history** and click **Download PDF** next to an invoice, or
**Download all** for a ZIP file with every invoice of a year.""", tags="[billing, invoices]")
    write(directory, "refund-policy.en", "Refund policy", """Annual plans can be refunded in full within 14 days
of the payment. Monthly plans are not refunded, but you keep access until the end of the period.
To ask for a refund, reply to your receipt.""", tags="[billing, refunds]")
    write(directory, "cancel-subscription.en", "Cancel your subscription", """Open **Settings → Billing** and
click **Cancel subscription**. Your workspace switches to the free plan at the end of the billing
period. Cancelling does not trigger a refund by itself; see the refund policy.""", tags="[billing]")
    write(directory, "two-factor.en", "Two-factor authentication", """Protect your account with a second step
after your password: a six-digit code from an authenticator app.

Lost your phone? Sign in with one of your recovery codes.""", tags="[security, 2fa]")
    write(directory, "download-invoices.de", "Rechnungen herunterladen", """Für jede Zahlung stellen wir eine
Rechnung aus. Öffnen Sie **Einstellungen → Abrechnung → Rechnungsverlauf** und klicken Sie auf
**PDF herunterladen**.""", tags="[abrechnung, rechnungen]")
    write(directory, "password-reset.es", "Cómo restablecer tu contraseña", """Abre la página de inicio de
sesión y haz clic en **¿Olvidaste tu contraseña?**. Te enviaremos un enlace para elegir una contraseña
nueva.""", tags="[cuenta, contraseña]")
    return directory


def _rows(url: str) -> dict[str, Article]:
    with db.session(url) as s:
        return {row.id: row for row in s.exec(select(Article))}


# --- reading files ----------------------------------------------------------------------------

def test_an_article_file_is_read_with_its_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "billing-faq.en.md"
    path.write_bytes(b'---\r\ntitle: "Billing: the FAQ"\r\ntags: [billing, "vat"]\r\nlocale: en\r\n'
                     b"# a comment\r\n---\r\n\r\nBody text.\r\n")
    [article] = read_articles(tmp_path)
    assert article == ArticleFile(id="billing-faq.en", title="Billing: the FAQ", tags=("billing", "vat"),
                                  locale="en", updated="", body="Body text.", path=path, sha256=article.sha256)
    assert len(article.sha256) == 64


def test_every_problem_of_every_bad_file_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "a-no-front-matter.en.md").write_text("# Just a body\n")
    (tmp_path / "b-unclosed.en.md").write_text("---\ntitle: Oops\n")
    (tmp_path / "c-many.en.md").write_text(
        "---\nlocale: en\ncolour: blue\nupdated: 2026-13-01\ntags: billing\n---\n\n")
    (tmp_path / "d-locale.de.md").write_text("---\ntitle: Hallo\nlocale: en\n---\nText\n")
    (tmp_path / "e-unknown-locale.md").write_text(
        "---\ntitle: Bonjour\nlocale: fr\ntitle: Again\nno colon\n---\nTexte\n")
    write(tmp_path, "f-fine.en", "Fine", "This one is fine.")
    with pytest.raises(FileError) as caught:
        read_articles(tmp_path)
    assert str(caught.value).splitlines() == [
        f"{tmp_path}/a-no-front-matter.en.md:1: missing front matter: the file must start with a --- line",
        f"{tmp_path}/b-unclosed.en.md:1: the front matter has no closing --- line",
        f"{tmp_path}/c-many.en.md:3: colour: unknown key (known: title, tags, locale, updated, intent)",
        f"{tmp_path}/c-many.en.md:1: title: required key is missing",
        f"{tmp_path}/c-many.en.md:4: updated: expected a date like 2026-09-14, got '2026-13-01'",
        f"{tmp_path}/c-many.en.md:5: tags: expected a list like [billing, invoices], got 'billing'",
        f"{tmp_path}/c-many.en.md:6: the article has no body below the front matter",
        f"{tmp_path}/d-locale.de.md:3: locale: 'en' does not match the file name (*.de.md)",
        f"{tmp_path}/e-unknown-locale.md:4: title: duplicate key (first on line 2)",
        f"{tmp_path}/e-unknown-locale.md:5: expected `key: value`",
        f"{tmp_path}/e-unknown-locale.md:3: locale: must be one of en, de, es, got 'fr'",
    ]


def test_a_missing_directory_is_an_error_not_an_empty_knowledge_base(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="not a directory"):
        read_articles(tmp_path / "nowhere")


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped knowledge folder")
def test_every_shipped_article_parses_syncs_and_is_found_by_its_title(sqlite_url: str) -> None:
    articles = read_articles(SHIPPED)
    assert sync(sqlite_url, SHIPPED).added == len(articles) > 0
    for article in articles:
        assert article.id in [hit.id for hit in search(sqlite_url, article.title, locale=article.locale, limit=3)]


# --- sync -------------------------------------------------------------------------------------

def test_sync_adds_updates_removes_and_is_idempotent(any_db_url: str, tmp_path: Path) -> None:
    write(tmp_path, "a.en", "Alpha", "About gardening.")
    write(tmp_path, "b.en", "Beta", "About sailing.")
    write(tmp_path, "c.en", "Gamma", "About cooking.")
    assert sync(any_db_url, tmp_path) == SyncResult(added=3, updated=0, removed=0, unchanged=0)
    assert sync(any_db_url, tmp_path) == SyncResult(added=0, updated=0, removed=0, unchanged=3)

    write(tmp_path, "a.en", "Alpha", "About woodworking.", tags="[hobby]")
    (tmp_path / "b.en.md").unlink()
    write(tmp_path, "d.en", "Delta", "About sailing too.")
    assert sync(any_db_url, tmp_path) == SyncResult(added=1, updated=1, removed=1, unchanged=1)
    assert sync(any_db_url, tmp_path) == SyncResult(added=0, updated=0, removed=0, unchanged=3)

    rows = _rows(any_db_url)
    assert sorted(rows) == ["a.en", "c.en", "d.en"]
    assert (rows["a.en"].body, rows["a.en"].tags) == ("About woodworking.", ["hobby"])
    # The full-text index follows every change.
    assert [hit.id for hit in search(any_db_url, "woodworking")] == ["a.en"]
    assert search(any_db_url, "gardening") == []
    assert [hit.id for hit in search(any_db_url, "sailing")] == ["d.en"]


def test_an_invalid_file_stops_the_sync_before_anything_is_written(any_db_url: str, tmp_path: Path) -> None:
    write(tmp_path, "a.en", "Alpha", "About gardening.")
    sync(any_db_url, tmp_path)
    write(tmp_path, "b.en", "Beta", "About sailing.")
    (tmp_path / "a.en.md").write_text("no front matter")
    with pytest.raises(FileError, match="a.en.md:1: missing front matter"):
        sync(any_db_url, tmp_path)
    assert list(_rows(any_db_url)) == ["a.en"]


# --- search -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("query", "locale", "expected"), [
    ("How do I reset my password?", None, "password-reset.en"),
    ("I never got the reset email, I checked spam already", None, "password-reset.en"),
    ("Where can I download my invoices for last year?", None, "download-invoices.en"),
    ("I'd like a refund please", None, "refund-policy.en"),
    ("How do I cancel my subscription?", None, "cancel-subscription.en"),
    ("I lost my phone and can't get a 2FA code", None, "two-factor.en"),
    ("Wo kann ich meine Rechnungen herunterladen?", "de", "download-invoices.de"),
    ("Hola, olvidé mi contraseña. ¿Qué hago?", "es", "password-reset.es"),
])
def test_search_finds_the_article_for_a_customer_question(any_db_url: str, kb: Path, query: str,
                                                          locale: str | None, expected: str) -> None:
    sync(any_db_url, kb)
    hits = search(any_db_url, query, locale=locale)
    assert hits[0].id == expected
    assert hits[0].score > 0.5
    assert all(hit.score < hits[0].score for hit in hits[1:])


def test_a_long_email_finds_the_article_with_a_lower_score(any_db_url: str, kb: Path) -> None:
    """The score is how much of what was written the article covers: greetings, names and the
    story around the question count too."""
    sync(any_db_url, kb)
    email = """Hi there,

    since this morning I can't sign in. I clicked "Forgot password?" twice but the reset email never
    came, not even in the spam folder. Our office network is a bit strict.

    Thanks a lot,
    Tom Baker, Baker & Sons Ltd."""
    [first, *others] = search(any_db_url, email)
    assert first.id == "password-reset.en"
    assert 0.3 < first.score < search(any_db_url, "password reset email not in spam")[0].score
    assert all(hit.score < first.score / 2 for hit in others)


def test_a_title_match_ranks_above_a_mention_in_the_body(any_db_url: str, kb: Path) -> None:
    sync(any_db_url, kb)
    hits = search(any_db_url, "refund")
    assert [hit.id for hit in hits] == ["refund-policy.en", "cancel-subscription.en"]
    assert hits[0].score > 0.8 > 0.5 > hits[1].score > 0.2


def test_an_unrelated_question_scores_low(any_db_url: str, kb: Path) -> None:
    sync(any_db_url, kb)
    for query in ["What is the weather in Paris?", "Do you have a good recipe for lasagna?",
                  "I just wanted to say your team is great"]:
        assert all(hit.score < 0.2 for hit in search(any_db_url, query)), query


def test_articles_in_the_preferred_locale_come_first_and_others_are_the_fallback(any_db_url: str, kb: Path) -> None:
    sync(any_db_url, kb)

    def ids(query: str, locale: str) -> list[str]:
        return [hit.id for hit in search(any_db_url, query, locale=locale)]

    assert ids("PDF", "de") == ["download-invoices.de", "download-invoices.en"]
    assert ids("PDF", "en") == ["download-invoices.en", "download-invoices.de"]
    assert ids("invoice PDF", "es") == ["download-invoices.en", "download-invoices.de"]   # none in Spanish


def test_hostile_query_syntax_is_only_text(any_db_url: str, kb: Path) -> None:
    sync(any_db_url, kb)
    for query in ["AND OR NOT ( ) * : ^ NEAR", '"', "'", '"unbalanced', "OR", "a_b", "-reset +link",
                  "pass & word | !reset <-> (", "x" * 5000, "\x00", "😀", "", "   ", "日本語のメール"]:
        assert all(0 < hit.score <= 1 for hit in search(any_db_url, query)), query
    for query in ["NEAR(password reset, 2)", "title:password", "password*", "password OR"]:
        assert search(any_db_url, query)[0].id == "password-reset.en", query


def test_the_snippet_is_the_part_of_the_body_that_matches(any_db_url: str, kb: Path) -> None:
    sync(any_db_url, kb)
    [hit, *_] = search(any_db_url, "The reset email never arrives, is it in spam?")
    assert hit.id == "password-reset.en" and hit.tags == ("account", "password", "login")
    assert hit.snippet == ("Wait five minutes and check your spam or junk folder. "
                           "Company filters sometimes quarantine automated mail.")
    assert hit.body.startswith("# Reset your password\n\n1. Go to the login page")


def test_both_engines_give_the_same_hits_and_scores(sqlite_url: str, pg_url: str, kb: Path) -> None:
    sync(sqlite_url, kb)
    sync(pg_url, kb)
    for query, locale in [("password reset link", None), ("billing", "en"), ("Rechnung PDF", "de"),
                          ("contraseña", "es"), ("my account, my phone, my invoices and a refund", None)]:
        assert search(sqlite_url, query, locale=locale) == search(pg_url, query, locale=locale)


def test_a_long_email_searches_fifty_articles(any_db_url: str, tmp_path: Path) -> None:
    topics = ["invoice", "password", "refund", "export", "sharing", "mobile", "offline", "import", "seats", "api"]
    for n in range(50):
        body = " ".join(f"{topics[(n + k) % 10]}{k} and some filler text about {topics[n % 10]}." for k in range(60))
        write(tmp_path, f"article-{n}.en", f"About {topics[n % 10]} number {n}", body)
    sync(any_db_url, tmp_path)
    email = "Hello, I have a question about my invoice and the refund, and also the mobile app export. " * 5
    hits = search(any_db_url, email)
    assert hits and all(set(h.title.split()) & {"invoice", "refund", "mobile", "export"} for h in hits)
