"""The watch's files under STATE_DIR/watch/: its state (`state.json`, written by the watch
alone) and the mutes (`mutes.json`, written by `mute`/`unmute`, read by the watch), so open
alerts and mutes survive a restart of the bot. Both are small JSON files replaced atomically;
a damaged state file costs the memory of open alerts, never the bot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.backup import Ownership, atomic_write
from handlers.results import HandlerError
from handlers.watch import Mutes, WatchState, state_json, state_of

log = logging.getLogger(__name__)

PRIVATE = Ownership(0o600, os.geteuid(), os.getegid())


def watch_dir(state_dir: Path) -> Path:
    return state_dir / "watch"


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def load_state(state_dir: Path) -> tuple[WatchState, str | None]:
    """The saved state, or a fresh one and why the saved one could not be used."""
    path = watch_dir(state_dir) / "state.json"
    try:
        return state_of(json.loads(path.read_text(encoding="utf-8"))), None
    except FileNotFoundError:
        return WatchState(), None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        why = f"watch state {path} unreadable ({type(exc).__name__}); starting afresh"
        return WatchState(), why


def save_state(state_dir: Path, state: WatchState) -> None:
    folder = _ensure(watch_dir(state_dir))
    data = json.dumps(state_json(state), separators=(",", ":")).encode()
    atomic_write(folder / "state.json", data, like=PRIVATE)


# --- mutes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mute:
    finding: str | None  # None: every finding
    until: float
    by: str  # raw user id, or user@host from the terminal
    at: float


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[Path]:
    folder = _ensure(watch_dir(state_dir))
    fd = os.open(folder / "mutes.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder / "mutes.json"
    finally:
        os.close(fd)


def _read(path: Path) -> list[Mute]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
        return [
            Mute(m.get("finding"), float(m["until"]), str(m.get("by", "?")), float(m.get("at", 0)))
            for m in raw.get("mutes", [])
        ]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("mutes file %s unreadable (%s): no mutes in force", path, type(exc).__name__)
        return []


def _write(path: Path, mutes: list[Mute]) -> None:
    data = {"mutes": [m.__dict__ for m in mutes]}
    atomic_write(path, json.dumps(data).encode(), like=PRIVATE)


def list_mutes(state_dir: Path, now: float) -> list[Mute]:
    return [m for m in _read(watch_dir(state_dir) / "mutes.json") if m.until > now]


def mutes_of(mutes: list[Mute]) -> Mutes:
    everything = [m.until for m in mutes if m.finding is None]
    findings: dict[str, float] = {}
    for m in mutes:
        if m.finding is not None:
            findings[m.finding] = max(findings.get(m.finding, 0.0), m.until)
    return Mutes(max(everything) if everything else None, findings)


def add_mute(state_dir: Path, finding: str | None, until: float, by: str, now: float) -> Mute:
    mute = Mute(finding, until, by, now)
    try:
        with _locked(state_dir) as path:
            kept = [m for m in _read(path) if m.until > now and m.finding != finding]
            _write(path, [*kept, mute])
    except OSError as exc:
        raise HandlerError(f"cannot save the mute under {state_dir}: {exc.strerror}") from None
    return mute


def remove_mutes(state_dir: Path, finding: str | None, now: float) -> list[Mute]:
    """Lift the mute of `finding` (None: every mute); returns the mutes lifted."""
    try:
        with _locked(state_dir) as path:
            current = [m for m in _read(path) if m.until > now]
            lifted = [m for m in current if finding is None or m.finding == finding]
            _write(path, [m for m in current if m not in lifted])
    except OSError as exc:
        raise HandlerError(f"cannot change the mutes under {state_dir}: {exc.strerror}") from None
    return lifted
