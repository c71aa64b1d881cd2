"""scripts/install-test-deps and scripts/test-engine never harm the machine they run on
(issue 11). They run for real here, with the commands that would change the host (apt-get,
dpkg-query, ip, dockerd, docker) replaced on PATH by recorders: what each script decides, and
which commands it would run with which arguments, is what is checked. Nothing is installed,
no interface is created, no engine is started."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Real tools the scripts use that change nothing.
TOOLS = (
    "bash",
    "grep",
    "dirname",
    "id",
    "cat",
    "seq",
    "sleep",
    "mkdir",
    "rm",
    "setsid",
    "timeout",
    "python3",
    "kill",
    "tail",
    "touch",
    "env",
)

SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"  # no shims (pyenv) in the sandbox
RECORDER = """#!/bin/bash
printf '%s\\n' "${0##*/} $*" >> "$CALLS"
"""


def _sandbox(tmp_path: Path, commands: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A bin folder with the real harmless tools and recorders/stubs for the rest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool, path=SYSTEM_PATH)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for name, body in commands.items():
        path = bin_dir / name
        path.write_text(RECORDER + body + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": str(bin_dir), "CALLS": str(tmp_path / "calls"), "HOME": str(tmp_path)}
    return bin_dir, env


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _checkout(tmp_path: Path) -> Path:
    """The scripts folder and a stand-in venv (the pip step is not under test)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for script in ("install-test-deps", "test-engine"):
        shutil.copy2(ROOT / "scripts" / script, root / "scripts" / script)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("python", "pip"):
        (venv_bin / name).write_text(RECORDER)
        (venv_bin / name).chmod(0o755)
    return root


def _dpkg(installed: set[str]) -> str:
    cases = " | ".join(sorted(installed)) or "__none__"
    return f"""for last; do :; done
case "$last" in {cases}) echo "install ok installed";; *) exit 1;; esac"""


