"""The `mailagent` command: the parser is assembled from one module per command group, each
importing what its commands need only when they run. Output is for people by default, `--json`
for programs (field names are documented in the README)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from mailagent.cli import (
    actions,
    admin,
    classifiers,
    drafts,
    evals,
    helpdesk,
    knowledge,
    mail,
    outbox,
    policy,
    processes,
    replay,
    report,
    users,
)
from mailagent.cli.common import (
    EX_CONFIG,
    EX_PIPE,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    Fail,
    NotFound,
    database_error,
)

GROUPS = (processes, mail, knowledge, drafts, outbox, policy, actions, helpdesk, evals, classifiers, replay, admin, users,
          report)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailagent", description="Self-hosted AI-assisted customer support over email.")
    p.add_argument("--config", help="config file (default: $MAILAGENT_CONFIG, ./config.toml, or built-in defaults)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in GROUPS:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever happens, it ends with one line on stderr and an exit code from
    the README's table (a traceback only with `-v`, for a bug)."""
    args = parser().parse_args(argv)              # --help ends here, before any configuration
    from mailagent import config
    from mailagent.config import ConfigError
    from mailagent.tomlfile import FileError

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = None
    try:
        settings = config.use(config.load(args.config))
        code = int(args.handler(settings, args))
        sys.stdout.flush()
        return code
    except ConfigError as exc:
        print(f"mailagent: configuration error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except FileError as exc:                       # a data file (articles, seed data ...) with problems
        print(f"mailagent: {exc}", file=sys.stderr)
        return 1
    except Fail as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return exc.code
    except NotFound as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (`| head`) went away: stop quietly, and keep the interpreter's final flush
        # of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_PIPE
    except Exception as exc:
        from mailagent.store.schema import SchemaError

        if isinstance(exc, SchemaError):
            print(f"mailagent: {exc}", file=sys.stderr)
            return EX_TEMPFAIL if args.command == "ingest" else 1
        if settings is not None and (line := database_error(exc, settings.database.url)):
            print(f"mailagent: {line}", file=sys.stderr)
            return EX_TEMPFAIL
        if args.verbose:
            raise
        print(f"mailagent: internal error: {exc.__class__.__name__}: {exc} (run with -v for the traceback)",
              file=sys.stderr)
        return EX_SOFTWARE
