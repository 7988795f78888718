"""Reply correctness, measured: the labelled set of `tests/data/correctness.toml` through the real
pipeline (offline model, demo backend, shipped policies), judged by checks that do not trust the
model's own claims (`tests/support/correctness.py`). No auto-sent answer may be wrong; the judge
itself is tested on replies that are wrong in each way it checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mailagent.config import DATA
from mailagent.knowledge.articles import read_articles

from .support import correctness
from .support.correctness import INCIDENT, Case, Knowledge, Part, judge, load_set


def test_the_set_has_its_size_and_shape() -> None:
    cases = load_set()
    assert len(cases) >= 150 and len({c.id for c in cases}) == len(cases)
    languages = Counter(c.language for c in cases)
    assert languages["en"] >= 100 and languages["de"] >= 15 and languages["es"] >= 15 and languages["fr"] >= 3
    kinds = Counter(c.kind for c in cases)
    assert kinds["multi"] >= 15 and kinds["decoy"] >= 20 and kinds["unanswerable"] >= 8 and kinds["human"] >= 20
    assert sum(len(c.parts) > 1 for c in cases) >= 15                 # several questions, each with its answer
    assert all(c.parts for c in cases if c.kind != "unanswerable")
    assert sum(Knowledge.read().answerable(c) for c in cases) >= 90


def test_every_label_names_an_article_and_facts_that_are_in_it() -> None:
    """A label the knowledge base cannot satisfy would count a right answer as wrong."""
    bodies = {a.id: correctness._norm(a.body) for a in read_articles(DATA / "knowledge")}
    titles = Knowledge.read().incident_titles
    for case in load_set():
        for part in case.parts:
            if part.article == "none":                                 # asked, but nothing answers it
                continue
            if part.article == INCIDENT:
                texts = list(titles)
            else:
                localized = f"{part.article}.{case.language}"
                texts = [bodies[localized if localized in bodies else f"{part.article}.en"]]
            assert part.facts, case.id
            for fact in part.facts:
                assert any(correctness._norm(alt) in t for alt in fact.split(" | ") for t in texts), (case.id, fact)


def test_no_auto_sent_answer_is_wrong_and_most_answerable_ones_are_sent(tmp_path: Path) -> None:
    judged = correctness.run(tmp_path)
    table = correctness.table(judged)
    wrong = [(j.case.id, j.problems) for j in judged if j.wrong]
    assert table.wrong == 0, wrong
    assert table.none == 0                                             # every customer turn got a draft
    # Holding everything would also send nothing wrong: a floor on what is answered keeps the zero honest.
    assert table.right >= 0.4 * table.answerable, (table.right, table.answerable)
    unanswerable = [j for j in judged if not j.case.parts or j.case.kind == "human"]
    assert all(j.outcome == "held" for j in unanswerable), [j.case.id for j in unanswerable if j.outcome != "held"]


# --- the judge ---------------------------------------------------------------------------------

KB = Knowledge.read()
EMAIL = Case("t-email", "en", "How do I change my login email?",
             "Inboxly is shutting down. How do I change the email on my account?", "decoy",
             (Part("change-account-email", ("Settings → Account → Email address",)),))
SIGN_OFF = "\n\nBest regards,\nThe Nimbus Notes support team"


def _problems(case: Case, text: str, cited: tuple[str, ...] = ()) -> tuple[str, ...]:
    judged = judge(case, KB, "sent", text, cited)
    assert judged.outcome == "sent"
    return judged.problems


def test_the_judge_accepts_a_right_answer() -> None:
    text = ("Hi Sam,\n\nGo to Settings → Account → Email address and click Change. We send a confirmation link "
            f"to the new address.{SIGN_OFF}")
    assert _problems(EMAIL, text, ("change-account-email.en",)) == ()
    assert judge(EMAIL, KB, "held", text, ()).problems == () and not judge(EMAIL, KB, "held", text, ()).right


def test_the_judge_finds_an_incident_notice_for_a_question_about_something_else() -> None:
    text = f"Hi Sam,\n\nYes, we are aware of a problem: Sync failures and slow page loading.{SIGN_OFF}"
    problems = _problems(EMAIL, text)
    assert any("incident notice" in p for p in problems) and any("not answered" in p for p in problems)


def test_the_judge_finds_an_answer_from_another_article() -> None:
    section = ("If the login page says *Your workspace requires single sign-on*, your password is managed by your "
               "company identity provider (for example Okta or Microsoft Entra ID).")
    text = f"Hi Sam,\n\nSettings → Account → Email address.\n\n{section}{SIGN_OFF}"
    problems = _problems(EMAIL, text, ("change-account-email.en", "password-reset.en"))
    assert any("cites password-reset.en" in p for p in problems)
    assert any(p.startswith("quotes password-reset.en") for p in _problems(EMAIL, text, ("change-account-email.en",)))


def test_the_judge_finds_half_an_answer() -> None:
    both = Case("t-multi", "en", "Password and invoice", "How do I reset my password? Where are my invoices?",
                "multi", (Part("password-reset", ("Forgot password?",)),
                          Part("download-invoices", ("Billing history",))))
    text = f"Hi Sam,\n\nClick Forgot password? on the login page.{SIGN_OFF}"
    assert [p for p in _problems(both, text) if p.startswith("question 2 (download-invoices) not answered")]


def test_the_judge_finds_a_sign_off_in_another_language_and_a_mixed_register() -> None:
    de = Case("t-de", "de", "Passwort", "Wie setze ich mein Passwort zurück?", "single",
              (Part("password-reset", ("Passwort vergessen?",)),))
    german = "Hallo Sam,\n\nklicken Sie auf der Anmeldeseite auf Passwort vergessen? und folgen Sie dem Link."
    assert _problems(de, f"{german}\n\nViele Grüße\nIhr Support-Team von Nimbus Notes") == ()
    assert any("is in en, not de" in p for p in _problems(de, german + SIGN_OFF))
    es = Case("t-es", "es", "Contraseña", "¿Cómo restablezco la contraseña?", "single",
              (Part("password-reset", ("¿Has olvidado tu contraseña?",)),))
    spanish = "Hola, Sam:\n\nhaz clic en ¿Has olvidado tu contraseña? y sigue el enlace que te enviamos."
    closing = "\n\nUn saludo,\nEl equipo de soporte de Nimbus Notes"
    assert _problems(es, spanish + closing) == ()
    assert "the Spanish reply mixes tú and usted" in _problems(es, f"{spanish}\n\nSi algo no queda claro, responda a "
                                                               f"este correo.{closing}")


def test_the_judge_counts_any_auto_send_to_an_unanswerable_question_as_wrong() -> None:
    lasagna = Case("t-none", "en", "Lasagna", "What is your favourite lasagna recipe?", "unanswerable", ())
    assert _problems(lasagna, f"Hi Sam,\n\nWe love lasagna.{SIGN_OFF}") == (
        "auto-sent, but the knowledge base does not answer this",)
