"""The policy: ops' rules, as files in `policies/`, decide what happens to each draft and each
proposed action with side effects; hard invariants in code hold whatever the files say."""

from pathlib import Path

from mailagent.config import Settings
from mailagent.policy.decide import ActionDecision, Decision, decide, decide_action
from mailagent.policy.explain import explain, explain_action, explain_recorded
from mailagent.policy.facts import ActionFacts, Facts, ProposedAction
from mailagent.policy.fixtures import FixtureResult, run_fixtures
from mailagent.policy.load import Policy, PolicyStore, check, load_policy

_stores: dict[str, PolicyStore] = {}


def current_policy(settings: Settings) -> Policy:
    """The policy now in force: one store per folder per process, which reloads changed files."""
    directory = settings.policy.directory
    if directory not in _stores:
        _stores[directory] = PolicyStore(Path(directory), interval=settings.policy.reload_seconds)
    return _stores[directory].current()


__all__ = [
    "ActionDecision", "ActionFacts", "Decision", "Facts", "FixtureResult", "Policy", "PolicyStore",
    "ProposedAction", "check", "current_policy", "decide", "decide_action", "explain", "explain_action",
    "explain_recorded", "load_policy", "run_fixtures",
]
