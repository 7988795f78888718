"""`replay`: re-run the agent on a conversation's stored turn with another config, beside the old
draft (nothing sent, no action executed)."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from dataclasses import asdict
from typing import TYPE_CHECKING

from mailagent.cli.common import (
    EX_CONFIG,
    Subparsers,
    command,
    fail_on,
    json_flag,
    print_json,
    store,
)

if TYPE_CHECKING:
    from mailagent.config import Settings


def _column(title: str, side: object, width: int) -> list[str]:
    s = side.__dict__
    head = [title, f"decision: {s['decision']} ({s['rule']})", f"intent {s['intent']}, confidence {s['confidence']:.2f}",
            f"flags: {', '.join(s['flags']) or 'none'}", f"proposed: {', '.join(s['proposals']) or 'nothing'}", ""]
    body = [line for para in (s["reply"] or "(no reply)").splitlines() for line in textwrap.wrap(para, width) or [""]]
    trace = ["", "trace:"] + [line for step in s["trace"] for line in textwrap.wrap(step, width)]
    return [line[:width] for line in head + body + trace]


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.evals import replay
    from mailagent.tomlfile import FileError

    store(settings)
    with fail_on(FileError, code=EX_CONFIG), fail_on(LookupError):
        compared = replay.conversation(settings, args.conversation, draft_id=args.draft, config_file=args.candidate)
    if args.json:
        print_json([{"conversation_id": compared.conversation_id, "draft_id": compared.draft_id,
                     "old": asdict(compared.old), "new": asdict(compared.new)}])
        return 0
    width = max(30, (shutil.get_terminal_size((160, 24)).columns - 3) // 2)
    left = _column(f"draft {compared.draft_id} (as stored)", compared.old, width)
    right = _column(f"replay ({args.candidate or 'live config'}; nothing sent)", compared.new, width)
    for a, b in zip(left + [""] * (len(right) - len(left)), right + [""] * (len(left) - len(right)), strict=True):
        print(f"{a.ljust(width)} | {b}".rstrip())
    return 0


def register(sub: Subparsers) -> None:
    c = command(sub, "replay", cmd_replay, help="re-run the agent on a conversation's turn, beside the old draft")
    c.add_argument("conversation", type=int, help="a conversation id")
    c.add_argument("--draft", type=int, help="this draft of the conversation instead of the newest decided one")
    c.add_argument("--config", dest="candidate", metavar="FILE",
                   help="a candidate config ([model], [agent], [knowledge], [policy]); the global --config, before "
                        "the command, names the live config")
    json_flag(c)