def _install(tmp_path: Path, installed: set[str], present: set[str]) -> list[str]:
    commands = {
        "dpkg-query": _dpkg(installed),
        "apt-get": "exit 0",
        "sudo": '"$@"',
        **{name: "exit 0" for name in present},
    }
    _, env = _sandbox(tmp_path, commands)
    root = _checkout(tmp_path)
    # Compose v2 already in its plugin folder at the pinned version: the apt decisions are
    # under test here, not the PyPI download.
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").write_text("#!/bin/bash\necho 2.40.3\n")
    (plugins / "docker-compose").chmod(0o755)
    env["DIFY_OLLAMA_COMPOSE_V2_PLUGIN_DIR"] = str(plugins)
    done = subprocess.run(
        ["bash", str(root / "scripts" / "install-test-deps")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [c for c in _calls(tmp_path) if c.startswith("apt-get install")]


def test_docker_ce_host_gets_no_docker_io_and_no_recommends(tmp_path: Path) -> None:
    # Docker's own packages, dockerd on PATH; Compose v1 and mmdebstrap missing.
    installs = _install(tmp_path, {"docker-ce", "docker-ce-cli"}, {"dockerd", "docker", "ip"})
    assert len(installs) == 1
    words = installs[0].split()
    assert "docker.io" not in words  # docker.io conflicts with docker-ce: apt would remove it
    assert {"--no-install-recommends", "--no-remove"} <= set(
        words
    )  # docker-compose recommends docker.io
    assert {"docker-compose", "mmdebstrap"} <= set(words)


SSH_PACKAGES = {"openssh-server", "openssh-client"}  # the many-hosts tests' sshd and ssh


def test_an_engine_package_without_dockerd_on_path_is_still_an_engine(tmp_path: Path) -> None:
    installed = {"docker-ce", *SSH_PACKAGES}
    present = {"docker", "docker-compose", "mmdebstrap", "ip", "openssl"}
    installs = _install(tmp_path, installed, present)
    assert installs == []


def test_openssl_is_installed_when_missing(tmp_path: Path) -> None:
    """tests/handlers/test_http_client.py makes its certificate with the openssl command."""
    present = {"docker", "docker-compose", "mmdebstrap", "ip"}
    installs = _install(tmp_path, {"docker-ce", *SSH_PACKAGES}, present)
    assert len(installs) == 1 and installs[0].split()[-1] == "openssl"


def test_openssh_server_is_installed_when_missing(tmp_path: Path) -> None:
    present = {"docker", "docker-compose", "mmdebstrap", "ip"}
    installs = _install(tmp_path, {"docker-ce", "openssh-client"}, present)
    assert len(installs) == 1 and installs[0].split()[-1] == "openssh-server"


def test_engine_without_its_cli_is_refused_not_mixed(tmp_path: Path) -> None:
    commands = {"dpkg-query": _dpkg({"docker-ce"}), "apt-get": "exit 0", "sudo": '"$@"'}
    _, env = _sandbox(tmp_path, commands)
    root = _checkout(tmp_path)
    # Compose v2 already in its plugin folder at the pinned version: the apt decisions are
    # under test here, not the PyPI download.
    plugins = tmp_path / "cli-plugins"
    plugins.mkdir()
    (plugins / "docker-compose").write_text("#!/bin/bash\necho 2.40.3\n")
    (plugins / "docker-compose").chmod(0o755)
    env["DIFY_OLLAMA_COMPOSE_V2_PLUGIN_DIR"] = str(plugins)
    done = subprocess.run(
        ["bash", str(root / "scripts" / "install-test-deps")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "docker-ce-cli" in done.stderr
    assert not [c for c in _calls(tmp_path) if c.startswith("apt-get")]


def test_bare_machine_gets_docker_io(tmp_path: Path) -> None:
    installs = _install(tmp_path, set(), {"ip"})
    assert len(installs) == 1 and "docker.io" in installs[0].split()
    assert "--no-install-recommends" in installs[0]


# --- test-engine --------------------------------------------------------------------------------
ROUTES_CLEAN = (
    "default via 192.0.2.1 dev eth0\\n"
    "172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1\\n"
)


def _ip(routes: str) -> str:
    return f"""case "$*" in
  "-4 -o route show") printf '{routes}';;
  "link show "*) [ -e "$CALLS.bridge" ] || exit 1;;
  "link add "*) touch "$CALLS.bridge";;
  "-4 -o addr show dev "*) [ -e "$CALLS.addr" ] && echo "9: x inet $BRIDGE_CIDR_SEEN brd";;
  "addr add "*) touch "$CALLS.addr";;
esac
exit 0"""


def _engine(tmp_path: Path, routes: str, extra: dict[str, str] | None = None):
    commands = {
        "ip": _ip(routes),
        # docker answers once dockerd has "started"
        "docker": '[ -e "$CALLS.started" ]',
        "dockerd": 'touch "$CALLS.started"; sleep 0.2',
    }
    _, env = _sandbox(tmp_path, commands)
    root = _checkout(tmp_path)
    env.update(
        {
            "DIFY_OLLAMA_TEST_ENGINE_ROOT": str(tmp_path / "engine"),
            "DIFY_OLLAMA_TEST_ENGINE_SOCK": str(tmp_path / "engine" / "docker.sock"),
            "BRIDGE_CIDR_SEEN": "10.77.0.1/24",
            **(extra or {}),
        }
    )
    return subprocess.run(
        ["bash", str(root / "scripts" / "test-engine"), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_engine_gets_its_own_bridge_and_pool_never_docker0(tmp_path: Path) -> None:
    done = _engine(tmp_path, ROUTES_CLEAN)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert "ip link add dotest0 type bridge" in calls
    assert "ip addr add 10.77.0.1/24 dev dotest0" in calls
    dockerd = next(c for c in calls if c.startswith("dockerd "))
    assert "--bridge dotest0" in dockerd
    assert "--default-address-pool base=10.77.128.0/17,size=24" in dockerd
    assert "--iptables=false" in dockerd and "--ip-masq=false" in dockerd
    assert "docker0" not in dockerd


@pytest.mark.parametrize(
    ("route", "what"),
    [
        ("10.77.0.0/16 dev eth1 proto kernel scope link src 10.77.3.4", "bridge subnet"),
        ("10.77.200.0/24 dev wg0 scope link", "address pool"),
        ("10.0.0.0/8 via 192.0.2.1 dev eth0", "bridge subnet"),
    ],
)
def test_engine_refuses_ranges_the_host_uses(tmp_path: Path, route: str, what: str) -> None:
    done = _engine(tmp_path, ROUTES_CLEAN + route + "\\n")
    assert done.returncode == 1
    assert what in done.stderr and route.split()[0] in done.stderr
    calls = _calls(tmp_path)
    assert not [c for c in calls if c.startswith(("dockerd", "ip link add", "ip addr add"))]


def test_engine_ranges_can_be_chosen(tmp_path: Path) -> None:
    done = _engine(
        tmp_path,
        ROUTES_CLEAN + "10.77.0.0/16 dev eth1 scope link\\n",
        {
            "DIFY_OLLAMA_TEST_ENGINE_BRIDGE": "dotest9",
            "DIFY_OLLAMA_TEST_ENGINE_BRIDGE_CIDR": "10.79.0.1/24",
            "DIFY_OLLAMA_TEST_ENGINE_POOL": "10.79.128.0/17",
            "BRIDGE_CIDR_SEEN": "10.79.0.1/24",
        },
    )
    assert done.returncode == 0, done.stderr
    dockerd = next(c for c in _calls(tmp_path) if c.startswith("dockerd "))
    assert "--bridge dotest9" in dockerd and "base=10.79.128.0/17" in dockerd
