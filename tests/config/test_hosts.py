"""The hosts file: what it accepts, and one clear line (exit 2 from the CLI) for what not."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.hosts import LOCAL_ONLY, load_hosts, parse_hosts
from config.settings import ConfigError
from tests.rig.cli_process import run_cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    key = tmp_path / "id_ed25519"
    key.write_text("not read here\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    return {"key": key, "known": known}


def ssh(files: dict[str, Path], **extra: object) -> dict[str, object]:
    return {
        "user": "difyops",
        "host": "10.0.0.5",
        "key": str(files["key"]),
        "known_hosts": str(files["known"]),
        **extra,
    }


def test_no_file_means_local_only() -> None:
    assert load_hosts(None) is LOCAL_ONLY
    assert LOCAL_ONLY.select(None)[0].local


def test_a_full_file_parses(files: dict[str, Path]) -> None:
    hosts = parse_hosts(
        {
            "default": "prod-2",
            "hosts": {
                "prod-1": {"ssh": ssh(files, port=2222), "deadline": 12},
                "prod-2": {
                    "ssh": ssh(files),
                    "settings": {"dify_dir": "/srv/dify/docker", "CHECK_TIMEOUT": 5},
                    "operators": ["U012AB3CD", "S0614TZR7"],
                },
                "local": None,
            },
        }
    )
    assert hosts.names() == ("prod-1", "prod-2", "local")
    assert hosts.select(None)[0].name == "prod-2"
    assert len(hosts.select("all")) == 3
    first = hosts.get("prod-1")
    assert first is not None and first.ssh is not None
    assert first.ssh.port == 2222 and first.deadline == 12.0 and first.operators is None
    second = hosts.get("prod-2")
    assert second is not None
    assert second.settings == {"DIFY_DIR": "/srv/dify/docker", "CHECK_TIMEOUT": "5"}
    assert second.operators == ("U012AB3CD", "S0614TZR7")
    assert hosts.get("local") is not None and hosts.get("local").local  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="unknown host 'nope'"):
        hosts.select("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"host": "-oProxyCommand=sh"}, "ssh.host: must be a host name"),
        ({"user": "root; rm"}, "ssh.user: must be a user name"),
        ({"port": 70000}, "ssh.port: must be a number"),
        ({"port": True}, "ssh.port: must be a number"),
        ({"known_hosts": None}, "ssh.known_hosts: must be the path"),
        ({"key": "relative/key"}, "ssh.key: must be an absolute path"),
        ({"key": "/nonexistent/key"}, "ssh.key: no such file"),
        ({"password": "x"}, "unknown key 'password'"),
    ],
)
def test_bad_ssh_values_are_one_line_errors(
    files: dict[str, Path], change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_hosts({"hosts": {"h": {"ssh": ssh(files, **change)}}})
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("HOSTS_FILE: ")


def agent_ssh(files: dict[str, Path], agent: object) -> dict[str, object]:
    raw = ssh(files, agent=agent)
    del raw["key"]
    return raw


def test_an_agent_instead_of_a_key(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = tmp_path / "agent.sock"  # the agent may start after the file is read
    hosts = parse_hosts({"hosts": {"h": {"ssh": agent_ssh(files, str(socket))}}})
    target = hosts.entries[0].ssh
    assert target is not None and target.agent == socket and target.key is None
    # `true`: the bot's SSH_AUTH_SOCK, read when the file is loaded
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/user/0/agent.1")
    hosts = parse_hosts({"hosts": {"h": {"ssh": agent_ssh(files, True)}}})
    monkeypatch.setenv("SSH_AUTH_SOCK", "/elsewhere")
    assert hosts.entries[0].ssh is not None
    assert hosts.entries[0].ssh.agent == Path("/run/user/0/agent.1")
    monkeypatch.delenv("SSH_AUTH_SOCK")
    with pytest.raises(ConfigError, match="true means SSH_AUTH_SOCK") as info:
        parse_hosts({"hosts": {"h": {"ssh": agent_ssh(files, True)}}})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("relative/sock", "ssh.agent: must be an absolute path"),
        ("/tmp/a\nProxyCommand=sh", "ssh.agent: must be an absolute path"),
        ("/tmp/%d/sock", "ssh.agent: must be an absolute path"),
        ("/tmp/${HOME}/sock", "ssh.agent: must be an absolute path"),
        ("/tmp/a sock", "ssh.agent: must be an absolute path"),
        (False, "ssh.agent: must be the path of an ssh-agent socket, or true"),
        (3, "ssh.agent: must be the path of an ssh-agent socket, or true"),
    ],
)
def test_bad_agents_are_one_line_errors(
    files: dict[str, Path], agent: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_hosts({"hosts": {"h": {"ssh": agent_ssh(files, agent)}}})
    assert "\n" not in str(info.value) and str(info.value).startswith("HOSTS_FILE: hosts.h.")


def test_exactly_one_of_key_or_agent(files: dict[str, Path]) -> None:
    both = ssh(files, agent="/tmp/agent.sock")
    neither = ssh(files)
    del neither["key"]
    for raw in (both, neither):
        with pytest.raises(ConfigError, match="exactly one of `key`") as info:
            parse_hosts({"hosts": {"prod-9": {"ssh": raw}}})
        assert str(info.value).startswith("HOSTS_FILE: hosts.prod-9.ssh: ")
        assert "\n" not in str(info.value)


def test_known_hosts_is_required(files: dict[str, Path]) -> None:
    raw = ssh(files)
    del raw["known_hosts"]
    with pytest.raises(ConfigError, match="known_hosts: missing"):
        parse_hosts({"hosts": {"h": {"ssh": raw}}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "must be a mapping with a `hosts:`"),
        ({"hosts": {}}, "is empty"),
        ({"hosts": {"all": None}}, "host name 'all'"),
        ({"hosts": {"Prod One": None}}, "host name 'Prod One'"),
        ({"hosts": {"a": {"settings": {"SLACK_BOT_TOKEN": "x"}}}}, "cannot be set per host"),
        ({"hosts": {"a": {"settings": {"DIFY_DIR": "/x y"}}}}, "must be a plain value"),
        ({"hosts": {"a": {"operators": ["not-an-id"]}}}, "Slack user/group ids"),
        ({"hosts": {"a": {"deadline": 0}}}, "deadline: must be 1..600"),
        ({"hosts": {"a": None}, "default": "b"}, "default 'b' is not a host"),
        ({"hosts": {"a": None}, "extra": 1}, "unknown key 'extra'"),
    ],
)
def test_bad_files_are_one_line_errors(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_hosts(data)


def test_the_cli_says_what_is_wrong_in_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.yaml"
    bad.write_text("hosts:\n  prod-1:\n    ssh: [unclosed\n")
    done = run_cli("check", "--host", "all", env={"HOSTS_FILE": str(bad)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0
    assert "HOSTS_FILE:" in done.stderr and "is not valid YAML (line " in done.stderr
    missing = run_cli("check", "--host", "all", env={"HOSTS_FILE": str(tmp_path / "no.yaml")})
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    bad.write_text("hosts:\n  a: {}\n")
    unknown = run_cli("check", "--host", "b", env={"HOSTS_FILE": str(bad)})
    assert unknown.returncode == 2
    assert "unknown host 'b'; hosts: a, or all" in unknown.stderr
