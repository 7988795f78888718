"""`helpdesk check NAME`: are the credentials of `[helpdesks.NAME]` good, and what must the
helpdesk's admin set up (webhook, triggers, macros) for mailagent to hear from it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mailagent.cli.common import EX_CONFIG, Fail, Subparsers, command, group

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent import config, helpdesks
    from mailagent.helpdesks.base import HelpdeskError

    desk = settings.helpdesk(args.name)
    hook_url = f"{args.public_url.rstrip('/')}/hooks/{desk.kind}/{args.name}"
    problems = []
    try:
        config.secret(f"helpdesks.{args.name}.webhook_secret_env", desk.webhook_secret_env)
    except config.ConfigError as exc:
        problems.append(f"webhook secret: {exc}")
    api = helpdesks.client(settings, args.name)
    try:
        who = api.whoami()
    except (HelpdeskError, config.ConfigError) as exc:
        raise Fail(f"{args.name}: credentials do not work against {desk.api_url}: {exc}", EX_CONFIG) from None
    finally:
        api.close()
    print(f"{args.name}: credentials OK against {desk.api_url}: acting as {who}")
    if f"user {desk.bot_user_id} " not in f"{who} ":
        problems.append(f"bot_user_id = {desk.bot_user_id}, but the credentials act as {who}: the loop guard "
                        "needs the id of the user the credentials act as")
    print()
    print(helpdesks.module(desk.kind).setup(desk, args.name, hook_url))
    if problems:
        raise Fail("\n".join(problems), EX_CONFIG)
    return 0


def register(sub: Subparsers) -> None:
    desks = group(sub, "helpdesk", "helpdesk accounts ([helpdesks.NAME])")
    c = command(desks, "check", cmd_check,
                help="verify the credentials against the API and print the webhook and trigger setup")
    c.add_argument("name", help="the NAME of a [helpdesks.NAME] table")
    c.add_argument("--public-url", default="https://mailagent.example.com", metavar="URL",
                   help="where helpdesks reach `mailagent web` (used in the printed webhook URL)")
