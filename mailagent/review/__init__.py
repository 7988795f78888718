"""The verbs of reps and ops: approve, edit, reject, take over, release. One implementation,
shared by the CLI, the review page and the helpdesks, so one place decides what a rep may do.

Each verb is one transaction that checks the row's state under the conversation's lock (two reps
acting at once: one wins, the other gets a `ReviewError` naming who did it), records who did it,
and returns what the caller must hand to the workers next (a reply to deliver, a draft to
resume)."""


class ReviewError(ValueError):
    """A rep's action that cannot apply; the message says why, in words for the rep."""
