"""plugin_daemon's own database, as the look-alike stacks hold it.

Tables and columns as langgenius/dify-plugin-daemon declares them, checked against its source
at commit bdb5642 (Aug 2026): internal/types/models/plugin.go (`Plugin`, `PluginDeclaration`),
installation.go (`PluginInstallation`), model.go (`AIModelInstallation`), base.go (`Model`:
id uuid, created_at, updated_at), created by GORM's AutoMigrate in internal/db/init.go with
GORM's default names (snake_case, plural): `plugins` (one row per installed package, `refers`
counting the tenants, `install_type`, `manifest_type`, `remote_declaration`, `source`),
`plugin_installations` (one row per tenant and plugin: `plugin_id` "author/name",
`plugin_unique_identifier` "author/name:version@checksum", `runtime_type`, `source`, `meta`),
`plugin_declarations` (the manifest, JSON) and `ai_model_installations` (the model providers a
tenant got from it). The database is DB_PLUGIN_DATABASE (default `dify_plugin`) in the same
PostgreSQL (or MySQL) server as Dify's own. Only the columns the product reads must match;
the rest are here so the rows look like the daemon's.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.rig.dify_db import DEFAULT_TENANT_ID

OLLAMA_PLUGIN_ID = "langgenius/ollama"
OLLAMA_PLUGIN_VERSION = "0.1.4"


def unique_identifier(plugin_id: str, version: str) -> str:
    checksum = hashlib.sha256(f"{plugin_id}:{version}".encode()).hexdigest()
    return f"{plugin_id}:{version}@{checksum}"


@dataclass
class PluginInstall:
    """One tenant's installation of a plugin (and the package row it refers to)."""

    tenant_id: str = DEFAULT_TENANT_ID
    plugin_id: str = OLLAMA_PLUGIN_ID
    version: str = OLLAMA_PLUGIN_VERSION
    runtime_type: str = "local"
    source: str = "marketplace"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def identifier(self) -> str:
        return unique_identifier(self.plugin_id, self.version)


def plugin_schema_sql(dialect: str = "postgresql") -> str:
    pg = dialect == "postgresql"
    uid = "uuid" if pg else "CHAR(36)"
    text_t = "text" if pg else "LONGTEXT"
    ts = "timestamp" if pg else "DATETIME"
    stamps = (
        f"created_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP, "
        f"updated_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP"
    )
    return "\n".join(
        [
            f"CREATE TABLE plugins (id {uid} PRIMARY KEY, {stamps}, "
            "plugin_unique_identifier varchar(255), plugin_id varchar(255), "
            "refers integer DEFAULT 0, install_type varchar(127), manifest_type varchar(127), "
            f"remote_declaration {text_t}, source varchar(63) DEFAULT '');",
            f"CREATE TABLE plugin_installations (id {uid} PRIMARY KEY, {stamps}, "
            f"tenant_id {uid}, plugin_id varchar(255), plugin_unique_identifier varchar(255), "
            "runtime_type varchar(127), endpoints_setups integer, endpoints_active integer, "
            f"source varchar(63), meta {text_t});",
            f"CREATE TABLE plugin_declarations (id {uid} PRIMARY KEY, {stamps}, "
            "plugin_unique_identifier varchar(255), plugin_id varchar(255), "
            f"declaration {text_t});",
            f"CREATE TABLE ai_model_installations (id {uid} PRIMARY KEY, {stamps}, "
            f"provider varchar(127) NOT NULL, tenant_id {uid} NOT NULL, "
            "plugin_unique_identifier varchar(255), plugin_id varchar(255));",
        ]
    )


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def plugin_rows_sql(installs: Iterable[PluginInstall]) -> str:
    """INSERTs for the installations, one `plugins` and `plugin_declarations` row per package."""
    installs = list(installs)
    out = []
    packages: dict[str, list[PluginInstall]] = {}
    for inst in installs:
        packages.setdefault(inst.identifier, []).append(inst)
    for identifier, users in packages.items():
        first = users[0]
        declaration = json.dumps(
            {
                "version": first.version,
                "type": "plugin",
                "author": first.plugin_id.split("/")[0],
                "name": first.plugin_id.split("/")[-1],
                "plugins": {"models": ["provider/ollama.yaml"]},
            }
        )
        out.append(
            "INSERT INTO plugins (id, plugin_unique_identifier, plugin_id, refers, install_type, "
            f"manifest_type, remote_declaration, source) VALUES ({_q(str(uuid.uuid4()))}, "
            f"{_q(identifier)}, {_q(first.plugin_id)}, {len(users)}, {_q(first.runtime_type)}, "
            f"'plugin', '{{}}', {_q(first.source)});"
        )
        out.append(
            "INSERT INTO plugin_declarations (id, plugin_unique_identifier, plugin_id, "
            f"declaration) VALUES ({_q(str(uuid.uuid4()))}, {_q(identifier)}, "
            f"{_q(first.plugin_id)}, {_q(declaration)});"
        )
    for inst in installs:
        out.append(
            "INSERT INTO plugin_installations (id, tenant_id, plugin_id, "
            "plugin_unique_identifier, runtime_type, endpoints_setups, endpoints_active, source, "
            f"meta) VALUES ({_q(inst.id)}, {_q(inst.tenant_id)}, {_q(inst.plugin_id)}, "
            f"{_q(inst.identifier)}, {_q(inst.runtime_type)}, 0, 0, {_q(inst.source)}, '{{}}');"
        )
        out.append(
            "INSERT INTO ai_model_installations (id, provider, tenant_id, "
            f"plugin_unique_identifier, plugin_id) VALUES ({_q(str(uuid.uuid4()))}, "
            f"{_q(inst.plugin_id.split('/')[-1])}, {_q(inst.tenant_id)}, "
            f"{_q(inst.identifier)}, {_q(inst.plugin_id)});"
        )
    return "\n".join(out) + ("\n" if out else "")


def clear_plugins_sql() -> str:
    return (
        "DELETE FROM ai_model_installations; DELETE FROM plugin_installations; "
        "DELETE FROM plugin_declarations; DELETE FROM plugins;"
    )
