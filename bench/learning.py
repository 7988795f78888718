"""The learning loop: does it learn, and how soon does a rep's final become an eval case?

    .venv/bin/python bench/learning.py [--topics 40] [--latency-reps 12] [--interval 30] [--skip-latency]

1. Learning (`tests/support/learning_scenario.py`): 40 questions the sample knowledge base cannot
   answer arrive (offline model, shipped policy) and are held; scripted rep finals answer them;
   the clock's learning step makes cases and suggestions; a lead accepts the suggestions (as
   how-to articles) and the cases; 40 paraphrases arrive. Printed: the share auto-resolved with a
   correct answer (auto-sent, and stating the facts of the rep's final) before and after, and
   `eval run` on the new cases. Baseline: the original questions, before anything was learned.
2. Latency: the real scheduler (`worker.clock.schedule`, `[evals] case_interval_seconds`) and an
   in-process worker; reps answer held drafts at random moments; printed: seconds from each rep's
   final to its stored case (mean, median, max), against the interval (the bound is one interval
   plus the step's own time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _desk(folder: Path, **sections: object):  # type: ignore[no-untyped-def]
    from mailagent.store import schema
    from tests.support.learning import desk

    url = f"sqlite:///{folder}/bench.db"
    schema.upgrade(url)
    return desk(url, **sections)


def learning(topics: int) -> None:
    from tests.support import learning_scenario as scenario

    with tempfile.TemporaryDirectory() as folder:
        figures = scenario.run(_desk(Path(folder)), scenario.TOPICS[:topics])
    before, after = figures.before, figures.after
    print(f"learning: {topics} questions the sample knowledge base cannot answer, then {topics} paraphrases")
    print(f"  before: auto-resolved with a correct answer {before.auto_sent_correct}/{before.asked} "
          f"({before.auto_sent_correct / before.asked:.0%}); auto-sent {before.auto_sent}, held {before.held}")
    print(f"  learned: {figures.cases} eval cases, {figures.suggestions_accepted} suggestions accepted")
    print(f"  after:  auto-resolved with a correct answer {after.auto_sent_correct}/{after.asked} "
          f"({after.auto_sent_correct / after.asked:.0%}); auto-sent {after.auto_sent}, held {after.held}")
    print(f"  eval run on the new cases: {figures.eval_passed}/{figures.eval_cases} pass, gate "
          f"{'passed' if figures.gate_passed else 'FAILED'}")
    print(f"  correct auto-resolutions: {before.auto_sent_correct / before.asked:.0%} before, "
          f"{after.auto_sent_correct / after.asked:.0%} after ({figures.seconds:.1f} s for the whole scenario)")


def latency(reps: int, interval: float) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlmodel import select

    from mailagent.store import db
    from mailagent.store.models import EvalCase
    from mailagent.worker import clock
    from mailagent.worker.inprocess import InProcess
    from tests.support.learning import answer, ask, hold_all
    from tests.support.learning_scenario import TOPICS, reply

    with tempfile.TemporaryDirectory() as folder:
        settings = _desk(Path(folder), policy=hold_all(Path(folder)), evals={"case_interval_seconds": interval})
        held = [(ask(settings, t.subject, t.body, sender=f"rep{n}@customer.example"), t)
                for n, t in enumerate(TOPICS[:reps])]
        with InProcess(settings) as app:
            scheduler = BackgroundScheduler(timezone="UTC")
            clock.schedule(scheduler, app.settings, lambda _: None, lambda: None,
                           lambda actor: getattr(app.actors, actor).send())
            scheduler.start()
            random.seed(7)
            moments = sorted(random.uniform(0, 2 * interval) for _ in held)
            start = time.monotonic()
            for moment, (draft_id, topic) in zip(moments, held, strict=True):
                time.sleep(max(0.0, start + moment - time.monotonic()))
                answer(settings, draft_id, reply(topic))
            deadline = time.monotonic() + 2 * interval + 30
            while time.monotonic() < deadline:
                with db.reading(settings.database.url) as s:
                    made = s.exec(select(EvalCase)).all()
                if len(made) == len(held):
                    break
                time.sleep(0.2)
            scheduler.shutdown()
        waits = sorted((c.created_at - c.rep_at).total_seconds() for c in made)
    print(f"latency: {len(waits)} of {len(held)} reps' finals became cases; clock interval {interval:g} s")
    print(f"  seconds from the rep's final to the stored case: mean {statistics.fmean(waits):.1f}, "
          f"median {statistics.median(waits):.1f}, max {max(waits):.1f}")
    print(f"  ratio max / interval: {max(waits) / interval:.2f} (bound: 1 interval plus the step's own time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topics", type=int, default=40, help="questions, then as many paraphrases (max 40)")
    parser.add_argument("--latency-reps", type=int, default=12, help="reps' finals timed in the latency part")
    parser.add_argument("--interval", type=float, default=30, help="[evals] case_interval_seconds (default 30)")
    parser.add_argument("--skip-latency", action="store_true", help="only the learning part")
    args = parser.parse_args()
    learning(min(args.topics, 40))
    if not args.skip_latency:
        latency(args.latency_reps, args.interval)


if __name__ == "__main__":
    main()
