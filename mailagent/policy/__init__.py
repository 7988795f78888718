"""The policy: ops' rules, as files in `policies/`, decide what happens to each draft and each
proposed action with side effects; hard invariants in code hold whatever the files say."""

from .decide import ActionDecision, Decision, decide, decide_action
from .explain import explain, explain_action
from .facts import ActionFacts, Facts, ProposedAction
from .fixtures import FixtureResult, run_fixtures
from .load import Policy, PolicyStore, check, load_policy

__all__ = [
    "ActionDecision", "ActionFacts", "Decision", "Facts", "FixtureResult", "Policy", "PolicyStore",
    "ProposedAction", "check", "decide", "decide_action", "explain", "explain_action", "load_policy",
    "run_fixtures",
]
