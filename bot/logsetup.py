"""The bot's own logs: LOG_LEVEL, LOG_FORMAT (text, or json: one object per line), redacted.

Every line passes through the same Redactor as Slack messages (the bot's tokens, token-like
strings, passwords in URLs), message and traceback alike, whatever the format: a log shipper
must never receive a secret. gunicorn's error log (HTTP mode) gets the same formatter through
`gunicorn_logger_class`, so one service writes one format.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from config.settings import Settings

Redact = Callable[[str], str]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord attributes that are not `extra=` fields given by the caller.
_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
}


class RedactingTextFormatter(logging.Formatter):
    """The classic one-line format, redacted after formatting (message and traceback)."""

    def __init__(self, redact: Redact) -> None:
        super().__init__(TEXT_FORMAT)
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, and exception
    and `extra=` fields when present. Each string is redacted before encoding (redacting the
    encoded line could cut through an escape and break the JSON)."""

    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redact(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = self._redact(self.formatException(record.exc_info))
        elif record.exc_text:
            data["exception"] = self._redact(record.exc_text)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in data:
                data[key] = self._field(value)
        return json.dumps(data, ensure_ascii=False, default=str)

    def _field(self, value: object) -> object:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        return self._redact(str(value))


def make_formatter(log_format: str, redact: Redact) -> logging.Formatter:
    return JsonFormatter(redact) if log_format == "json" else RedactingTextFormatter(redact)


def redactor(settings: Settings) -> Redact:
    from handlers.redact import redactor_for  # the one way to build a Redactor

    return redactor_for(settings).redact


def configure(settings: Settings, stream: TextIO | None = None) -> logging.Formatter:
    """Point the root logger at stderr with LOG_LEVEL and LOG_FORMAT; returns the formatter
    (gunicorn's logs reuse it). Replaces handlers a previous call installed."""
    formatter = make_formatter(settings.log_format, redactor(settings))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # slack_sdk logs request bodies (tokens in them) at DEBUG: never below INFO.
    logging.getLogger("slack_sdk").setLevel(max(logging.INFO, root.level))
    return formatter


def gunicorn_logger_class(formatter: logging.Formatter) -> type:
    """A gunicorn Logger whose error and access logs use `formatter` (gunicorn configures its
    own handlers in the arbiter and again in the worker; this runs after each `setup`)."""
    from gunicorn.glogging import Logger  # HTTP mode only

    class _Logger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)

    return _Logger
