"""The host's whole secret set as one redactor, kept fresh cheaply.

What someone types (an audit line's arguments: `logs api --grep <password>`) can be any secret
of the host: Dify's `.env`, the environment of any of its containers, the bot's own tokens.
`HostSecrets` holds a redactor built from all of them and rebuilds it
- from `.env` alone when that file changes (one stat per call, a re-read on change: cheap,
  so a password rotated a second ago is already masked), and
- from the containers at most every `interval` seconds, in a background thread (engine
  calls never run on the caller's thread, which may be Slack's ack path).
Until the first full build finishes, `redactor()` waits for it a bounded time.
A secret never leaves the set while the process runs: a password rotated out of `.env` is
still in older log lines, in a command typed a moment before the rotation and audited after
it, in a container not yet recreated (at most RETIRED_MAX such values are kept).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from config.settings import Settings
from handlers.envfile import read_env_file
from handlers.redact import Redactor, env_list_to_dict, redactor_for, secret_values
from handlers.results import HandlerError

log = logging.getLogger(__name__)

FileStamp = tuple[int, int, int] | None  # (inode, size, mtime_ns) of .env; None: absent
# Secrets no longer in .env or any container, still masked (oldest dropped beyond this).
RETIRED_MAX = 1024


def _stamp(path: Path | None) -> FileStamp:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _env_values(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        return read_env_file(path).values
    except HandlerError:
        return {}


def containers_secrets(settings: Settings) -> tuple[Path | None, set[str]]:
    """The project's `.env` path and the secrets in its containers' environments (engine)."""
    from handlers import engine
    from handlers.project import discover

    client, problem, _ = engine.ping(settings, timeout=min(5.0, settings.check_timeout + 1))
    if client is None:
        raise HandlerError(problem.message if problem else "Docker engine unreachable")
    try:
        project = discover(client, settings)
        found: set[str] = set()
        for info in project.containers.values():
            env = (client.api.inspect_container(info.id).get("Config") or {}).get("Env") or []
            found |= secret_values(env_list_to_dict(str(item) for item in env))
        return project.env_path, found
    finally:
        client.close()


_SHARED: dict[str, HostSecrets] = {}
_SHARED_LOCK = threading.Lock()


def shared(settings: Settings, **options: Any) -> HostSecrets:
    """One started HostSecrets per process and configuration (the CLI's output and the bot's
    runtime in `serve` share it: one background refresh, not two)."""
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name, value in settings
    }
    key = repr(sorted(values.items()))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = HostSecrets(settings, **options).start()
        return found


class HostSecrets:
    def __init__(
        self,
        settings: Settings,
        *,
        interval: float = 30.0,
        first_wait: float = 2.0,
        gather: Callable[[Settings], tuple[Path | None, set[str]]] = containers_secrets,
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.first_wait = first_wait
        self._gather = gather
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._refreshing = False
        self._checked_at = float("-inf")
        self._containers: set[str] = set()
        self._retired: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._env_path = settings.dify_dir.expanduser() / ".env" if settings.dify_dir else None
        self._env_stamp: FileStamp = _stamp(self._env_path)
        self._redactor = Redactor()  # what the first build adds to (nothing yet)
        self._redactor = self._build(_env_values(self._env_path))
        self.builds = 0  # how many times the redactor was built (for tests and the log)

    def _build(self, env_values: dict[str, str]) -> Redactor:
        """The redactor for what is known now, plus every secret an earlier build knew."""
        base = redactor_for(self.settings, env_values=env_values, env_path=self._env_path)
        current = base.literals | frozenset(self._containers)
        for value in self._redactor.literals - current:
            self._retired[value] = None
        for value in current:
            self._retired.pop(value, None)
        while len(self._retired) > RETIRED_MAX:
            del self._retired[next(iter(self._retired))]
        return Redactor(current | frozenset(self._retired))

    def start(self) -> HostSecrets:
        """The first full build, in the background."""
        self._refresh_later()
        return self

    def _after_fork(self) -> None:
        """gunicorn forks its worker after `serve` started this: the refresher thread and its
        flag stayed in the parent."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._refreshing = False
        self._first.set()

    def redactor(self) -> Redactor:
        """The current redactor; never makes an engine call on this thread."""
        if self._pid != os.getpid():
            self._after_fork()
        if not self._first.is_set():
            self._first.wait(self.first_wait)
        stamp = _stamp(self._env_path)
        with self._lock:
            if stamp != self._env_stamp:
                # .env changed: re-read it now (cheap), keep the containers' secrets.
                self._env_stamp = stamp
                self._redactor = self._build(_env_values(self._env_path))
                self.builds += 1
            stale = time.monotonic() - self._checked_at > self.interval
            current = self._redactor
        if stale:
            self._refresh_later()
        return current

    def redact(self, text: str) -> str:
        return self.redactor().redact(text)

    def _refresh_later(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
            self._checked_at = time.monotonic()
        threading.Thread(target=self._refresh, name="host-secrets", daemon=True).start()

    def _refresh(self) -> None:
        try:
            env_path, found = self._gather(self.settings)
        except Exception as exc:  # engine down: keep what is known, try again later
            log.info("secret set: containers not read (%s); using .env and tokens", exc)
            env_path, found = self._env_path, self._containers
        try:
            stamp = _stamp(env_path)
            values = _env_values(env_path)
            with self._lock:
                self._env_path, self._env_stamp, self._containers = env_path, stamp, found
                self._redactor = self._build(values)
                self.builds += 1
        finally:
            with self._lock:
                self._refreshing = False
            self._first.set()
