"""The `mailagent` command: the parser is assembled from one module per command group, each
importing what its commands need only when they run. Output is for people by default, `--json`
for programs (field names are documented in the README)."""

from __future__ import annotations

import argparse
import logging
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
from mailagent.cli.common import EX_CONFIG, EX_TEMPFAIL, Fail, NotFound

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
    from mailagent import config
    from mailagent.config import ConfigError

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.use(config.load(args.config))
        return int(args.handler(settings, args))
    except ConfigError as exc:
        print(f"mailagent: configuration error:\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except Fail as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return exc.code
    except NotFound as exc:
        print(f"mailagent: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        from mailagent.store.schema import (
            SchemaError,  # loaded already by the command that raised
        )

        if not isinstance(exc, SchemaError):
            raise
        print(f"mailagent: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else 1
