"""Versioned prompt files (one directory per version; the version and a hash go into every trace).

They belong to the task, not to the teacher: the Reasoner's prompt is also the student's prompt
(``prompt.py``), which rollouts and GRPO build without importing the multi-agent package. The Judge
and Reflector prompts are TravelPlanner-specific too and share the same version directory.

Placeholders are ``{{name}}`` rather than ``str.format`` fields so that prompts may contain JSON braces.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from imagine.config import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parent
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def load_prompt(name_or_path: str, version: str = "v1") -> str:
    """A shipped prompt by name (``reasoner``) or any file path.

    A version directory holds only the prompts it changes; a role it lacks is read from ``v1`` (the
    ``demo`` version shortens the Reasoner's prompt, which is also the student's, and nothing else).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPTS_DIR / version / f"{name_or_path}.txt"
        if not path.exists() and version != "v1" and (PROMPTS_DIR / version).is_dir():
            path = PROMPTS_DIR / "v1" / f"{name_or_path}.txt"
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read prompt file {path}: {exc.strerror}") from exc


def fill(template: str, **values: str) -> str:
    """Replace every ``{{name}}``; a placeholder without a value is a config error, not a silent blank."""

    def sub(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ConfigError(f"prompt placeholder {{{{{m.group(1)}}}}} has no value (given: {sorted(values)})")
        return values[m.group(1)]

    return _PLACEHOLDER.sub(sub, template)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
