"""`check --host NAME|all` against three hosts over real SSH (tests/hosts/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.hosts.conftest import SharedHosts
from tests.rig.cli_process import run_cli
from tests.rig.log_containers import assert_no_canary
from tests.rig.netns_hosts import CLI

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["status"] for f in report["findings"]}


def test_check_on_a_named_host_is_that_hosts_report(test_hosts: SharedHosts) -> None:
    hosts_file = test_hosts.file()
    broken = run_cli("check", "--host", "prod-2", "--json", env={"HOSTS_FILE": str(hosts_file)})
    assert broken.returncode == 1, broken.stderr
    report = json.loads(broken.stdout)
    assert report["context"]["host"] == "prod-2"
    assert statuses(report)["ollama.host"] == "fail"  # its Ollama is down
    # the host's own settings travelled, and its own engine answered: that compose project
    # exists only on prod-2's dockerd
    assert report["context"].get("project") == test_hosts.logs.name, report["context"]
    assert statuses(report)["docker.engine"] == "ok"
    assert_no_canary(broken.stdout + broken.stderr, test_hosts.logs.canaries)

    fine = run_cli("check", "--host", "prod-1", "--json", env={"HOSTS_FILE": str(hosts_file)})
    report = json.loads(fine.stdout)
    assert report["context"]["host"] == "prod-1"
    assert statuses(report)["ollama.host"] == "ok"
    assert report["context"].get("project") == test_hosts.stack.project

    text = run_cli("check", "--host", "prod-2", env={"HOSTS_FILE": str(hosts_file)})
    assert text.stdout.startswith("Host prod-2:\n") and "ollama.host" in text.stdout


def test_check_all_flags_the_right_hosts_within_the_deadline(test_hosts: SharedHosts) -> None:
    hosts_file = test_hosts.file(
        {
            "prod-1": test_hosts.entry("prod-1", deadline=20),
            "prod-2": test_hosts.entry("prod-2", deadline=20),
            "prod-3": test_hosts.unreachable(deadline=4),
        },
        "all.yaml",
    )
    started = time.monotonic()
    done = run_cli("check", "--host", "all", "--json", env={"HOSTS_FILE": str(hosts_file)})
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    rows = {row["host"]: row for row in data["hosts"]}
    assert set(rows) == {"prod-1", "prod-2", "prod-3"}
    # prod-3: the host itself is the finding, with a remedy, within its own 4 s deadline
    gone = rows["prod-3"]["report"]["findings"]
    assert [f["id"] for f in gone] in (["host.reach"], ["host.deadline"]), gone
    assert gone[0]["status"] == "fail" and gone[0]["remedy"]
    assert rows["prod-3"]["seconds"] <= 4 + 1
    assert statuses(rows["prod-2"]["report"])["ollama.host"] == "fail"
    assert statuses(rows["prod-1"]["report"])["ollama.host"] == "ok"
    # the slowest deadline (20 s) bounds the whole answer, plus the CLI's own start
    assert elapsed < 20 + 1 + 5
    order = [row["host"] for row in data["hosts"]]
    ranks = {"fail": 0, "skip": 1, "warn": 2, "ok": 3}
    assert [ranks[rows[h]["status"]] for h in order] == sorted(
        ranks[rows[h]["status"]] for h in order
    )
    table = run_cli("check", "--host", "all", env={"HOSTS_FILE": str(hosts_file)})
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["STATUS", "HOST", "TIME"]
    assert len(lines) == 5 and lines[-1].startswith("3 host(s): ")
    assert any(line.split()[1] == "prod-3" and "host." in line for line in lines[1:4])
    assert_no_canary(done.stdout + table.stdout, test_hosts.logs.canaries)


def test_a_wrong_host_key_is_refused(test_hosts: SharedHosts) -> None:
    rig = test_hosts.rig
    one, three = test_hosts.by_name["prod-1"], test_hosts.by_name["prod-3"]
    entry = test_hosts.entry("prod-3", deadline=10)
    entry["ssh"]["known_hosts"] = str(rig.known_hosts(three, key_of=one))  # prod-1's key
    state = three.dir / "state"
    before = sorted(p.name for p in state.rglob("*")) if state.exists() else []
    done = run_cli(
        "check",
        "--host",
        "prod-3",
        "--json",
        env={"HOSTS_FILE": str(test_hosts.file({"prod-3": entry}, "wrongkey.yaml"))},
    )
    report = json.loads(done.stdout)
    assert [f["id"] for f in report["findings"]] == ["host.key"], report
    assert "not the one pinned" in report["findings"][0]["summary"]
    assert "known_hosts" in report["findings"][0]["remedy"]
    after = sorted(p.name for p in state.rglob("*")) if state.exists() else []
    assert after == before  # nothing ran there


def test_an_unknown_host_key_is_not_trusted_on_first_use(test_hosts: SharedHosts) -> None:
    entry = test_hosts.entry("prod-3", deadline=10)
    empty = test_hosts.rig.root / "empty_known_hosts"
    empty.write_text("")
    entry["ssh"]["known_hosts"] = str(empty)
    done = run_cli(
        "check",
        "--host",
        "prod-3",
        "--json",
        env={"HOSTS_FILE": str(test_hosts.file({"prod-3": entry}, "unknown.yaml"))},
    )
    assert [f["id"] for f in json.loads(done.stdout)["findings"]] == ["host.key"]
    assert empty.read_text() == ""  # nothing was learnt


def raw_ssh(test_hosts: SharedHosts, command: str, key: Path | None = None) -> Any:
    host = test_hosts.by_name["prod-3"]
    return subprocess.run(
        [
            "/usr/bin/ssh",
            "-F",
            "none",
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={test_hosts.rig.known_hosts(host)}",
            "-o",
            "IdentitiesOnly=yes",
            "-i",
            str(key or test_hosts.rig.key),
            "-l",
            "root",
            host.address,
            command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    ["id", "sh -c id", "dify-ollama serve --json", "dify-ollama check", "cat /etc/shadow"],
)
def test_the_forced_command_refuses_anything_but_the_cli(
    test_hosts: SharedHosts, command: str
) -> None:
    done = raw_ssh(test_hosts, command)
    assert done.returncode == 126, done.stderr
    assert "refused" in done.stderr and "uid=" not in done.stdout and done.stdout == ""


def test_the_forced_command_runs_the_cli(test_hosts: SharedHosts) -> None:
    done = raw_ssh(test_hosts, "dify-ollama check --only no.such --json")
    assert done.returncode == 2 and "unknown finding id" in done.stderr  # the CLI's own answer


def test_a_host_without_the_product_says_so(test_hosts: SharedHosts) -> None:
    rig = test_hosts.rig
    host = test_hosts.by_name["prod-3"]
    key = rig.root / "key_no_product"
    if not key.exists():
        rig.authorize(host, key, "/nonexistent/bin/dify-ollama")
    entry = test_hosts.entry("prod-3", key=key, deadline=10)
    done = run_cli(
        "check",
        "--host",
        "prod-3",
        "--json",
        env={"HOSTS_FILE": str(test_hosts.file({"prod-3": entry}, "noproduct.yaml"))},
    )
    finding = json.loads(done.stdout)["findings"][0]
    assert finding["id"] == "host.product" and "not installed" in finding["summary"]
    assert CLI.exists()


def test_one_connection_per_host_is_reused_and_closed(test_hosts: SharedHosts) -> None:
    from config.hosts import load_hosts
    from handlers.ssh_transport import SshPool, SshTransport

    hosts = load_hosts(test_hosts.file())
    entry = hosts.get("prod-3")
    assert entry is not None
    pool = SshPool()
    try:
        transport = SshTransport(entry, pool)
        first = transport.check(["ollama.host"])
        master = pool.master_pid("prod-3")
        second = transport.check(["ollama.host"])
        assert first.reached and second.reached
        assert master is not None and pool.master_pid("prod-3") == master  # the same connection
        assert pool.control(entry).is_socket()
        assert oct(pool.dir.stat().st_mode & 0o777) == "0o700"
    finally:
        pool.close()
    assert not pool.dir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(master, 0)  # the master connection ended with the pool


def test_logs_on_a_named_host(test_hosts: SharedHosts) -> None:
    env = {"HOSTS_FILE": str(test_hosts.file())}
    done = run_cli("logs", "api", "20", "--host", "prod-3", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "done" and "[REDACTED]" in done.stdout
    assert "prod-3: api, last 20 lines" in done.stderr
    assert_no_canary(done.stdout + done.stderr, test_hosts.logs3.canaries)
    grep = run_cli("logs", "api", "20", "--grep", "-", "--host", "prod-3", "--json", env=env)
    assert grep.returncode == 0, grep.stderr  # a value starting with "-" stays a value
    assert all("-" in line for line in json.loads(grep.stdout)["lines"])
    assert run_cli("logs", "--host", "all", env=env).returncode == 2
    unknown = run_cli("logs", "nosuch", "--host", "prod-3", env=env)
    assert unknown.returncode == 2 and "no service 'nosuch'" in unknown.stderr
