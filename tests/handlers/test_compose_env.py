"""The environment each service gets: handlers/compose_file.py against Compose's own answer.

Every vendored Dify release (0.10.2, 1.9.1, 1.13.3, 1.15.0) is laid out as upstream's docker/
folder and asked of the real Compose v2.40.3 binary (`config --format json`) and, where v1
accepts the file, of Debian's docker-compose 1.29.2 (`config`): every service's environment
must match key for key, with `.env` as shipped, with `.env` overriding, and on 1.15.0 with and
without the optional envs/*.env files. Synthetic files pin the rules the releases do not
exercise (nested defaults, `$$`, quoting, `:?`). No engine is needed: `config` never calls it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handlers.compose_file import (
    ComposeConfig,
    InterpolationError,
    interpolate,
    load_compose,
    read_project_environment,
)
from handlers.compose_interpolation import MAX_DEPTH, substitute, substitute_v1
from handlers.envfile import read_env_file
from handlers.results import HandlerError
from tests.rig.compose_oracle import (
    ComposeRefused,
    compose_config,
    config_environments,
    copy_release,
    oracle_env,
)
from tests.rig.stack import optional_env_files

RELEASES = ("0.10.2", "1.9.1", "1.13.3", "1.15.0")
V1_ACCEPTS = ("0.10.2", "1.9.1")  # 1.13.3 and 1.15.0 use `depends_on.required` (and env_file)

# What a user's .env typically changes, with a `$$` (v2 reads a literal `$`, v1 keeps `$$`).
OVERRIDES = (
    "OPENAI_API_BASE=http://host.docker.internal:11434/v1\n"
    "SECRET_KEY=s3cr$$t-from-dotenv\n"
    'DB_PASSWORD="pw with space"\n'
    "LOG_LEVEL=DEBUG # inline comment\n"
)


def _project(
    tmp_path: Path,
    release: str,
    extra_env: str = "",
    envs: bool | list[str] = False,
    replace: dict[str, str] | None = None,
) -> Path:
    folder = copy_release(release, tmp_path / "docker")
    lines = (folder / ".env.example").read_text().splitlines(keepends=True)
    for key, value in (replace or {}).items():  # edit the line in place, as users do
        lines = [f"{key}={value}\n" if ln.startswith(f"{key}=") else ln for ln in lines]
    text = "".join(lines) + extra_env
    (folder / ".env").write_text(text)
    names = optional_env_files(release) if envs is True else list(envs or [])
    for name in names:
        shutil.copy2(folder / "envs" / f"{name}.example", folder / "envs" / name)
    return folder


def _ours(folder: Path, flavour: str = "v2") -> ComposeConfig:
    env = read_project_environment(folder / ".env", oracle_env(), flavour=flavour)
    return load_compose((folder / "docker-compose.yaml",), env)


def _assert_same(folder: Path, flavour: str) -> ComposeConfig:
    ours = _ours(folder, flavour)
    theirs = config_environments(flavour, folder)
    declared = {**ours.services, **ours.inactive}
    if flavour == "v2":  # v2 lists exactly the services the active profiles enable
        assert sorted(theirs) == sorted(ours.services)
    else:  # v1 lists every declared service
        assert sorted(theirs) == sorted(declared)
    for name, env in theirs.items():
        mine = declared[name].environment
        diff = {
            k: (env.get(k), mine.get(k))
            for k in env.keys() | mine.keys()
            if env.get(k) != mine.get(k)
        }
        assert not diff, f"{flavour} {folder.name} {name}: (compose, ours) differ: {diff}"
    return ours


# --- every vendored release, as shipped and with .env overriding ---------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("override", [False, True], ids=["env-example", "env-overrides"])
def test_every_release_matches_compose_v2(tmp_path: Path, release: str, override: bool) -> None:
    folder = _project(tmp_path, release, OVERRIDES if override else "")
    ours = _assert_same(folder, "v2")
    api = ours.services["api"].environment
    if override:
        assert api["OPENAI_API_BASE"] == "http://host.docker.internal:11434/v1"
        assert api["SECRET_KEY"] == "s3cr$t-from-dotenv"  # Compose v2 reads `$$` as `$`
        assert api["LOG_LEVEL"] == "DEBUG"
    else:
        assert api["OPENAI_API_BASE"] == "https://api.openai.com/v1"


@pytest.mark.slow
@pytest.mark.parametrize("release", V1_ACCEPTS)
@pytest.mark.parametrize("override", [False, True], ids=["env-example", "env-overrides"])
def test_releases_v1_accepts_match_compose_v1(tmp_path: Path, release: str, override: bool) -> None:
    folder = _project(tmp_path, release, OVERRIDES if override else "")
    ours = _assert_same(folder, "v1")
    api = {**ours.services, **ours.inactive}["api"].environment
    if override:
        assert api["SECRET_KEY"] == "s3cr$$t-from-dotenv"  # v1 (python-dotenv) keeps `$$`
    if release == "1.9.1":
        # ${POSTGRES_USER:-${DB_USERNAME}}: v1 cannot nest, the default ends at the first `}`
        assert api["POSTGRES_USER"] == "postgres}"
        assert _ours(folder, "v2").services["api"].environment["POSTGRES_USER"] == "postgres"


def test_v1_cannot_run_the_newer_releases(tmp_path: Path) -> None:
    """Why the v1 comparisons stop at 1.9.1: Compose v1 refuses 1.13.3's and 1.15.0's files."""
    for release in ("1.13.3", "1.15.0"):
        folder = _project(tmp_path / release, release)
        with pytest.raises(ComposeRefused, match="required"):
            compose_config("v1", folder, oracle_env())


# --- 1.15.0: optional env files, .env last, profiles ---------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "envs",
    [True, ["core-services/shared.env", "core-services/api.env", "databases/db-postgres.env"]],
    ids=["all-envs", "some-envs"],
)
def test_115_optional_env_files_and_dotenv_last(tmp_path: Path, envs: bool | list[str]) -> None:
    folder = _project(tmp_path, "1.15.0", OVERRIDES + "DB_HOST=from-dotenv\n", envs)
    ours = _assert_same(folder, "v2")
    api = ours.services["api"]
    assert api.environment["DB_HOST"] == "from-dotenv"  # .env is read last and wins
    assert api.env_files_read[-1] == (folder / ".env").resolve()
    assert (folder / "envs" / "core-services" / "shared.env").resolve() in api.env_files_read
    assert len(api.env_files) == 30  # every entry of the anchor, present or not
    # shared.env's COMPOSE_PROFILES is interpolated when read, and only reaches containers
    assert api.environment["COMPOSE_PROFILES"] == "weaviate,postgresql,collaboration"


@pytest.mark.slow
def test_115_mysql_profile_switches_the_db_service(tmp_path: Path) -> None:
    folder = _project(tmp_path, "1.15.0", replace={"DB_TYPE": "mysql", "DB_HOST": "db_mysql"})
    ours = _assert_same(folder, "v2")
    assert "db_mysql" in ours.services and "db_postgres" in ours.inactive
    assert ours.profiles == ("collaboration", "mysql", "weaviate")
    assert ours.services["db_mysql"].profiles == ("mysql",)
    # Appended after COMPOSE_PROFILES instead, DB_TYPE=mysql switches nothing: the profiles
    # were interpolated where that line stands (Compose agrees).
    late = _project(tmp_path / "late", "1.15.0", "DB_TYPE=mysql\n")
    assert "db_postgres" in _assert_same(late, "v2").services


def test_115_without_dotenv_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = _project(tmp_path, "1.15.0")
    (folder / ".env").unlink()
    with pytest.raises(HandlerError, match=r"env file .*/docker/\.env not found"):
        _ours(folder)
    with pytest.raises(ComposeRefused, match=r"\.env"):  # Compose refuses it too
        compose_config("v2", folder, oracle_env())


def test_unreadable_optional_env_file_is_an_error(tmp_path: Path) -> None:
    folder = _project(tmp_path, "1.15.0", envs=["core-services/api.env"])
    api_env = folder / "envs" / "core-services" / "api.env"
    api_env.unlink()
    api_env.mkdir()  # unreadable as a file, even for root
    with pytest.raises(HandlerError, match=r"cannot read env file .*api\.env"):
        _ours(folder)


# --- synthetic files: nested defaults, $$, quoting -------------------------------------------
NESTED = """\
services:
  app:
    image: busybox
    environment:
      NESTED_1: ${A:-${B}}
      NESTED_2: ${A:-${B:-c}}
      NESTED_3: ${UNSET:-${ALSO_UNSET:-${B}-x}}
      NESTED_HARD: ${UNSET-${EMPTY-inner}}
      ALT: ${B:+set-${B}}
      ALT_UNSET: ${UNSET:+never}
      DOLLARS: $$HOME and $${B}
      PLAIN: $B/${B}
      HARD: ${EMPTY-hard}
      SOFT: ${EMPTY:-soft}
      NOT_A_VAR: cost $5 and 100$
      FROM_ENV:
