"""The terminal's last line of defence: everything the CLI prints goes through the host's whole
secret set (handlers.secret_set), whatever printed it: a handler's error quoting a name that
was typed, argparse echoing an argument, a traceback.

The streams are wrapped before the arguments are parsed, but the secret set is only built
when the first non-blank text is written (or `warm` starts it as soon as the command's
settings are known, so it is gathered while the command works): `--help` never pays for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.secret_set import HostSecrets

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


class _Secrets:
    """The process's secret set, built once, on first use or by `warm`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: HostSecrets | None = None
        self._unavailable = False

    def warm(self, settings: Settings) -> None:
        from handlers.secret_set import shared

        with self._lock:
            if self._secrets is None:
                self._secrets = shared(settings, first_wait=FIRST_WAIT)

    def redact(self, text: str) -> str:
        if self._secrets is None and not self._unavailable:
            from config.settings import ConfigError, load_settings

            try:
                # Leniently: a bad value is the command's error to report, and redaction
                # still works with the defaults.
                self.warm(load_settings(needs=()))
            except ConfigError:
                self._unavailable = True  # the command reports it; its text holds no value
        return self._secrets.redact(text) if self._secrets is not None else text


_SECRETS = _Secrets()


def protect_output() -> None:
    """Wrap stdout and stderr (once)."""
    if isinstance(sys.stdout, RedactingStream):
        return
    sys.stdout = RedactingStream(sys.stdout, _SECRETS.redact)
    sys.stderr = RedactingStream(sys.stderr, _SECRETS.redact)


def warm(settings: Settings) -> None:
    """Start gathering the secret set now, in the background, while the command works."""
    if isinstance(sys.stdout, RedactingStream):
        _SECRETS.warm(settings)
