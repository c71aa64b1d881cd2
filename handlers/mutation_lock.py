"""One mutating operation per host at a time, who holds it, and idempotency keys.

The lock is an flock(2) on `<STATE_DIR>/mutation.lock`: held per open file, so it excludes
other threads of the same process as well as other processes (the bot, a CLI run), and the
kernel drops it when the holder dies, so a killed process never leaves a stale lock. The holder
writes who it is into the file; a refused request is told what runs, who started it and when.

Idempotency keys (e.g. `apply:<plan id>`) record the outcome of an operation in
`<STATE_DIR>/ops/`, so a double click or a retried delivery finds the first run's result
instead of doing the work twice. `precheck` answers a repeat or a busy host early, `once` keeps
an operation that does not change the host (posting one plan per report) to one run per key.

Messages name people by their raw id (a Slack user id, or user@host for the CLI); the Slack
side passes its own `who` to `describe` to turn ids into mentions.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.i18n import gettext as _
from handlers.backup import Ownership, atomic_write, utc_stamp
from handlers.results import HandlerError

LOCK_NAME = "mutation.lock"
# How long a request keeps trying while only peeks, or a holder letting go, stand in its way.
SETTLE = 1.0
OPS_DIR = "ops"
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
# How a person is named in a message: (user, source) -> text. Handlers use the raw id.
Who = Callable[[str, str], str]


def raw(user: str, source: str) -> str:
    return user


@dataclass(frozen=True)
class Holder:
    operation: str  # e.g. "fix-env apply", "restart"
    user: str  # Slack user id, or user@host for the CLI
    source: str  # slack | cli
    started_at: str
    pid: int
    host: str
    key: str | None = None

    def describe(self, who: Who = raw) -> str:
        name = who(self.user, self.source)
        return _("{operation} started by {who} at {time} (pid {pid})").format(
            operation=f"`{self.operation}`", who=name, time=self.started_at, pid=self.pid
        )


class Busy(HandlerError):
    """Another mutating operation runs on this host."""

    def __init__(self, holder: Holder | None) -> None:
        self.holder = holder
        super().__init__(self.describe())

    def describe(self, who: Who = raw) -> str:
        holder = self.holder
        what = holder.describe(who) if holder else _("an operation whose owner is not recorded yet")
        return _("another change is in progress on this host: {what}; try again after it").format(
            what=what
        )


class AlreadyDone(HandlerError):
    """The operation with this idempotency key already ran (or is running)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        super().__init__(self.describe())

    def describe(self, who: Who = raw) -> str:
        record = self.record
        state = record.get("state", "done")
        name = who(str(record.get("user", "?")), str(record.get("source", "")))
        when = record.get("finished_at") or record.get("started_at") or "?"
        operation = f"`{record.get('operation', '?')}`"
        if state == "running":
            text = _("{operation} is already running (by {who} at {time})")
        else:
            text = _("{operation} was already {state} (by {who} at {time})")
        return text.format(operation=operation, state=state, who=name, time=when)


