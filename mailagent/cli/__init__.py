"""The `mailagent` command."""

from mailagent.cli.main import main

__all__ = ["main"]
