"""Rewriting the Ollama base URLs Dify stores per model, and purging Dify's credential cache.

Only the `base_url` field of an Ollama row's `encrypted_config` JSON changes: the new text is
the old text with that one string replaced (every other byte kept), checked by parsing both.
All rows change in ONE transaction (a DO block through `psql` in the db container), and each
UPDATE is guarded by the row's old text: a row edited since the plan aborts the whole
transaction, so the database is either entirely old or entirely new.

Dify caches decrypted credentials in Redis for 24 h; the keys `provider_model_credentials:*`
and `provider_credentials:*` are deleted with `redis-cli` inside the redis container. Its
password goes in the exec environment (REDISCLI_AUTH), never on a command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

import docker

from handlers import container_exec
from handlers.dify_db import TABLES, psql_argv, read_rows_json
from handlers.results import HandlerError
from handlers.urls import bad_suffix, is_loopback_url, root_of, without_credentials

CACHE_PATTERNS = ("provider_model_credentials:*", "provider_credentials:*")
_BASE_URL = re.compile(r'"base_url"\s*:\s*"(?P<value>(?:[^"\\]|\\.)*)"')
DEL_BATCH = 200


@dataclass(frozen=True)
class RawRow:
    """An Ollama credential row with its config text exactly as stored."""

    table: str
    id: str
    tenant_id: str
    provider: str
    model: str
    model_type: str
    config: str  # encrypted_config, verbatim

    @property
    def config_sha256(self) -> str:
        return hashlib.sha256(self.config.encode()).hexdigest()

    @property
    def base_url(self) -> str | None:
        try:
            data = json.loads(self.config)
        except ValueError:
            return None
        value = data.get("base_url") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowChange:
    row: RawRow
    old_url: str
    new_url: str
    new_config: str

    def describe(self) -> str:
        return (
            f"{self.row.table} {self.row.model} ({self.row.model_type}, id {self.row.id}): "
            f"base_url {without_credentials(self.old_url)} -> {without_credentials(self.new_url)}"
        )


def _exec_psql(
    client: docker.DockerClient,
    db_cid: str,
    argv: list[str],
    timeout: float,
    what: str,
    environment: dict[str, str] | None = None,
) -> container_exec.ExecResult:
    res = container_exec.run(client, db_cid, argv, timeout, environment=environment)
    if res.exit_code is None or res.timed_out:
        raise HandlerError(f"{what}: psql in the db container did not answer within {timeout:g} s")
    if res.missing_command:
        raise HandlerError(f"{what}: the db container has no psql (is it PostgreSQL?)")
    return res


def read_rows(
    client: docker.DockerClient, db_cid: str, user: str, database: str, timeout: float
) -> list[RawRow]:
    """Every Ollama row of both credential tables (where they exist), config text verbatim."""
    return [
        RawRow(
            table=str(data["table"]),
            id=str(data["id"]),
            tenant_id=str(data["tenant_id"]),
            provider=str(data["provider"]),
            model=str(data["model"]),
            model_type=str(data["model_type"]),
            config=data["config"],
        )
        for data in read_rows_json(client, db_cid, user, database, timeout)
        if isinstance(data.get("config"), str)
    ]


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


def plan_changes(rows: list[RawRow], fix_base_url: str) -> list[RowChange]:
    changes = []
    for row in rows:
        url = row.base_url
        if url is None or not needs_fix(url):
            continue
        new_url = target_url(url, fix_base_url)
        if new_url == url:
            continue
        changes.append(RowChange(row, url, new_url, rewrite_config(row.config, new_url)))
    return changes


def _literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is forced on: only quotes double)."""
    if "\x00" in value:
        raise HandlerError("a value holds a NUL character; nothing was changed")
    return "'" + value.replace("'", "''") + "'"


def _guarded_updates(updates: list[tuple[str, str, str, str]]) -> str:
    """One DO block: (table, id, expected old text, new text) per row; any miss aborts all."""
    if any(table not in TABLES for table, _, _, _ in updates):
        raise HandlerError("refusing to write a table other than Dify's credential tables")
    tag = f"$dify_ollama_{secrets.token_hex(6)}$"
    body = []
    for table, row_id, old, new in updates:
        if tag in old or tag in new:
            raise HandlerError("a value collides with the SQL quoting tag; try again")
        body.append(
            f"UPDATE {table} SET encrypted_config = {_literal(new)} "  # noqa: S608 - quoted
            f"WHERE id::text = {_literal(row_id)} AND encrypted_config = {_literal(old)};\n"
            "IF NOT FOUND THEN RAISE EXCEPTION 'dify-ollama: row % changed since it was read', "
            f"{_literal(row_id)}; END IF;"
        )
    return f"DO {tag}\nBEGIN\n" + "\n".join(body) + f"\nEND\n{tag};"


def write_rows(
    client: docker.DockerClient,
    db_cid: str,
    user: str,
    database: str,
    updates: list[tuple[str, str, str, str]],
    timeout: float,
    what: str = "rewriting base_url",
) -> None:
    """Apply (table, id, old text, new text) updates in one transaction, or none of them."""
    if not updates:
        return
    argv = psql_argv(
        user,
        database,
        "SET standard_conforming_strings = on",
        _guarded_updates(updates),
        stop_on_error=True,
    )
    res = _exec_psql(client, db_cid, argv, timeout, what)
    if res.exit_code != 0:
        message = next(
            (ln for ln in res.stderr.splitlines() if "ERROR" in ln or "FATAL" in ln),
            res.stderr.strip()[:200] or f"psql exited {res.exit_code}",
        )
        raise HandlerError(f"{what} failed, the transaction was rolled back: {message[:300]}")


def apply_changes(
    client: docker.DockerClient,
    db_cid: str,
    user: str,
    database: str,
    changes: list[RowChange],
    timeout: float,
) -> None:
    write_rows(
        client,
        db_cid,
        user,
        database,
        [(c.row.table, c.row.id, c.row.config, c.new_config) for c in changes],
        timeout,
    )


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
    return (
        "Delete Dify's cached credentials by hand: `docker exec -it <redis container> sh -c "
        f'\'redis-cli -n {database} --scan --pattern "provider_model_credentials:*" | '
        "xargs -r redis-cli -n "
        f'{database} DEL; redis-cli -n {database} --scan --pattern "provider_credentials:*" | '
        f"xargs -r redis-cli -n {database} DEL'` (project {project_name}; REDISCLI_AUTH is "
        "set in that container), then restart api, worker and plugin_daemon."
    )
