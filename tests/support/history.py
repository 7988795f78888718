"""Past customer turns with known outcomes, written straight into the tables at chosen times, so
the quality figures can be checked against numbers worked out by hand."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import count

from mailagent.store import db
from mailagent.store.models import Conversation, Draft, Feedback, Message, Outbound

_ids = count(1)


@dataclass(frozen=True)
class Turn:
    at: datetime                                    # the customer's message arrives; the draft is made
    decision: str = "send"                          # send | hold | escalate | ignore
    shadow: bool = False
    model: str = "gpt-test"
    tokens: tuple[int, int] = (1000, 200)           # input, output
    review: str | None = None                       # approved | edited | rejected (a rep, an hour later)
    final: str | None = None                        # the edit
    reply_after: float | None = None                # seconds from arrival to the reply leaving
    text: str = "Hello, here is how it works. Best regards"
    conversation: int | None = None                 # another turn of an earlier conversation


def add(url: str, turns: list[Turn]) -> list[int]:
    """Each turn as a message, a draft, its review and its sent reply; returns conversation ids."""
    out = []
    with db.session(url) as s:
        for t in turns:
            n = next(_ids)
            if t.conversation is None:
                conversation = Conversation(mailbox="support", customer_addr=f"c{n}@history.example", subject=f"q{n}",
                                            created_at=t.at, last_message_at=t.at)
                s.add(conversation)
                s.flush()
                conversation_id = conversation.id
            else:
                conversation_id = t.conversation
            assert conversation_id is not None
            raw = f"Message-ID: <h{n}@history.example>\r\n\r\nquestion {n}\r\n".encode()
            message = Message(dedup_key=f"h{n}", message_id=f"h{n}@history.example", sha256=hashlib.sha256(raw).hexdigest(),
                              raw=raw, source="file", mailbox="support", from_addr=f"c{n}@history.example",
                              subject=f"q{n}", received_at=t.at, state="processed", kind="normal",
                              conversation_id=conversation_id)
            s.add(message)
            s.flush()
            state = {"send": "sent", "hold": "held", "escalate": "escalated", "ignore": "ignored"}[t.decision]
            draft = Draft(conversation_id=conversation_id, message_id=message.id, state=state, text=t.text,
                          decision=t.decision, shadow=t.shadow, rule="history", model=t.model if t.decision != "ignore" else "",
                          usage={"requests": 1, "input_tokens": t.tokens[0], "output_tokens": t.tokens[1]}
                          if t.decision != "ignore" else {}, created_at=t.at, decided_at=t.at)
            s.add(draft)
            s.flush()
            if t.review:
                reviewed = t.at + timedelta(hours=1)
                s.add(Feedback(draft_id=draft.id, conversation_id=conversation_id, verdict=t.review, draft_text=t.text,
                               final_text=None if t.review == "rejected" else (t.final or t.text),
                               reason="wrong" if t.review == "rejected" else None, reviewer="ben", created_at=reviewed))
                draft.state = "rejected" if t.review == "rejected" else "sent"
            if t.reply_after is not None:
                sent = t.at + timedelta(seconds=t.reply_after)
                s.add(Outbound(conversation_id=conversation_id, reply_to_message_id=message.id, mailbox="support",
                               message_id=f"r{n}@example.com", sender="support@example.com",
                               recipients=[f"c{n}@history.example"], subject=f"Re: q{n}", body_text=t.final or t.text,
                               raw=b"", approved_by="ben" if t.review else None, state="sent", created_at=sent, sent_at=sent))
            out.append(conversation_id)
    return out


def sample(today: datetime, days: int = 14, seed: int = 7) -> list[Turn]:
    """Two weeks of plausible traffic ending yesterday, every turn decided and closed (nothing
    lands in the queue): the auto-sent share grows and the edits shrink as the weeks go by."""
    rng = random.Random(seed)
    text = ("Hi, thanks for writing in. You can download every invoice from Settings, Billing, Invoices; "
            "each one has a PDF link. Best regards, the support team")
    turns = []
    for back in range(days, 0, -1):
        progress = (days - back) / days
        day = (today - timedelta(days=back)).replace(hour=8, minute=0, second=0, microsecond=0)
        for _ in range(rng.randint(8, 16)):
            at = day + timedelta(minutes=rng.randint(0, 600))
            tokens = (rng.randint(1500, 4000), rng.randint(150, 400))
            roll = rng.random()
            if roll < 0.3 + 0.35 * progress:
                turns.append(Turn(at, "send", tokens=tokens, text=text, model="gpt-4.1-mini",
                                  reply_after=rng.uniform(20, 120)))
            elif roll < 0.92:
                review = rng.choices(["approved", "edited", "rejected"], [0.35 + 0.3 * progress, 0.45, 0.1])[0]
                words = text.split()
                for _ in range(rng.randint(1, max(1, int(14 * (1 - progress))))):
                    words[rng.randrange(len(words))] = rng.choice(["kindly", "please", "here", "now", "also"])
                turns.append(Turn(at, "hold", tokens=tokens, text=text, model="gpt-4.1-mini", review=review,
                                  final=" ".join(words) if review == "edited" else None,
                                  reply_after=None if review == "rejected" else rng.uniform(900, 5 * 3600)))
            else:
                turns.append(Turn(at, "escalate", tokens=tokens, text=text, model="gpt-4.1-mini", review="rejected"))
    return turns
