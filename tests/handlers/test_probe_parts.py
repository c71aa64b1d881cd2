"""The pure parts of the probes: URL rules, NO_PROXY matching, /proc/net parsing, Compose
interpolation and `.env` secret rules. No engine needed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from handlers.compose_file import effective_files, interpolate, load_compose
from handlers.container_exec import classify_error
from handlers.envfile import is_secret_key, parse_env_text, read_env_file
from handlers.listening import listeners, reachable_from_containers
from handlers.probes.network import no_proxy_covers, proxy_for
from handlers.results import HandlerError
from handlers.urls import bad_suffix, is_loopback_url, root_of, without_credentials

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "data" / "dify-1.13.3"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:11434", True),
        ("http://localhost:11434/", True),
        ("http://0.0.0.0:11434", True),
        ("http://[::1]:11434", True),
        ("http://127.1.2.3:11434", True),
        ("http://host.docker.internal:11434", False),
        ("http://172.17.0.1:11434", False),
        ("http://ollama.internal:11434", False),
    ],
)
def test_loopback_urls(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_suffixes_and_roots() -> None:
    assert bad_suffix("http://h:11434/v1") == "/v1"
    assert bad_suffix("http://h:11434/api/") == "/api"
    assert bad_suffix("http://h:11434") is None
    assert root_of("http://h:11434/v1/") == "http://h:11434"
    assert without_credentials("http://u:p4ss@h:1/x") == "http://[REDACTED]@h:1/x"


@pytest.mark.parametrize(
    ("no_proxy", "host", "covered"),
    [
        ("", "host.docker.internal", False),
        ("*", "host.docker.internal", True),
        ("localhost,host.docker.internal", "host.docker.internal", True),
        (".docker.internal", "host.docker.internal", True),
        ("docker.internal", "host.docker.internal", True),
        ("internal.example", "host.docker.internal", False),
        ("172.16.0.0/12", "172.17.0.1", True),
        ("10.0.0.0/8", "172.17.0.1", False),
        ("host.docker.internal:11434", "host.docker.internal", True),
    ],
)
def test_no_proxy_rules(no_proxy: str, host: str, covered: bool) -> None:
    assert no_proxy_covers(no_proxy, host) is covered


def test_proxy_for_reads_both_cases() -> None:
    url = "http://host.docker.internal:11434"
    assert proxy_for({"HTTP_PROXY": "http://p:3128"}, url) == "http://p:3128"
    assert (
        proxy_for({"http_proxy": "http://p:3128", "NO_PROXY": "host.docker.internal"}, url) is None
    )
    assert proxy_for({"HTTPS_PROXY": "http://p:3128"}, url) is None
    assert proxy_for({"ALL_PROXY": "socks5://p:1080"}, url) == "socks5://p:1080"


def test_listeners_from_proc_net() -> None:
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        v6.bind(("::", 0))
        v6.listen()
        assert listeners(v4.getsockname()[1]) == ["127.0.0.1"]
        assert listeners(v6.getsockname()[1]) == ["::"]
    assert reachable_from_containers(["127.0.0.1", "::1"]) is False
    assert reachable_from_containers(["0.0.0.0"]) is True
    assert reachable_from_containers(["::ffff:127.0.0.1"]) is False


def test_listeners_reads_given_files(tmp_path: Path) -> None:
    # 0100007F:2CAA = 127.0.0.1:11434 LISTEN; 00000000:2CAA ESTABLISHED must not count
    (tmp_path / "tcp").write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 0100007F:2CAA 00000000:0000 0A\n"
        "   1: 00000000:2CAA 0100007F:D431 01\n"
    )
    assert listeners(11434, tmp_path) == ["127.0.0.1"]


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
    ],
)
def test_compose_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env) == expected


def test_dify_compose_environment_from_real_files() -> None:
    env = read_env_file(REFERENCE / ".env.example")
    config = load_compose((REFERENCE / "docker-compose.yaml",), env.values)
    api = config.services["api"].environment
    assert len(api) > 600  # the shared anchor is merged in
    assert api["OPENAI_API_BASE"] == "https://api.openai.com/v1"
    assert config.services["plugin_daemon"].environment["DB_DATABASE"] == "dify_plugin"
    assert config.services["api"].extra_hosts == ()
    assert {"api", "worker", "worker_beat", "plugin_daemon", "db_postgres", "redis"} <= set(
        config.services
    )


def test_override_file_counts_once_written(tmp_path: Path) -> None:
    main = tmp_path / "docker-compose.yaml"
    main.write_text("services:\n  api:\n    image: x\n")
    assert effective_files((main,), tmp_path) == (main,)
    override = tmp_path / "docker-compose.override.yaml"
    override.write_text(
        "services:\n  api:\n    extra_hosts: ['host.docker.internal:host-gateway']\n"
    )
    assert effective_files((main,), tmp_path) == (main, override)
    config = load_compose(effective_files((main,), tmp_path), {})
    assert config.services["api"].extra_hosts == ("host.docker.internal:host-gateway",)


def test_bad_compose_file_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services: [unclosed\n")
    with pytest.raises(HandlerError, match="not valid YAML"):
        load_compose((broken,), {})


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("DB_PASSWORD", True),
        ("SECRET_KEY", True),
        ("PLUGIN_DAEMON_KEY", True),
        ("SLACK_BOT_TOKEN", True),
        ("API_SENTRY_DSN", True),
        ("PLUGIN_AZURE_BLOB_STORAGE_CONNECTION_STRING", True),
        ("ACCESS_TOKEN_EXPIRE_MINUTES", False),
        ("OPENAI_API_BASE", False),
        ("DB_USERNAME", False),
        ("FORCE_VERIFYING_SIGNATURE", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_env_parsing_keeps_dollars_and_skips_placeholders(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text("ORACLE_PASSWORD=dify\n")
    path = tmp_path / ".env"
    path.write_text("SECRET_KEY=abc$HOME\\x'y\nORACLE_PASSWORD=dify\nDB_PASSWORD=s3cr3t-long\n")
    env = read_env_file(path)
    assert env.get("SECRET_KEY") == "abc$HOME\\x'y"  # no interpolation
    assert env.secret_values() == {"abc$HOME\\x'y", "s3cr3t-long"}


def test_unreadable_env_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match="does not exist"):
        read_env_file(tmp_path / ".env")
    (tmp_path / "dir.env").mkdir()
    with pytest.raises(HandlerError, match="directory"):
        read_env_file(tmp_path / "dir.env")


def test_parse_env_text_last_assignment_wins() -> None:
    env = parse_env_text("A=1\nA=2\n")
    assert env.get("A") == "2"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("curl: (6) Could not resolve host: host.docker.internal", "dns"),
        ("wget: bad address 'host.docker.internal:11434'", "dns"),
        ("curl: (7) Failed to connect to 127.0.0.1 port 11434", "refused"),
        ("ERROR ConnectionRefusedError [Errno 111] Connection refused", "refused"),
        ("curl: (28) Operation timed out after 3000 milliseconds", "timeout"),
        ("curl: (5) Could not resolve proxy: squid", "proxy"),
    ],
)
def test_error_classification(text: str, kind: str) -> None:
    assert classify_error(text) == kind