"""
NESTED_V1 = "\n".join(ln for ln in NESTED.splitlines() if "+" not in ln and "$5" not in ln)


@pytest.mark.parametrize(
    "dotenv",
    ["B=bee\nEMPTY=\nFROM_ENV=from-dotenv\n", "A=ay\nB=bee\n", ""],
    ids=["b-set", "a-set", "nothing-set"],
)
def test_nested_defaults_match_compose_v2(tmp_path: Path, dotenv: str) -> None:
    (tmp_path / "docker-compose.yaml").write_text(NESTED)
    (tmp_path / ".env").write_text(dotenv)
    ours = _assert_same(tmp_path, "v2").services["app"].environment
    if dotenv.startswith("B="):
        assert ours["NESTED_1"] == "bee" and ours["NESTED_2"] == "bee"
        assert ours["NESTED_3"] == "bee-x" and ours["ALT"] == "set-bee"
        assert ours["FROM_ENV"] == "from-dotenv"
    if not dotenv:
        assert ours["NESTED_2"] == "c" and "FROM_ENV" not in ours
    assert ours["DOLLARS"] == "$HOME and ${B}" and ours["NOT_A_VAR"] == "cost $5 and 100$"


@pytest.mark.slow
@pytest.mark.parametrize("dotenv", ["B=bee\nEMPTY=\n", "A=ay\nB=bee\n", ""])
def test_v1_flavour_matches_compose_v1_on_nesting(tmp_path: Path, dotenv: str) -> None:
    (tmp_path / "docker-compose.yaml").write_text(NESTED_V1 + "\n")
    (tmp_path / ".env").write_text(dotenv)
    _assert_same(tmp_path, "v1")


ENV_FILE_EDGES = """\
# a comment
export EXPORTED=yes
COLON: yaml-style
UNQUOTED=  padded value   # comment
HASH=a#b
SINGLE='literal ${B} \\n $$'
DOUBLE="line1\\nline2 \\"q\\" \\$B ${B}"
MULTI="first
second"
REF=${B}-${FROM_FILE:-dflt}
FROM_FILE=file
REF_AFTER=${FROM_FILE}
PROJECT_WINS=${B}
B=local-b
INHERITED
EMPTY=
"""


@pytest.mark.parametrize("flavour", ["v2", pytest.param("v1", marks=pytest.mark.slow)])
def test_env_file_parsing_matches_compose(tmp_path: Path, flavour: str) -> None:
    """Compose's own dotenv rules for env_file (quotes, escapes, comments, references)."""
    (tmp_path / "docker-compose.yaml").write_text(
        "services:\n  app:\n    image: busybox\n    env_file: ./app.env\n"
        "    environment:\n      OWN: ${B}\n"
    )
    text = ENV_FILE_EDGES if flavour == "v2" else ENV_FILE_EDGES.replace("COLON: yaml-style\n", "")
    (tmp_path / "app.env").write_text(text)
    (tmp_path / ".env").write_text("B=bee\nINHERITED=from-project\n")
    ours = _assert_same(tmp_path, flavour).services["app"].environment
    if flavour == "v2":
        assert ours["SINGLE"] == "literal ${B} \\n $$"
        assert ours["DOUBLE"] == 'line1\nline2 "q" $B bee'
        assert ours["UNQUOTED"] == "padded value" and ours["HASH"] == "a#b"
        assert ours["PROJECT_WINS"] == "bee"  # the project's B, not the file's later one
        assert ours["INHERITED"] == "from-project" and ours["COLON"] == "yaml-style"


