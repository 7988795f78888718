"""The loop learns (the smaller twin of `bench/learning.py`): questions the sample knowledge base
cannot answer are held; reps answer them; suggestions are accepted; paraphrases of the questions
are then auto-resolved, correctly by the reps' own finals; `eval run` on the new cases passes."""

from __future__ import annotations

from sqlmodel import select

from mailagent.store import db
from mailagent.store.models import Article, ArticleVersion

from .support import learning_scenario as scenario
from .support.learning import desk


def test_paraphrases_of_what_reps_answered_are_then_auto_resolved_correctly(sqlite_url: str) -> None:
    topics = scenario.TOPICS[:8]
    figures = scenario.run(desk(sqlite_url), topics)
    assert figures.before.auto_sent == 0 and figures.before.held >= 7          # nothing known: a rep answers
    assert (figures.cases, figures.suggestions_accepted) == (8, 8)
    assert figures.after.auto_sent_correct >= 6                                  # most, each with the rep's facts
    assert figures.after.auto_sent_correct == figures.after.auto_sent           # and nothing auto-sent wrongly
    assert figures.gate_passed and figures.eval_passed == figures.eval_cases == 8
    with db.reading(sqlite_url) as s:
        learned = s.exec(select(ArticleVersion).where(ArticleVersion.origin == "suggestion")).all()
        assert {v.article_id for v in learned} <= {a.id for a in s.exec(select(Article))} and len(learned) == 8
