"""What a customer can want: the intents the agent names, policies match and articles answer."""

from typing import Literal, get_args

Intent = Literal[
    "password_reset", "two_factor", "login_problem", "billing_question", "invoice_request",
    "refund_request", "cancellation", "plan_change", "outage", "data_export", "account_deletion",
    "gdpr_request", "api_question", "how_to", "complaint", "dispute", "other",
]
INTENTS: tuple[str, ...] = get_args(Intent)
