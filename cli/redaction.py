"""The terminal's last line of defence: everything the CLI prints goes through the host's whole
secret set (handlers.secret_set), whatever printed it: a handler's error quoting a name that
was typed, argparse echoing an argument, a traceback.

The secret set is gathered in the background while the command works (it needs the engine for
the containers' environments); the first write waits for it a bounded time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from config.settings import ConfigError, load_settings

FIRST_WAIT = 1.0  # seconds the first printed line may wait for the containers' secrets


class RedactingStream:
    """A text stream whose every write is redacted first; everything else is the stream's."""

    def __init__(self, stream: TextIO, redact: Callable[[str], str]) -> None:
        self._stream = stream
        self._redact = redact

    def write(self, text: str) -> int:
        self._stream.write(self._redact(text) if text.strip() else text)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def protect_output() -> None:
    """Wrap stdout and stderr (once). Settings are read leniently here: a bad value is the
    command's error to report, and redaction still works with the defaults."""
    if isinstance(sys.stdout, RedactingStream):
        return
    try:
        settings = load_settings(needs=())
    except ConfigError:
        return  # the command reports it; nothing it prints holds a value
    from handlers.secret_set import shared

    secrets = shared(settings, first_wait=FIRST_WAIT)
    sys.stdout = RedactingStream(sys.stdout, secrets.redact)
    sys.stderr = RedactingStream(sys.stderr, secrets.redact)
