"""Reply correctness of the offline model: wrong auto-sends, right auto-sends, held drafts.

    .venv/bin/python bench/correctness.py [--baseline REF] [--show wrong|held|all]

Runs every case of `tests/data/correctness.toml` through the real pipeline (ingest, classify,
the agent with the offline model and the demo backend, the shipped policies; see
`tests/support/correctness.py` for the checks) twice in the same run: with the `mailagent`
package of git `REF` (default: the commit before the reply-correctness work) and with this
tree's. The set and the judge are this tree's in both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "3cf3ffe"
HARNESS = ROOT / "tests" / "support" / "correctness.py"


def _child(tree: Path, show: str) -> dict[str, object]:
    """Run the set with the `mailagent` package found in `tree`, in a fresh process."""
    code = f"""
import importlib.util, json, sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(tree)!r})
spec = importlib.util.spec_from_file_location("correctness", {str(HARNESS)!r})
harness = importlib.util.module_from_spec(spec)
sys.modules["correctness"] = harness
spec.loader.exec_module(harness)
import mailagent
assert Path(mailagent.__file__).is_relative_to({str(tree)!r}), mailagent.__file__
judged = harness.run(Path(tempfile.mkdtemp()))
t = harness.table(judged)
shown = [dict(id=j.case.id, outcome=j.outcome, state=j.state, problems=list(j.problems), cited=list(j.cited),
              text=j.text, why=j.why) for j in judged
         if {show!r} == "all" or ({show!r} == "wrong" and j.wrong)
         or ({show!r} == "held" and j.outcome != "sent" and j.answerable)]
print(json.dumps(dict(total=t.total, answerable=t.answerable, wrong=t.wrong, right=t.right, held=t.held,
                      none=t.none, by_kind=t.by_kind, shown=shown)))
"""
    env = {**os.environ, "PYTHONPATH": str(tree), "OPENAI_AGENTS_DISABLE_TRACING": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tempfile.mkdtemp(),
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"run in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tree_at(ref: str) -> Path:
    """The `mailagent` package as it was at `ref`, unpacked into a temporary folder."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "mailagent"],
                             check=True, capture_output=True).stdout
    directory = Path(tempfile.mkdtemp(prefix="correctness-baseline-"))
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory


def _row(name: str, r: dict[str, object]) -> str:
    total, answerable = int(r["total"]), int(r["answerable"])  # type: ignore[call-overload]
    right, wrong, held, none = (int(r[k]) for k in ("right", "wrong", "held", "none"))  # type: ignore[call-overload]
    return (f"| {name} | {wrong} | {right}/{answerable} = {right / max(answerable, 1):.0%} "
            f"| {held}/{total} = {held / max(total, 1):.0%} | {none} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline (default: %(default)s)")
    parser.add_argument("--show", choices=["wrong", "held", "all", "none"], default="wrong",
                        help="also print these cases of this tree's run: wrong auto-sends (the default), "
                             "answerable ones held, all, none")
    parser.add_argument("--no-baseline", action="store_true", help="only run this tree")
    args = parser.parse_args()
    started = time.monotonic()
    before = None if args.no_baseline else _child(_tree_at(args.baseline), "none")
    after = _child(ROOT, args.show)
    print(f"{after['total']} cases, {after['answerable']} answerable under the shipped policy "
          f"({time.monotonic() - started:.0f} s)\n")
    print("| run | wrong auto-sends | answerable auto-sent right | held | no draft |")
    print("|---|---|---|---|---|")
    if before is not None:
        print(_row(f"before ({args.baseline})", before))
    print(_row("after (this tree)", after))
    print("\nby kind (cases, right, wrong, held), before -> after:")
    for kind, now in after["by_kind"].items():  # type: ignore[attr-defined]
        print(f"  {kind:13} {before['by_kind'].get(kind) if before else ''} -> {now}")  # type: ignore[attr-defined]
    for case in after["shown"]:  # type: ignore[attr-defined]
        print(f"\n--- {case['id']}: {case['outcome']} ({case['state']}) cited {case['cited']}; {case.get('why', '')}")
        for problem in case["problems"]:
            print(f"  ! {problem}")
        if args.show == "wrong" or case["problems"]:
            print("  " + case["text"].replace("\n", "\n  "))


if __name__ == "__main__":
    main()
