"""Fuzz the whole pipeline: mutated real mail, ingested without a mailbox, classified, drafted,
decided and delivered to aiosmtpd by `mailagent run --until-idle`'s engine; then where every
message ended.

    .venv/bin/python bench/fuzz.py [--count 1000] [--seed N] [--baseline 200]

Mutations (tests/support/fuzz.py, an equal share each): truncation, byte flips, duplicated
headers, multiparts nested 50-5,000 deep, 10 KB-1 MB headers, bad charsets (headers and body), bad
base64, and two of these at once. Seeds: the bundled sample inbox and the shared corpora. The
policy tries to auto-send everything, so every stage runs. Figures: states of messages, drafts
and replies, stalls (messages left `stored`, drafts left `drafting`, replies left `sending`,
anything the sweeper would still find due: target 0), raw bytes changed (target 0), and time per
message against a baseline of unmutated seed mail run the same way in the same run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailagent.store import db, schema  # noqa: E402
from mailagent.worker.inprocess import InProcess  # noqa: E402
from tests.support import fuzz  # noqa: E402
from tests.support.smtpd import SmtpServer  # noqa: E402


def run(items: list[tuple[str, bytes]], smtp: SmtpServer) -> tuple[fuzz.Report, float]:
    """One fresh database, every item through the pipeline; (report, seconds)."""
    with tempfile.TemporaryDirectory(prefix="mailagent-fuzz-") as tmp:
        url = f"sqlite:///{tmp}/fuzz.db"
        schema.upgrade(url)
        settings = fuzz.settings_for(url, Path(tmp), smtp.port)
        started = time.perf_counter()
        ids = fuzz.store(settings, items)
        with InProcess(settings) as app:
            app.until_idle()
        elapsed = time.perf_counter() - started
        report = fuzz.check(settings, items, ids)
        db.dispose()
    return report, elapsed


def clean(n: int) -> list[tuple[str, bytes]]:
    """Unmutated seed mail, each with its own Message-ID: the baseline."""
    pool = fuzz.seeds()
    return [("clean", b"Message-ID: <clean.%d@fuzz.example>\n" % i
             + re.sub(rb"(?im)^message-id:", b"X-Old-Message-ID:", pool[i % len(pool)])) for i in range(n)]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=20261206)
    p.add_argument("--baseline", type=int, default=200, help="unmutated messages for the baseline")
    args = p.parse_args()
    smtp = SmtpServer().start()
    try:
        base, base_s = run(clean(args.baseline), smtp)
        items = fuzz.mutated(args.count, args.seed)
        report, seconds = run(items, smtp)
    finally:
        smtp.stop()
    kinds = Counter(kind for kind, _ in items)
    print(f"fuzz: {args.count} mutated messages (seed {args.seed}), {sum(len(r) for _, r in items) / 1e6:.1f} MB; "
          + ", ".join(f"{k} {kinds[k]}" for k in fuzz.MUTATIONS))
    print(f"{'':24}{'mutated':>12}{'baseline':>12}")
    for label, now_v, base_v in (
            ("messages processed", report.messages["processed"], base.messages["processed"]),
            ("messages failed", report.messages["failed"], base.messages["failed"]),
            ("parse errors kept", report.parse_errors, base.parse_errors),
            ("drafts", sum(report.drafts.values()), sum(base.drafts.values())),
            ("replies sent", report.outbound["sent"], base.outbound["sent"]),
            ("replies failed", report.outbound["failed"], base.outbound["failed"]),
            ("replies unknown", report.outbound["unknown"], base.outbound["unknown"]),
            ("not stored", report.not_stored, base.not_stored),
            ("raw bytes changed", report.raw_mismatches, base.raw_mismatches),
            ("STALLS", report.stalls, base.stalls)):
        print(f"{label:24}{now_v:>12}{base_v:>12}")
    print("drafts by state:  " + ", ".join(f"{k} {v}" for k, v in sorted(report.drafts.items())))
    for why, count in report.reply_errors.most_common():
        print(f"reply {why} ({count})")
    if report.failed_reasons:
        print("failed messages:  " + ", ".join(f"{k} {v}" for k, v in report.failed_reasons.most_common()))
    per, base_per = seconds / args.count * 1000, base_s / args.baseline * 1000
    print(f"ms per message: mutated {per:.1f}, baseline {base_per:.1f}, ratio {per / base_per:.2f}")
    return 0 if report.stalls == 0 and report.raw_mismatches == 0 and report.not_stored == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
