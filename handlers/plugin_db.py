"""plugin_daemon's own database: which tenants have the Ollama plugin installed.

Not Dify's metadata database (handlers/dify_db.py) but its neighbour in the same server:
DB_PLUGIN_DATABASE (default `dify_plugin`), which plugin_daemon receives as DB_DATABASE.
Tables as langgenius/dify-plugin-daemon's GORM models name them, checked against its source
(commit bdb5642, Aug 2026; AutoMigrate in internal/db/init.go, default GORM naming):
`plugin_installations` (internal/types/models/installation.go: tenant_id uuid, plugin_id
"author/name", plugin_unique_identifier "author/name:version@checksum", runtime_type),
`plugins` (plugin.go `Plugin`: the installed packages, by plugin_unique_identifier) and
`plugin_declarations` (plugin.go `PluginDeclaration`: their manifests, by
plugin_unique_identifier). Only these columns are read. Read only: PostgreSQL through
`psql` in a read-only transaction, MySQL through `mysql` with a read-only session, as
Dify's rows are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers import container_exec
from handlers.dify_db import END_SELECT, FollowUp, FollowUpOutput, psql_argv, require_end
from handlers.results import HandlerError

if TYPE_CHECKING:
    import docker

OLLAMA_PLUGIN = "langgenius/ollama"
# A read-only session that gives up rather than wait on a lock (as Dify's rows are read).
READ_ONLY = {"PGOPTIONS": "-c default_transaction_read_only=on -c lock_timeout=1000"}
DEFAULT_DATABASE = "dify_plugin"

_COLUMNS = (
    "'tenant', {tenant}, 'uid', i.plugin_unique_identifier, 'runtime', i.runtime_type, "
    "'packages', (SELECT count(*) FROM plugins p "
    "WHERE p.plugin_unique_identifier = i.plugin_unique_identifier), "
    "'declared', (SELECT count(*) FROM plugin_declarations d "
    "WHERE d.plugin_unique_identifier = i.plugin_unique_identifier)"
)
# Constants only: the plugin id is this module's.
_WHERE = f"FROM plugin_installations i WHERE i.plugin_id = '{OLLAMA_PLUGIN}'"
PG_QUERY = f"SELECT json_build_object({_COLUMNS.format(tenant='i.tenant_id::text')}) {_WHERE}"
MYSQL_QUERY = f"SELECT JSON_OBJECT({_COLUMNS.format(tenant='i.tenant_id')}) {_WHERE}"


@dataclass(frozen=True)
class Installation:
    tenant_id: str
    identifier: str  # langgenius/ollama:<version>@<checksum>
    runtime_type: str
    package: bool  # the package row exists in `plugins`
    declared: bool  # its manifest exists in `plugin_declarations`

    @property
    def version(self) -> str:
        return self.identifier.split(":", 1)[-1].split("@", 1)[0]


@dataclass(frozen=True)
class PluginDatabase:
    """Where plugin_daemon keeps its state, and how to log in there."""

    service: str  # the db service
    container_id: str
    dialect: str  # postgresql | mysql
    database: str
    user: str
    password: str | None = None  # MySQL only (passed through the environment, never argv)


def plugin_database_name(daemon_env: Mapping[str, str], env_values: Mapping[str, str]) -> str:
    """What plugin_daemon was started with (its DB_DATABASE), else `.env`, else the default."""
    return daemon_env.get("DB_DATABASE") or env_values.get("DB_PLUGIN_DATABASE") or DEFAULT_DATABASE


def parse(lines: str) -> list[Installation]:
    found = []
    for line in lines.splitlines():
        try:
            data = json.loads(line.strip())
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        found.append(
            Installation(
                tenant_id=str(data.get("tenant") or ""),
                identifier=str(data.get("uid") or ""),
                runtime_type=str(data.get("runtime") or ""),
                package=int(data.get("packages") or 0) > 0,
                declared=int(data.get("declared") or 0) > 0,
            )
        )
    return found


def follow_up(database: str) -> FollowUp:
    """The installations as a read that the psql of Dify's rows runs after them (same
    PostgreSQL server; dify_db.FollowUp): a check then needs one exec fewer."""
    return FollowUp(database, (PG_QUERY,))


def from_follow_up(output: FollowUpOutput) -> list[Installation] | None:
    """The installations the follow-up read; None when it did not run to its end (then the
    read by its own exec says why)."""
    return parse(output.stdout) if output.finished else None


def read_installations(
    client: docker.DockerClient, where: PluginDatabase, timeout: float
) -> list[Installation]:
    """Every tenant's installation of the Ollama plugin; HandlerError saying why not."""
    if where.dialect == "mysql":
        argv = ["mysql", "-u", where.user, "-N", "-B", "--raw"]
        argv += ["--init-command=SET SESSION TRANSACTION READ ONLY"]
        argv += ["-e", f"{MYSQL_QUERY}; {END_SELECT};"]
        argv.append(where.database)
        env = {"MYSQL_PWD": where.password} if where.password else None
    else:
        # stop at a failing query: the end mark after it would otherwise make psql exit 0
        argv = psql_argv(where.user, where.database, PG_QUERY, END_SELECT, stop_on_error=True)
        env = READ_ONLY
    res = container_exec.run(client, where.container_id, argv, timeout, environment=env)
    if res.exit_code is None or res.timed_out:
        raise HandlerError(f"the plugin database did not answer within {timeout:g} s")
    if res.missing_command:
        raise HandlerError(f"{where.service} has no {argv[0]} client")
    if res.exit_code != 0:
        first = (res.stderr.strip().splitlines() or [f"exit {res.exit_code}"])[0]
        if "does not exist" in first or "doesn't exist" in first or "Unknown database" in first:
            raise HandlerError(
                f"database {where.database!r} or its plugin tables do not exist: "
                "plugin_daemon never started against it"
            )
        raise HandlerError(f"reading {where.database} failed: {first[:200]}")
    require_end(argv[0], res)  # output lost on the way is not "not installed"
    return parse(res.stdout)
