"""Where the real-world mail corpora live: `tests/corpora/`, vendored with their licences and
origin (see `tests/corpora/README.md`), so a clone needs nothing beside it.

Tests that read them fail, rather than skip, when they are missing: a silently skipped corpus
would look like a pass.
"""

from pathlib import Path


def corpora() -> Path:
    path = Path(__file__).resolve().parent / "corpora"
    if not path.is_dir():
        raise FileNotFoundError(f"the mail corpora are missing: expected them at {path}")
    return path
