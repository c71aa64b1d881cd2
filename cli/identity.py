"""Who runs the CLI, as locks, backups and the audit name them: user@host."""

from __future__ import annotations

import getpass
import socket


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
