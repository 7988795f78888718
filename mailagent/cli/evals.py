"""`evals` (the cases: list, show, curate, flag, build, export) and `eval` (run a set as a gate,
list and show runs)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailagent.cli.common import (
    EX_CONFIG,
    Fail,
    Subparsers,
    command,
    fail_on,
    group,
    id_arg,
    json_flag,
    limit_flag,
    print_json,
    read_text,
    reviewer,
    reviewer_flag,
    store,
)
from mailagent.cli.rows import print_listing, print_table

if TYPE_CHECKING:
    from mailagent.config import Settings
    from mailagent.evals.runs import Outcome
    from mailagent.store.models import EvalCase, EvalResult

SOURCES = ["approved", "edit", "rep-written", "rejected", "flag"]
CASE_STATES = ["new", "accepted", "dropped"]


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def case_row(c: EvalCase) -> dict[str, Any]:
    return {"id": c.id, "origin": c.origin, "source": c.source, "state": c.state,
            "conversation_id": c.conversation_id, "draft_id": c.draft_id, "tags": c.tags,
            "subject": c.request.get("subject", ""), "has_reference": c.reference is not None,
            "edit_distance": c.changes.get("edit_distance"), "similarity": c.changes.get("similarity"),
            "facts_added": c.changes.get("facts_added", []), "facts_removed": c.changes.get("facts_removed", []),
            "reviewer": c.reviewer, "note": c.note, "rep_at": _iso(c.rep_at), "created_at": _iso(c.created_at),
            "seconds_to_case": round((c.created_at - c.rep_at).total_seconds(), 1),
            "curated_by": c.curated_by, "curated_at": _iso(c.curated_at)}


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals.cases import Filter, select_cases
    from mailagent.store import db

    which = Filter(tuple(args.state or ()), tuple(args.source or ()), tuple(args.tag or ()))
    with db.reading(store(settings)) as s:
        rows = [case_row(c) for c in select_cases(s, which, limit=args.limit + 1)]
    print_listing(rows, args, ["id", "source", "state", "subject", "similarity", "facts_added", "tags"])
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    case = _case(store(settings), args.id)
    if args.json:
        print_json([case_row(case) | {"request": case.request, "draft": case.draft, "reference": case.reference,
                                      "draft_meta": case.draft_meta, "changes": case.changes}])
        return 0
    request = case.request
    lines = [f"{k:16} {json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v}"
             for k, v in case_row(case).items() if v not in (None, [], "")]
    lines += ["", f"--- what the agent saw: {request.get('subject', '')!r} from {request.get('customer_addr')} ---"]
    lines += [f"[{t['who']}, {t['at'][:16]}] {t['text'].strip()}" for t in request.get("history", [])]
    lines += [str(request.get("latest", "")).strip()]
    if request.get("customer_details"):
        lines += ["customer: " + ", ".join(f"{k}={v}" for k, v in request["customer_details"].items())]
    lines += ["", f"--- draft ({case.draft_meta.get('decision')} by {case.draft_meta.get('rule')}) ---",
              case.draft.strip() or "(no draft text)"]
    lines += ["", "--- the rep's final (reference) ---", case.reference.strip() if case.reference else "(none)"]
    print("\n".join(lines))
    return 0


def _case(url: str, case_id: int) -> EvalCase:
    from mailagent.evals.cases import CaseError, get

    with fail_on(CaseError):
        return get(url, case_id)


def _curate(settings: Settings, args: argparse.Namespace, state: str) -> int:
    from mailagent.evals.cases import CaseError, curate

    with fail_on(CaseError):
        rows = curate(store(settings), args.ids, state, reviewer(args))
    print(f"{state}: case(s) {', '.join(str(r.id) for r in rows)}")
    return 0


def cmd_accept(settings: Settings, args: argparse.Namespace) -> int:
    return _curate(settings, args, "accepted")


def cmd_drop(settings: Settings, args: argparse.Namespace) -> int:
    return _curate(settings, args, "dropped")


def cmd_tag(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals.cases import CaseError, retag

    with fail_on(CaseError):
        row = retag(store(settings), args.id, args.add or [], args.remove or [], reviewer(args))
    print(f"case {row.id}: {' '.join(row.tags)}")
    return 0


def cmd_flag(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.review import ReviewError, evalflags

    reference = read_text(args.reference) if args.reference else None
    store(settings)
    with fail_on(ReviewError):
        row = evalflags.flag(settings, args.conversation, reviewer(args), args.note, args.draft, reference=reference)
    print(f"case {row.eval_case_id} (flag) from draft {row.draft_id}")
    return 0


def cmd_build(settings: Settings, _args: argparse.Namespace) -> int:
    from mailagent.evals import learning

    store(settings)
    done = learning.build(settings)
    print(f"{done.cases} new case(s), {done.suggestions} new knowledge suggestion(s)")
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import export
    from mailagent.tomlfile import FileError

    store(settings)
    with fail_on(FileError, code=EX_CONFIG), fail_on(export.ExportError):
        written = export.export(settings, args.format, Path(args.out), set_name=args.set, run_id=args.run)
    for line in written.summary:
        print(line)
    if args.upload:
        if args.format != "openai":
            raise Fail("--upload needs --format openai")
        with fail_on(export.ExportError):
            uploaded = export.upload(settings, written)
        print(f"uploaded: eval {uploaded.eval_id}, run {uploaded.run_id} ({uploaded.status})"
              + (f": {uploaded.report_url}" if uploaded.report_url else ""))
        for warning in uploaded.warnings:
            print(f"note: the openai client marks the Evals API deprecated: {warning}")
    return 0


# --- eval run ------------------------------------------------------------------------------------

class Bar:
    """A progress bar on stderr (one updating line on a terminal, a line per tenth otherwise)."""

    def __init__(self, width: int = 30) -> None:
        self.width, self.tty, self.shown = width, sys.stderr.isatty(), -1

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} cases"
        if self.tty:
            sys.stderr.write("\r" + line + ("\n" if done == total else ""))
        elif done * 10 // max(total, 1) != self.shown:
            self.shown = done * 10 // max(total, 1)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _grades(grades: list[Any]) -> str:
    def one(g: Any) -> tuple[str, float, bool]:
        return (g["grader"], g["score"], g["passed"]) if isinstance(g, dict) else (g.grader, g.score, g.passed)

    return ", ".join(f"{name} {score:.2f}{'' if ok else '✗'}" for name, score, ok in map(one, grades))


def outcome_row(o: Outcome | EvalResult, before: EvalResult | None = None) -> dict[str, Any]:
    grades = [g if isinstance(g, dict) else g.to_dict() for g in o.grades]
    row = {"case_id": o.case_id, "score": round(o.score, 3), "passed": o.passed, "decision": o.decision,
           "rule": o.rule, "grades": grades, "reply": o.reply, "flags": list(o.flags),
           "proposals": list(o.proposals), "labels": o.labels, "error": o.error, "trace_id": o.trace_id,
           "seconds": round(o.seconds, 3)}
    if before is not None:
        row |= {"baseline_score": round(before.score, 3), "baseline_passed": before.passed}
    return row


def _print_results(rows: list[dict[str, Any]]) -> None:
    table = [{"case": r["case_id"], "score": f"{r['score']:.2f}", "pass": "✓" if r["passed"] else "✗",
              "was": {True: "✓", False: "✗"}.get(r.get("baseline_passed"), ""), "decision": r["decision"],
              "graders": _grades(r["grades"]) or (r["error"] or "no grader applies")} for r in rows]
    print_table(table, ["case", "score", "pass", "was", "decision", "graders"])
    for r in rows:
        for g in r["grades"]:
            if not g["passed"]:
                print(f"  case {r['case_id']}: {g['grader']} {g['score']:.2f} < {g['threshold']:g}: {g['reason']}")
        if r["error"]:
            print(f"  case {r['case_id']}: error: {r['error']}")


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.config import ConfigError
    from mailagent.evals import runs, sets
    from mailagent.tomlfile import FileError

    url = store(settings)
    try:
        eval_set = sets.load(settings, args.set)
        stored = runs.run(settings, eval_set, config_file=args.candidate, baseline=args.baseline,
                          progress=None if args.json else Bar())
    except ConfigError:
        raise
    except FileError as exc:
        raise Fail(str(exc), EX_CONFIG) from None
    except LookupError as exc:
        raise Fail(str(exc)) from None
    before = {r.case_id: r for r in runs.results_of(url, stored.verdict.baseline_id)} if stored.verdict.baseline_id else {}
    rows = [outcome_row(o, before.get(o.case_id)) for o in stored.outcomes]
    run, verdict = stored.run, stored.verdict
    if args.json:
        from mailagent.store.quality import run_row

        print_json([run_row(run) | {"results": rows}])
    else:
        _print_results(rows)
        print(f"run {run.id} (set {run.set_name}, {run.cases} case(s)): {run.passed} passed, "
              f"{run.cases - run.passed} failed, mean score {run.score or 0:.3f}")
        for reason in verdict.reasons:
            print(f"  {reason}")
        print("gate: passed" if verdict.passed else "gate: FAILED")
    return 0 if verdict.passed else 1


def cmd_runs(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.store.quality import eval_runs

    rows = eval_runs(store(settings), set_name=args.set, limit=args.limit + 1)
    print_listing(rows, args, ["id", "set", "cases", "passed", "score", "gate_passed", "baseline_id", "model",
                               "prompt_version", "started_at"])
    return 0


def cmd_run_show(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import runs
    from mailagent.store import db
    from mailagent.store.models import EvalRun
    from mailagent.store.quality import run_row

    url = store(settings)
    with db.reading(url) as s:
        run = s.get(EvalRun, args.id)
    if run is None:
        raise Fail(f"no eval run with id {args.id}")
    before = {r.case_id: r for r in runs.results_of(url, run.baseline_id)} if run.baseline_id else {}
    rows = [outcome_row(r, before.get(r.case_id)) for r in runs.results_of(url, args.id)]
    if args.json:
        print_json([run_row(run) | {"results": rows}])
        return 0
    _print_results(rows)
    print(f"run {run.id}: {json.dumps(run.config)}\n" + "\n".join(f"  {r}" for r in run.gate.get("reasons", [])))
    return 0


def register(sub: Subparsers) -> None:
    ev = group(sub, "evals", "eval cases made from reps' finals and flags")
    c = command(ev, "list", cmd_list, help="the cases, oldest first")
    c.add_argument("--state", action="append", choices=CASE_STATES, help="only cases in this state (repeatable)")
    c.add_argument("--source", action="append", choices=SOURCES, help="only cases from this source (repeatable)")
    c.add_argument("--tag", action="append", metavar="TAG", help="only cases with this tag (repeatable: any)")
    json_flag(c)
    limit_flag(c)
    c = command(ev, "show", cmd_show, help="one case: what the agent saw, its draft, the rep's final, what changed")
    id_arg(c, "eval case", "evals list")
    json_flag(c)
    for name, handler, verb in (("accept", cmd_accept, "into the regression sets"), ("drop", cmd_drop, "out of every set")):
        c = command(ev, name, handler, help=f"take cases {verb}")
        c.add_argument("ids", type=int, nargs="+", metavar="ID", help="eval case ids (`evals list`)")
        reviewer_flag(c)
    c = command(ev, "tag", cmd_tag, help="add or remove tags (sets select cases by tag)")
    id_arg(c, "eval case", "evals list")
    c.add_argument("--add", action="append", metavar="TAG", help="a tag to add, e.g. topic:billing (repeatable)")
    c.add_argument("--remove", action="append", metavar="TAG", help="a tag to remove (repeatable)")
    reviewer_flag(c)
    c = command(ev, "flag", cmd_flag, help="make a conversation's newest decided draft a case")
    c.add_argument("conversation", type=int, help="a conversation id")
    c.add_argument("--note", required=True, help="what the case should check")
    c.add_argument("--draft", type=int, help="this draft of the conversation instead of the newest")
    c.add_argument("--reference", metavar="FILE", help="the reply it should have had (the case's reference)")
    reviewer_flag(c)
    command(ev, "build", cmd_build, help="turn new reps' finals into cases and suggestions now (the clock does "
                                          "this every [evals] case_interval_seconds)")
    c = command(ev, "export", cmd_export, help="write a set as JSONL, in the OpenAI Evals shape, or as fine-tuning data")
    c.add_argument("--format", required=True, choices=["jsonl", "openai", "finetune"],
                   help="jsonl: the cases; openai: data.jsonl + eval.json; finetune: chat-format JSONL")
    c.add_argument("--out", required=True, metavar="PATH", help="a file (jsonl, finetune) or a folder (openai)")
    c.add_argument("--set", default="default", help="the eval set whose cases to export (default: default)")
    c.add_argument("--run", type=int, metavar="RUN", help="openai: use this eval run's replies as the samples")
    c.add_argument("--upload", action="store_true", help="openai: create the eval and a run through the API")

    run = group(sub, "eval", "run eval sets against a config (a CI gate)")
    c = command(run, "run", cmd_run, help="replay a set's cases, grade, store, compare with a baseline")
    c.add_argument("--set", default="default", help="the eval set ([evals] sets/NAME.toml; default: default)")
    c.add_argument("--config", dest="candidate", metavar="FILE",
                   help="a candidate config: its [model], [agent], [knowledge] and [policy] replace the live ones "
                        "for this run (the global --config, before the command, names the live config)")
    c.add_argument("--baseline", metavar="RUN", help="a run id, or last: fail on regressions against it")
    json_flag(c)
    c = command(run, "runs", cmd_runs, help="the stored runs")
    c.add_argument("--set", help="only runs of this set")
    json_flag(c)
    limit_flag(c, 50)
    c = command(run, "show", cmd_run_show, help="one run: each case's grades")
    id_arg(c, "eval run", "eval runs")
    json_flag(c)
