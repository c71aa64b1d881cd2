"""Dify's database, as far as Ollama is concerned: the credential rows that hold each model's
base URL, read and (for fix-env and its undo) rewritten in one guarded transaction.

The URL the Ollama plugin calls is a credential field `base_url` in
`provider_model_credentials.encrypted_config` (older releases: `provider_models.encrypted_config`).
Only secret fields of that JSON are encrypted, so base_url is readable.

Everything goes through `DifyDatabase`; `PostgresInContainer` implements it with `psql` inside
the db container (Dify's default). `open_database` picks the implementation for a project, so
another engine (MySQL through the `mysql` client) is one more class and one more branch there.
Reads run in a read-only transaction; a write is one DO block whose every UPDATE is guarded by
the row's old text, so the database is either entirely old or entirely new.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import docker

from handlers import container_exec
from handlers.project import DifyProject
from handlers.results import HandlerError

OLLAMA_PROVIDERS = ("langgenius/ollama/ollama", "ollama")
TABLES = ("provider_model_credentials", "provider_models")
READ_ONLY = {"PGOPTIONS": "-c default_transaction_read_only=on"}
POSTGRES_TYPES = ("postgresql", "postgres", "")


@dataclass(frozen=True)
class CredentialRow:
    """An Ollama model credential row, its config text exactly as stored (None: not text)."""

    table: str
    id: str
    tenant_id: str
    provider: str
    model: str
    model_type: str
    name: str | None
    config: str | None  # encrypted_config, verbatim

    def _parsed(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.config) if self.config is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    @property
    def config_readable(self) -> bool:
        return self._parsed() is not None

    @property
    def stored_url(self) -> str | None:
        """base_url exactly as stored (what a rewrite replaces)."""
        value = (self._parsed() or {}).get("base_url")
        return value if isinstance(value, str) else None

    @property
    def base_url(self) -> str | None:
        """base_url as the plugin uses it (surrounding spaces dropped)."""
        url = self.stored_url
        return url.strip() if url is not None else None

    @property
    def config_sha256(self) -> str:
        return hashlib.sha256((self.config or "").encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RowUpdate:
    """Set one row's config to `new`, only if it still is `old`."""

    table: str
    id: str
    old: str
    new: str


class DifyDatabase(Protocol):
    """What the product does with Dify's database, whatever engine holds it."""

    @property
    def label(self) -> str:
        """Where the rows live, for messages (service and database name)."""
        ...

    def read_rows(self, timeout: float) -> list[CredentialRow]:
        """Every Ollama row of both credential tables (where they exist)."""
        ...

    def write_rows(
        self, updates: Sequence[RowUpdate], timeout: float, what: str = "rewriting base_url"
    ) -> None:
        """All updates in one transaction, or none of them (HandlerError saying why)."""
        ...


@dataclass(frozen=True)
class DbLogin:
    """Which database service, and as whom, the rows are read and written."""

    service: str
    user: str
    database: str


def login(container_env: Mapping[str, str], env_values: Mapping[str, str]) -> tuple[str, str]:
    """(user, database): those the running PostgreSQL was started with, else `.env`'s, else
    Dify's defaults; right even when `.env` changed since the db container was created."""
    user = container_env.get("POSTGRES_USER") or env_values.get("DB_USERNAME") or "postgres"
    database = container_env.get("POSTGRES_DB") or env_values.get("DB_DATABASE") or "dify"
    return user, database


def psql_argv(user: str, database: str, *statements: str, stop_on_error: bool = False) -> list[str]:
    """psql over the container's local socket, unaligned tuples only; `stop_on_error` makes a
    failing statement end the run (and with it any open transaction)."""
    argv = ["psql", "-X", "-q", "-A", "-t", "-U", user, "-d", database]
    if stop_on_error:
        argv += ["-v", "ON_ERROR_STOP=1"]
    for statement in statements:
        argv += ["-c", statement]
    return argv


def _select(table: str) -> str:
    providers = ", ".join(f"'{p}'" for p in OLLAMA_PROVIDERS)
    name = "credential_name" if table == "provider_model_credentials" else "NULL"
    # Only constants are formatted in: table names and provider ids from this module.
    return (
        "SELECT json_build_object("  # noqa: S608
        f"'table', '{table}', 'id', id::text, 'tenant_id', tenant_id::text, "
        "'provider', provider_name, 'model', model_name, 'model_type', model_type, "
        f"'name', {name}, 'config', encrypted_config) "
        f"FROM {table} WHERE provider_name IN ({providers}) ORDER BY created_at, id"
    )


def _row(data: dict[str, Any]) -> CredentialRow:
    config = data.get("config")
    name = data.get("name")
    return CredentialRow(
        table=str(data.get("table")),
        id=str(data.get("id")),
        tenant_id=str(data.get("tenant_id")),
        provider=str(data.get("provider")),
        model=str(data.get("model")),
        model_type=str(data.get("model_type")),
        name=str(name) if name is not None else None,
        config=config if isinstance(config, str) else None,
    )


