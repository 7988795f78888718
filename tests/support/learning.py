"""The learning loop in tests: a support desk on the sample knowledge base (offline model, shipped
policy), customers who ask, reps who answer, and the `mailagent` command run in-process."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from mailagent import cli
from mailagent.actions.backends.demo import seed
from mailagent.config import DATA, Settings
from mailagent.review import drafts
from mailagent.store import db

from ..conftest import make_settings
from .flow import policy_dir, receive, synced
from .mails import mail

AGENT = {"company": "Nimbus Notes", "allowed_link_domains": ["nimbusnotes.example", "example.com"]}
HOLD_ALL = '[defaults]\ndecision = "hold"\n'


def hold_all(tmp_path: Path) -> dict[str, str]:
    """A `[policy]` section whose policy holds every draft for a rep."""
    return {"directory": policy_dir(tmp_path, HOLD_ALL)}
_numbers = itertools.count(1)


def desk(url: str, **sections: Any) -> Settings:
    """Settings on the sample knowledge base and demo backend, with the shipped policy."""
    settings = synced(make_settings(url, agent=AGENT, **sections))
    seed(url, DATA / "examples" / "backend.toml")
    return settings


def ask(settings: Settings, subject: str, body: str, sender: str = "bob@customer.example") -> int:
    """A customer writes; returns the draft of the reply (decided by the policy)."""
    n = next(_numbers)
    [outcome] = receive(settings, mail(n, sender=sender, subject=subject, body=body,
                                       message_id=f"learn{n}.{sender}"))
    assert outcome.draft_id is not None
    return outcome.draft_id


def answer(settings: Settings, draft_id: int, final: str | None = None, rep: str = "ana@example") -> None:
    """A rep sends the draft, or their own reply."""
    drafts.approve(settings, draft_id, rep, final)


def config_file(tmp_path: Path, settings: Settings, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""[database]
url = "{settings.database.url}"
[agent]
company = "Nimbus Notes"
allowed_link_domains = ["nimbusnotes.example", "example.com"]
[mailboxes.support]
address = "support@example.com"
{extra}""")
    return path


def mailagent(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    """`mailagent --config CONFIG ARGS...` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = cli.main(["--config", str(config), *args])
    db.dispose()
    out, err = capsys.readouterr()
    return code, out, err


def mailagent_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[dict[str, Any]]:
    code, out, err = mailagent(capsys, config, *args, "--json")
    assert code == 0, err
    return json.loads(out)
