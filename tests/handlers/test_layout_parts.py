"""The layout decisions without an engine: which Compose is installed and which created a stack,
which release and layout a project is (on the real vendored files), where a value reaches the
containers from, the MySQL statements, and what a write whose client timed out reports."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from handlers import compose_binary, dify_db
from handlers.compose_file import ENVIRONMENT, load_compose, read_project_environment
from handlers.creation import creation_of
from handlers.dify_db import (
    CredentialRow,
    DatabaseStateUnknown,
    RowUpdate,
    confirm_after_timeout,
    mysql_guarded_updates,
    mysql_passwords,
)
from handlers.layout import (
    KIND_0X,
    KIND_ENV_FILES,
    KIND_SHARED_ENV,
    db_kind_of,
    env_consumers,
    expected_services,
    kind_of,
    one_shot_services,
    release_from_image,
)
from handlers.project import ContainerInfo, DifyProject
from handlers.results import HandlerError
from tests.rig.compose_oracle import copy_release, oracle_env

# --- which Compose ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "flavour"),
    [("1.29.2", "v1"), ("v1.27.4", "v1"), ("2.40.3", "v2"), ("v2.24.0", "v2"), ("5.0.0", "v2")],
)
def test_flavour_of_a_version(version: str, flavour: str) -> None:
    assert compose_binary.flavour_of_version(version) == flavour


def _program(folder: Path, name: str, answer: str) -> Path:
    """A real executable that answers like Compose's `version --short` (argv printed to a log)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$@" >> "{folder}/calls"\necho {answer}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_docker_config_is_where_the_plugin_is_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's own plugin folders are not part of this question (scripts/test may have
    # installed Compose v2 there): only DOCKER_CONFIG/HOME and PATH, as given.
    monkeypatch.setattr(compose_binary, "SYSTEM_PLUGIN_DIRS", ())
    config = tmp_path / "cfg"
    env = {"DOCKER_CONFIG": str(config), "HOME": str(tmp_path / "home")}
    assert compose_binary.plugin_dirs(env)[0] == config / "cli-plugins"
    assert compose_binary.plugin_dirs({"HOME": "/h"})[0] == Path("/h/.docker/cli-plugins")
    bin_dir = tmp_path / "bin"
    _program(bin_dir, "docker", "x")
    _program(config / "cli-plugins", "docker-compose", "2.40.3")
    found = compose_binary.detect_compose({**env, "PATH": str(bin_dir)})
    assert found is not None and found.argv == ("docker", "compose")
    # without DOCKER_CONFIG the same files are not seen: v1 on PATH is what remains
    _program(bin_dir, "docker-compose", "1.29.2")
    only_v1 = compose_binary.detect_compose({"PATH": str(bin_dir), "HOME": str(tmp_path / "h")})
    assert only_v1 is not None and only_v1.is_v1


def test_an_installed_compose_of_each_flavour_is_found_by_asking_it(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    _program(bin_dir, "docker", "2.40.3")  # `docker compose version --short`
    _program(bin_dir, "docker-compose", "1.29.2")
    env = {"PATH": str(bin_dir)}
    v2 = compose_binary.compose_of_flavour("v2", env)
    v1 = compose_binary.compose_of_flavour("v1", env)
    assert v2 is not None and (v2.argv, v2.version) == (("docker", "compose"), "2.40.3")
    assert v1 is not None and (v1.argv, v1.version) == (("docker-compose",), "1.29.2")
    # a standalone v2 `docker-compose` is v2, not v1
    _program(tmp_path / "b2", "docker-compose", "v2.24.6")
    alone = {"PATH": str(tmp_path / "b2")}
    assert compose_binary.compose_of_flavour("v1", alone) is None
    standalone = compose_binary.compose_of_flavour("v2", alone)
    assert standalone is not None and standalone.argv == ("docker-compose",)


# --- how the stack was created ---------------------------------------------------------------
def _info(
    service: str, version: str, files: str = "/d/docker-compose.yaml", env: str = ""
) -> ContainerInfo:
    return ContainerInfo(
        id=f"{service}-id",
        name=f"p-{service}-1",
        service=service,
        state="running",
        health=None,
        image="langgenius/dify-api:1.15.0",
        created="0",
        compose_version=version,
        config_files=files,
        env_files=env,
        working_dir="/d",
    )


def _project(*infos: ContainerInfo) -> DifyProject:
    return DifyProject("p", Path("/d"), Path("/d/.env"), (), {i.service: i for i in infos})


def test_creation_from_labels() -> None:
    made = creation_of(_project(_info("api", "1.29.2"), _info("db", "1.29.2")))
    assert (made.flavour, made.version, made.problems) == ("v1", "1.29.2", ())
    # fix-env's override is in the labels of the recreated containers only: still one stack
    both = "/d/docker-compose.yaml,/d/docker-compose.override.yaml"
    made = creation_of(_project(_info("api", "2.40.3", both), _info("redis", "2.40.3")))
    assert made.problems == ()
    assert made.files == (Path("/d/docker-compose.yaml"), Path("/d/docker-compose.override.yaml"))
    assert made.missing_files == (Path("/d/docker-compose.yaml"),)  # a removed override is fine


def test_stacks_one_command_cannot_reproduce() -> None:
    mixed = creation_of(_project(_info("api", "2.40.3"), _info("worker", "1.29.2")))
    flavour, problem = mixed.flavour_for(["api", "worker"])
    assert flavour is None and problem is not None
    assert "api: Compose 2.40.3" in problem and "worker: Compose 1.29.2" in problem
    assert mixed.flavour_for(["api"]) == ("v2", None)
    other_files = creation_of(
        _project(_info("api", "2.40.3"), _info("worker", "2.40.3", "/d/other.yaml"))
    )
    assert "different compose files" in other_files.problems[0]
    other_env = creation_of(
        _project(_info("api", "2.40.3", env="/d/a.env"), _info("worker", "2.40.3"))
    )
    assert "different --env-file" in other_env.problems[0]


# --- which layout, on the real files ---------------------------------------------------------
@pytest.mark.parametrize(
    ("image", "release"),
    [
        ("langgenius/dify-api:1.15.0", "1.15.0"),
        ("registry.example.com:5000/langgenius/dify-api:0.10.2", "0.10.2"),
        ("langgenius/dify-api:latest", None),
        ("langgenius/dify-web:1.15.0", None),
        ("dify-ollama-test/debian:1", None),
    ],
)
def test_release_from_the_api_image_tag(image: str, release: str | None) -> None:
    assert release_from_image(image) == release


def _config(tmp_path: Path, release: str, db_type: str | None = None) -> tuple[Path, Any]:
    folder = copy_release(release, tmp_path / "docker")
    text = (folder / ".env.example").read_text()
    if db_type:
        text = text.replace("DB_TYPE=postgresql", f"DB_TYPE={db_type}")
    (folder / ".env").write_text(text)
    env = read_project_environment(folder / ".env", oracle_env())
    return folder, load_compose((folder / "docker-compose.yaml",), env)


@pytest.mark.parametrize(
    ("release", "kind"),
    [
        ("0.10.2", KIND_0X),
        ("1.9.1", KIND_SHARED_ENV),
        ("1.13.3", KIND_SHARED_ENV),
        ("1.15.0", KIND_ENV_FILES),
    ],
)
def test_layout_kind_and_the_services_env_changes_reach(
    tmp_path: Path, release: str, kind: str
) -> None:
    _, config = _config(tmp_path, release)
    project = _project()
    assert kind_of(config, project, None) == kind
    consumers = env_consumers(config, set(config.services))
    if kind == KIND_0X:
        assert consumers == ["api", "worker"]
    elif kind == KIND_SHARED_ENV:
        assert consumers == ["api", "worker", "worker_beat", "plugin_daemon"]
    else:  # every service that reads ./.env as its last env_file
        assert set(consumers) == {
            "api",
            "api_websocket",
            "worker",
            "worker_beat",
            "plugin_daemon",
            "agent_backend",
            "web",
            "sandbox",
        }
    assert kind_of(None, project, release) == kind  # from the release alone


def test_115_services_profiles_and_one_shot_job(tmp_path: Path) -> None:
    _, postgres = _config(tmp_path / "pg", "1.15.0")
    _, mysql = _config(tmp_path / "my", "1.15.0", db_type="mysql")
    assert one_shot_services(postgres) == ("init_permissions",)
    empty = _project()
    on_pg = expected_services(postgres, empty)
    assert "db_postgres" in on_pg and "db_mysql" not in on_pg
    assert {"api_websocket", "agent_backend", "local_sandbox", "init_permissions"} <= set(on_pg)
    on_mysql = expected_services(mysql, empty)
    assert "db_mysql" in on_mysql and "db_postgres" not in on_mysql
    assert db_kind_of("db_mysql", {}) == "mysql"
    assert db_kind_of(None, {"DB_TYPE": "mysql"}) == "mysql"
    assert db_kind_of("db", {"DB_TYPE": "mysql"}) == "postgresql"  # what runs wins


def test_where_a_115_value_comes_from(tmp_path: Path) -> None:
    """`.env` is read last: it wins where it sets the key; an envs/ file counts where it does
    not; `environment:` beats both."""
    folder, config = _config(tmp_path, "1.15.0")
    api = config.services["api"]
    assert api.sources["OPENAI_API_BASE"] == str((folder / ".env").resolve())
    assert api.sources["MODE"] == ENVIRONMENT
    shared = folder / "envs" / "core-services" / "shared.env"
    shared.write_text("OPENAI_API_BASE=http://127.0.0.1:11434/v1\nONLY_SHARED=1\n")
    text = (folder / ".env").read_text().replace("OPENAI_API_BASE=", "#OPENAI_API_BASE=")
    overlay: dict[Path, str | None] = {(folder / ".env").resolve(): text}
    env = read_project_environment(folder / ".env", oracle_env())
    again = load_compose((folder / "docker-compose.yaml",), env, overlay=overlay)
    api = again.services["api"]
    assert api.environment["OPENAI_API_BASE"] == "http://127.0.0.1:11434/v1"
    assert api.sources["OPENAI_API_BASE"] == str(shared.resolve())
    assert (folder / ".env").read_text() != text  # the overlay was read, not written


# --- MySQL statements and the truth after a client timeout -------------------------------------
def test_mysql_write_carries_values_only_as_hex_and_guards_every_row() -> None:
    old = '{"base_url": "http://127.0.0.1:11434", "note": "it\'s \\\\ \\"q\\" é"}'
    new = old.replace("127.0.0.1", "host.docker.internal")
    sql = mysql_guarded_updates(
        [RowUpdate("provider_model_credentials", "id-1", old, new)], timeout=8
    )
    assert "127.0.0.1" not in sql and "it's" not in sql and "é" not in sql
    assert new.encode().hex() in sql and old.encode().hex() in sql
    assert "innodb_lock_wait_timeout = 3" in sql and "max_statement_time = 4.8" in sql
    assert sql.index("START TRANSACTION") < sql.index("UPDATE") < sql.index("ROW_COUNT()")
    assert sql.rstrip().endswith("COMMIT;")
    with pytest.raises(HandlerError, match="other than Dify's credential tables"):
        mysql_guarded_updates([RowUpdate("accounts", "1", "a", "b")], 5)


def test_mysql_passwords_come_from_the_container_then_dotenv() -> None:
    container = {"MYSQL_ROOT_PASSWORD": "from-container"}
    dotenv = {"DB_USERNAME": "root", "DB_PASSWORD": "from-dotenv"}
    assert mysql_passwords("root", container, dotenv) == ("from-container", "from-dotenv")
    assert mysql_passwords("root", container, {"DB_USERNAME": "dify", "DB_PASSWORD": "x"}) == (
        "from-container",
    )
    assert mysql_passwords("dify", {}, {"DB_USERNAME": "dify", "DB_PASSWORD": "pw"}) == ("pw",)
    assert dify_db.mysql_login(container, dotenv) == ("root", "dify")


def _row(config: str) -> CredentialRow:
    return CredentialRow("provider_model_credentials", "id-1", "t", "p", "m", "llm", None, config)


UPDATE = RowUpdate("provider_model_credentials", "id-1", "old", "new")


def test_a_client_timeout_reports_what_the_rows_read_back_say() -> None:
    notes = confirm_after_timeout(lambda _t: [_row("new")], [UPDATE], 4, "rewriting base_url")
    assert notes and "committed" in notes[0]
    with pytest.raises(HandlerError, match="rows read back are unchanged") as err:
        confirm_after_timeout(lambda _t: [_row("old")], [UPDATE], 4, "rewriting base_url")
    assert not isinstance(err.value, DatabaseStateUnknown)
    with pytest.raises(DatabaseStateUnknown, match="neither all old nor all new"):
        confirm_after_timeout(lambda _t: [_row("someone else's")], [UPDATE], 4, "x")

    def down(_t: float) -> list[CredentialRow]:
        raise HandlerError("psql in the db container did not answer within 4 s")

    with pytest.raises(DatabaseStateUnknown, match="may or may not have been committed"):
        confirm_after_timeout(down, [UPDATE], 4, "x")
    assert os.environ  # nothing here touched the engine
