"""Dify's tables for Ollama credentials, their rows and their Redis cache keys, per release.

Columns as in langgenius/dify api/models/provider.py: `provider_model_credentials` (1.x since
the model-credentials change of PR #24451), `provider_models` (0.x: the config itself in
`encrypted_config`; 1.x after migration 0e154742a5fa: only a `credential_id` link), and
`load_balancing_model_configs` (its own `encrypted_config`; 1.x adds `credential_id` and
`credential_source_type`). In `encrypted_config` only secret fields are encrypted, so
`base_url` is readable JSON; a secret (the Ollama plugin 1.0's `api_key`) is Dify's
`HYBRID:`-prefixed RSA/AES blob, base64 encoded (encrypted_secret makes a look-alike).

Schemas: "0.x" (no provider_model_credentials), "1.13" (exact 1.x: provider_models without
encrypted_config), "compat" (both, as the rig's 1.13.3 stack has always had). Dialects:
"postgresql" and "mysql" (MariaDB standing in for MySQL 8.0; `1.13` schema only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OLLAMA_PROVIDER = "langgenius/ollama/ollama"  # 1.x: the plugin's provider id
OLLAMA_PROVIDER_0X = "ollama"  # 0.x: the built-in provider
DEFAULT_TENANT_ID = "8d0a2b8e-6a8f-4a43-9a55-3f4f2c1d7e01"

SCHEMAS = ("compat", "1.13", "0.x")
DIALECTS = ("postgresql", "mysql")
TABLES = ("provider_model_credentials", "provider_models", "load_balancing_model_configs")


def encrypted_secret(seed: str) -> str:
    """A value shaped like Dify's encrypted secret fields: base64("HYBRID:" + RSA key + AES)."""
    digest = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(10))
    return base64.b64encode(b"HYBRID:" + digest[:300]).decode()


@dataclass
class OllamaRow:
    """One Ollama credential row in one of Dify's three tables."""

    base_url: str
    model_name: str = "llama3.2:latest"
    tenant_id: str = DEFAULT_TENANT_ID
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    credential_name: str = "API KEY 1"  # load_balancing_model_configs: its `name`
    provider_name: str = OLLAMA_PROVIDER
    model_type: str = "llm"
    table: str = "provider_model_credentials"
    config: dict[str, Any] = field(default_factory=dict)  # extra/overriding config fields
    # load_balancing_model_configs on 1.x: the credential it reuses, and where that lives
    credential_id: str | None = None
    credential_source_type: str | None = None

    def credentials(self) -> dict[str, Any]:
        # The Ollama plugin's credential form; secret fields (api_key) come through `config`.
        return {
            "base_url": self.base_url,
            "mode": "chat",
            "context_size": "4096",
            "max_tokens": "4096",
            "vision_support": "false",
            "function_call_support": "false",
            **self.config,
        }

    def encrypted_config(self) -> str:
        return json.dumps(self.credentials())


RowLike = OllamaRow | Mapping[str, Any]


def as_row(r: RowLike) -> OllamaRow:
    return r if isinstance(r, OllamaRow) else OllamaRow(**dict(r))


def tables_of(schema: str) -> tuple[str, ...]:
    if schema not in SCHEMAS:
        raise ValueError(f"schema must be one of {SCHEMAS}")
    return TABLES[1:] if schema == "0.x" else TABLES


