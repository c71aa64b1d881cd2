"""The running version of dify-ollama-bot: `dify-ollama --version`, serve's first log line and
/healthz all say the same thing, read from the installed package's metadata."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "dify-ollama-bot"


def version() -> str:
    """The installed distribution's version; "unknown" when the code runs from a checkout that
    was never installed (then no version can honestly be claimed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"
