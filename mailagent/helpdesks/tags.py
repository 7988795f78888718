"""The tags that carry a rep's decisions from a helpdesk to us, read from a ticket's tags as the
API returns them. A macro (Zendesk) or a rep (Help Scout) adds a tag; we act on it and remove it.

`approve` and `reject` decide the ticket's current draft (or all of its waiting actions);
`approve_<id>` and `reject_<id>` decide one proposed action; `release` hands a conversation a rep
took over back to the agent. Pure functions of the tags and the configured names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailagent.config import HelpdeskTags


def action_tag(base: str, action_id: int) -> str:
    return f"{base}_{action_id}"


@dataclass(frozen=True)
class Decisions:
    approve: bool = False
    reject: bool = False
    release: bool = False
    approve_actions: tuple[int, ...] = ()
    reject_actions: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()        # the tags that carried these decisions (to remove once acted on)

    @property
    def any(self) -> bool:
        return bool(self.tags)


def read(names: HelpdeskTags, tags: Iterable[str]) -> Decisions:
    """The decisions a ticket's tags carry. A tag that both approves and rejects the same thing
    (both tags present) is not a decision: rejecting wins, nothing runs."""
    present = [t.strip() for t in tags]
    approve, reject, release = names.approve, names.reject, names.release
    per_action = {approve: re.compile(rf"{re.escape(approve)}_(\d{{1,12}})", re.IGNORECASE),
                  reject: re.compile(rf"{re.escape(reject)}_(\d{{1,12}})", re.IGNORECASE)}
    found: dict[str, list[int]] = {approve: [], reject: []}
    plain: set[str] = set()
    carried = []
    for tag in present:
        for base, pattern in per_action.items():
            if match := pattern.fullmatch(tag):
                found[base].append(int(match.group(1)))
                carried.append(tag)
        for base in (approve, reject, release):
            if tag.casefold() == base.casefold():
                plain.add(base)
                carried.append(tag)
    rejected = set(found[reject])
    return Decisions(
        approve=approve in plain and reject not in plain, reject=reject in plain, release=release in plain,
        approve_actions=tuple(sorted(set(found[approve]) - rejected)), reject_actions=tuple(sorted(rejected)),
        tags=tuple(dict.fromkeys(carried)))
