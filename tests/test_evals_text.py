"""The learning loop's pure parts: facts in replies, what a rep changed, tone, every grader, the
pre-send gate, classifier files and eval set files (errors with file, line and key)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailagent.agent.guardrails import ExecutedAction
from mailagent.config import DATA, Settings
from mailagent.evals import classifiers, facts, gate, sets
from mailagent.evals.diff import changes, edit_distance, similarity, tokens
from mailagent.evals.graders import (
    Actions,
    CitesArticle,
    Contains,
    DecisionIs,
    Language,
    Length,
    NoSecrets,
    NoUnfulfilledPromise,
    NotContains,
    RequiredFacts,
    Sample,
    Similarity,
    Tone,
    grade_all,
)
from mailagent.evals.judges import Judge
from mailagent.evals.tone import tone
from mailagent.policy.model import GRADES
from mailagent.tomlfile import FileError

FINAL = """Hi Bob,

Yes, Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose **Dark**.
It applies to all your devices after the next sync, usually within 60 minutes.
The refund of €12,50 for order NN-1013 is on its way; see https://docs.example.com/refunds.
If anything is unclear, just reply to this email.

Best regards,
Ana
> On Monday Bob wrote:
> is there a dark mode?"""

HANDOFF = ("Hi Bob,\n\nThanks for your message. A colleague from our team will look into this personally and get "
           "back to you as soon as possible.\n\nBest regards,\nThe Example support team")


# --- facts ----------------------------------------------------------------------------------------

def test_facts_are_atoms_and_statements_of_the_body_only() -> None:
    found = facts.facts(FINAL)
    by_kind = {(f.kind, f.key) for f in found}
    assert ("path", "settings → appearance → theme") in by_kind
    assert ("money", "EUR 12.50") in by_kind and ("id", "nn-1013") in by_kind
    assert ("url", "https://docs.example.com/refunds") in by_kind and ("number", "60 minut") in by_kind
    assert ("label", "dark") in by_kind
    texts = [f.text for f in found if f.kind == "statement"]
    assert "Yes, Nimbus Notes has a dark theme." in texts
    # greeting, sign-off, courtesy and the quoted history are not facts
    assert not any("Ana" in t or "Bob" in t or "unclear" in t or "dark mode?" in t for t in texts)


def test_a_paraphrase_keeps_the_facts_and_a_handoff_states_none() -> None:
    paraphrase = ("Hello! You can switch Nimbus Notes to a dark theme: in Settings → Appearance → Theme pick Dark. "
                  "After the next sync it applies on all your devices, usually within 60 minutes. "
                  "Your refund of EUR 12.50 (order NN-1013) is on its way, see https://docs.example.com/refunds")
    assert facts.missing(facts.facts(FINAL), paraphrase) == []
    missing = {f.kind for f in facts.missing(facts.facts(FINAL), HANDOFF)}
    assert {"path", "money", "id", "url", "statement"} <= missing
    assert [f.text for f in facts.added(HANDOFF, FINAL)][:1] == ["Open Settings → Appearance → Theme"]
    assert facts.removed(HANDOFF, FINAL) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Hi, is there a dark mode? I work at night.\nThanks, Alice", "Hi, is there a dark mode? I work at night."),
    ("Sehr geehrte Damen und Herren,\nDie Rechnung ist da.\nMit freundlichen Grüßen\nAna", "Die Rechnung ist da."),
    ("Hola Ana:\nSu factura está lista.\nSaludos", "Su factura está lista."),
])
def test_body_drops_greeting_and_sign_off_but_not_a_question_that_starts_with_hi(text: str, expected: str) -> None:
    assert facts.body(text) == expected


# --- what changed ---------------------------------------------------------------------------------

def test_edit_distance_and_similarity_count_words() -> None:
    assert edit_distance(tokens("the link is valid"), tokens("the link is valid for 60 minutes")) == 3
    assert similarity("Same text.", "Same text.") == 1.0 and similarity("", "") == 1.0
    assert similarity("completely different", "nothing alike here") == 0.0


def test_changes_name_the_facts_added_and_removed_the_tone_and_the_actions() -> None:
    draft = "Hi Bob,\n\nYou will get 20 EUR back for order NN-1013. As I already said, read the manual.\n\nBest"
    final = "Hi Bob,\n\nWe refunded 12 EUR for order NN-1013 today.\n\nBest"
    found = changes(draft, final, [{"tool": "issue_refund", "state": "approved"}])
    assert found["facts_added"][0] == "12 EUR" and "20 EUR" in found["facts_removed"]
    assert found["tone_draft"] < 0.5 < found["tone_final"]
    assert found["actions"] == [{"tool": "issue_refund", "state": "approved"}] and found["edit_distance"] > 5
    rejected = changes(draft, None)
    assert "facts_added" not in rejected and "similarity" not in rejected


def test_tone_counts_blame_shouting_and_courtesy() -> None:
    assert tone("Hi Ana, thanks for writing. Please try the link again. Sorry for the trouble!").score == 1.0
    rude = tone("As I already told you, THIS IS NOT OUR PROBLEM!! Read the manual.")
    assert rude.score == 0.0 and "as i already told you" in rude.reason and "shouting" in rude.reason
    assert tone("The GDPR export is a JSON file in UTC.").score == 0.7          # acronyms are not shouting


# --- graders --------------------------------------------------------------------------------------

def sample(reply: str, **more: object) -> Sample:
    return Sample(reply=reply, customer_text="Dark mode?\nIs there a dark mode in the app?",
                  customer_addr="bob@customer.example", our_domains=("example.com",), **more)  # type: ignore[arg-type]


@pytest.mark.parametrize(("grader", "good", "bad"), [
    (Contains(phrases=["Settings → Appearance", "dark theme"]), sample(FINAL), sample(HANDOFF)),
    (NotContains(phrases=["colleague"]), sample(FINAL), sample(HANDOFF)),
    (CitesArticle(articles=["dark-mode.en"]), sample(FINAL, cited=("dark-mode.en",)), sample(FINAL, cited=("x.en",))),
    (Language(), sample(FINAL), sample("Hallo Bob,\n\nÖffnen Sie die Einstellungen und wählen Sie das dunkle Design "
                                       "für die App aus.\n\nViele Grüße")),
    (NoUnfulfilledPromise(), sample("A colleague will look at your refund request and reply within two days."),
     sample("I have refunded 20 EUR to your card.")),
    (NoSecrets(), sample("Write to help@example.com or reply to bob@customer.example."),
     sample("Your card 4111 1111 1111 1111 is on file; also cc carol@other.example.")),
    (Length(min_words=3, max_words=60), sample(FINAL), sample("Hi Bob,\n\nOk.\n\nBest")),
    (Tone(), sample(FINAL), sample("As I already said, read the manual!!")),
    (RequiredFacts(), sample(FINAL, reference=FINAL), sample(HANDOFF, reference=FINAL)),
    (Similarity(), sample(FINAL, reference=FINAL), sample(HANDOFF, reference=FINAL)),
    (Actions(), sample("", proposals=("issue_refund",), expected_tools=("issue_refund",), paused=True),
     sample("", proposals=("cancel_subscription",), expected_tools=("issue_refund",), paused=True)),
    (DecisionIs(expect=["send"]), sample(FINAL, decision="send"), sample(FINAL, decision="hold")),
])
def test_each_grader_passes_good_replies_and_fails_bad_ones_with_a_reason(grader, good: Sample, bad: Sample) -> None:  # type: ignore[no-untyped-def]
    passed, failed = grader.grade(good), grader.grade(bad)
    assert passed is not None and failed is not None
    assert passed.passed and passed.score >= grader.threshold, passed
    assert not failed.passed and failed.score < grader.threshold and failed.reason, failed


def test_graders_skip_what_they_cannot_judge() -> None:
    assert RequiredFacts().grade(sample(FINAL)) is None                      # no reference
    assert Tone().grade(sample("", paused=True, proposals=("issue_refund",))) is None   # no reply was written
    assert Actions().grade(sample(FINAL)) is None                             # nothing proposed or expected


def test_a_case_passes_only_when_every_grader_that_applies_passes() -> None:
    graded = asyncio.run(grade_all([RequiredFacts(weight=2), Tone(), Actions()], sample(FINAL, reference=FINAL)))
    assert graded.passed and [g.grader for g in graded.grades] == ["required_facts", "tone"]
    worse = asyncio.run(grade_all([RequiredFacts(weight=2), Tone()], sample(HANDOFF, reference=FINAL)))
    assert not worse.passed and worse.score == pytest.approx((2 * worse.grades[0].score + worse.grades[1].score) / 3)


def test_the_model_grader_without_a_model_gives_an_honest_offline_estimate() -> None:
    offline = Settings()
    judge = Judge(rubric="correctness", settings=offline)
    good, bad = (asyncio.run(judge.agrade(sample(reply, reference=FINAL))) for reply in (FINAL, HANDOFF))
    assert good is not None and bad is not None and good.score > 0.9 > 0.2 > bad.score
    assert good.reason.startswith("offline estimate (no model configured)")
    assert asyncio.run(Judge(rubric="tone", settings=offline).agrade(sample("As I said, read the manual."))).score < 0.5  # type: ignore[union-attr]
    assert asyncio.run(Judge(prompt="Is it funny?", settings=offline).agrade(sample(FINAL))) is None


# --- the pre-send gate ----------------------------------------------------------------------------

def test_the_gate_scores_exactly_the_grades_the_policy_grammar_knows() -> None:
    scores = gate.grades(FINAL, customer_text="Dark mode?\nIs there a dark mode?", customer_addr="bob@customer.example",
                         our_domains=["example.com"])
    assert tuple(scores) == GRADES and scores["tone"] >= 0.6
    assert scores["safety"] == scores["language"] == scores["promises"] == 1.0
    bad = gate.grades("Hallo,\n\nwie ich bereits sagte: Ich habe Ihnen 20 EUR erstattet. Lesen Sie doch die Anleitung!! "
                      "Ihr Passwort: Hunter22x\n\nGrüße", customer_text="Where is my refund? I asked last week")
    assert bad["language"] == 0.0 and bad["safety"] == 0.0 and bad["promises"] == 0.0 and bad["tone"] < 0.6
    refunded = gate.grades("I have refunded 20 EUR to your card.", customer_text="Refund please",
                           executed=[ExecutedAction("issue_refund", 20.0, "EUR")])
    assert refunded["promises"] == 1.0
    assert gate.grades("  ", customer_text="x") == {}


# --- classifiers ----------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_shipped_classifiers_are_valid_and_rudeness_passes_its_examples() -> None:
    found = {c.name: c for c in classifiers.read_all(DATA / "classifiers")}
    assert set(found) == {"rudeness", "urgency"}
    result = classifiers.test(found["rudeness"])
    assert result.passed and result.correct == result.total == 10
    urgency = classifiers.test(found["urgency"])          # offline, leave one out: honest and not good enough
    assert not urgency.passed and not found["urgency"].enabled and "offline" in urgency.judged_by


def test_labels_are_the_facts_a_policy_matches_and_sampling_is_stable(tmp_path: Path) -> None:
    live = [c for c in classifiers.read_all(DATA / "classifiers") if c.enabled]
    assert classifiers.labels(live, draft="As we already explained, read the manual.", customer="x") == {"rudeness": "rude"}
    assert classifiers.labels(live, draft="Thanks! Open Settings.", customer="x") == {"rudeness": "ok"}
    half = classifiers.read(write(tmp_path / "half.toml", (DATA / "classifiers" / "rudeness.toml").read_text()
                                  .replace("sample = 1.0", "sample = 0.5")))
    picked = [half.sampled(str(n)) for n in range(400)]
    assert picked == [half.sampled(str(n)) for n in range(400)] and 150 < sum(picked) < 250


def test_a_rubric_classifier_without_a_model_takes_the_label_of_the_nearest_examples(tmp_path: Path) -> None:
    rubric = classifiers.read(write(tmp_path / "topic.toml", """