# --------------------------------------------------------------------------------------------
# DDL
# --------------------------------------------------------------------------------------------
def schema_sql(schema: str, dialect: str = "postgresql") -> str:
    """CREATE TABLE statements for the credential tables of a schema in a dialect."""
    tables_of(schema)
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}")
    if dialect == "mysql" and schema != "1.13":
        raise ValueError("the mysql dialect exists for Dify 1.x only (schema 1.13)")
    pg = dialect == "postgresql"
    uid = "uuid" if pg else "CHAR(36)"
    text_t = "text" if pg else "LONGTEXT"
    ts = "timestamp" if pg else "DATETIME"
    boolean = "boolean" if pg else "TINYINT(1)"
    pk_default = " DEFAULT gen_random_uuid()" if pg else ""
    stamps = (
        f"    created_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP,\n"
        f"    updated_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP"
    )
    out = []
    if schema != "0.x":
        out.append(
            "CREATE TABLE provider_model_credentials (\n"
            f"    id {uid} PRIMARY KEY{pk_default},\n"
            f"    tenant_id {uid} NOT NULL,\n"
            "    provider_name varchar(255) NOT NULL,\n"
            "    model_name varchar(255) NOT NULL,\n"
            "    model_type varchar(40) NOT NULL,\n"
            "    credential_name varchar(255) NOT NULL,\n"
            f"    encrypted_config {text_t} NOT NULL,\n{stamps}\n);\n"
            "CREATE INDEX provider_model_credential_tenant_provider_model_idx\n"
            "    ON provider_model_credentials (tenant_id, provider_name, model_name, model_type);"
        )
    pm_cols = []
    if schema in ("0.x", "compat"):
        pm_cols.append(f"    encrypted_config {text_t},\n")
    if schema in ("1.13", "compat"):
        pm_cols.append(f"    credential_id {uid},\n")
    out.append(
        "CREATE TABLE provider_models (\n"
        f"    id {uid} PRIMARY KEY{pk_default},\n"
        f"    tenant_id {uid} NOT NULL,\n"
        "    provider_name varchar(255) NOT NULL,\n"
        "    model_name varchar(255) NOT NULL,\n"
        "    model_type varchar(40) NOT NULL,\n"
        + "".join(pm_cols)
        + f"    is_valid {boolean} NOT NULL DEFAULT false,\n{stamps},\n"
        "    CONSTRAINT unique_provider_model_name\n"
        "        UNIQUE (tenant_id, provider_name, model_name, model_type)\n);\n"
        "CREATE INDEX provider_model_tenant_id_provider_idx\n"
        "    ON provider_models (tenant_id, provider_name);"
    )
    lb_cols = (
        ""
        if schema == "0.x"
        else (f"    credential_id {uid},\n    credential_source_type varchar(40),\n")
    )
    out.append(
        "CREATE TABLE load_balancing_model_configs (\n"
        f"    id {uid} PRIMARY KEY{pk_default},\n"
        f"    tenant_id {uid} NOT NULL,\n"
        "    provider_name varchar(255) NOT NULL,\n"
        "    model_name varchar(255) NOT NULL,\n"
        "    model_type varchar(40) NOT NULL,\n"
        "    name varchar(255) NOT NULL,\n"
        f"    encrypted_config {text_t},\n"
        + lb_cols
        + f"    enabled {boolean} NOT NULL DEFAULT true,\n{stamps}\n);\n"
        "CREATE INDEX load_balancing_model_config_tenant_provider_model_idx\n"
        "    ON load_balancing_model_configs (tenant_id, provider_name, model_type);"
    )
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------
def quote(value: str | None, dialect: str = "postgresql") -> str:
    """SQL literal. PostgreSQL (standard_conforming_strings on): double the quotes. MySQL's
    default sql_mode also treats backslashes as escapes: double them too."""
    if value is None:
        return "NULL"
    if dialect == "mysql":
        value = value.replace("\\", "\\\\")
    return "'" + value.replace("'", "''") + "'"


def rows_sql(rows: Iterable[RowLike], schema: str = "compat", dialect: str = "postgresql") -> str:
    """One transaction replacing the credential tables' rows with `rows`.

    schema "compat": provider_models still has encrypted_config (releases before migration
    0e154742a5fa, 2025-08) next to provider_model_credentials. "1.13": exactly Dify 1.13, where
    that migration dropped provider_models.encrypted_config and links rows by credential_id.
    "0.x": no provider_model_credentials; the config lives in provider_models.
    """
    tables = tables_of(schema)

    def q(value: str | None) -> str:
        return quote(value, dialect)

    begin = "BEGIN;" if dialect == "postgresql" else "START TRANSACTION;"
    out = [begin, *(f"DELETE FROM {t};" for t in tables)]
    for r in map(as_row, rows):
        if r.table not in tables:
            raise ValueError(f"schema {schema} has no table {r.table!r}")
        common = f"{q(r.id)}, {q(r.tenant_id)}, {q(r.provider_name)}, {q(r.model_name)}, "
        if r.table == "provider_models":
            if schema == "1.13":
                raise ValueError("schema 1.13 has no provider_models.encrypted_config")
            out.append(
                "INSERT INTO provider_models (id, tenant_id, provider_name, model_name, "
                f"model_type, encrypted_config, is_valid) VALUES ({common}"
                f"{q(r.model_type)}, {q(r.encrypted_config())}, TRUE);"
            )
        elif r.table == "provider_model_credentials":
            out.append(
                "INSERT INTO provider_model_credentials (id, tenant_id, provider_name, "
                f"model_name, model_type, credential_name, encrypted_config) VALUES ({common}"
                f"{q(r.model_type)}, {q(r.credential_name)}, {q(r.encrypted_config())});"
            )
            if schema == "1.13":
                values = (
                    f"{q(r.tenant_id)}, {q(r.provider_name)}, {q(r.model_name)}, "
                    f"{q(r.model_type)}, {q(r.id)}, TRUE"
                )
                if dialect == "postgresql":
                    out.append(
                        "INSERT INTO provider_models (tenant_id, provider_name, model_name, "
                        f"model_type, credential_id, is_valid) VALUES ({values}) "
                        "ON CONFLICT DO NOTHING;"
                    )
                else:
                    out.append(
                        "INSERT IGNORE INTO provider_models (id, tenant_id, provider_name, "
                        "model_name, model_type, credential_id, is_valid) VALUES "
                        f"(UUID(), {values});"
                    )
        else:  # load_balancing_model_configs
            cols, vals = "", ""
            if schema != "0.x":
                cols = ", credential_id, credential_source_type"
                vals = f", {q(r.credential_id)}, {q(r.credential_source_type)}"
            out.append(
                "INSERT INTO load_balancing_model_configs (id, tenant_id, provider_name, "
                f"model_name, model_type, name, encrypted_config, enabled{cols}) VALUES "
                f"({common}{q(r.model_type)}, {q(r.credential_name)}, "
                f"{q(r.encrypted_config())}, TRUE{vals});"
            )
    out.append("COMMIT;")
    return "\n".join(out) + "\n"


