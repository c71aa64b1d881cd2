"""Merging host-gateway into a compose override (no Docker engine needed; Compose's own
`config` validates the result when the CLI is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from handlers.override import (
    GATEWAY_SERVICES,
    HOST_GATEWAY,
    maps_gateway,
    merge_gateway,
    named_services,
    override_path,
)
from handlers.results import HandlerError
from tests.rig.stack import REFERENCE_DIR, build_compose, compose_env, write_env

SERVICES = ("plugin_daemon", "api", "worker", "worker_beat")


def test_new_override_maps_every_model_caller(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.override.yaml"
    change = merge_gateway(None, SERVICES, path)
    assert change is not None and change.creates
    data = yaml.safe_load(change.new_text)
    assert data == {"services": {s: {"extra_hosts": [HOST_GATEWAY]} for s in SERVICES}}
    assert change.new_text.startswith("# Added by dify-ollama fix-env")


def test_existing_override_is_merged_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.override.yaml"
    old = {
        "x-custom": {"keep": True},
        "services": {
            "api": {
                "environment": {"LOG_LEVEL": "DEBUG"},
                "extra_hosts": ["ollama.lan:10.0.0.5"],
                "ports": ["5001:5001"],
            },
            "worker": {"extra_hosts": {"db.lan": "10.0.0.6"}},
            "plugin_daemon": {"extra_hosts": ["host.docker.internal=172.17.0.1"]},
            "nginx": {"ports": ["8080:80"]},
        },
        "volumes": {"extra": {}},
    }
    text = yaml.safe_dump(old, sort_keys=False)
    change = merge_gateway(text, SERVICES, path)
    assert change is not None
    new = yaml.safe_load(change.new_text)
    assert new["x-custom"] == {"keep": True} and new["volumes"] == {"extra": {}}
    assert new["services"]["nginx"] == {"ports": ["8080:80"]}
    api = new["services"]["api"]
    assert api["environment"] == {"LOG_LEVEL": "DEBUG"} and api["ports"] == ["5001:5001"]
    assert api["extra_hosts"] == ["ollama.lan:10.0.0.5", HOST_GATEWAY]
    assert new["services"]["worker"]["extra_hosts"] == {
        "db.lan": "10.0.0.6",
        "host.docker.internal": "host-gateway",
    }
    # A mapping the user made on purpose stays as it is.
    assert new["services"]["plugin_daemon"] == {"extra_hosts": ["host.docker.internal=172.17.0.1"]}
    assert new["services"]["worker_beat"] == {"extra_hosts": [HOST_GATEWAY]}
    assert change.services == ("api", "worker", "worker_beat")
    assert any("already maps host.docker.internal to 172.17.0.1" in n for n in change.notes)


def test_nothing_to_do_when_every_service_is_mapped(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.override.yaml"
    done = merge_gateway(None, SERVICES, path)
    assert done is not None
    assert merge_gateway(done.new_text, SERVICES, path) is None


def test_comments_in_an_existing_override_are_reported(tmp_path: Path) -> None:
    text = "# my tweaks\nservices:\n  api:\n    restart: unless-stopped\n"
    change = merge_gateway(text, ["api"], tmp_path / "docker-compose.override.yaml")
    assert change is not None and any("comments" in n for n in change.notes)


@pytest.mark.parametrize(
    "text",
    ["services: [api]\n", "- just\n- a list\n", "services:\n  api: [1]\n", "a: [unclosed\n"],
)
def test_broken_overrides_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(HandlerError):
        merge_gateway(text, SERVICES, tmp_path / "docker-compose.override.yaml")


def test_which_file_compose_loads(tmp_path: Path) -> None:
    assert override_path(tmp_path).name == "docker-compose.override.yaml"
    (tmp_path / "docker-compose.yaml").write_text("services: {}\n")
    (tmp_path / "docker-compose.override.yml").write_text("services: {}\n")
    assert override_path(tmp_path).name == "docker-compose.override.yml"
    other = tmp_path / "b"
    other.mkdir()
    (other / "compose.yaml").write_text("services: {}\n")
    assert override_path(other).name == "compose.override.yaml"


def test_maps_gateway_forms() -> None:
    assert maps_gateway({"extra_hosts": [HOST_GATEWAY]}) == "host-gateway"
    assert maps_gateway({"extra_hosts": {"host.docker.internal": "1.2.3.4"}}) == "1.2.3.4"
    assert maps_gateway({"extra_hosts": ["other:1.2.3.4"]}) is None
    assert maps_gateway(None) is None


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_accepts_the_merged_files_from_difys_real_compose(tmp_path: Path) -> None:
    """Dify's real compose file (as the rig renders it) + the merged override: `config` sees
    host-gateway on every model caller and nothing else changed."""
    folder = tmp_path / "docker"
    (folder / "rig").mkdir(parents=True)
    (folder / "docker-compose.yaml").write_text(build_compose(folder))
    write_env(REFERENCE_DIR / ".env.example", folder / ".env", {})
    existing = {"services": {"api": {"environment": {"LOG_LEVEL": "DEBUG"}}}}
    path = override_path(folder)
    path.write_text(yaml.safe_dump(existing))
    change = merge_gateway(path.read_text(), GATEWAY_SERVICES, path)
    assert change is not None
    path.write_text(change.new_text)
    done = subprocess.run(
        ["docker-compose", "-p", "fixenvtest", "--project-directory", str(folder), "config"],
        cwd=folder,
        env=compose_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    for service in GATEWAY_SERVICES:
        assert maps_gateway(config["services"][service]) == "host-gateway"
    assert config["services"]["api"]["environment"]["LOG_LEVEL"] == "DEBUG"
    assert "extra_hosts" not in config["services"]["db_postgres"]
    assert set(named_services(path)) == set(GATEWAY_SERVICES)
