"""Reading the Ollama base URLs that Dify stores per model, through psql inside the db container.

The URL the Ollama plugin calls is a credential field `base_url` in
`provider_model_credentials.encrypted_config` (older releases: `provider_models.encrypted_config`).
Only secret fields of that JSON are encrypted, so base_url is readable. Reads run in a read-only
transaction; nothing here can change the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import docker

from handlers import container_exec
from handlers.results import HandlerError

OLLAMA_PROVIDERS = ("langgenius/ollama/ollama", "ollama")
TABLES = ("provider_model_credentials", "provider_models")
READ_ONLY = {"PGOPTIONS": "-c default_transaction_read_only=on"}


@dataclass(frozen=True)
class OllamaCredential:
    table: str
    id: str
    tenant_id: str
    provider: str
    model: str
    model_type: str
    name: str | None
    base_url: str | None
    config_readable: bool = True


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


def psql_argv(user: str, database: str, *statements: str, stop_on_error: bool = False) -> list[str]:
    """psql over the container's local socket, unaligned tuples only; `stop_on_error` makes a
    failing statement end the run (and with it any open transaction)."""
    argv = ["psql", "-X", "-q", "-A", "-t", "-U", user, "-d", database]
    if stop_on_error:
        argv += ["-v", "ON_ERROR_STOP=1"]
    for statement in statements:
        argv += ["-c", statement]
    return argv


def _parse(row: dict[str, Any]) -> OllamaCredential:
    base_url = None
    readable = True
    raw = row.get("config")
    try:
        config = json.loads(raw) if isinstance(raw, str) else None
    except json.JSONDecodeError:
        config = None
    if isinstance(config, dict):
        value = config.get("base_url")
        base_url = value.strip() if isinstance(value, str) else None
    else:
        readable = False
    return OllamaCredential(
        table=str(row.get("table")),
        id=str(row.get("id")),
        tenant_id=str(row.get("tenant_id")),
        provider=str(row.get("provider")),
        model=str(row.get("model")),
        model_type=str(row.get("model_type")),
        name=row.get("name"),
        base_url=base_url,
        config_readable=readable,
    )


def read_rows_json(
    client: docker.DockerClient,
    db_container_id: str,
    user: str,
    database: str,
    timeout: float,
) -> list[dict[str, Any]]:
    """The Ollama rows of both credential tables (where they exist) as JSON objects, with
    `config` holding `encrypted_config` verbatim. Read-only transaction, bounded in time."""
    argv = psql_argv(user, database, *(_select(t) for t in TABLES))
    res = container_exec.run(client, db_container_id, argv, timeout, environment=READ_ONLY)
    if res.exit_code is None or res.timed_out:
        raise HandlerError(f"psql in the db container did not answer within {timeout:g} s")
    if res.missing_command:
        raise HandlerError("the db container has no psql (is it PostgreSQL?)")
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
            row = json.loads(line.strip())
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    if not rows:
        # A release without one of the tables (or, on 1.13, provider_models without
        # encrypted_config) is fine; neither table, or another error, is not.
        missing = sum("does not exist" in line for line in res.stderr.splitlines())
        if missing >= len(TABLES):
            raise HandlerError(
                f"database {database!r} has neither {' nor '.join(TABLES)}: "
                "is this Dify's database?"
            )
        if errors:
            raise HandlerError("reading Ollama rows failed: " + errors[0][:200])
    return rows


def read_ollama_credentials(
    client: docker.DockerClient,
    db_container_id: str,
    user: str,
    database: str,
    timeout: float,
) -> list[OllamaCredential]:
    """Every Ollama model credential in Dify's database (both tables, where they exist)."""
    return [_parse(row) for row in read_rows_json(client, db_container_id, user, database, timeout)]
