"""Hostile mail: time and peak memory of reading it, against the stdlib parse it replaced.

    .venv/bin/python bench/hostile_mail.py

For each message (multiparts nested 5,000 deep; 1 MB of unclosed <div>; a 50 MB attachment):
  now       `pipeline.classify.inspect` (what the classify stage runs before its transaction: one
            parse, loop detection on the same tree, the envelope);
  baseline  what it ran before: the same `parse` without eliding or the tag limit, i.e. the
            stdlib parser on the raw bytes, every part decoded, the HTML rendered, then a second
            stdlib parse for loop detection.
Each measurement runs in a fresh child process (peak RSS is per process); a baseline that dies
of a RecursionError is reported as such.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("nested_5000", "divs_1mb", "attachment_50mb")


def _message(case: str) -> bytes:
    from tests.support.hostile_mail import big_attachment, nested_multipart, unclosed_divs

    return {"nested_5000": lambda: nested_multipart(5000), "divs_1mb": lambda: unclosed_divs(1_000_000),
            "attachment_50mb": lambda: big_attachment(50_000_000)}[case]()


def _now(raw: bytes) -> None:
    from mailagent.pipeline.classify import inspect

    inspect(raw, own_addresses=(), mailboxes={})


def _baseline(raw: bytes) -> None:
    from email import message_from_bytes
    from email.policy import compat32

    from mailagent.mail import html, loops, parse

    html.MAX_TAGS = 10**12                                   # no tag limit
    parse.elide_large_parts = lambda data: (data, {})        # no eliding
    parse.parse(raw)
    loops.classify(message_from_bytes(raw, policy=compat32))


def child(case: str, which: str) -> None:
    sys.path.insert(0, str(ROOT))
    import mailagent.mail.loops  # noqa: F401 - imports are not part of the cost measured
    import mailagent.pipeline.classify  # noqa: F401

    raw = _message(case)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        (_now if which == "now" else _baseline)(raw)
        outcome = "ok"
    except RecursionError:
        outcome = "RecursionError"
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "rss_mb": peak / 1024, "added_mb": (peak - before) / 1024,
                      "raw_mb": len(raw) / 1e6, "outcome": outcome}))


def main() -> None:
    print(f"{'message':<18}{'':>10}{'seconds':>9}{'peak RSS MB':>13}{'added MB':>10}  outcome")
    for case in CASES:
        results = {}
        for which in ("baseline", "now"):
            out = subprocess.run([sys.executable, __file__, "--child", case, which], capture_output=True, text=True,
                                 check=True).stdout
            results[which] = r = json.loads(out.strip().splitlines()[-1])
            print(f"{case:<18}{which:>10}{r['seconds']:>9.2f}{r['rss_mb']:>13.0f}{r['added_mb']:>10.0f}  {r['outcome']}")
        base, now = results["baseline"], results["now"]
        print(f"{'':<18}{'ratio':>10}{now['seconds'] / base['seconds']:>9.2f}"
              f"{now['added_mb'] / max(base['added_mb'], 1):>23.2f}\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        main()
