"""`policy`: check the files, run their fixtures, explain a decision."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    Fail,
    Subparsers,
    command,
    fail_on,
    group,
    id_arg,
    store,
)

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.policy import check

    directory = Path(args.dir or settings.policy.directory)
    problems = check(directory)
    for problem in problems:
        print(problem)
    if problems:
        raise Fail(f"{len(problems)} problem(s) in {directory}")
    print(f"{directory}: policy and fixtures are valid")
    return 0


def cmd_test(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.policy import load_policy, run_fixtures
    from mailagent.tomlfile import FileError

    directory = Path(args.dir or settings.policy.directory)
    with fail_on(FileError):
        results = run_fixtures(load_policy(directory), directory / "tests")
    for result in results:
        print(result)
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_explain(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import views
    from mailagent.policy import current_policy, explain_recorded

    draft = views.draft_model(store(settings), args.id)
    if draft.decision is None:
        raise Fail(f"draft {args.id} has no decision yet (state {draft.state})")
    print(f"draft {draft.id} (policy version {draft.policy_version or 'unknown'})")
    print(explain_recorded(draft.decision, draft.rule, draft.reasons, draft.shadow, draft.policy_version,
                           draft.facts, current_policy(settings)))
    return 0


def register(sub: Subparsers) -> None:
    pol = group(sub, "policy", "the policy files")
    c = command(pol, "check", cmd_check, help="validate policy files and run their fixtures")
    c.add_argument("dir", nargs="?", help="default: [policy] directory")
    c = command(pol, "test", cmd_test, help="run the fixtures in DIR/tests and show each result")
    c.add_argument("dir", nargs="?", help="default: [policy] directory")
    c = command(pol, "explain", cmd_explain, help="which rule decided a draft, and why")
    id_arg(c, "draft")