def _private(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class MutationLock:
    """The host's mutation lock. Holders take it exclusively; a peek (`holder()`, precheck)
    takes it shared for an instant, so it never holds the real thing. A request refused while
    a peek held it shared tries again at once: only an exclusive holder makes a request Busy,
    and Busy names that holder, never one that has finished."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME

    def holder(self) -> Holder | None:
        """Who holds the lock now (None when it is free)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            if _try_flock(fd, fcntl.LOCK_SH):
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            return self._read_holder(fd)
        finally:
            os.close(fd)

    def _read_holder(self, fd: int) -> Holder | None:
        """The current holder's record; None when the file says the last holder released it
        (the lock changed hands in between) or no record appeared."""
        # The holder writes its record right after taking the lock: retry briefly.
        for _attempt in range(20):
            try:
                raw = os.pread(fd, 4096, 0)
                if raw:
                    data = json.loads(raw.decode())
                    if data.pop("released", False):
                        return None
                    return Holder(**data)
            except (ValueError, TypeError):
                pass
            time.sleep(0.01)
        return None

    @contextlib.contextmanager
    def hold(
        self,
        operation: str,
        user: str,
        source: str,
        key: str | None = None,
        wait: float = 0.0,
    ) -> Iterator[Holder]:
        """Hold the host's mutation lock; Busy (naming the holder) if someone else has it."""
        try:
            _private(self.state_dir)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HandlerError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            self._acquire(fd, wait)
            me = Holder(
                operation, user, source, utc_stamp(), os.getpid(), socket.gethostname(), key
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            try:
                yield me
            finally:
                # Marked released (not truncated: a contender could read an empty file between
                # truncate and unlock), so nobody is ever told that a finished operation runs.
                with contextlib.suppress(OSError):
                    os.pwrite(fd, json.dumps({**asdict(me), "released": True}).encode(), 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd: int, wait: float) -> None:
        deadline = time.monotonic() + wait
        # Retries while only peeks (shared, an instant each) or a holder in the middle of
        # letting go stand in the way: bounded in count and time.
        settle = time.monotonic() + SETTLE
        while True:
            if _try_flock(fd, fcntl.LOCK_EX):
                return
            holder = None
            if _try_flock(fd, fcntl.LOCK_SH):  # only peeks hold it: they are gone at once
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                holder = self._read_holder(fd)
            now = time.monotonic()
            if holder is not None and now >= deadline:
                raise Busy(holder)
            if holder is None and now >= max(deadline, settle):
                raise Busy(None)
            time.sleep(0.1 if holder is not None else 0.001)


def _try_flock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return False


@dataclass
class OpRecord:
    key: str
    operation: str
    user: str
    source: str
    state: str = "running"  # running | done | failed
    started_at: str = field(default_factory=utc_stamp)
    finished_at: str | None = None
    result: dict[str, Any] = field(default_factory=dict)


class Idempotency:
    """Outcomes of keyed operations, one small private file per key."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / OPS_DIR

    def path(self, key: str) -> Path:
        """The key's record file."""
        if not _KEY.match(key):
            raise ValueError(f"bad idempotency key {key!r}")
        return self.dir / (key.replace(":", "_") + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path(key).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def put(self, record: OpRecord) -> None:
        _private(self.dir)
        atomic_write(
            self.path(record.key),
            json.dumps(asdict(record), sort_keys=True).encode(),
            like=Ownership(0o600, os.geteuid(), os.getegid()),
        )

    def check(self, key: str, lock: MutationLock) -> None:
        """AlreadyDone when the key finished, or runs now under the lock; a `running` record
        whose process died (lock free or held by someone else) does not block a retry."""
        record = self.get(key)
        if record is None:
            return
        if record.get("state") in ("done",):
            raise AlreadyDone(record)
        if record.get("state") == "running":
            holder = lock.holder()
            if holder is not None and holder.key == key:
                raise AlreadyDone(record)


@contextlib.contextmanager
def exclusive(
    state_dir: Path,
    operation: str,
    user: str,
    source: str,
    key: str | None = None,
) -> Iterator[OpRecord | None]:
    """The lock plus, with a key, an idempotency record: done on success, failed on error.

    Callers put their outcome in `record.result` (it is what a repeated request is shown).
    """
    lock = MutationLock(state_dir)
    ops = Idempotency(state_dir)
    if key is not None:
        ops.check(key, lock)  # fast answer for a double click, before queueing on the lock
    with lock.hold(operation, user, source, key):
        record = None
        if key is not None:
            previous = ops.get(key)  # it may have finished while this request waited
            if previous is not None and previous.get("state") == "done":
                raise AlreadyDone(previous)
            record = OpRecord(key, operation, user, source)
            ops.put(record)
        try:
            yield record
        except BaseException:
            if record is not None:
                record.state = "failed"
                record.finished_at = utc_stamp()
                with contextlib.suppress(OSError, HandlerError):
                    ops.put(record)
            raise
        if record is not None:
            record.state = "done"
            record.finished_at = utc_stamp()
            ops.put(record)


def precheck(state_dir: Path, key: str | None = None) -> None:
    """AlreadyDone or Busy right away, waiting for nothing and taking nothing, when the keyed
    operation already ran (or runs) or another change holds the host: the early answer for a
    double click or a retried delivery, before anything is posted. `exclusive` is the guard."""
    lock = MutationLock(state_dir)
    if key is not None:
        Idempotency(state_dir).check(key, lock)
    holder = lock.holder()
    if holder is not None:
        raise Busy(holder)


_CLAIMS = threading.Lock()  # check-and-claim of `once` keys, between threads of this process


@contextlib.contextmanager
def _key_lock(ops: Idempotency, key: str) -> Iterator[bool]:
    """An flock of the key's own lock file for as long as its run lasts: True when taken. The
    kernel drops it when the process dies, so a `running` record whose lock is free belongs to
    a run that was killed (a bot restarted mid-request), never to one still going."""
    _private(ops.dir)
    fd = os.open(ops.dir / (ops.path(key).stem + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        taken = _try_flock(fd, fcntl.LOCK_EX)
        try:
            yield taken
        finally:
            if taken:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def once(state_dir: Path, key: str, operation: str, user: str, source: str) -> Iterator[OpRecord]:
    """At most one run per key of an operation that changes nothing on the host (posting one
    fix-env plan per report): AlreadyDone when a run with this key is running or done; a failed
    one may run again, and so may one left `running` by a process that died. It takes no host
    lock, so it serializes nothing else."""
    ops = Idempotency(state_dir)
    record = OpRecord(key, operation, user, source)
    with _key_lock(ops, key) as mine:
        with _CLAIMS:
            previous = ops.get(key)
            state = previous.get("state") if previous is not None else None
            if not mine:  # a live run holds the key (its record may not be written yet)
                running = {"operation": operation, "state": "running", "user": "?"}
                raise AlreadyDone(previous if state == "running" and previous else running)
            if previous is not None and state == "done":
                raise AlreadyDone(previous)
            # A `running` record here is stale: its process died without finishing.
            ops.put(record)
        try:
            yield record
        except BaseException:
            record.state = "failed"
            record.finished_at = utc_stamp()
            ops.put(record)
            raise
        record.state = "done"
        record.finished_at = utc_stamp()
        ops.put(record)
