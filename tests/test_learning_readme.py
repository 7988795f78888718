"""Every command the README's "The learning loop" section documents, run in order on a desk
with reps' finals, and its TOML examples (an eval set, a classifier) loaded as they are."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mailagent.config import Settings
from mailagent.evals import classifiers, sets

from .support.learning import answer, ask, config_file, desk, mailagent

README = Path(__file__).resolve().parents[1] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## The learning loop")
    return text[start:text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), re.S)


def commands() -> list[list[str]]:
    """`mailagent ...` lines of the shell blocks, without comments and `|| exit 1`."""
    found = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].split("||", 1)[0].strip()
            if line.startswith("mailagent "):
                found.append(shlex.split(line)[1:])
    return found


def test_the_readme_commands_run_in_order(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = desk(sqlite_url)
    answer(settings, ask(settings, "Dark mode?", "Is there a dark mode in the Nimbus app?"),
           "Hi,\n\nYes: Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose Dark.\n\nBest,\nAna")
    answer(settings, ask(settings, "Printing notes", "Can I print a notebook with all its pages?",
                         sender="carol@customer.example"),
           "Hi,\n\nYes: open the notebook, choose File → Print notebook and tick All pages.\n\nBest,\nAna")
    answer(settings, ask(settings, "Add team members", "How do I add more seats and invite team members?",
                         sender="dave@customer.example"))
    ask(settings, "Password reset email never arrives", "The reset email never arrives. What can I do?",
        sender="erin@customer.example")
    monkeypatch.chdir(tmp_path)
    config = config_file(tmp_path, settings)
    (tmp_path / "should.txt").write_text("Hi,\n\nThe reset link is valid for 60 minutes.\n")
    (tmp_path / "candidate.toml").write_text('[agent]\ncompany = "Nimbus Notes"\nvoice = "warm and brief"\n'
                                             'allowed_link_domains = ["nimbusnotes.example"]\n')
    ran = []
    for args in commands():
        if args[:1] == ["--config"]:
            args = args[2:]                                   # the CI example names its own config file
        code, out, err = mailagent(capsys, config, *args)
        assert code == 0, (args, out, err)
        ran.append(" ".join(args[:2]))
    assert {"evals build", "evals flag", "eval run", "kb suggestions", "classifiers test", "replay 1",
            "evals export"} <= set(ran)
    assert (tmp_path / "openai-eval" / "eval.json").exists() and (tmp_path / "finetune.jsonl").exists()


def test_the_readme_toml_examples_load(tmp_path: Path) -> None:
    [eval_set, classifier] = blocks("toml")
    (tmp_path / "example.toml").write_text(eval_set)
    loaded = sets.read(tmp_path / "example.toml", Settings())
    assert [g.name for g in loaded.graders] == ["required_facts", "model:correctness"]
    (tmp_path / "rudeness.toml").write_text(classifier)
    found = classifiers.read(tmp_path / "rudeness.toml")
    assert classifiers.test(found).passed and found.estimate("As we already said, read the manual.") == "rude"
