"""Exports of an eval set: the cases as JSONL; the OpenAI Evals shape (a JSONL data source and an
eval definition with string-check, text-similarity and model graders), optionally uploaded through
the `openai` client; and fine-tuning data (chat-format JSONL of rep-approved finals).

What leaves the system is redacted (secrets, as in traces, already are in the cases) and carries
no customer identity: the customer's address and name are replaced by placeholders in every text.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai import OpenAIError

from mailagent.agent.input import compose_input
from mailagent.agent.providers import openai_client
from mailagent.agent.support import instructions
from mailagent.config import Settings
from mailagent.evals import sets
from mailagent.evals.cases import select_cases
from mailagent.evals.judges import RUBRICS
from mailagent.evals.runs import results_of
from mailagent.redact import redact
from mailagent.store import db
from mailagent.store.models import EvalCase

CUSTOMER_ADDRESS = "customer@example.invalid"
CUSTOMER_NAME = "Customer"
FINAL_SOURCES = ("approved", "edit", "rep-written", "flag")
ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "case_id": {"type": "integer"}, "subject": {"type": "string"}, "message": {"type": "string"},
        "history": {"type": "string"}, "reference": {"type": "string"}, "language": {"type": "string"},
        "source": {"type": "string"},
    },
    "required": ["case_id", "subject", "message", "reference"],
}


class ExportError(ValueError):
    """An export or upload that cannot be done; the message says why."""


@dataclass(frozen=True)
class Written:
    paths: tuple[Path, ...]
    summary: tuple[str, ...]
    definition: dict[str, Any] = field(default_factory=dict)      # openai: the eval to create
    rows: tuple[dict[str, Any], ...] = ()                         # openai: the data source's rows
    name: str = ""


def _anonymous(case: EvalCase, text: str) -> str:
    """Redacted, with the customer's address, and their name (from the display name or the
    address, "bob.jones@" -> Bob, Jones), replaced wherever it is written."""
    request = case.request
    out = redact(text)
    address = str(request.get("customer_addr") or "")
    if address:
        out = out.replace(address, CUSTOMER_ADDRESS)
    name = str(request.get("customer_name") or "").strip()
    parts = {*name.split(), *re.split(r"[._+-]", address.partition("@")[0])}
    for part in sorted(filter(lambda p: len(p) > 2 and not p.isdigit(), parts), key=len, reverse=True):
        out = re.sub(rf"\b{re.escape(part)}\b", CUSTOMER_NAME, out, flags=re.IGNORECASE)
    return re.sub(rf"{CUSTOMER_NAME}(\s+{CUSTOMER_NAME})+", CUSTOMER_NAME, out)


def _history(case: EvalCase) -> list[dict[str, str]]:
    return [{"who": t["who"], "at": t["at"], "text": _anonymous(case, t["text"])} for t in case.request.get("history", [])]


def _language(case: EvalCase) -> str:
    return next((t.split(":", 1)[1] for t in case.tags if t.startswith("language:")), "")


def _cases(settings: Settings, set_name: str) -> list[EvalCase]:
    chosen = sets.load(settings, set_name).select
    with db.reading(settings.database.url) as s:
        return select_cases(s, chosen)


def _jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def case_record(case: EvalCase) -> dict[str, Any]:
    request = case.request
    return {"id": case.id, "source": case.source, "state": case.state, "tags": case.tags,
            "input": {"subject": _anonymous(case, request.get("subject", "")),
                      "message": _anonymous(case, request.get("latest", "")), "history": _history(case),
                      "customer_details": {k: v for k, v in request.get("customer_details", {}).items() if k != "name"}},
            "draft": _anonymous(case, case.draft), "reference": _anonymous(case, case.reference) if case.reference else None,
            "changes": case.changes, "note": case.note}


def _item(case: EvalCase) -> dict[str, Any]:
    history = "\n\n".join(f"[{t['who']}] {t['text']}" for t in _history(case))
    return {"case_id": case.id, "subject": _anonymous(case, case.request.get("subject", "")),
            "message": _anonymous(case, case.request.get("latest", "")), "history": history,
            "reference": _anonymous(case, case.reference or ""), "language": _language(case), "source": case.source}


def definition(name: str, settings: Settings) -> dict[str, Any]:
    """The eval: items as `ITEM_SCHEMA`, samples are our replies (`sample.output_text`)."""
    judge_input = ("Customer message:\n{{item.message}}\n\nReference reply by a support rep:\n{{item.reference}}\n\n"
                   "Reply to grade:\n{{sample.output_text}}")
    return {
        "name": name,
        "metadata": {"source": "mailagent"},
        "data_source_config": {"type": "custom", "item_schema": ITEM_SCHEMA, "include_sample_schema": True},
        "testing_criteria": [
            {"type": "string_check", "name": "reply is not empty", "input": "{{sample.output_text}}",
             "reference": "", "operation": "ne"},
            {"type": "text_similarity", "name": "close to the rep's reply", "input": "{{sample.output_text}}",
             "reference": "{{item.reference}}", "evaluation_metric": "rouge_l", "pass_threshold": 0.3},
            {"type": "score_model", "name": "correct against the rep's reply", "model": settings.model.name,
             "input": [{"role": "system", "content": "Grade a customer-support reply from 0 to 1. "
                                                     + RUBRICS["correctness"]},
                       {"role": "user", "content": judge_input}],
             "range": [0, 1], "pass_threshold": 0.7},
        ],
    }


def _samples(settings: Settings, run_id: int | None) -> dict[int, str]:
    if run_id is None:
        return {}
    results = results_of(settings.database.url, run_id)
    if not results:
        raise ExportError(f"eval run {run_id} has no results")
    return {r.case_id: r.reply for r in results}


def export(settings: Settings, fmt: str, out: Path, *, set_name: str = "default", run_id: int | None = None) -> Written:
    cases = _cases(settings, set_name)
    if fmt == "jsonl":
        _jsonl(out, [case_record(c) for c in cases])
        return Written((out,), (f"{out}: {len(cases)} case(s)",))
    finals = [c for c in cases if c.reference and c.source in FINAL_SOURCES]
    if fmt == "finetune":
        rows = [fine_tuning_row(settings, c) for c in finals]
        _jsonl(out, rows)
        return Written((out,), (f"{out}: {len(rows)} conversation(s) with a rep-approved final",))
    if fmt != "openai":
        raise ExportError(f"unknown format {fmt!r}")
    samples = _samples(settings, run_id)
    rows = [{"item": _item(c), "sample": {"output_text": _anonymous(c, samples.get(c.id or 0, c.draft))}}
            for c in finals if run_id is None or c.id in samples]
    name = f"mailagent: {set_name}"
    spec = definition(name, settings)
    out.mkdir(parents=True, exist_ok=True)
    _jsonl(out / "data.jsonl", rows)
    (out / "eval.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    source = f"eval run {run_id}'s replies" if run_id else "the agent's drafts"
    return Written((out / "data.jsonl", out / "eval.json"),
                   (f"{out / 'data.jsonl'}: {len(rows)} item(s), samples from {source}", f"{out / 'eval.json'}: the eval"),
                   spec, tuple(rows), name)


def fine_tuning_row(settings: Settings, case: EvalCase) -> dict[str, Any]:
    """System (the instructions in force), the customer's turns and our earlier replies, then the
    rep-approved final."""
    request = case.request
    messages: list[dict[str, str]] = [{"role": "system", "content": instructions(settings, request.get("mailbox_address", "")).text}]
    for turn in _history(case):
        messages.append({"role": "user" if turn["who"] == "customer" else "assistant", "content": turn["text"]})
    latest = compose_input(mailbox=request.get("mailbox_address", ""), customer_name=CUSTOMER_NAME,
                           customer_addr=CUSTOMER_ADDRESS, customer_details={}, history=[],
                           subject=_anonymous(case, request.get("subject", "")),
                           latest=_anonymous(case, request.get("latest", "")))
    messages.append({"role": "user", "content": latest})
    messages.append({"role": "assistant", "content": _anonymous(case, case.reference or "")})
    return {"messages": messages}


@dataclass(frozen=True)
class Uploaded:
    eval_id: str
    run_id: str
    status: str
    report_url: str
    warnings: tuple[str, ...] = ()          # what the client warned about (the Evals API's deprecation)


def upload(settings: Settings, written: Written) -> Uploaded:
    """Create the eval and one run over the exported rows through the `openai` client."""
    if settings.model.provider == "offline":
        raise ExportError("--upload needs [model] provider = \"openai\" (its base_url and api_key_env)")
    if not written.rows:
        raise ExportError("nothing to upload: the export has no item")
    return asyncio.run(_upload(settings, written))


async def _upload(settings: Settings, written: Written) -> Uploaded:
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always", DeprecationWarning)
            async with openai_client(settings) as client:
                created = await client.evals.create(**written.definition)
                run = await client.evals.runs.create(
                    created.id, name=f"{written.name} ({len(written.rows)} items)",
                    data_source={"type": "jsonl", "source": {"type": "file_content", "content": list(written.rows)}},  # type: ignore[typeddict-item]
                )
    except OpenAIError as exc:
        raise ExportError(f"the upload failed: {exc}") from exc
    notes = tuple(dict.fromkeys(str(w.message) for w in warned if issubclass(w.category, DeprecationWarning)))
    return Uploaded(created.id, run.id, run.status, run.report_url, notes)