labels = ["billing", "login"]
rubric = "What is the message about?"
[[examples]]
text = "Where can I download my invoice for last month?"
label = "billing"
[[examples]]
text = "Please send the invoice with our VAT number."
label = "billing"
[[examples]]
text = "I cannot log in, the password reset link never arrives."
label = "login"
[[examples]]
text = "Login fails with my password since yesterday."
label = "login"
"""))
    assert rubric.kind == "rubric" and rubric.estimate("My invoice is missing the VAT number") == "billing"
    assert rubric.estimate("The reset link for my password does not work") == "login"
    assert classifiers.test(rubric).accuracy == 1.0


def test_a_bad_classifier_file_names_each_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", """labels = ["rude", "ok"]
default = "fine"
enabled = 1
[[patterns]]
label = "rude"
any = ["(unclosed"]
[[examples]]
text = "x"
label = "ok"
""")
    with pytest.raises(FileError) as exc:
        classifiers.read(path)
    text = str(exc.value)
    assert f"{path}:3: enabled: input should be a valid boolean, got 1" in text
    assert f"{path}:6: patterns[0].any: not a regular expression" in text


# --- eval set files -------------------------------------------------------------------------------

def test_the_default_set_loads_every_grader_it_names() -> None:
    loaded = sets.load(Settings(), "default")
    assert loaded.select.states == ("accepted",) and loaded.gate.max_score_drop == 0.05
    assert [g.name for g in loaded.graders][:2] == ["required_facts", "model:correctness"]


def test_a_bad_set_file_reports_every_problem_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", """[select]
states = ["acepted"]
[[graders]]
kind = "contains"
phrases = []
[[graders]]
kind = "language"
phrases = ["x"]
[[graders]]
kind = "modle"
[[graders]]
kind = "model"
rubric = "vibes"
""")
    with pytest.raises(FileError) as exc:
        sets.read(path, Settings())
    assert str(exc.value).splitlines() == [
        f"{path}:2: select.states[0]: input should be 'new', 'accepted' or 'dropped', got 'acepted'",
        f"{path}:5: graders[0].phrases: array should have at least 1 item after validation, not 0",
        f"{path}:8: graders[1].phrases: unknown key",
        f"{path}:10: graders[2].kind: must be one of {', '.join(sets.KINDS)}",
        f"{path}:13: graders[3].rubric: input should be 'correctness', 'tone' or 'policy', got 'vibes'",
    ]
    with pytest.raises(FileError, match="no eval set named 'nope'"):
        sets.load(Settings(), "nope")


def test_only_enabled_classifiers_that_pass_their_examples_are_used_live(tmp_path: Path) -> None:
    rudeness = (DATA / "classifiers" / "rudeness.toml").read_text()
    write(tmp_path / "rudeness.toml", rudeness)
    write(tmp_path / "failing.toml", rudeness.replace('label = "ok"', 'label = "rude"'))    # 5 of 10 wrong
    write(tmp_path / "off.toml", rudeness.replace("enabled = true", "enabled = false"))
    write(tmp_path / "urgency.toml", (DATA / "classifiers" / "urgency.toml").read_text()
          .replace("enabled = false", "enabled = true"))
    offline = Settings(evals={"classifiers": str(tmp_path)})  # type: ignore[arg-type]
    assert [c.name for c in classifiers.live(offline)] == ["rudeness"]
    online = Settings(evals={"classifiers": str(tmp_path)}, model={"provider": "openai"})  # type: ignore[arg-type]
    assert [c.name for c in classifiers.live(online)] == ["rudeness", "urgency"]   # a model judges the rubric
