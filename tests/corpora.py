"""Where the shared real-world mail corpora live (`../shared/corpora`, next to the project).

Tests that read them fail, rather than skip, when they are missing: a silently skipped corpus
would look like a pass.
"""

from pathlib import Path


def corpora() -> Path:
    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
    if not path.is_dir():
        raise FileNotFoundError(f"the shared mail corpora are missing: expected them at {path}")
    return path
