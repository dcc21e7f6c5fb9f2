"""The one exception type that means "the user's input is wrong", not "the code is wrong".

Every entry point (``imagine``, ``train.py``, ``rollout.py``) catches :class:`UserError` alone and
exits with code 2 and the message, without a traceback; anything else is a bug and keeps its
traceback. The module imports nothing from the project, so the lowest layers (config, io, models)
can derive their errors from it without importing a command-line module.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a config key, an argument); the message says which and where."""
