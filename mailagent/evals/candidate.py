"""The config an eval run or a replay tries: the live settings with the sections a candidate file
gives replaced (`[model]`, `[agent]` with its instructions template, `[knowledge]`, `[policy]`),
and, when the knowledge base differs, a scratch database to replay in.

A candidate file is validated like `config.toml` (file, line and key), reads no environment
overrides (those belong to the live config; secrets are still read from `*_env` variables when
used), and may set nothing else: a replay never points at another database, broker or mailbox.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailagent import config, tomlfile
from mailagent.agent.providers import model_name
from mailagent.agent.support import instructions
from mailagent.config import ConfigError, Settings
from mailagent.knowledge.search import sync
from mailagent.store import copying, db, schema
from mailagent.store.models import (
    Article,
    ArticleVersion,
    DemoCustomer,
    DemoIncident,
    DemoInvoice,
    DemoOrder,
    DemoSubscription,
)
from mailagent.tomlfile import Problem

SECTIONS = ("model", "agent", "knowledge", "policy")
# What a replay reads from its database besides the knowledge: the demo backend (parents first).
_COPIED = (Article, ArticleVersion, DemoCustomer, DemoSubscription, DemoOrder, DemoInvoice, DemoIncident)


def load(live: Settings, path: str | Path) -> Settings:
    """The live settings with the candidate file's sections in place of the live ones."""
    text, data = tomlfile.read(Path(path))
    lines = tomlfile.key_lines(text)
    if problems := [Problem(str(path), tomlfile.line_of(lines, (key,)), key,
                            f"a candidate config sets only [{'], ['.join(SECTIONS)}]") for key in data if key not in SECTIONS]:
        raise ConfigError(problems)
    loaded = config.load(path, environ={})
    return live.model_copy(update={section: getattr(loaded, section) for section in data})


def describe(settings: Settings, source: str | None) -> dict[str, str | None]:
    """What a run was made against, stored with it."""
    return {"file": source, "model": model_name(settings),
            "prompt_version": instructions(settings, "").version, "knowledge": settings.knowledge.directory,
            "policy": settings.policy.directory}


def _copy(source: str, target: str) -> None:
    for url in (source, target):
        schema.demo_tables(url)             # the demo backend's own tables, apart from the schema
    copying.copy_rows(source, target, _COPIED)


@contextmanager
def workspace(live: Settings, candidate: Settings) -> Iterator[Settings]:
    """Settings to replay with. With the live knowledge base, the live database (replays only
    read it, and write their traces). With another knowledge folder, a scratch SQLite database:
    the live articles (accepted suggestions included) and demo backend data copied, then the
    candidate folder synced over them as `kb sync` would; deleted afterwards."""
    if candidate.knowledge.directory == live.knowledge.directory:
        yield candidate
        return
    with tempfile.TemporaryDirectory(prefix="mailagent-eval-") as scratch:
        url = f"sqlite:///{scratch}/replay.db"
        schema.upgrade(url)
        try:
            _copy(live.database.url, url)
            sync(url, Path(candidate.knowledge.directory))
            yield candidate.model_copy(update={"database": candidate.database.model_copy(update={"url": url})})
        finally:
            db.dispose(url)
