"""`pip install .` as a stranger does it: a wheel (not an editable install) in a fresh venv, run
from an empty folder. Everything the program reads at run time (instruction template, sample
knowledge, policies, examples, classifiers, eval sets, web templates and static files,
migrations) must be in the wheel; the demo then runs, and the commands it prints work as printed
from another folder with a bare PATH.

Offline: the wheel is built without build isolation (setuptools from the test extras) and
installed with --no-deps --no-index; the new venv finds the dependencies through a `.pth` line
naming this environment's site-packages (which holds mailagent only as an editable install, a
finder that a `.pth` line does not run)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

from .support.dovecot import free_port
from .support.shell import Block

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd, check=False)
    assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


def _wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the working tree (so the build leaves nothing in it)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mailagent", source / "mailagent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", tmp_path / "dist", source)
    [wheel] = (tmp_path / "dist").glob("mailagent-*.whl")
    return wheel


def test_the_wheel_holds_every_file_of_the_package(tmp_path: Path) -> None:
    tracked = set(_run("git", "ls-files", "mailagent", cwd=ROOT).split())
    assert len(tracked) > 250
    names = set(zipfile.ZipFile(_wheel(tmp_path)).namelist())
    assert sorted(tracked - names) == []


def test_a_wheel_in_a_fresh_venv_runs_the_demo_and_its_commands_work_as_printed(tmp_path: Path) -> None:
    started = time.monotonic()
    wheel = _wheel(tmp_path)
    venv = tmp_path / "fresh"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "dependencies.pth").write_text("\n".join(dict.fromkeys(
        [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])) + "\n")
    installed = _run(python, "-c", "import mailagent; print(mailagent.__file__)", cwd=tmp_path).strip()
    assert installed.startswith(str(site)), installed                     # the wheel's copy, not this checkout

    empty = tmp_path / "empty"
    empty.mkdir()
    port = free_port()
    demo = _run(venv / "bin" / "mailagent", "demo", "--smtp-port", port, cwd=empty)
    assert "Received 34 messages" in demo and "[5/5] done" in demo, demo
    assert "knowledge base: 38 articles" in demo and " replies delivered to the local SMTP server" in demo
    assert "0 replies delivered" not in demo and "drafting failed" not in demo
    assert "policy and fixtures are valid" in _run(venv / "bin" / "mailagent", "policy", "check", cwd=empty)
    assert " 0 failed" in _run(venv / "bin" / "mailagent", "policy", "test", cwd=empty)

    printed = [line.strip() for line in demo.split("Look further", 1)[1].splitlines()[1:] if line.strip()]
    assert printed[0].startswith(f"{venv}/bin/mailagent --config {empty}/mailagent-demo/config.toml ")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    block = Block(elsewhere, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
                                  "PYTHONUNBUFFERED": "1"})    # so that the SMTP server's output is read when it stops
    try:
        for line in printed:
            if not line.startswith("#"):
                code, out, err = block.run(line, wait_for_port=port)
                assert code == 0, (line, out, err)
                if " actions approve " in line:      # the confirming reply waits for the rep, who sends it
                    held = re.search(r"drafts approve (\d+)", out)
                    assert held is not None, out
                    prefix = line.split(" actions approve ")[0]
                    code, out, err = block.run(f"{prefix} drafts approve {held.group(1)} --as you@example",
                                               wait_for_port=port)
                    assert code == 0, (out, err)
    finally:
        received = block.stop()
    assert [line for line, *_ in block.ran if " -m aiosmtpd " in line] == [
        f"{venv}/bin/python -m aiosmtpd -n -l 127.0.0.1:{port} &"]
    assert [line for line, *_ in block.ran if " approve " in line] != []
    assert received.count(b"---------- MESSAGE FOLLOWS ----------") >= 2     # a held draft and a refund's reply
    print(f"\nwheel built, installed in a fresh venv, demo and its {len(block.ran)} commands run in "
          f"{time.monotonic() - started:.1f} s")
