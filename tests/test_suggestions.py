"""Knowledge suggestions: what reps add that no cited article holds becomes a proposed article
(or an edit of the cited one) with the conversations it came from; accepting writes a new
article version that search finds at once; `kb sync` and accepted suggestions live together."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from mailagent.config import DATA
from mailagent.evals import learning, suggestions
from mailagent.knowledge import versions
from mailagent.knowledge.search import search, sync
from mailagent.store import db
from mailagent.store.models import Article, Draft, KnowledgeSuggestion

from .support.learning import answer, ask, config_file, desk, hold_all, mailagent, mailagent_json

DARK = ("Dark mode?", "Is there a dark mode in the Nimbus app? I work at night.")
DARK_FINAL = ("Hi Bob,\n\nYes: Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose Dark. "
              "It follows your system setting if you pick Automatic. Your order NN-1013 is not affected by this.\n\n"
              "Best regards,\nAna")
DARK_AGAIN = ("Dark theme", "Does the app have a dark theme? My eyes hurt at night.")
DARK_AGAIN_FINAL = ("Hi Carol,\n\nYes, there is a dark theme under Settings → Appearance → Theme. "
                    "On the mobile apps it is under Profile → Display.\n\nBest,\nAna")


def with_outlook(draft: str, sentence: str = "Outlook users: look in the Other tab of the Focused Inbox as well.") -> str:
    """The rep adds a paragraph before the closing lines."""
    assert "If anything is still unclear" in draft
    return draft.replace("If anything is still unclear", f"{sentence}\n\nIf anything is still unclear")


def opened(url: str) -> list[KnowledgeSuggestion]:
    with db.reading(url) as s:
        return list(s.exec(select(KnowledgeSuggestion).order_by(KnowledgeSuggestion.id)))  # type: ignore[arg-type]


def test_a_reps_answer_to_what_no_article_holds_becomes_one_new_article(any_db_url: str) -> None:
    settings = desk(any_db_url)
    first, second = ask(settings, *DARK), ask(settings, *DARK_AGAIN, sender="carol@customer.example")
    answer(settings, first, DARK_FINAL)
    answer(settings, second, DARK_AGAIN_FINAL)
    built = learning.build(settings)
    assert (built.cases, built.suggestions) == (2, 1)
    assert learning.build(settings) == learning.Built(0, 0)
    [found] = opened(any_db_url)
    assert found.kind == "new" and found.state == "open" and found.article_id == "dark-mode.en"
    assert found.case_ids == [1, 2] and found.conversation_ids == [1, 2]          # the same question, merged
    assert found.facts[0] == "Yes: Nimbus Notes has a dark theme." and "Profile → Display" in found.body
    assert "NN-1013" not in found.body and "Ana" not in found.body and "Bob" not in found.body  # nothing personal
    assert "bob" not in found.tags and {"dark", "mode"} <= set(found.tags)

    assert not [h for h in search(any_db_url, "dark theme night", locale="en") if h.id == "dark-mode.en"]
    done = suggestions.accept(settings, found.id or 0, "lead@example", intent="how_to")
    assert done.version == 1
    [hit, *_] = search(any_db_url, "Is there a dark theme?", locale="en")         # searchable at once
    assert hit.id == "dark-mode.en" and hit.intent == "how_to" and hit.score > 0.6
    with db.reading(any_db_url) as s:
        [version] = versions.history(s, "dark-mode.en")
    assert (version.origin, version.suggestion_id, version.author, version.file_sha256) == (
        "suggestion", found.id, "lead@example", "")


def test_an_answer_beyond_the_cited_article_proposes_an_edit_of_it(sqlite_url: str, tmp_path: Path) -> None:
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    draft_id = ask(settings, "Password reset email never arrives",
                   "I clicked forgot password but the reset email never arrives. What can I do?")
    with db.reading(sqlite_url) as s:
        draft = s.get(Draft, draft_id)
        assert draft is not None and draft.cited == ["password-reset.en"]
    answer(settings, draft_id, with_outlook(draft.text, "Outlook users: the mail may land in the Other tab of the "
                                                        "Focused Inbox, so look there as well."))
    learning.build(settings)
    [found] = opened(sqlite_url)
    assert found.kind == "edit" and found.article_id == "password-reset.en" and found.base_version == 1
    assert found.facts == ["Outlook users: the mail may land in the Other tab of the Focused Inbox, so look there "
                           "as well."]
    assert found.body.startswith("# How to reset your password") and "## Password reset email never arrives" in found.body
    suggestions.accept(settings, found.id or 0, "lead@example")
    [hit, *_] = search(sqlite_url, "reset mail focused inbox other tab outlook", locale="en")
    assert hit.id == "password-reset.en" and "Focused Inbox" in hit.body


def test_files_and_accepted_suggestions_live_together(sqlite_url: str, tmp_path: Path) -> None:
    """An accepted edit stands while its file is unchanged and the file wins once edited; a new
    article from a suggestion has no file and stays, until a file with its id appears."""
    folder = tmp_path / "kb"
    shutil.copytree(DATA / "knowledge", folder)
    settings = desk(sqlite_url, policy=hold_all(tmp_path), knowledge={"directory": str(folder)})
    sync(sqlite_url, folder)
    answer(settings, ask(settings, *DARK), DARK_FINAL)
    reset = ask(settings, "Password reset email never arrives", "The reset email never arrives. What can I do?")
    with db.reading(sqlite_url) as s:
        text = s.get(Draft, reset).text  # type: ignore[union-attr]
    answer(settings, reset, with_outlook(text))
    learning.build(settings)
    for found in opened(sqlite_url):
        suggestions.accept(settings, found.id or 0, "lead@example")

    result = sync(sqlite_url, folder)
    assert result.kept == 2 and (result.added, result.updated, result.removed) == (0, 0, 0)
    assert "Focused Inbox" in article(sqlite_url, "password-reset.en").body
    assert article(sqlite_url, "dark-mode.en") is not None

    path = folder / "password-reset.en.md"
    path.write_text(path.read_text() + "\n## Focused Inbox\n\nOutlook sorts our mail into Other.\n")
    (folder / "dark-mode.en.md").write_text("---\ntitle: Dark mode\ntags: [dark]\nlocale: en\n---\nSettings → Theme.\n")
    result = sync(sqlite_url, folder)
    assert (result.kept, result.updated, result.added) == (0, 2, 0)          # both files win now
    assert "Outlook sorts our mail into Other." in article(sqlite_url, "password-reset.en").body
    assert article(sqlite_url, "dark-mode.en").body == "Settings → Theme."
    with db.reading(sqlite_url) as s:
        assert [v.origin for v in versions.history(s, "password-reset.en")][-3:] == ["file", "suggestion", "file"]
    (folder / "dark-mode.en.md").unlink()
    assert sync(sqlite_url, folder).removed == 1 and article(sqlite_url, "dark-mode.en") is None


def article(url: str, article_id: str) -> Article:
    with db.reading(url) as s:
        return s.get(Article, article_id)  # type: ignore[return-value]


def test_leads_decide_suggestions_from_the_command_line(sqlite_url: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    settings = desk(sqlite_url)
    config = config_file(tmp_path, settings)
    answer(settings, ask(settings, *DARK), DARK_FINAL)
    answer(settings, ask(settings, "Printing notes", "Can I print a notebook with all its pages?",
                         sender="carol@customer.example"),
           "Hi Carol,\n\nYes: open the notebook, choose File → Print notebook and tick All pages.\n\nBest,\nAna")
    assert mailagent(capsys, config, "evals", "build")[0] == 0
    listed = mailagent_json(capsys, config, "kb", "suggestions", "list")
    assert [(r["id"], r["kind"], r["state"]) for r in listed] == [(1, "new", "open"), (2, "new", "open")]
    assert set(listed[0]) >= {"article_id", "title", "facts", "case_ids", "conversation_ids", "created_at"}
    shown = mailagent(capsys, config, "kb", "suggestions", "show", "1")[1]
    assert "--- dark-mode.en.md ---\n---\ntitle: Dark mode?\n" in shown and "facts it adds:" in shown

    code, out, _ = mailagent(capsys, config, "kb", "suggestions", "accept", "1", "--intent", "how_to",
                             "--title", "Dark mode", "--as", "lead@example")
    assert code == 0 and "article dark-mode.en is now version 1" in out
    assert mailagent(capsys, config, "kb", "suggestions", "reject", "2", "--reason", "printing is a plan feature")[0] == 0
    [hit, *_] = mailagent_json(capsys, config, "kb", "search", "dark", "mode")
    assert hit["id"] == "dark-mode.en" and hit["title"] == "Dark mode"
    decided = mailagent_json(capsys, config, "kb", "suggestions", "list", "--state", "rejected")
    assert [(r["id"], r["reason"]) for r in decided] == [(2, "printing is a plan feature")]
    for args, message in ((("kb", "suggestions", "accept", "1"), "suggestion 1 is accepted (by lead@example)"),
                          (("kb", "suggestions", "accept", "9"), "no knowledge suggestion with id 9"),
                          (("kb", "suggestions", "reject", "2", "--reason", "x"), "suggestion 2 is rejected"),
                          (("kb", "suggestions", "accept", "2", "--intent", "nonsense"), "intent must be one of")):
        code, _, err = mailagent(capsys, config, *args)
        assert code == 1 and message in err, (args, err)
    sync_out = mailagent(capsys, config, "kb", "sync")[1]
    assert "1 accepted suggestion(s) kept" in sync_out


def test_an_edit_against_an_article_that_changed_since_cannot_be_accepted(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    shutil.copytree(DATA / "knowledge", folder)
    settings = desk(sqlite_url, policy=hold_all(tmp_path), knowledge={"directory": str(folder)})
    sync(sqlite_url, folder)
    reset = ask(settings, "Password reset email never arrives", "The reset email never arrives. What can I do?")
    with db.reading(sqlite_url) as s:
        text = s.get(Draft, reset).text  # type: ignore[union-attr]
    answer(settings, reset, with_outlook(text))
    learning.build(settings)
    path = folder / "password-reset.en.md"
    path.write_text(path.read_text() + "\nA new paragraph written by ops.\n")
    sync(sqlite_url, folder)
    with pytest.raises(suggestions.SuggestionError, match="changed since the suggestion was made"):
        suggestions.accept(settings, 1, "lead@example")
    assert opened(sqlite_url)[0].state == "open"
