"""Injection detection: detection and false-positive rates per category, against a baseline.

    .venv/bin/python bench/injection.py [--baseline REF]

Runs the attack and benign sets of `tests/injection_sets.py` through `check_injection` (HTML
samples through the HTML renderer first, as the pipeline does) twice in the same run: with this
tree's `agent/guardrails.py` and `mail/html.py`, and with the same two files as they were at git
`REF` (default: the last commit with the pattern list alone). A baseline without a `display_name`
argument is run without it (it never saw display names).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailagent.agent import guardrails  # noqa: E402
from mailagent.mail import html  # noqa: E402
from tests.injection_sets import ATTACKS, BENIGN, HELD_OUT, Sample, inputs  # noqa: E402

PATTERN_LIST_REF = "8382e46"


def _module_at(ref: str, path: str, name: str) -> ModuleType:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _checker(guards: ModuleType, renderer: ModuleType) -> Callable[[Sample], bool]:
    takes_name = "display_name" in inspect.signature(guards.check_injection).parameters

    def flagged(sample: Sample) -> bool:
        args = inputs(sample, renderer.html_to_text)
        if not takes_name:
            args.pop("display_name")
        return bool(guards.check_injection(**args).flagged)

    return flagged


def rates(check: Callable[[Sample], bool], samples: list[Sample]) -> tuple[dict[str, tuple[int, int]], float]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    start = time.perf_counter()
    for sample in samples:
        per[sample.category][0] += check(sample)
        per[sample.category][1] += 1
    elapsed = time.perf_counter() - start
    return {k: (v[0], v[1]) for k, v in per.items()}, elapsed / len(samples)


def _total(per: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return sum(v[0] for v in per.values()), sum(v[1] for v in per.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=PATTERN_LIST_REF, help="git ref of the baseline guardrails and HTML")
    args = parser.parse_args()
    base = _checker(_module_at(args.baseline, "mailagent/agent/guardrails.py", "baseline_guardrails"),
                    _module_at(args.baseline, "mailagent/mail/html.py", "baseline_html"))
    now = _checker(guardrails, html)
    print(f"{len(ATTACKS)} + {len(HELD_OUT)} attacks, {len(BENIGN)} benign messages; baseline = {args.baseline}\n")
    sets = (("detection (flagged / attacks)", ATTACKS), ("held-out detection (flagged / attacks)", HELD_OUT),
            ("false positives (flagged / benign)", BENIGN))
    for title, samples in sets:
        (cur, cur_ms), (old, old_ms) = rates(now, samples), rates(base, samples)
        print(f"{title}\n{'category':<22}{'now':>10}{'baseline':>10}")
        for category in sorted(cur):
            print(f"{category:<22}{'%d/%d' % cur[category]:>10}{'%d/%d' % old[category]:>10}")
        (c, n), (o, _) = _total(cur), _total(old)
        ratio = f"{c / o:.2f}" if o else "inf" if c else "n/a"
        print(f"{'total':<22}{f'{c}/{n}':>10}{f'{o}/{n}':>10}   now {c / n:.1%}, baseline {o / n:.1%}, "
              f"ratio {ratio}")
        print(f"{'ms per message':<22}{cur_ms * 1000:>10.2f}{old_ms * 1000:>10.2f}\n")


if __name__ == "__main__":
    main()
