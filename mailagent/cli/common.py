"""What every command shares: a clear error with its exit code, JSON output, the open store, and
who is acting. Kept free of heavy imports: `mailagent --help` must not load a database driver."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailagent.config import Settings


EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_TEMPFAIL, EX_CONFIG = 65, 66, 70, 75, 78
EX_PIPE = 141           # 128 + SIGPIPE: what a shell reports for any program whose reader went away

Handler = Callable[["Settings", argparse.Namespace], int]
Subparsers = Any        # argparse's private _SubParsersAction


class Fail(Exception):
    """A clear error for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class NotFound(LookupError):
    """No row with the id the user gave."""


@contextmanager
def fail_on(*errors: type[Exception], code: int = 1) -> Iterator[None]:
    """The layers below refuse with their own errors (`ReviewError`, `AccountError`, a bad file's
    `FileError` ...): these are the user's to read, so they leave as a `Fail` with `code`, without
    a traceback. Callers import the error classes where they run, to keep `--help` light."""
    try:
        yield
    except errors as exc:
        raise Fail(str(exc), code) from None


def read_text(path: str) -> str:
    """A file the user named, or a `Fail` saying why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Fail(f"cannot read {path}: {exc}", EX_NOINPUT) from None


def command(sub: Subparsers, name: str, handler: Handler, **kw: Any) -> argparse.ArgumentParser:
    c: argparse.ArgumentParser = sub.add_parser(name, **kw)
    c.set_defaults(handler=handler)
    return c


def group(sub: Subparsers, name: str, help: str) -> Subparsers:
    return sub.add_parser(name, help=help).add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")


def json_flag(c: argparse.ArgumentParser) -> None:
    c.add_argument("--json", action="store_true", help="one JSON array of objects (fields: see the README)")


def limit_flag(c: argparse.ArgumentParser, default: int = 200) -> None:
    c.add_argument("--limit", type=int, default=default, metavar="N",
                   help=f"show the newest N (default {default}); the output says when more exist")


def id_arg(c: argparse.ArgumentParser, kind: str, listing: str | None = None) -> None:
    """The command's positional id, named by what it is and the command that lists them."""
    article = "an" if kind[0] in "aeiou" else "a"
    c.add_argument("id", type=int, help=f"{article} {kind} id" + (f" (`{listing}`)" if listing else ""))


def reviewer_flag(c: argparse.ArgumentParser) -> None:
    c.add_argument("--as", dest="reviewer", metavar="REP",
                   help="who is acting, for the audit log (default: $MAILAGENT_REVIEWER, else $USER@cli)")


def reviewer(args: argparse.Namespace) -> str:
    return args.reviewer or os.environ.get("MAILAGENT_REVIEWER") or f"{os.environ.get('USER', 'rep')}@cli"


def command_line(config: str | Path | None) -> str:
    """How to run this very mailagent again, from any folder and shell, with the same config: the
    entry point next to the running interpreter (a venv's bin/, else the interpreter with
    `-m mailagent`), then `--config` with the absolute path when a config file was named. Printed
    commands start with it, so they work as printed."""
    script = Path(sys.executable).with_name("mailagent")
    prefix = shlex.quote(str(script)) if script.is_file() else f"{shlex.quote(sys.executable)} -m mailagent"
    return f"{prefix} --config {shlex.quote(str(Path(config).absolute()))}" if config else prefix


def print_json(rows: Sequence[dict[str, Any]]) -> None:
    json.dump(list(rows), sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def database_error(exc: BaseException, url: str) -> str | None:
    """One line saying the database cannot be used (down, wrong credentials, no such database),
    or None when `exc` is something else (see `store.plain.is_unavailable`)."""
    from mailagent.store import plain

    if not plain.is_unavailable(exc):
        return None
    from mailagent.store.db import safe_url

    return f"database unavailable ({safe_url(url)}): {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The driver's own words for a database error, without SQLAlchemy's SQL echo and links."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def store(settings: Settings) -> str:
    """The database URL, once the schema is known to be this version's (created if empty)."""
    from mailagent.store import schema

    url = settings.database.url
    schema.ensure_schema(url)
    return url
