"""Tables. Each row carries its own state; actors move a state forward in one transaction, so a
redelivered broker message finds the work already done and does nothing. One module per domain;
importing this package registers every table (Alembic compares them with the migrations)."""

from mailagent.store.models.accounts import LoginFailure, Role, User, WebSession
from mailagent.store.models.actions import Action, ActionState, AuditEntry
from mailagent.store.models.base import now
from mailagent.store.models.demo import (
    DemoCustomer,
    DemoIncident,
    DemoInvoice,
    DemoOperation,
    DemoOrder,
    DemoSubscription,
)
from mailagent.store.models.drafts import (
    Article,
    Draft,
    DraftState,
    Feedback,
    SpanRecord,
    TraceRecord,
)
from mailagent.store.models.evalflags import EvalFlag
from mailagent.store.models.evals import EvalCase, EvalResult, EvalRun, QualityDaily
from mailagent.store.models.health import WatcherHealth
from mailagent.store.models.helpdesks import (
    HelpdeskEvent,
    HelpdeskEventState,
    HelpdeskPost,
    HelpdeskPostState,
)
from mailagent.store.models.knowledge import ArticleVersion, KnowledgeSuggestion
from mailagent.store.models.mail import (
    Conversation,
    MailboxCursor,
    Message,
    MessageState,
    Mutex,
    Outbound,
    OutboundState,
)

__all__ = [
    "Action", "ActionState", "Article", "ArticleVersion", "AuditEntry", "Conversation", "DemoCustomer", "DemoIncident",
    "DemoInvoice", "DemoOperation", "DemoOrder", "DemoSubscription", "Draft", "DraftState", "EvalCase", "EvalFlag",
    "EvalResult", "EvalRun", "Feedback", "HelpdeskEvent", "HelpdeskEventState", "HelpdeskPost", "HelpdeskPostState",
    "KnowledgeSuggestion", "LoginFailure", "MailboxCursor", "Message", "MessageState", "Mutex", "Outbound",
    "OutboundState", "QualityDaily", "Role", "SpanRecord", "TraceRecord", "User", "WatcherHealth", "WebSession", "now",
]