# --- the interpolation itself -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A}", {"A": "v"}, "v"),
        ("$A/b", {"A": "v"}, "v/b"),
        ("$$A", {"A": "v"}, "$A"),
        ("${A:+set}", {"A": "1"}, "set"),
        ("${A:+set}", {}, ""),
        ("${A:-${B}}", {"B": "b"}, "b"),
        ("${A:-${B:-c}}", {}, "c"),
        ("${A:-${B:-${C:-d}}}/tail", {}, "d/tail"),
        ("${A:-{braces}}", {}, "{braces}"),
        ("${A?}", {"A": ""}, ""),
        ("a $ b $1 $", {}, "a $ b $1 $"),
        ("${a_lower:-x}", {"a_lower": "y"}, "y"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${A:?must be set}", "required variable A is missing a value: must be set"),
        ("${A?}", "required variable A is missing a value"),
        ("${1A}", "invalid template"),
        ("${A B}", "invalid template"),
        ("${A:-x", "no closing brace"),
        ("${}", "invalid template"),
    ],
)
def test_interpolation_errors_are_clear(text: str, message: str) -> None:
    with pytest.raises(InterpolationError, match=message):
        interpolate(text, {})


def test_unused_defaults_are_not_evaluated() -> None:
    """Like Compose: an error inside a default that is not used does not fire."""
    assert interpolate("${A:-${B:?never}}", {"A": "a"}) == "a"


