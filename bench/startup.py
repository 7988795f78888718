"""Start-up benchmark: short commands timed as whole processes, as an MTA or a shell runs them.

    .venv/bin/python bench/startup.py [-n 15] [--database-url URL] [--broker-url redis://...]

Each command runs N times, the commands interleaved round-robin (noise hits all alike), and the
median wall time of each is printed with its ratio to `python -c pass` measured in the same run.
`python -c "import sqlalchemy"` is printed too: what a command would pay just to load the ORM's
engine layer. The database (a fresh SQLite file unless `--database-url`) is created once and
holds a few stored messages; `ingest` gets a new message on stdin each run, so every run stores.
`--compare DIR` also runs each mailagent command with another checkout's code (on PYTHONPATH),
interleaved with the rest: before and after in one run, e.g.
`git worktree add /tmp/before <commit>` and `--compare /tmp/before`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.mails import mail

BIN = Path(sys.executable).parent
MAILAGENT = str(BIN / "mailagent")


def commands(compare: str | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name -> (argv, extra environment)."""
    plain = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
        "mailagent --help": [MAILAGENT, "--help"],
        "mailagent drafts list": [MAILAGENT, "drafts", "list"],
        "mailagent conversations list": [MAILAGENT, "conversations", "list"],
        "mailagent ingest (MTA pipe)": [MAILAGENT, "ingest"],
    }
    out = {name: (argv, {}) for name, argv in plain.items()}
    if compare:
        for name, argv in plain.items():
            if name.startswith("mailagent"):
                out[f"{name} [{Path(compare).name}]"] = (argv, {"PYTHONPATH": compare})
    return out


def timed(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    started = time.perf_counter()
    subprocess.run(argv, input=stdin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=15, help="runs of each command (default 15)")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--broker-url", default="memory://",
                        help="default memory:// (the pipe only stores); redis://... to time the hand-over too")
    parser.add_argument("--compare", metavar="DIR", help="also time another checkout's code (before/after)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mailagent-startup-"))
    env = {**os.environ, "MAILAGENT_DATABASE__URL": args.database_url or f"sqlite:///{root}/bench.db",
           "MAILAGENT_BROKER__URL": args.broker_url, "MAILAGENT_BROKER__NAMESPACE": f"startup-{os.getpid()}",
           "MAILAGENT_CONFIG": str(root / "none.toml")}
    (root / "none.toml").write_text("")
    try:
        subprocess.run([MAILAGENT, "db", "upgrade"], env=env, check=True, capture_output=True)
        for i in range(5):
            timed([MAILAGENT, "ingest"], env, mail(i, sender=f"seed{i}@customer.example"))
        table = commands(args.compare)
        runs: dict[str, list[float]] = {name: [] for name in table}
        serial = 0
        for _ in range(args.n):
            for name, (argv, extra) in table.items():
                serial += 1
                stdin = mail(serial, sender=f"bench{os.getpid()}@customer.example") if "ingest" in name else b""
                runs[name].append(timed(argv, {**env, **extra}, stdin))
        base = statistics.median(runs["python -c pass"])
        print(f"{'command':44} {'median ms':>10} {'min ms':>8} {'ratio to python -c pass':>24}")
        for name, seconds in runs.items():
            median = statistics.median(seconds)
            print(f"{name:44} {median * 1000:10.0f} {min(seconds) * 1000:8.0f} {median / base:24.1f}")
        print(f"(median of {args.n} interleaved runs each; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
