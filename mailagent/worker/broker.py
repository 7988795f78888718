"""The broker, built from `[broker]` when a process first needs it, never at import.

`memory://` is dramatiq's in-process StubBroker (`mailagent run`, the demo); `redis://...` is
shared by every worker. `send` enqueues by actor name, so a command that only hands work over
(an MTA-piped `ingest`, an approval) never imports the pipeline, the agent or the model client.
"""

from __future__ import annotations

import functools
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dramatiq

from mailagent.config import Broker, Settings, current

if TYPE_CHECKING:
    from mailagent.pipeline.sweeper import Due

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


def message(actor: str, *args: Any) -> dramatiq.Message[Any]:
    """A message for `actor` by name, without importing the actors."""
    return dramatiq.Message(queue_name=QUEUES[actor], actor_name=actor, args=args, kwargs={}, options={})


def send(settings: Settings, actor: str, *args: Any, delay_ms: int | None = None) -> None:
    """Enqueue a message for `actor` on the shared broker, without importing the actors."""
    broker = _installed if _installed is not None else _sender(settings.broker)
    broker.enqueue(message(actor, *args), delay=delay_ms)


def queued(broker: dramatiq.Broker) -> set[tuple[str, int]]:
    """(actor, row id) of every message waiting in the broker: queued, delayed for a retry, or
    fetched by a worker and not acknowledged yet (Redis keeps a message's body in
    `NS:QUEUE.msgs` / `NS:QUEUE.DQ.msgs` until it is acknowledged). A `fan_out` batch counts for
    each message it names."""
    bodies: list[bytes] = []
    for queue in set(QUEUES.values()):
        if hasattr(broker, "client"):                                 # RedisBroker
            for key in (f"{broker.namespace}:{queue}.msgs", f"{broker.namespace}:{queue}.DQ.msgs"):
                bodies += [body for _, body in broker.client.hscan_iter(key)]
        elif queue in getattr(broker, "queues", {}):                  # StubBroker: queue.Queue of bodies
            bodies += list(broker.queues[queue].queue)
    found: set[tuple[str, int]] = set()
    for body in bodies:
        decoded = dramatiq.Message.decode(body)
        if decoded.actor_name == "fan_out" and decoded.args:
            found.update(("process_message", ref) for ref in decoded.args[0])
        elif decoded.args and isinstance(decoded.args[0], int):
            found.add((decoded.actor_name, decoded.args[0]))
    return found


def enqueue_due(broker: dramatiq.Broker, due: Due) -> int:
    """Send every due row to its actor; the number sent."""
    for actor, refs in due.work():
        for ref in refs:
            broker.enqueue(message(actor, ref))
    return due.count


def sweep(broker: dramatiq.Broker, settings: Settings) -> int:
    """The clock's sweep: work stuck in a non-final state and not already queued, enqueued once."""
    from mailagent.pipeline import sweeper

    due = sweeper.find_due(settings, timedelta(seconds=settings.clock.stuck_after_seconds))
    return enqueue_due(broker, due.without(queued(broker)))
