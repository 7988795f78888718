"""`classifiers`: score the classifier files on their labelled examples."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    EX_CONFIG,
    Fail,
    Subparsers,
    command,
    fail_on,
    group,
    json_flag,
    print_json,
)

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_test(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import classifiers
    from mailagent.tomlfile import FileError

    directory = Path(args.dir or settings.evals.classifiers)
    with fail_on(FileError, code=EX_CONFIG):
        found = classifiers.read_all(directory)
    results = [classifiers.test(c, settings) for c in found]
    if args.json:
        print_json([{"name": r.classifier.name, "file": r.classifier.path, "kind": r.classifier.kind,
                     "enabled": r.classifier.enabled, "accuracy": round(r.accuracy, 3), "correct": r.correct,
                     "total": r.total, "min_accuracy": r.classifier.min_accuracy, "passed": r.passed,
                     "judged_by": r.judged_by,
                     "misses": [{"text": t, "expected": e, "got": g} for t, e, g in r.misses]} for r in results])
    else:
        if not results:
            print(f"no classifier files in {directory}")
        for r in results:
            state = "enabled" if r.classifier.enabled else "disabled"
            verdict = "ok" if r.passed else f"FAILED: below min_accuracy {r.classifier.min_accuracy:g}"
            print(f"{r.classifier.name} ({r.classifier.kind}, {state}, judged by {r.judged_by}): "
                  f"{r.correct}/{r.total} = {r.accuracy:.0%}: {verdict}")
            for text, expected, got in r.misses:
                print(f"  expected {expected}, got {got}: {text[:100]!r}")
    failing = [r.classifier.name for r in results if r.classifier.enabled and not r.passed]
    if failing:
        raise Fail(f"enabled classifier(s) failing their examples (not used live): {', '.join(failing)}")
    return 0


def register(sub: Subparsers) -> None:
    cl = group(sub, "classifiers", "classifiers reps ship (label drafts for policies and metrics)")
    c = command(cl, "test", cmd_test, help="score each classifier on its labelled examples")
    c.add_argument("dir", nargs="?", help="default: [evals] classifiers")
    json_flag(c)
