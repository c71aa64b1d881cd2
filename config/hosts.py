"""The hosts file (HOSTS_FILE, YAML): which Dify hosts the bot and the CLI reach, and how.

    default: prod-1              # optional; else the first host
    hosts:
      prod-1:
        ssh:
          user: difyops
          host: 10.0.0.5          # name or address
          port: 22
          key: /etc/dify-ollama-bot/id_ed25519           # a dedicated key, or instead:
          # agent: /run/user/1000/ssh-agent.sock  (an ssh-agent's socket; `true`: SSH_AUTH_SOCK)
          known_hosts: /etc/dify-ollama-bot/known_hosts  # its pinned host key
        settings: {DIFY_DIR: /srv/dify/docker, CHECK_TIMEOUT: 5}
        operators: [U012AB3CD]    # who may change this host (else OPERATORS)
        deadline: 30              # seconds for one command on this host
      local: {}                   # no `ssh`: this machine, in-process

Validated here, by hand, one line per problem (ConfigError): a typo must not reach `ssh`'s
argv. Every value that goes into argv is checked against a strict shape (no leading `-`,
no spaces), so it can never be read as an option.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.i18n import gettext as _
from config.settings import ConfigError

LOCAL = "local"
ALL = "all"
DEFAULT_DEADLINE = 30.0
MAX_DEADLINE = 600.0
MAX_HOSTS = 200
MAX_FILE_BYTES = 1_000_000

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_USER = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# A DNS name or an IPv4/IPv6 address: letters, digits, dots, colons, dashes; never a leading
# dash (ssh would read an option).
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")
_SLACK_ID = re.compile(r"[UWS][A-Z0-9]{2,20}")
# What a host entry may set for the CLI on that host (it passes them as KEY=VALUE words that
# the forced command allows): where Dify is and how to reach Ollama, nothing else.
HOST_SETTINGS = (
    "DIFY_DIR",
    "DIFY_COMPOSE_PROJECT",
    "OLLAMA_URL",
    "CHECK_TIMEOUT",
    "CHAT_TIMEOUT",
    "DOCKER_HOST",
    "BOT_LANGUAGE",
)
_VALUE = re.compile(r"[A-Za-z0-9_./:@%+=,~-]{1,500}")
# An agent socket path goes into argv as `-o IdentityAgent=PATH`: absolute, and without what
# ssh would expand there (`%` tokens, `${VAR}`), spaces or newlines.
_SOCKET = re.compile(r"/[A-Za-z0-9_./@+,~-]{1,500}")


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int
    key: Path | None  # a dedicated key file, or None: the agent below
    known_hosts: Path
    cli: str = "dify-ollama"  # the remote command word the forced command expects
    agent: Path | None = None  # an ssh-agent's socket (exactly one of key / agent)


@dataclass(frozen=True)
class HostEntry:
    name: str
    ssh: SshTarget | None = None  # None: this machine, in-process
    settings: dict[str, str] = field(default_factory=dict)
    operators: tuple[str, ...] | None = None  # None: the bot's OPERATORS
    deadline: float = DEFAULT_DEADLINE

    @property
    def local(self) -> bool:
        return self.ssh is None


@dataclass(frozen=True)
class Hosts:
    entries: tuple[HostEntry, ...]
    default: str

    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.entries)

    def get(self, name: str) -> HostEntry | None:
        return next((h for h in self.entries if h.name == name), None)

    def select(self, name: str | None) -> tuple[HostEntry, ...]:
        """`all`, a name, or None (the default host). Raises ConfigError for an unknown name."""
        if name == ALL:
            return self.entries
        wanted = name or self.default
        found = self.get(wanted)
        if found is None:
            shown = ", ".join(self.names()[:20])
            raise ConfigError(
                _("unknown host {name}; hosts: {hosts}, or all").format(
                    name=repr(wanted[:40]), hosts=shown
                )
            )
        return (found,)


LOCAL_ONLY = Hosts((HostEntry(LOCAL),), LOCAL)


def _where(name: str, key: str) -> str:
    return f"HOSTS_FILE: hosts.{name}.{key}"


def _text(value: Any, where: str, pattern: re.Pattern[str], shape: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{where}: must be {shape}")
    text = str(value)
    if not pattern.fullmatch(text):
        raise ConfigError(f"{where}: must be {shape} (got {text[:40]!r})")
    return text


def _file(value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be the path of a file")
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ConfigError(f"{where}: must be an absolute path (got {value[:80]!r})")
    if not path.is_file():
        raise ConfigError(f"{where}: no such file: {path}")
    return path


def _ssh(name: str, raw: Any) -> SshTarget:
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(name, 'ssh')}: must be a mapping (user, host, key, ...)")
    unknown = sorted(set(raw) - {"user", "host", "port", "key", "agent", "known_hosts", "cli"})
    if unknown:
        raise ConfigError(f"{_where(name, 'ssh')}: unknown key {str(unknown[0])[:40]!r}")
    if ("key" in raw) == ("agent" in raw):
        raise ConfigError(
            f"{_where(name, 'ssh')}: needs exactly one of `key` (a key file) or `agent` "
            "(an ssh-agent socket, or true for SSH_AUTH_SOCK)"
        )
    for required in ("user", "host", "known_hosts"):
        if required not in raw:
            # known_hosts is required: the bot never trusts a host key on first use.
            raise ConfigError(f"{_where(name, 'ssh.' + required)}: missing")
    port = raw.get("port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ConfigError(f"{_where(name, 'ssh.port')}: must be a number 1..65535")
    return SshTarget(
        user=_text(raw["user"], _where(name, "ssh.user"), _USER, "a user name"),
        host=_text(raw["host"], _where(name, "ssh.host"), _HOSTNAME, "a host name or address"),
        port=port,
        key=_file(raw["key"], _where(name, "ssh.key")) if "key" in raw else None,
        known_hosts=_file(raw["known_hosts"], _where(name, "ssh.known_hosts")),
        cli=_text(raw.get("cli", "dify-ollama"), _where(name, "ssh.cli"), _USER, "a command name"),
        agent=_agent(raw["agent"], _where(name, "ssh.agent")) if "agent" in raw else None,
    )


def _agent(value: Any, where: str) -> Path:
    """An agent socket path, or `true`: the bot's SSH_AUTH_SOCK, read now (at load)."""
    if value is True:
        value = os.environ.get("SSH_AUTH_SOCK", "")
        if not value:
            raise ConfigError(f"{where}: true means SSH_AUTH_SOCK, which the bot does not have")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: must be the path of an ssh-agent socket, or true")
    path = str(Path(value).expanduser())
    if not _SOCKET.fullmatch(path):
        raise ConfigError(
            f"{where}: must be an absolute path without spaces, % or $ (got {value[:80]!r})"
        )
    return Path(path)


