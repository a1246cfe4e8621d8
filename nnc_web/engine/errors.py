"""The engine's two exception types, in a module of their own so every layer can import them
without import circles (reporting and safe_paths both need them)."""
from __future__ import annotations


class JobCancelled(Exception):
    """Raised by engine code when `should_stop()` turned true; the job ends as cancelled."""


class UserError(Exception):
    """A problem with the user's input, reported as a clear message (never a traceback)."""
