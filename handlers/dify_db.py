"""Dify's database, as far as Ollama is concerned: the credential rows that hold each model's
base URL, read and (for fix-env and its undo) rewritten in one guarded transaction.

The URL the Ollama plugin calls is a credential field `base_url` in the `encrypted_config`
JSON of `provider_model_credentials` (1.x), `provider_models` (0.x and older 1.x) and
`load_balancing_model_configs` (each load-balanced copy of a credential has its own). Only
secret fields of that JSON are encrypted, so base_url is readable.

Everything goes through `DifyDatabase`: `PostgresInContainer` (`psql` inside db / db_postgres,
the local socket trusts its own user) and `MysqlInContainer` (`mysql` inside db_mysql, the
password from that container's environment, handed over in the exec environment, never on a
command line). `open_database` picks one for a project. Reads run read-only; a write is one
transaction whose every UPDATE is guarded by the row's old text, so the database is either
entirely old or entirely new. Each session bounds itself on the server (PostgreSQL
lock_timeout/statement_timeout; MySQL innodb_lock_wait_timeout/lock_wait_timeout, MariaDB
max_statement_time, MySQL's MAX_EXECUTION_TIME hint on reads) to less than the client's
deadline; if the client's deadline passes anyway, the rows are read back and the error says
what the database really holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import docker

from handlers import container_exec
from handlers.project import DifyProject
from handlers.results import HandlerError

OLLAMA_PROVIDERS = ("langgenius/ollama/ollama", "ollama")
TABLES = ("provider_model_credentials", "provider_models", "load_balancing_model_configs")
# The column naming a row for people: a credential's name, a load-balancing config's name.
NAME_COLUMNS = {
    "provider_model_credentials": "credential_name",
    "provider_models": None,
    "load_balancing_model_configs": "name",
}
POSTGRES_TYPES = ("postgresql", "postgres", "")
MYSQL_TYPES = ("mysql",)
# The server ends a statement (or a wait for a lock) well before the client gives up, so a
# client-side timeout almost never leaves a transaction running.
SERVER_SHARE = 0.6
LOCK_SHARE = 0.4


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
        """Every Ollama row of the credential tables (those the release has)."""
        ...

    def write_rows(
        self, updates: Sequence[RowUpdate], timeout: float, what: str = "rewriting base_url"
    ) -> list[str]:
        """All updates in one transaction, or none of them (HandlerError saying why); the
        notes to show (e.g. the client timed out but the rows read back show the commit).
        DatabaseStateUnknown when neither the outcome nor the rows can be established."""
        ...


class DatabaseStateUnknown(HandlerError):
    """A write's outcome is unknown: the client gave up and the rows could not be read back
    (or read back neither old nor new). The database may have been changed."""


@dataclass(frozen=True)
class DbLogin:
    """Which database service, and as whom, the rows are read and written (never a password:
    it stays in the db container's environment and in `.env`)."""

    service: str
    user: str
    database: str

    @property
    def kind(self) -> str:
        return "mysql" if self.service == "db_mysql" else "postgresql"


def login(container_env: Mapping[str, str], env_values: Mapping[str, str]) -> tuple[str, str]:
    """(user, database) of PostgreSQL: those the running server was started with, else
    `.env`'s, else Dify's defaults; right even when `.env` changed since it was created."""
    user = container_env.get("POSTGRES_USER") or env_values.get("DB_USERNAME") or "postgres"
    database = container_env.get("POSTGRES_DB") or env_values.get("DB_DATABASE") or "dify"
    return user, database


def mysql_login(container_env: Mapping[str, str], env_values: Mapping[str, str]) -> tuple[str, str]:
    """(user, database) of MySQL: root when the container holds its root password (Dify's
    db_mysql sets MYSQL_ROOT_PASSWORD from DB_PASSWORD), else `.env`'s DB_USERNAME."""
    user = "root" if container_env.get("MYSQL_ROOT_PASSWORD") else env_values.get("DB_USERNAME")
    database = container_env.get("MYSQL_DATABASE") or env_values.get("DB_DATABASE") or "dify"
    return user or "root", database


def mysql_passwords(
    user: str, container_env: Mapping[str, str], env_values: Mapping[str, str]
) -> tuple[str, ...]:
    """Passwords to try for `user`, in order: the container's (what the server was initialised
    with), then `.env`'s (changed since?)."""
    found = []
    if user == "root" and container_env.get("MYSQL_ROOT_PASSWORD"):
        found.append(container_env["MYSQL_ROOT_PASSWORD"])
    if container_env.get("MYSQL_USER") == user and container_env.get("MYSQL_PASSWORD"):
        found.append(container_env["MYSQL_PASSWORD"])
    if env_values.get("DB_PASSWORD") and (env_values.get("DB_USERNAME") or "root") == user:
        found.append(env_values["DB_PASSWORD"])
    return tuple(dict.fromkeys(found))


def psql_argv(user: str, database: str, *statements: str, stop_on_error: bool = False) -> list[str]:
    """psql over the container's local socket, unaligned tuples only; `stop_on_error` makes a
    failing statement end the run (and with it any open transaction)."""
    argv = ["psql", "-X", "-q", "-A", "-t", "-U", user, "-d", database]
    if stop_on_error:
        argv += ["-v", "ON_ERROR_STOP=1"]
    for statement in statements:
        argv += ["-c", statement]
    return argv


def _providers() -> str:
    return ", ".join(f"'{p}'" for p in OLLAMA_PROVIDERS)


def _select(table: str) -> str:
    name = NAME_COLUMNS[table] or "NULL"
    # Only constants are formatted in: table names and provider ids from this module.
    return (
        "SELECT json_build_object("  # noqa: S608
        f"'table', '{table}', 'id', id::text, 'tenant_id', tenant_id::text, "
        "'provider', provider_name, 'model', model_name, 'model_type', model_type, "
        f"'name', {name}, 'config', encrypted_config) "
        f"FROM {table} WHERE provider_name IN ({_providers()}) ORDER BY created_at, id"
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


def _json_rows(stdout: str) -> list[CredentialRow]:
    rows = []
    for line in stdout.splitlines():
        try:
            data = json.loads(line.strip())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            rows.append(_row(data))
    return rows


# The last line of every read (here and in plugin_db): rows are only "none" when the client
# got this far. Output lost on the way (a client killed, an engine stream cut short) must not
# read as "no Ollama model is configured".
END_MARK = "dify-ollama:rows-end"
END_SELECT = f"SELECT '{END_MARK}'"


# A read of another database on the same PostgreSQL server that the rows' psql runs after
# them, so a check needs one exec fewer (plugin_daemon's installations: handlers/plugin_db.py).
# psql runs it after its own end mark: `\warn` (psql 13+) splits stderr there, so neither
# read's errors are taken for the other's, then ON_ERROR_STOP, `\connect`, the statements and
# their own end mark. The name goes into a psql meta-command, so only a plain name is taken;
# anything else is read by its own exec, with the name as an argument.
FOLLOW_UP_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")
STDERR_MARK = "dify-ollama:stderr-split"
FOLLOW_UP_END_MARK = "dify-ollama:follow-up-end"


@dataclass(frozen=True)
class FollowUp:
    database: str  # a plain name (FOLLOW_UP_NAME)
    statements: tuple[str, ...]


@dataclass(frozen=True)
class FollowUpOutput:
    database: str
    stdout: str  # what its statements printed
    finished: bool  # its end mark came: every statement ran, none failed


def _follow_up_argv(follow_up: FollowUp) -> list[str]:
    statements = [
        f"\\warn {STDERR_MARK}",
        "\\set ON_ERROR_STOP on",
        f"\\connect {follow_up.database}",
        *follow_up.statements,
        f"SELECT '{FOLLOW_UP_END_MARK}'",
    ]
    return [arg for statement in statements for arg in ("-c", statement)]


def require_end(client: str, res: container_exec.ExecResult) -> None:
    """HandlerError unless the client printed END_MARK (its last query, END_SELECT, ran)."""
    if END_MARK not in res.stdout.split():
        raise HandlerError(
            f"{client}'s output ended before the last query's (exit code {res.exit_code}); "
            "the rows could not be read"
        )


def _literal(value: str) -> str:
    """A SQL string literal (standard_conforming_strings is forced on: only quotes double)."""
    if "\x00" in value:
        raise HandlerError("a value holds a NUL character; nothing was changed")
    return "'" + value.replace("'", "''") + "'"


def _check_tables(updates: Sequence[RowUpdate]) -> None:
    if any(u.table not in TABLES for u in updates):
        raise HandlerError("refusing to write a table other than Dify's credential tables")


def guarded_updates(updates: Sequence[RowUpdate]) -> str:
    """One DO block: an UPDATE per row guarded by its old text; any miss aborts all."""
    _check_tables(updates)
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


def _ms(seconds: float) -> int:
    return max(100, int(seconds * 1000))


def confirm_after_timeout(
    read: Callable[[float], list[CredentialRow]],
    updates: Sequence[RowUpdate],
    timeout: float,
    what: str,
) -> list[str]:
    """The client gave up on a write: read the rows back and say what is really there. All
    new: the transaction committed (a note). All old: it did not (HandlerError, nothing
    changed). Anything else, or no answer: DatabaseStateUnknown."""
    waited = f"{what}: the database did not answer within {timeout:g} s"
    try:
        rows = {(r.table, r.id): r.config for r in read(timeout)}
    except HandlerError as exc:
        raise DatabaseStateUnknown(
            f"{waited}, and reading the rows back failed ({exc}): the change may or may not "
            "have been committed"
        ) from None
    now = [rows.get((u.table, u.id)) for u in updates]
    if all(c == u.new for c, u in zip(now, updates, strict=True)):
        return [f"{waited}, but the rows read back show the change committed"]
    if all(c == u.old for c, u in zip(now, updates, strict=True)):
        raise HandlerError(
            f"{waited}; the rows read back are unchanged (the server's own time limit ended "
            "the transaction), so the transaction was rolled back"
        )
    raise DatabaseStateUnknown(
        f"{waited}, and the rows read back are neither all old nor all new (changed by someone "
        "else meanwhile?)"
    )


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
        if res.missing_command:
            raise HandlerError(f"{what}the db container has no psql (is it PostgreSQL?)")
        return res

    def read_rows(self, timeout: float) -> list[CredentialRow]:
        return self.read_rows_then(timeout, None)[0]

    def read_rows_then(
        self, timeout: float, follow_up: FollowUp | None
    ) -> tuple[list[CredentialRow], FollowUpOutput | None]:
        """read_rows, then in the same psql run `follow_up` (see FollowUp); its output is None
        when it was not run (no follow-up, a name that is not plain, a psql without `\\warn`)."""
        if follow_up is not None and not FOLLOW_UP_NAME.fullmatch(follow_up.database):
            follow_up = None
        argv = psql_argv(self.user, self.database, *(_select(t) for t in TABLES), END_SELECT)
        if follow_up is not None:
            argv += _follow_up_argv(follow_up)
        options = (
            "-c default_transaction_read_only=on "
            f"-c statement_timeout={_ms(timeout * SERVER_SHARE)} "
            f"-c lock_timeout={_ms(timeout * LOCK_SHARE)}"
        )
        res = self._psql(argv, timeout, "", environment={"PGOPTIONS": options})
        if res.exit_code is None or res.timed_out:
            raise HandlerError(f"psql in the db container did not answer within {timeout:g} s")
        output = None
        if follow_up is not None:
            stderr = res.stderr.splitlines()
            if STDERR_MARK not in stderr:  # a psql before 13: the reads one by one
                return self.read_rows_then(timeout, None)[0], None
            lines = res.stdout.split("\n")
            # Without the rows' end mark nothing printed is theirs for sure (require_end fails).
            end = lines.index(END_MARK) + 1 if END_MARK in lines else 0
            after = lines[end:] if end else []
            finished = FOLLOW_UP_END_MARK in after
            output = FollowUpOutput(
                follow_up.database,
                "\n".join(after[: after.index(FOLLOW_UP_END_MARK)] if finished else after),
                finished,
            )
            res = dataclasses.replace(
                res,
                stdout="\n".join(lines[:end]),
                stderr="\n".join(stderr[: stderr.index(STDERR_MARK)]),
            )
        return self._rows(res), output

    def _rows(self, res: container_exec.ExecResult) -> list[CredentialRow]:
        errors = [
            line
            for line in res.stderr.splitlines()
            if line.startswith(("ERROR", "psql:", "FATAL")) and "does not exist" not in line
        ]
        fatal = [e for e in errors if "FATAL" in e or "could not connect" in e]
        if fatal:
            raise HandlerError("psql could not connect: " + fatal[0][:200])
        require_end("psql", res)
        rows = _json_rows(res.stdout)
        if not rows:
            # A release without one of the tables (or, on 1.13, provider_models without
            # encrypted_config) is fine; none of them, or another error, is not.
            missing = sum("does not exist" in line for line in res.stderr.splitlines())
            if missing >= len(TABLES):
                raise HandlerError(
                    f"database {self.database!r} has none of {', '.join(TABLES)}: "
                    "is this Dify's database?"
                )
            if errors:
                raise HandlerError("reading Ollama rows failed: " + errors[0][:200])
        return rows

    def write_rows(
        self, updates: Sequence[RowUpdate], timeout: float, what: str = "rewriting base_url"
    ) -> list[str]:
        if not updates:
            return []
        argv = psql_argv(
            self.user,
            self.database,
            "SET standard_conforming_strings = on; "
            f"SET lock_timeout = {_ms(timeout * LOCK_SHARE)}; "
            f"SET statement_timeout = {_ms(timeout * SERVER_SHARE)}",
            guarded_updates(updates),
            stop_on_error=True,
        )
        res = self._psql(argv, timeout, f"{what}: ")
        if res.exit_code is None or res.timed_out:
            return confirm_after_timeout(self.read_rows, updates, timeout, what)
        if res.exit_code != 0:
            message = next(
                (ln for ln in res.stderr.splitlines() if "ERROR" in ln or "FATAL" in ln),
                res.stderr.strip()[:200] or f"psql exited {res.exit_code}",
            )
            raise HandlerError(f"{what} failed, the transaction was rolled back: {message[:300]}")
        return []


# --- MySQL -----------------------------------------------------------------------------------
def _hex(value: str) -> str:
    """A MySQL string as a hex literal in utf8mb4: no quoting or escaping rules involved."""
    return f"CONVERT(X'{value.encode('utf-8').hex()}' USING utf8mb4)"


def _mysql_select(table: str, seconds: float) -> str:
    """The table's Ollama rows as JSON lines, run only where the table has encrypted_config
    (1.x dropped it from provider_models): a prepared statement chosen from information_schema,
    since the mysql client stops at the first error even with --force when given -e."""
    name = NAME_COLUMNS[table] or "NULL"
    hint = f"/*+ MAX_EXECUTION_TIME({_ms(seconds)}) */ "
    select = (
        f"SELECT {hint}JSON_OBJECT("  # noqa: S608 - constants only
        f"'table', '{table}', 'id', CAST(id AS CHAR), 'tenant_id', CAST(tenant_id AS CHAR), "
        "'provider', provider_name, 'model', model_name, 'model_type', model_type, "
        f"'name', {name}, 'config', encrypted_config) "
        f"FROM {table} WHERE provider_name IN ({_providers()}) ORDER BY created_at, id"
    )
    return (
        "SET @dify_ollama_q = IF(EXISTS(SELECT 1 FROM information_schema.COLUMNS "  # noqa: S608
        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' "
        f"AND COLUMN_NAME = 'encrypted_config'), {_hex(select)}, 'DO 0');\n"
        "PREPARE dify_ollama_s FROM @dify_ollama_q;\n"
        "EXECUTE dify_ollama_s;\n"
        "DEALLOCATE PREPARE dify_ollama_s;"
    )


def _mysql_tables() -> str:
    """A line `tables:N`: how many credential tables with encrypted_config the database has."""
    names = ", ".join(f"'{t}'" for t in TABLES)
    return (
        "SELECT CONCAT('tables:', COUNT(*)) FROM information_schema.COLUMNS "  # noqa: S608
        f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({names}) "
        "AND COLUMN_NAME = 'encrypted_config';"
    )


def _mysql_limits(timeout: float) -> str:
    """The session's server-side bounds: lock waits (both servers), and MariaDB's statement
    time (inside a MariaDB-only comment, which MySQL skips; MySQL's MAX_EXECUTION_TIME only
    applies to SELECTs and goes in their hints)."""
    lock = max(1, int(timeout * LOCK_SHARE))
    statement = max(1.0, round(timeout * SERVER_SHARE, 1))
    return (
        f"SET SESSION innodb_lock_wait_timeout = {lock}, lock_wait_timeout = {lock}"
        f" /*M!100108 , max_statement_time = {statement} */;"
    )


GUARD_TABLE = "dify_ollama_guard"


def mysql_guarded_updates(updates: Sequence[RowUpdate], timeout: float) -> str:
    """One transaction: an UPDATE per row guarded by its old bytes, each followed by an insert
    that collides with a primary key (an error: the client stops and the server rolls the
    transaction back) unless exactly that one row changed. MySQL has no IF/RAISE outside
    stored programs; a duplicate key is an error both MySQL and MariaDB raise at run time, and
    its message names the row."""
    _check_tables(updates)
    reasons = [f"dify-ollama: {u.table} row {u.id} changed since it was read" for u in updates]
    out = [
        _mysql_limits(timeout),
        f"CREATE TEMPORARY TABLE {GUARD_TABLE} (reason VARCHAR(255) PRIMARY KEY);",
        *(f"INSERT INTO {GUARD_TABLE} VALUES ({_hex(r)});" for r in reasons),  # noqa: S608
        "START TRANSACTION;",
    ]
    for u, reason in zip(updates, reasons, strict=True):
        out.append(
            f"UPDATE {u.table} SET encrypted_config = {_hex(u.new)} "  # noqa: S608 - hex only
            f"WHERE CAST(id AS CHAR) = {_hex(u.id)} "
            f"AND CAST(encrypted_config AS BINARY) = X'{u.old.encode('utf-8').hex()}';"
        )
        out.append(
            f"INSERT INTO {GUARD_TABLE} SELECT {_hex(reason)} "  # noqa: S608 - hex only
            "FROM DUAL WHERE ROW_COUNT() <> 1;"
        )
    out.append("COMMIT;")
    return "\n".join(out)


ACCESS_DENIED = "access denied"


@dataclass(frozen=True)
class MysqlInContainer:
    """Dify's MySQL, reached with the `mysql` client inside db_mysql over its local socket;
    the password goes in the exec environment (MYSQL_PWD), never on a command line."""

    client: docker.DockerClient
    container_id: str
    user: str
    database: str
    passwords: tuple[str, ...] = field(default=(), repr=False)
    service: str = "db_mysql"

    @property
    def label(self) -> str:
        return f"{self.service}, database {self.database}"

    def _mysql(self, sql: str, timeout: float, what: str) -> container_exec.ExecResult:
        argv = ["mysql", "-u", self.user, "-N", "-B", "--raw", "-e", sql, self.database]
        last: container_exec.ExecResult | None = None
        for password in self.passwords or ("",):
            env = {"MYSQL_PWD": password} if password else None
            res = container_exec.run(self.client, self.container_id, argv, timeout, env)
            if res.missing_command:
                raise HandlerError(f"{what}the db_mysql container has no mysql client")
            if ACCESS_DENIED not in res.stderr.lower():
                return res
            last = res
        assert last is not None
        raise HandlerError(
            f"{what}MySQL refused the login of {self.user!r} (access denied) with the password "
            "the db_mysql container was created with and the one in .env (DB_PASSWORD); "
            "nothing was changed"
        )

    def read_rows(self, timeout: float) -> list[CredentialRow]:
        sql = "\n".join(
            [
                _mysql_limits(timeout),
                "SET SESSION TRANSACTION READ ONLY;",
                _mysql_tables(),
                *(_mysql_select(t, timeout * SERVER_SHARE) for t in TABLES),
                END_SELECT + ";",
            ]
        )
        res = self._mysql(sql, timeout, "")
        if res.exit_code is None or res.timed_out:
            raise HandlerError(f"mysql in db_mysql did not answer within {timeout:g} s")
        if res.exit_code != 0:
            error = next((ln for ln in res.stderr.splitlines() if "ERROR" in ln), res.stderr)
            raise HandlerError("reading Ollama rows failed: " + error.strip()[:200])
        require_end("mysql", res)
        if "tables:0" in res.stdout.split():
            raise HandlerError(
                f"database {self.database!r} has none of {', '.join(TABLES)}: "
                "is this Dify's database?"
            )
        return _json_rows(res.stdout)

    def write_rows(
        self, updates: Sequence[RowUpdate], timeout: float, what: str = "rewriting base_url"
    ) -> list[str]:
        if not updates:
            return []
        res = self._mysql(mysql_guarded_updates(updates, timeout), timeout, f"{what}: ")
        if res.exit_code is None or res.timed_out:
            return confirm_after_timeout(self.read_rows, updates, timeout, what)
        if res.exit_code != 0:
            message = next(
                (ln for ln in res.stderr.splitlines() if "ERROR" in ln),
                res.stderr.strip()[:200] or f"mysql exited {res.exit_code}",
            )
            if "Duplicate entry 'dify-ollama:" in message:
                message = message.split("'")[1]  # the guard's reason: which row changed
            raise HandlerError(f"{what} failed, the transaction was rolled back: {message[:300]}")
        return []


# --- which database ----------------------------------------------------------------------------
def db_service(project: DifyProject, env_values: Mapping[str, str]) -> str:
    """The project's database service; HandlerError when it has none this module can read."""
    service = project.db_service
    if service is None:
        db_type = env_values.get("DB_TYPE", "postgresql")
        if db_type not in POSTGRES_TYPES + MYSQL_TYPES:
            raise HandlerError(f"DB_TYPE={db_type}: only PostgreSQL and MySQL are read")
        raise HandlerError(
            "no metadata database container (db_postgres, db_mysql or db) in the project"
        )
    return service


def resolve_login(
    project: DifyProject, env_values: Mapping[str, str], container_env: Mapping[str, str]
) -> DbLogin:
    """The project's database service and login (`container_env`: the db container's)."""
    service = db_service(project, env_values)
    if service == "db_mysql":
        user, database = mysql_login(container_env, env_values)
    else:
        user, database = login(container_env, env_values)
    return DbLogin(service, user, database)


def _container_env(client: docker.DockerClient, container_id: str) -> dict[str, str]:
    attrs = client.api.inspect_container(container_id)
    env: dict[str, str] = {}
    for item in (attrs.get("Config") or {}).get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    return env


def open_database(
    client: docker.DockerClient,
    project: DifyProject,
    where: DbLogin,
    env_values: Mapping[str, str] | None = None,
    container_env: Mapping[str, str] | None = None,
) -> DifyDatabase:
    """The project's database; HandlerError when its container does not run. For MySQL the
    password comes from the db container's environment (`container_env`, else inspected),
    then `env_values` (`.env`)."""
    info = project.container(where.service)
    if info is None or info.state != "running":
        raise HandlerError(f"{where.service} is not running; nothing was changed")
    if where.kind == "mysql":
        env = container_env if container_env is not None else _container_env(client, info.id)
        passwords = mysql_passwords(where.user, env, env_values or {})
        return MysqlInContainer(
            client, info.id, where.user, where.database, passwords, where.service
        )
    return PostgresInContainer(client, info.id, where.user, where.database, where.service)