def _settings(name: str, raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(name, 'settings')}: must be a mapping of settings")
    out: dict[str, str] = {}
    for key, value in raw.items():
        upper = str(key).upper()
        if upper not in HOST_SETTINGS:
            raise ConfigError(
                f"{_where(name, 'settings')}: {str(key)[:40]!r} cannot be set per host "
                f"(allowed: {', '.join(HOST_SETTINGS)})"
            )
        if isinstance(value, float):
            value = repr(value)
        out[upper] = _text(value, _where(name, f"settings.{upper}"), _VALUE, "a plain value")
    return out


def _operators(name: str, raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ConfigError(f"{_where(name, 'operators')}: must be a list of Slack ids")
    return tuple(
        _text(str(i).strip(), _where(name, "operators"), _SLACK_ID, "Slack user/group ids")
        for i in items
    )


def _deadline(name: str, raw: Any) -> float:
    if raw is None:
        return DEFAULT_DEADLINE
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= MAX_DEADLINE:
        raise ConfigError(f"{_where(name, 'deadline')}: must be 1..{MAX_DEADLINE:g} seconds")
    return float(raw)


def _entry(name: Any, raw: Any) -> HostEntry:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == ALL:
        raise ConfigError(
            f"HOSTS_FILE: host name {str(name)[:40]!r} must be lowercase letters, digits, - "
            "and _ (up to 40), and not `all`"
        )
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"HOSTS_FILE: hosts.{name}: must be a mapping")
    unknown = sorted(set(raw) - {"ssh", "settings", "operators", "deadline"})
    if unknown:
        raise ConfigError(f"HOSTS_FILE: hosts.{name}: unknown key {str(unknown[0])[:40]!r}")
    ssh = raw.get("ssh")
    return HostEntry(
        name=name,
        ssh=_ssh(name, ssh) if ssh is not None else None,
        settings=_settings(name, raw.get("settings")),
        operators=_operators(name, raw.get("operators")),
        deadline=_deadline(name, raw.get("deadline")),
    )


def parse_hosts(data: Any) -> Hosts:
    """The parsed YAML document -> Hosts, or ConfigError (one line)."""
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise ConfigError("HOSTS_FILE: must be a mapping with a `hosts:` mapping")
    unknown = sorted(set(data) - {"hosts", "default"})
    if unknown:
        raise ConfigError(f"HOSTS_FILE: unknown key {str(unknown[0])[:40]!r}")
    raw_hosts: dict[Any, Any] = data["hosts"]
    if not raw_hosts:
        raise ConfigError("HOSTS_FILE: `hosts:` is empty")
    if len(raw_hosts) > MAX_HOSTS:
        raise ConfigError(f"HOSTS_FILE: more than {MAX_HOSTS} hosts")
    entries = tuple(_entry(name, raw) for name, raw in raw_hosts.items())
    default = data.get("default", entries[0].name)
    if not isinstance(default, str) or default not in {e.name for e in entries}:
        raise ConfigError(f"HOSTS_FILE: default {str(default)[:40]!r} is not a host of the file")
    return Hosts(entries, default)


def load_hosts(path: Path | None) -> Hosts:
    """HOSTS_FILE, or `local` alone when none is set (one-host users see no change)."""
    if path is None:
        return LOCAL_ONLY
    import yaml

    try:
        with path.expanduser().open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"HOSTS_FILE: cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"HOSTS_FILE: {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"HOSTS_FILE: {path} is not valid YAML{where}") from None
    return parse_hosts(data)
