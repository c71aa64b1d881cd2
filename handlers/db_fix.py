"""Rewriting the Ollama base URLs Dify stores per model, and purging Dify's credential cache.

Only the `base_url` field of an Ollama row's `encrypted_config` JSON changes: the new text is
the old text with that one string replaced (every other byte kept), checked by parsing both.
Which rows change and into what is decided here, purely; `handlers/dify_db.py` writes them, all
in one guarded transaction.

Dify caches decrypted credentials in Redis for 24 h; the keys `provider_model_credentials:*`,
`provider_credentials:*` and `load_balancing_provider_model_credentials:*` are deleted with
`redis-cli` inside the redis container. Its
password goes in the exec environment (REDISCLI_AUTH), never on a command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import docker

from config.i18n import gettext as _
from handlers import container_exec
from handlers.dify_db import CredentialRow, RowUpdate
from handlers.results import HandlerError
from handlers.urls import bad_suffix, is_loopback_url, root_of, without_credentials

CACHE_PATTERNS = (
    "provider_model_credentials:*",
    "provider_credentials:*",
    "load_balancing_provider_model_credentials:*",
)
_BASE_URL = re.compile(r'"base_url"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)"')
DEL_BATCH = 200


@dataclass(frozen=True)
class RowChange:
    row: CredentialRow
    old_url: str
    new_url: str
    new_config: str

    def describe(self) -> str:
        return (
            f"{self.row.table} {self.row.model} ({self.row.model_type}, id {self.row.id}): "
            f"base_url {without_credentials(self.old_url)} -> {without_credentials(self.new_url)}"
        )

    def update(self) -> RowUpdate:
        return RowUpdate(self.row.table, self.row.id, self.row.config or "", self.new_config)


def target_url(old_url: str, fix_base_url: str) -> str:
    """Loopback URLs go to FIX_OLLAMA_BASE_URL; a /v1 or /api suffix on another host is cut
    (the host was chosen on purpose, only the path is wrong for the Ollama plugin)."""
    if is_loopback_url(old_url):
        return fix_base_url.rstrip("/")
    if bad_suffix(old_url):
        return root_of(old_url)
    return old_url


def needs_fix(url: str | None) -> bool:
    return bool(url) and (is_loopback_url(url or "") or bad_suffix(url or "") is not None)


def rewrite_config(text: str, new_url: str) -> str:
    """`text` with only the base_url string value replaced; verified by parsing both."""
    try:
        old = json.loads(text)
    except ValueError:
        raise HandlerError("an Ollama row's config is not JSON; change it in Dify's UI") from None
    if not isinstance(old, dict) or not isinstance(old.get("base_url"), str):
        raise HandlerError("an Ollama row's config has no base_url string; use Dify's UI")
    matches = [m for m in _BASE_URL.finditer(text) if json.loads(f'"{m["value"]}"') is not None]
    if len(matches) != 1:
        raise HandlerError("an Ollama row's config names base_url more than once; use Dify's UI")
    match = matches[0]
    new_text = text[: match.start("value")] + json.dumps(new_url)[1:-1] + text[match.end("value") :]
    new = json.loads(new_text)
    expected = dict(old)
    expected["base_url"] = new_url
    if new != expected or list(new) != list(old):
        raise HandlerError("rewriting base_url would change other fields; nothing was changed")
    return new_text


def plan_changes(rows: Sequence[CredentialRow], fix_base_url: str) -> list[RowChange]:
    """The rows whose base URL needs fixing, each with its rewritten config (pure)."""
    changes = []
    for row in rows:
        url = row.stored_url
        if row.config is None or url is None or not needs_fix(url):
            continue
        new_url = target_url(url, fix_base_url)
        if new_url == url:
            continue
        changes.append(RowChange(row, url, new_url, rewrite_config(row.config, new_url)))
    return changes


# --- Redis ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PurgeResult:
    deleted: int
    keys_seen: int
    auth: str  # env-file | container (the password came from .env, or the container's own env)


def _redis_argv(database: int, username: str | None, *args: str) -> list[str]:
    argv = ["redis-cli", "-n", str(database)]
    if username:
        argv += ["--user", username]
    return [*argv, *args]


def _auth_failed(res: container_exec.ExecResult) -> bool:
    text = (res.stdout + res.stderr).upper()
    return any(m in text for m in ("NOAUTH", "WRONGPASS", "AUTH FAILED", "INVALID PASSWORD"))


def _redis(
    client: docker.DockerClient,
    cid: str,
    argv: list[str],
    timeout: float,
    env: dict[str, str] | None,
) -> container_exec.ExecResult:
    res = container_exec.run(client, cid, argv, timeout, environment=env)
    if res.exit_code is None or res.timed_out:
        raise HandlerError(f"redis-cli in the redis container did not answer within {timeout:g} s")
    if res.missing_command:
        raise HandlerError("the redis container has no redis-cli")
    return res


def purge_cache(
    client: docker.DockerClient,
    redis_cid: str,
    password: str | None,
    timeout: float,
    database: int = 0,
    username: str | None = None,
) -> PurgeResult:
    """Delete Dify's cached credentials so the rewritten base URLs are read from the database.

    The password from `.env` is tried first; when Redis rejects it (its container was created
    with an older password) the container's own REDISCLI_AUTH (set by Dify's compose file) is
    used. Neither ever appears on a command line or in a message.
    """
    attempts: list[tuple[str, dict[str, str] | None]] = []
    if password:
        attempts.append(("env-file", {"REDISCLI_AUTH": password}))
    attempts.append(("container", None))
    last_error = ""
    for source, env in attempts:
        keys: list[str] = []
        failed = False
        for pattern in CACHE_PATTERNS:
            argv = _redis_argv(database, username, "--scan", "--pattern", pattern)
            res = _redis(client, redis_cid, argv, timeout, env)
            if _auth_failed(res) or res.exit_code != 0:
                failed = True
                last_error = "authentication failed" if _auth_failed(res) else res.stderr[:200]
                break
            keys.extend(k for k in res.stdout.splitlines() if k.strip())
        if failed:
            continue
        deleted = 0
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), DEL_BATCH):
            batch = unique[start : start + DEL_BATCH]
            res = _redis(
                client, redis_cid, _redis_argv(database, username, "DEL", *batch), timeout, env
            )
            out = res.stdout.strip()
            if res.exit_code != 0 or _auth_failed(res) or not (out.split() or ["?"])[-1].isdigit():
                raise HandlerError(
                    "deleting Dify's cached credentials failed: "
                    + (out or res.stderr.strip())[:200]
                )
            deleted += int(out.split()[-1])
        return PurgeResult(deleted, len(unique), source)
    raise HandlerError(
        f"cannot read Dify's Redis cache ({last_error.strip() or 'redis-cli failed'}): check "
        "REDIS_PASSWORD in .env"
    )


def purge_instruction(project_name: str, database: int) -> str:
    scans = "; ".join(
        f'redis-cli -n {database} --scan --pattern "{pattern}" | xargs -r redis-cli -n '
        f"{database} DEL"
        for pattern in CACHE_PATTERNS
    )
    return _(
        "Delete Dify's cached credentials by hand: {command} (project {project}; REDISCLI_AUTH "
        "is set in that container), then restart api, worker and plugin_daemon."
    ).format(command=f"`docker exec -it <redis container> sh -c '{scans}'`", project=project_name)


def redis_db_number(env_values: Mapping[str, str]) -> int:
    """The Redis database Dify keeps its cache in (REDIS_DB, default 0)."""
    try:
        return int(env_values.get("REDIS_DB") or 0)
    except ValueError:
        return 0
