"""The long-running processes of the Procfile (`web`, `worker`, `clock`, `watch`), `run` (all of
them in one process), the `lmtp` listener an MTA delivers to, and `demo`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.cli.common import EX_CONFIG, Fail, Subparsers, command, store

if TYPE_CHECKING:
    from mailagent.config import Settings


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.worker.inprocess import InProcess

    store(settings)
    with InProcess(settings) as app:
        if not args.until_idle:
            app.forever()
            return 0
        failures = app.until_idle()
    for failure in failures:
        print(f"mailagent run: failed: {failure.line()}", file=sys.stderr)
    if failures:
        print(f"mailagent run: {len(failures)} piece(s) of work failed; they are tried again on the next run",
              file=sys.stderr)
    return 1 if failures else 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Exec dramatiq's own CLI: it manages processes, threads and graceful SIGTERM."""
    if settings.broker.in_process:
        raise Fail("`worker` needs a shared broker: set [broker] url = \"redis://...\" "
                   "(or use `mailagent run` for everything in one process)", EX_CONFIG)
    store(settings)
    if settings.source != "(embedded defaults)":
        os.environ["MAILAGENT_CONFIG"] = str(Path(settings.source).resolve())
    argv = ["dramatiq", "mailagent.worker.actors", "--processes", str(args.processes or settings.worker.processes),
            "--threads", str(args.threads or settings.worker.threads)]
    if args.queues:
        from mailagent.worker.broker import QUEUES

        unknown = sorted(set(args.queues) - set(QUEUES.values()))
        if unknown:
            raise Fail(f"no such queue: {', '.join(unknown)} (queues: {', '.join(sorted(set(QUEUES.values())))})",
                       EX_CONFIG)
        argv += ["--queues", *args.queues]
    os.execvp(sys.executable, [sys.executable, "-m", *argv])


def cmd_clock(settings: Settings, _args: argparse.Namespace) -> int:
    from apscheduler.schedulers.blocking import BlockingScheduler

    from mailagent.worker import broker, clock

    store(settings)
    scheduler = BlockingScheduler(timezone="UTC")
    clock.schedule(scheduler, settings, lambda name: broker.send(settings, "poll_mailbox", name),
                   lambda: broker.send(settings, "sweep"), lambda actor: broker.send(settings, actor))
    _stop_on_signals(lambda: scheduler.shutdown(wait=False))
    scheduler.start()
    return 0


def cmd_watch(settings: Settings, _args: argparse.Namespace) -> int:
    import threading

    from mailagent.worker import broker, watch

    stop = threading.Event()
    _stop_on_signals(stop.set)
    threads = watch.start(settings, lambda name: broker.send(settings, "poll_mailbox", name), stop)
    if not threads:
        raise Fail("no mailbox has IMAP with idle = true: nothing to watch", EX_CONFIG)
    stop.wait()
    return 0


def _stop_on_signals(stop: Callable[[], None]) -> None:
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop())


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from mailagent.web import site
    from mailagent.web.app import create_app

    store(settings)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise Fail("--tls-cert and --tls-key go together", EX_CONFIG)
    if site.secret(settings) is None:
        print(f"mailagent web: the review page is off: set {settings.web.session_secret_env} (32+ random characters)",
              file=sys.stderr)
    # Forwarded headers are believed only from [web] trusted_proxies (web/proxy.py), not by uvicorn.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info", proxy_headers=False,
                ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key)
    return 0


def cmd_lmtp(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from mailagent.worker import lmtp

    if not settings.mailboxes:
        raise Fail("no [mailboxes.NAME] with an address: every recipient would be refused", EX_CONFIG)
    if args.socket and (args.host or args.port):
        raise Fail("--socket, or --host and --port: not both", EX_CONFIG)
    store(settings)
    asyncio.run(lmtp.serve(settings, host=args.host, port=args.port, socket_path=args.socket))
    return 0


def cmd_demo(_settings: Settings, args: argparse.Namespace) -> int:
    from mailagent.cli import demo

    return demo.main(Path(args.dir), args.smtp_port)


def register(sub: Subparsers) -> None:
    c = command(sub, "run", cmd_run, help="worker, clock and IDLE watchers in one process (in-process broker)")
    c.add_argument("--until-idle", action="store_true", help="process everything pending, then exit")
    c = command(sub, "worker", cmd_worker, help="dramatiq worker processes on the configured broker")
    c.add_argument("--processes", type=int, metavar="N", help="worker processes (default: [worker] processes)")
    c.add_argument("--threads", type=int, metavar="N", help="threads per process (default: [worker] threads)")
    c.add_argument("--queues", nargs="+", metavar="QUEUE",
                   help="only these queues (ingest draft outbox helpdesk default); run outbox apart from the rest")
    command(sub, "clock", cmd_clock, help="schedule mailbox polls and the sweeper")
    command(sub, "watch", cmd_watch, help="hold IMAP IDLE and enqueue a poll when mail arrives")
    c = command(sub, "lmtp", cmd_lmtp, help="receive mail from Postfix or Dovecot over LMTP (stored, then acknowledged)")
    c.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    c.add_argument("--port", type=int, help="port to listen on (default 24)")
    c.add_argument("--socket", metavar="PATH", help="listen on this Unix socket instead")
    c = command(sub, "web", cmd_web, help="the HTTP app: the review page, helpdesk webhooks, health, metrics")
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    c.add_argument("--port", type=int, default=8025, help="port to listen on (default 8025)")
    c.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate chain (PEM)")
    c.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    c = command(sub, "demo", cmd_demo, help="the whole flow on bundled sample mail, no setup")
    c.add_argument("--dir", default="mailagent-demo", help="where the demo keeps its database and config")
    c.add_argument("--smtp-port", type=int, default=2525, help="port of the local SMTP server the demo starts")
