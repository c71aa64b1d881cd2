"""The bot's Dify hosts (HOSTS_FILE): `@host` in commands, a transport per host, and who may
change each host (its own `operators`, else OPERATORS).

`@NAME` (or `@all`, check only) is the first argument after the subcommand. Without one the
request goes to the file's default host; with no HOSTS_FILE that is this machine, exactly as
before. Connections to the hosts live in one SshPool for the bot's lifetime.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from bot.auth import Authorizer
from config.hosts import ALL, HostEntry, Hosts, load_hosts

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.ssh_transport import SshPool
    from handlers.transport import Transport

_HOST_WORD = re.compile(r"@([a-z0-9][a-z0-9_-]{0,39})")


def split_host(args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """("@prod-2", "api") -> ("prod-2", ("api",)). A first word `@...` that is not a host
    name shape is left alone (the subcommand's parser will refuse it)."""
    if args and (match := _HOST_WORD.fullmatch(args[0].lower())):
        return match.group(1), args[1:]
    return None, args


class BotHosts:
    def __init__(self, settings: Settings, client: Any, global_auth: Authorizer) -> None:
        self.settings = settings
        self.hosts: Hosts = load_hosts(settings.hosts_file)
        self._client = client
        self._global = global_auth
        self._auth: dict[str, Authorizer] = {}
        self._pool: SshPool | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings.hosts_file is not None

    def resolve(self, name: str | None) -> HostEntry | None:
        """The entry a request names (None: the default); None when there is no such host."""
        return self.hosts.get(name or self.hosts.default)

    def remote(self, name: str | None) -> bool:
        """Whether a request for `name` goes through a transport (not the local code path)."""
        if name == ALL:
            return True
        entry = self.resolve(name)
        return entry is not None and (entry.ssh is not None or bool(entry.settings))

    def authorizer(self, name: str | None) -> Authorizer:
        """The host's own operators when it lists them, else the bot's. `@all` is read-only."""
        entry = self.resolve(name) if name != ALL else None
        if entry is None or entry.operators is None:
            return self._global
        with self._lock:
            found = self._auth.get(entry.name)
            if found is None:
                found = self._auth[entry.name] = Authorizer(
                    self._global.allowed_channels, entry.operators, self._client
                )
            return found

    def transport(self, name: str, user: str) -> Transport:
        from handlers.fanout import make_transport

        entry = self.resolve(name)
        if entry is None:
            raise KeyError(name)
        return make_transport(
            self.settings, entry, self.pool() if entry.ssh else None, user, "slack"
        )

    def transports(self, user: str) -> list[Transport]:
        return [self.transport(entry.name, user) for entry in self.hosts.entries]

    def pool(self) -> SshPool:
        from handlers.ssh_transport import SshPool

        with self._lock:
            if self._pool is None:
                self._pool = SshPool()
            return self._pool

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
