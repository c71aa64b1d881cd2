"""Pending restarts: what fix-env (or its undo) changed that the running containers do not
have yet, so the next `restart` applies it. One private JSON file per host, keyed by Dify folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Settings
from handlers.backup import Ownership, atomic_write, utc_stamp

PENDING_FILE = "pending-restart.json"


@dataclass
class Pending:
    dify_dir: str
    services: list[str] = field(default_factory=list)
    db_changed: bool = False
    backup: str | None = None
    at: str = field(default_factory=utc_stamp)


def _path(settings: Settings) -> Path:
    return settings.state_path / PENDING_FILE


def _read_all(settings: Settings) -> dict[str, Any] | None:
    try:
        data = json.loads(_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_all(settings: Settings, data: dict[str, Any]) -> None:
    path = _path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(
        path,
        json.dumps(data, indent=2, sort_keys=True).encode(),
        like=Ownership(0o600, os.geteuid(), os.getegid()),
    )


def read_pending(settings: Settings, dify_dir: Path) -> Pending | None:
    entry = (_read_all(settings) or {}).get(str(dify_dir))
    return Pending(**entry) if isinstance(entry, dict) else None


def record_pending(settings: Settings, pending: Pending) -> None:
    """Remember what a fix changed so the next `restart` applies it (merging earlier ones)."""
    data = _read_all(settings) or {}
    old = data.get(pending.dify_dir) or {}
    services = list(dict.fromkeys([*old.get("services", []), *pending.services]))
    data[pending.dify_dir] = asdict(pending) | {
        "services": services,
        "db_changed": bool(old.get("db_changed")) or pending.db_changed,
    }
    _write_all(settings, data)


def clear_pending(settings: Settings, dify_dir: Path) -> None:
    data = _read_all(settings)
    if data is not None and data.pop(str(dify_dir), None) is not None:
        _write_all(settings, data)
