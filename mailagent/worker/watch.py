"""The watcher: one IMAP IDLE connection per mailbox that asks for it, each enqueueing a poll the
moment mail arrives (and after every reconnect, to resync)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mailagent.config import Settings
from mailagent.mail.imap import IdleWatcher


def start(settings: Settings, poll: Callable[[str], None], stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for name, mailbox in settings.mailboxes.items():
        if mailbox.imap is None or not mailbox.imap.idle:
            continue
        watcher = IdleWatcher(name, mailbox.imap, lambda name=name: poll(name), stop)
        thread = threading.Thread(target=watcher.run, name=f"idle:{name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