def _literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is forced on: only quotes double)."""
    if "\x00" in value:
        raise HandlerError("a value holds a NUL character; nothing was changed")
    return "'" + value.replace("'", "''") + "'"


def guarded_updates(updates: Sequence[RowUpdate]) -> str:
    """One DO block: an UPDATE per row guarded by its old text; any miss aborts all."""
    if any(u.table not in TABLES for u in updates):
        raise HandlerError("refusing to write a table other than Dify's credential tables")
    tag = f"$dify_ollama_{secrets.token_hex(6)}$"
    body = []
    for u in updates:
        if tag in u.old or tag in u.new:
            raise HandlerError("a value collides with the SQL quoting tag; try again")
        body.append(
            f"UPDATE {u.table} SET encrypted_config = {_literal(u.new)} "  # noqa: S608 - quoted
            f"WHERE id::text = {_literal(u.id)} AND encrypted_config = {_literal(u.old)};\n"
            "IF NOT FOUND THEN RAISE EXCEPTION 'dify-ollama: row % changed since it was read', "
            f"{_literal(u.id)}; END IF;"
        )
    return f"DO {tag}\nBEGIN\n" + "\n".join(body) + f"\nEND\n{tag};"


@dataclass(frozen=True)
class PostgresInContainer:
    """Dify's PostgreSQL, reached with `psql` inside its own container (no port, no password:
    the container's local socket trusts its own user)."""

    client: docker.DockerClient
    container_id: str
    user: str
    database: str
    service: str = "db"

    @property
    def label(self) -> str:
        return f"{self.service}, database {self.database}"

    def _psql(
        self,
        argv: list[str],
        timeout: float,
        what: str,
        environment: dict[str, str] | None = None,
    ) -> container_exec.ExecResult:
        res = container_exec.run(
            self.client, self.container_id, argv, timeout, environment=environment
        )
        if res.exit_code is None or res.timed_out:
            raise HandlerError(
                f"{what}psql in the db container did not answer within {timeout:g} s"
            )
        if res.missing_command:
            raise HandlerError(f"{what}the db container has no psql (is it PostgreSQL?)")
        return res

    def read_rows(self, timeout: float) -> list[CredentialRow]:
        argv = psql_argv(self.user, self.database, *(_select(t) for t in TABLES))
        res = self._psql(argv, timeout, "", environment=READ_ONLY)
        errors = [
            line
            for line in res.stderr.splitlines()
            if line.startswith(("ERROR", "psql:", "FATAL")) and "does not exist" not in line
        ]
        fatal = [e for e in errors if "FATAL" in e or "could not connect" in e]
        if fatal:
            raise HandlerError("psql could not connect: " + fatal[0][:200])
        rows = []
        for line in res.stdout.splitlines():
            try:
                data = json.loads(line.strip())
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                rows.append(_row(data))
        if not rows:
            # A release without one of the tables (or, on 1.13, provider_models without
            # encrypted_config) is fine; neither table, or another error, is not.
            missing = sum("does not exist" in line for line in res.stderr.splitlines())
            if missing >= len(TABLES):
                raise HandlerError(
                    f"database {self.database!r} has neither {' nor '.join(TABLES)}: "
                    "is this Dify's database?"
                )
            if errors:
                raise HandlerError("reading Ollama rows failed: " + errors[0][:200])
        return rows

    def write_rows(
        self, updates: Sequence[RowUpdate], timeout: float, what: str = "rewriting base_url"
    ) -> None:
        if not updates:
            return
        argv = psql_argv(
            self.user,
            self.database,
            "SET standard_conforming_strings = on",
            guarded_updates(updates),
            stop_on_error=True,
        )
        res = self._psql(argv, timeout, f"{what}: ")
        if res.exit_code != 0:
            message = next(
                (ln for ln in res.stderr.splitlines() if "ERROR" in ln or "FATAL" in ln),
                res.stderr.strip()[:200] or f"psql exited {res.exit_code}",
            )
            raise HandlerError(f"{what} failed, the transaction was rolled back: {message[:300]}")


def db_service(project: DifyProject, env_values: Mapping[str, str]) -> str:
    """The project's database service; HandlerError when it has none this module can read."""
    service = project.db_service
    if service is None:
        db_type = env_values.get("DB_TYPE", "postgresql")
        if db_type not in POSTGRES_TYPES:
            raise HandlerError(f"DB_TYPE={db_type}: only PostgreSQL is read")
        raise HandlerError("no db_postgres (or db) container in the project")
    return service


def resolve_login(
    project: DifyProject, env_values: Mapping[str, str], container_env: Mapping[str, str]
) -> DbLogin:
    """The project's database service and login (`container_env`: the db container's)."""
    user, database = login(container_env, env_values)
    return DbLogin(db_service(project, env_values), user, database)


def open_database(
    client: docker.DockerClient, project: DifyProject, where: DbLogin
) -> DifyDatabase:
    """The project's database; HandlerError when its container does not run."""
    info = project.container(where.service)
    if info is None or info.state != "running":
        raise HandlerError(f"{where.service} is not running; nothing was changed")
    return PostgresInContainer(client, info.id, where.user, where.database, where.service)