def rows_query(schema: str, dialect: str = "postgresql") -> str:
    """One SELECT returning every row of the credential tables as a JSON array (ordered by
    table, created_at, id), each with tbl, id, tenant_id, provider_name, model_name,
    model_type, credential_name, encrypted_config (plus credential_id and
    credential_source_type for load_balancing_model_configs on 1.x)."""
    tables = tables_of(schema)
    lb_extra = schema != "0.x"
    parts = []
    if dialect == "postgresql":
        cols = "'{t}' AS tbl, id, tenant_id, provider_name, model_name, model_type"
        if "provider_model_credentials" in tables:
            parts.append(
                f"SELECT {cols.format(t='provider_model_credentials')}, credential_name,"
                " encrypted_config, NULL AS credential_id, NULL AS credential_source_type,"
                " created_at FROM provider_model_credentials"
            )
        # to_jsonb: works whether or not the column exists (schema "compat" or "1.13").
        parts.append(
            f"SELECT {cols.format(t='provider_models')}, NULL AS credential_name,"
            " to_jsonb(pm)->>'encrypted_config' AS encrypted_config, NULL AS credential_id,"
            " NULL AS credential_source_type, created_at FROM provider_models pm"
            " WHERE to_jsonb(pm)->>'encrypted_config' IS NOT NULL"
        )
        extra = (
            "credential_id::text AS credential_id, credential_source_type"
            if lb_extra
            else "NULL AS credential_id, NULL AS credential_source_type"
        )
        parts.append(
            f"SELECT {cols.format(t='load_balancing_model_configs')}, name AS credential_name,"
            f" encrypted_config, {extra}, created_at FROM load_balancing_model_configs"
        )
        return (
            "SELECT coalesce(json_agg(t ORDER BY t.tbl, t.created_at, t.id), '[]') FROM ("
            + " UNION ALL ".join(parts)
            + ") t"
        )
    keys = (
        "tbl",
        "id",
        "tenant_id",
        "provider_name",
        "model_name",
        "model_type",
        "credential_name",
        "encrypted_config",
        "credential_id",
        "credential_source_type",
    )
    obj = ", ".join(f"'{k}', t.c{i}" for i, k in enumerate(keys))
    # The first branch names the columns (c0..c9) for the union.
    first = (
        "SELECT 'provider_model_credentials' AS c0, id AS c1, tenant_id AS c2,"
        " provider_name AS c3, model_name AS c4, model_type AS c5, credential_name AS c6,"
        " encrypted_config AS c7, NULL AS c8, NULL AS c9, created_at"
        " FROM provider_model_credentials"
    )
    second = (
        "SELECT 'load_balancing_model_configs', id, tenant_id, provider_name, model_name,"
        " model_type, name, encrypted_config, credential_id, credential_source_type, created_at"
        " FROM load_balancing_model_configs"
    )
    return (
        f"SELECT COALESCE(JSON_ARRAYAGG(JSON_OBJECT({obj}) ORDER BY t.c0, t.created_at, t.c1),"
        f" '[]') FROM ({first} UNION ALL {second}) t"
    )


def parse_rows(payload: str) -> list[dict[str, Any]]:
    """rows_query's JSON, as dicts with `table` and the parsed `base_url` added."""
    text = payload.strip()
    out = []
    for r in json.loads(text if text and text != "NULL" else "[]"):
        r["table"] = r.pop("tbl")
        r.pop("created_at", None)
        if r["table"] != "load_balancing_model_configs":
            r.pop("credential_id", None)
            r.pop("credential_source_type", None)
        try:
            r["base_url"] = json.loads(r["encrypted_config"] or "{}").get("base_url")
        except ValueError:
            r["base_url"] = None
        out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------
def cache_keys_for(rows: Iterable[RowLike]) -> dict[str, str]:
    """The credential cache entries Dify would hold in Redis for these rows (plus one unrelated).

    langgenius/dify api/core/helper/model_provider_cache.py: `{type}_credentials:tenant_id:
    {tenant}:id:{id}` with type provider, provider_model or load_balancing_provider_model.
    """
    keys: dict[str, str] = {}
    for r in map(as_row, rows):
        creds = json.dumps(r.credentials())
        if r.table == "load_balancing_model_configs":
            keys[f"load_balancing_provider_model_credentials:tenant_id:{r.tenant_id}:id:{r.id}"] = (
                creds
            )
            continue
        keys[f"provider_model_credentials:tenant_id:{r.tenant_id}:id:{r.id}"] = creds
        pid = uuid.uuid5(uuid.NAMESPACE_URL, f"{r.tenant_id}/{r.provider_name}")
        keys[f"provider_credentials:tenant_id:{r.tenant_id}:id:{pid}"] = creds
    keys["rig:unrelated"] = "must survive cache flushes of credential keys"
    return keys