def test_nesting_is_bounded() -> None:
    deep = "${A:-" * (MAX_DEPTH + 1) + "x" + "}" * (MAX_DEPTH + 1)
    with pytest.raises(InterpolationError, match="nested more than"):
        interpolate(deep, {})
    ok = "${A:-" * MAX_DEPTH + "x" + "}" * MAX_DEPTH
    assert interpolate(ok, {}) == "x"


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "text",
    [
        "$" * 1_000_000,
        "${A:-" * 200_000,  # never closed
        "${A:-" * MAX_DEPTH + "{" * 500_000 + "}" * (MAX_DEPTH + 500_000),
        "$$" * 500_000 + "${B}",
        "${A:-x}" * 200_000,
    ],
    ids=["dollars", "unclosed", "braces", "escapes", "many"],
)
def test_interpolation_is_linear_on_hostile_input(text: str) -> None:
    """Each shape of input a quadratic scanner chokes on; the timeout guards the bound."""
    for sub in (substitute, substitute_v1):
        try:
            out = sub(text, {"B": "b"}.get)
        except InterpolationError:
            continue
        assert len(out) <= len(text)


def test_raw_dotenv_values_still_work(tmp_path: Path) -> None:
    """Callers that pass `.env` as handlers/envfile.py reads it (raw) get COMPOSE_PROFILES and
    other `${...}` values resolved as Compose resolves them."""
    folder = _project(tmp_path, "1.13.3")
    raw = read_env_file(folder / ".env").values
    assert raw["COMPOSE_PROFILES"].startswith("${")
    config = load_compose((folder / "docker-compose.yaml",), raw)
    assert "db_postgres" in config.services and config.profiles == ("postgresql", "weaviate")


def test_raw_values_on_a_file_only_v2_runs_use_v2_rules(tmp_path: Path) -> None:
    """With no flavour given, a file v1 cannot run (1.15.0's env_file `required: false`) is
    read by v2's rules whatever Compose is installed; under v1 rules it is a clear error."""
    folder = _project(tmp_path, "1.15.0")
    raw = read_env_file(folder / ".env").values
    config = load_compose((folder / "docker-compose.yaml",), raw)
    assert "db_postgres" in config.services and len(config.services["api"].env_files) == 30
    with pytest.raises(HandlerError, match=r"Compose v1 knows no `required: false`"):
        load_compose((folder / "docker-compose.yaml",), raw, flavour="v1")
