"""Three test Dify hosts shared by every test of this package (tests/rig/netns_hosts.py):

- prod-1: a fake Ollama in its namespace; Dify = a healthy look-alike compose stack (1.13.3,
  Compose v1) on its own dockerd, the Debian and python-only images copied in (about 20 s),
  its model rows and OPENAI_API_BASE at host.docker.internal:11434 (the namespace's Ollama).
- prod-2: no Ollama at all (the broken one); Dify = labelled containers logging canaries, on
  its own dockerd.
- prod-3: a fake Ollama; Dify = another canary project on its own dockerd.

Each namespace runs its own dockerd (own bridge, data-root, exec-root, pidfile, socket; the
busybox test image copied in) and is reached over real SSH (Debian's sshd in the namespace,
the project's forced command). Tests that change prod-1's Dify use `restore_prod1`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.rig.log_containers import Canaries, LogProject, printf_script
from tests.rig.netns_hosts import HostRig, NsHost
from tests.rig.stack import (
    BUSYBOX_IMAGE,
    DEBIAN_IMAGE,
    PYTHON_ONLY_IMAGE,
    DifyStack,
    docker_host,
    healthy_stack,
)

# prod-1's Ollama as its containers reach it: the namespace's own, through host-gateway
OLLAMA_IN_NAMESPACE = "http://host.docker.internal:11434"


@dataclass
class SharedHosts:
    rig: HostRig
    by_name: dict[str, NsHost]
    settings: dict[str, dict[str, str]]
    logs: LogProject  # prod-2's Dify
    logs3: LogProject  # prod-3's Dify (same canaries)
    stack: DifyStack  # prod-1's Dify, on prod-1's engine

    def entry(self, name: str, **extra: Any) -> dict[str, Any]:
        return self.rig.entry(self.by_name[name], settings=self.settings[name], **extra)

    def file(self, entries: dict[str, dict[str, Any]] | None = None, name: str = "h.yaml") -> Path:
        if entries is None:
            entries = {n: self.entry(n, deadline=30) for n in self.by_name}
        return self.rig.hosts_file(entries, name)

    def unreachable(self, deadline: float) -> dict[str, Any]:
        """An entry whose address nobody holds (prod-3's /29): no SSH answer."""
        entry = self.entry("prod-3", deadline=deadline)
        entry["ssh"]["host"] = self.by_name["prod-3"].unused_address
        return entry


@pytest.fixture(scope="package")
def test_hosts(docker_engine: Any) -> Iterator[SharedHosts]:
    root = Path(tempfile.mkdtemp(prefix="dify-ollama-hosts-"))
    env = {"DOCKER_HOST": docker_host()}
    if os.environ.get("DOCKER_CONFIG"):
        env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
    rig = HostRig(root, 3)
    canaries = Canaries()
    projects: list[LogProject] = []
    clients: list[Any] = []
    prod1: DifyStack | None = None
    try:
        rig.start(env, images=(BUSYBOX_IMAGE,))
        one, two, three = rig.hosts
        rig.start_ollama(one)
        rig.start_ollama(three)
        rig.copy_images(one, docker_host(), (DEBIAN_IMAGE, PYTHON_ONLY_IMAGE))
        # no offline resolver: it listens on the private engine's bridge, not in the namespace
        prod1 = healthy_stack(
            root / "prod1",
            OLLAMA_IN_NAMESPACE,
            engine=one.docker_host,
            netns=one.netns_path,
            offline_dns=False,
        ).up()
        for host in (two, three):
            client = docker.DockerClient(base_url=host.docker_host, timeout=30)
            clients.append(client)
            project = LogProject(client, root / f"dify{host.index}", canaries)
            projects.append(project)
            api = project.add("api", printf_script([*canaries.log_lines(), "done"]))
            project.add("worker", "sleep 600")
            project.wait_for_line(api, b"done")
        stack_settings = {"DIFY_COMPOSE_PROJECT": prod1.project, "DIFY_DIR": str(prod1.dir)}
        two_logs, three_logs = projects
        yield SharedHosts(
            rig,
            {"prod-1": one, "prod-2": two, "prod-3": three},
            {
                "prod-1": stack_settings,
                "prod-2": {"DIFY_COMPOSE_PROJECT": two_logs.name, "DIFY_DIR": str(two_logs.dir)},
                "prod-3": {
                    "DIFY_COMPOSE_PROJECT": three_logs.name,
                    "DIFY_DIR": str(three_logs.dir),
                },
            },
            two_logs,
            three_logs,
            prod1,
        )
    finally:
        if prod1 is not None:  # while its engine still runs
            prod1.down()
        for project in projects:
            project.cleanup()
        for client in clients:
            client.close()
        rig.close()


@pytest.fixture
def restore_prod1(test_hosts: SharedHosts) -> Iterator[DifyStack]:
    """prod-1's Dify for a test that changes it: files, containers, rows and cache are put
    back afterwards (pass or fail)."""
    yield test_hosts.stack
    test_hosts.stack.restore()


def put_loopback_incident(env_path: Path) -> None:
    """The incident on a host's Dify: the model callers' OPENAI_API_BASE on loopback (the
    restore_prod1 fixture puts the file back afterwards)."""
    env_path.write_text(
        "".join(
            "OPENAI_API_BASE=http://127.0.0.1:11434/v1\n"
            if line.startswith("OPENAI_API_BASE=")
            else line
            for line in env_path.read_text().splitlines(keepends=True)
        )
    )


# The Slack side of these hosts runs the real bot against the Slack double (tests/bot).
from tests.bot.conftest import run_bot, slack  # noqa: E402, F401
