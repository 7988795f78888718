"""The broker, built from `[broker]` when a process first needs it, never at import.

`memory://` is dramatiq's in-process StubBroker (`mailagent run`, the demo); `redis://...` is
shared by every worker. `send` enqueues by actor name, so a command that only hands work over
(an MTA-piped `ingest`, an approval) never imports the pipeline, the agent or the model client.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import dramatiq

from mailagent.config import Broker, Settings, current

# Actor name -> queue. Delivery has its own queue and its own workers (`mailagent worker --queues
# outbox`; a pool of its own in `mailagent run`), so a stalled SMTP server never takes the threads
# that drafting needs.
DELIVERY = "outbox"
QUEUES: dict[str, str] = {
    "poll_mailbox": "ingest", "fan_out": "ingest", "process_message": "ingest",
    "draft_reply": "draft", "resume_draft": "draft",
    "deliver": DELIVERY, "save_to_sent": DELIVERY,
    "sweep": "default", "build_eval_cases": "default", "record_quality": "default",
    "helpdesk_event": "helpdesk", "helpdesk_post": "helpdesk",
}

_installed: dramatiq.Broker | None = None
_lock = threading.Lock()


def make_broker(cfg: Broker) -> dramatiq.Broker:
    """Redis with a short heartbeat and frequent maintenance, so a killed worker's messages come
    back within a minute rather than many (dramatiq's defaults)."""
    if cfg.in_process:
        from dramatiq.brokers.stub import StubBroker

        broker: dramatiq.Broker = StubBroker()
        broker.emit_after("process_boot")
        return broker
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=cfg.url, namespace=cfg.namespace, heartbeat_timeout=cfg.heartbeat_timeout_ms,
                       maintenance_chance=cfg.maintenance_chance)


def install(settings: Settings) -> dramatiq.Broker:
    """Make the broker of these settings this process's broker (before the actors are declared)."""
    global _installed
    with _lock:
        _installed = make_broker(settings.broker)
        dramatiq.set_broker(_installed)
        return _installed


def installed() -> dramatiq.Broker:
    """This process's broker; a dramatiq worker process (started by `mailagent worker`) builds it
    from the config file named in `MAILAGENT_CONFIG`."""
    return _installed if _installed is not None else install(current())


@functools.cache
def _sender(cfg: Broker) -> dramatiq.Broker:
    return make_broker(cfg)


def send(settings: Settings, actor: str, *args: Any, delay_ms: int | None = None) -> None:
    """Enqueue a message for `actor` on the shared broker, without importing the actors."""
    broker = _installed if _installed is not None else _sender(settings.broker)
    message = dramatiq.Message(queue_name=QUEUES[actor], actor_name=actor, args=args, kwargs={}, options={})
    broker.enqueue(message, delay=delay_ms)
