"""`check --host NAME|all` against three hosts over real SSH (tests/hosts/conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from handlers.ssh_transport import stop_process
from tests.hosts.conftest import SharedHosts, put_loopback_incident
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
    # its own engine, stack and Ollama: healthy end to end (the look-alike's secrets are weak)
    problems = {k: v for k, v in statuses(report).items() if v != "ok"}
    assert problems == {"dify.secrets": "warn"}, report

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


@contextmanager
def ssh_agent(keys: Sequence[Path]) -> Iterator[Path]:
    """A real ssh-agent (a child, in the foreground) holding `keys`; its socket. Stopped after."""
    folder = Path(tempfile.mkdtemp(prefix="agent-"))  # short: a socket path has 108 bytes
    socket = folder / "sock"
    agent = subprocess.Popen(
        ["/usr/bin/ssh-agent", "-D", "-a", str(socket)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until = time.monotonic() + 10
        while not socket.exists():
            assert agent.poll() is None, "ssh-agent exited"
            assert time.monotonic() < until, "ssh-agent made no socket in 10 s"
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket)}
        for key in keys:
            subprocess.run(["/usr/bin/ssh-add", "-q", str(key)], env=env, timeout=10, check=True)
        listed = subprocess.run(
            ["/usr/bin/ssh-add", "-l"], env=env, capture_output=True, text=True, timeout=10
        )
        held = [line for line in listed.stdout.splitlines() if "SHA256:" in line]
        assert len(held) == len(keys), listed.stdout  # an empty one says "no identities"
        yield socket
    finally:
        stop_process(agent)
        shutil.rmtree(folder, ignore_errors=True)


def test_an_agent_logs_in_instead_of_a_key_file(test_hosts: SharedHosts) -> None:
    entry = test_hosts.entry("prod-3", deadline=20)
    del entry["ssh"]["key"]
    with ssh_agent([test_hosts.rig.key]) as loaded, ssh_agent([]) as empty:
        entry["ssh"]["agent"] = str(loaded)
        env = {"HOSTS_FILE": str(test_hosts.file({"prod-3": entry}, "agent.yaml"))}
        done = run_cli("check", "--host", "prod-3", "--json", env=env)
        report = json.loads(done.stdout)
        assert report["context"]["host"] == "prod-3", done.stderr
        assert report["context"].get("project") == test_hosts.logs3.name, report["context"]
        assert statuses(report)["ollama.host"] == "ok"

        # an agent without the key: the host's finding, with the agent's remedy
        entry["ssh"]["agent"] = str(empty)
        env = {"HOSTS_FILE": str(test_hosts.file({"prod-3": entry}, "agent-empty.yaml"))}
        refused = run_cli("check", "--host", "prod-3", "--json", env=env)
        assert refused.returncode == 1, refused.stderr
        findings = json.loads(refused.stdout)["findings"]
        assert [f["id"] for f in findings] == ["host.reach"], findings
        assert "refused the bot's key" in findings[0]["summary"]
        assert "ssh-add" in findings[0]["remedy"] and str(empty) in findings[0]["remedy"]
        assert "Traceback" not in refused.stderr
    assert not loaded.exists() and not empty.exists()  # both agents are gone


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


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_fix_env_plan_apply_and_undo_on_a_named_host(
    test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    stack = restore_prod1
    env_path = stack.dir / ".env"
    put_loopback_incident(env_path)  # on prod-1
    env_before = env_path.read_bytes()
    # the other hosts' Dify folders (their DIFY_DIR)
    others = {p.name: tree_bytes(p.dir) for p in (test_hosts.logs, test_hosts.logs3)}
    env = {"HOSTS_FILE": str(test_hosts.file())}

    plan = run_cli("fix-env", "--host", "prod-1", env=env)
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.startswith("Host prod-1:\n") and "fix-env plan" in plan.stdout
    match = re.search(r"`dify-ollama fix-env --host prod-1 --apply ([0-9A-Za-z_.-]+)`", plan.stdout)
    assert match, plan.stdout
    plan_id = match.group(1)
    assert env_path.read_bytes() == env_before  # a plan changes nothing

    # refused at once, nothing changed: --yes (a remote plan is seen first), --host all
    yes = run_cli("fix-env", "--yes", "--host", "prod-1", env=env)
    assert yes.returncode == 2 and "--apply PLAN_ID" in yes.stderr
    assert len(yes.stderr.strip().splitlines()) == 1
    for flag in ("--apply", "--undo"):  # not an id: said here, not by the forced command
        bad = run_cli("fix-env", "--host", "prod-1", flag, "abc$", env=env)
        assert bad.returncode == 2 and f"{flag} takes the id the host printed" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    for argv in (("fix-env", "--host", "all"), ("fix-env", "--apply", plan_id, "--host", "all")):
        refused = run_cli(*argv, env=env)
        assert refused.returncode == 2 and "one host at a time" in refused.stderr, refused.stderr
    assert env_path.read_bytes() == env_before

    applied = run_cli("fix-env", "--host", "prod-1", "--apply", plan_id, env=env)
    assert applied.returncode == 0, applied.stderr
    assert f"Applied fix-env plan {plan_id} on prod-1:" in applied.stdout
    assert "restart --host prod-1" in applied.stdout
    assert env_path.read_bytes() != env_before
    assert b"OPENAI_API_BASE=http://127.0.0.1:11434/v1\n" not in env_path.read_bytes()
    # the same plan twice: the host applies exactly that plan once, then refuses it
    again = run_cli("fix-env", "--host", "prod-1", "--apply", plan_id, "--json", env=env)
    assert again.returncode != 0 and "prod-1" in again.stderr and "Traceback" not in again.stderr

    undone = run_cli("fix-env", "--host", "prod-1", "--undo", "--json", env=env)
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["restored"]  # the host's own JSON, as it returned it
    assert env_path.read_bytes() == env_before  # byte for byte
    assert {p.name: tree_bytes(p.dir) for p in (test_hosts.logs, test_hosts.logs3)} == others


def test_restart_on_a_named_host_restarts_it_and_re_checks(
    test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    stack = restore_prod1

    def started() -> str:
        labels = [f"com.docker.compose.project={stack.project}", "com.docker.compose.service=api"]
        [api] = stack.client.containers.list(filters={"label": labels})
        return str(api.attrs["State"]["StartedAt"])

    env = {"HOSTS_FILE": str(test_hosts.file())}
    before = started()
    refused = run_cli("restart", "api", "--host", "all", env=env)
    assert refused.returncode == 2 and "one host at a time" in refused.stderr
    assert started() == before
    done = run_cli("restart", "api", "--host", "prod-1", env=env)
    # the verdict is the re-check's: prod-1's Dify is healthy again after the restart
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Restart on prod-1:\n"), done.stdout
    assert "  api: " in done.stdout and "\nHost prod-1:\n" in done.stdout
    assert started() != before  # the host's api really restarted


def test_changes_on_an_unreachable_host_give_its_finding(test_hosts: SharedHosts) -> None:
    refused = test_hosts.entry("prod-3", deadline=10)
    refused["ssh"]["port"] = 2  # nothing listens there: refused at once
    hosts_file = test_hosts.file(
        {"down": test_hosts.unreachable(deadline=2), "refused": refused}, "down.yaml"
    )
    env = {"HOSTS_FILE": str(hosts_file)}
    for argv, wanted in (
        (("fix-env", "--host", "refused"), "connection refused"),
        (("restart", "api", "--host", "down"), "down: "),
    ):
        done = run_cli(*argv, env=env)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 2 and wanted in lines[0], lines  # the finding, then its remedy
        assert "Traceback" not in done.stderr and done.stdout == ""


# --- options that cross SSH: check --chat, restart --all/--wait/--no-check -------------------
RECORDER = """#!/usr/bin/env python3
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "lang": os.environ.get("BOT_LANGUAGE")}))
"""


@pytest.fixture(scope="module")
def recorded(test_hosts: SharedHosts) -> Path:
    """A hosts file with `rec`: prod-3 over real SSH with a key whose forced command (the
    project's) execs a recorder in the CLI's place: what it prints is the argv that crossed."""
    rig = test_hosts.rig
    cli = rig.root / "recorder" / "dify-ollama"
    key = rig.root / "key_recorder"
    if not key.exists():
        cli.parent.mkdir(exist_ok=True)
        cli.write_text(RECORDER)
        cli.chmod(0o755)
        rig.authorize(test_hosts.by_name["prod-3"], key, cli)
    entry = test_hosts.entry("prod-3", key=key, deadline=20)
    return test_hosts.file({"rec": entry}, "recorder.yaml")


def crossed(argv: Sequence[str], hosts_file: Path) -> dict[str, Any]:
    done = run_cli(*argv, "--json", env={"HOSTS_FILE": str(hosts_file)})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_restart_options_cross_ssh_as_exact_words(recorded: Path) -> None:
    everything = crossed(
        ("restart", "--all", "--yes-really", "--no-check", "--wait", "5", "--host", "rec"),
        recorded,
    )
    assert everything["argv"] == [
        "restart",
        "--all",
        "--yes-really",
        "--wait=5",
        "--no-check",
        "--json",
    ]
    named = crossed(("restart", "api", "worker", "--wait", "2.5", "--host", "rec"), recorded)
    assert named["argv"] == ["restart", "api", "worker", "--wait=2.5", "--json"]
    default = crossed(("restart", "--host", "rec"), recorded)
    assert default["argv"] == ["restart", "--json"] and default["lang"] is None
    chinese = crossed(("--lang", "zh-CN", "restart", "--no-check", "--host", "rec"), recorded)
    assert chinese["argv"] == ["restart", "--no-check", "--json"]
    assert chinese["lang"] == "zh-CN"  # the host answers in the CLI's language


def test_check_chat_crosses_ssh(test_hosts: SharedHosts, recorded: Path) -> None:
    from config.hosts import load_hosts
    from handlers.ssh_transport import SshPool, SshTransport

    entry = load_hosts(recorded).get("rec")
    assert entry is not None
    pool = SshPool()
    try:
        answer = SshTransport(entry, pool).check(("ollama.host",), chat=True)
    finally:
        pool.close()
    assert answer.data is not None, answer
    assert answer.data["argv"] == ["check", "--only", "ollama.host", "--chat", "--json"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (("restart", "--all"), "stops EVERY service"),
        (("restart", "--all", "api", "--yes-really"), "--all takes no service names"),
        (("restart", "--wait", "0"), "--wait must be within"),
        (("restart", "--wait", "nan"), "--wait must be within"),
        (("restart", "--wait", "soon"), "--wait takes a number of seconds"),
    ],
)
def test_bad_restart_options_with_host_are_the_local_errors(
    recorded: Path, argv: tuple[str, ...], needle: str
) -> None:
    env = {"HOSTS_FILE": str(recorded), "STATE_DIR": str(recorded.parent / "state-local")}
    remote = run_cli(*argv, "--host", "rec", env=env)
    local = run_cli(*argv, env=env)
    assert remote.returncode == local.returncode == 2
    assert remote.stderr == local.stderr  # the same line as on this machine
    assert len(remote.stderr.strip().splitlines()) == 1 and needle in remote.stderr
    assert remote.stdout == ""  # nothing was sent: the recorder would have printed its argv


def test_the_forced_command_refuses_flags_the_bot_does_not_send(test_hosts: SharedHosts) -> None:
    for command in (
        "dify-ollama fix-env --yes --json",
        "dify-ollama history --png /tmp/chart.png --json",
        "dify-ollama restart --wait=nan --json",
    ):
        done = raw_ssh(test_hosts, command)
        assert done.returncode == 126, (command, done.stderr)
        assert "refused" in done.stderr and done.stdout == ""


def test_check_chat_on_a_named_host_runs_the_chat_test_there(test_hosts: SharedHosts) -> None:
    settings = {**test_hosts.settings["prod-1"], "CHAT_TIMEOUT": "10"}
    entry = test_hosts.rig.entry(test_hosts.by_name["prod-1"], settings=settings, deadline=30)
    env = {"HOSTS_FILE": str(test_hosts.file({"prod-1": entry}, "chat.yaml"))}
    plain = run_cli("check", "--host", "prod-1", "--json", env=env)
    assert "dify.chat" not in statuses(json.loads(plain.stdout))  # not without --chat
    chat = run_cli("check", "--chat", "--host", "prod-1", "--json", env=env)
    report = json.loads(chat.stdout)
    assert report["context"]["host"] == "prod-1", chat.stderr
    assert "dify.chat" in statuses(report), report  # the host ran its chat test


def test_restart_all_on_a_named_host_renews_its_whole_stack_and_keeps_its_data(
    test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    """`restart --all --yes-really --host prod-1` (down, then up) on prod-1's own engine: every
    container is new, the database's rows survive, and the re-check finds it healthy."""
    stack = restore_prod1
    before = {c.labels["com.docker.compose.service"]: c.id for c in stack.containers()}
    rows = stack.rows()
    env = {"HOSTS_FILE": str(test_hosts.file())}
    refused = run_cli("restart", "--all", "--host", "prod-1", env=env)
    assert refused.returncode == 2 and "--yes-really" in refused.stderr
    assert {c.labels["com.docker.compose.service"]: c.id for c in stack.containers()} == before
    done = run_cli("restart", "--all", "--yes-really", "--host", "prod-1", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    after = {c.labels["com.docker.compose.service"]: c.id for c in stack.containers()}
    assert set(after) == set(before) and not set(after.values()) & set(before.values())
    assert stack.rows() == rows  # `down` kept the database (no volume removed)


def test_restart_without_check_on_a_named_host(test_hosts: SharedHosts, restore_prod1: Any) -> None:
    stack = restore_prod1
    env = {"HOSTS_FILE": str(test_hosts.file())}
    labels = [f"com.docker.compose.project={stack.project}", "com.docker.compose.service=api"]
    [api] = stack.client.containers.list(filters={"label": labels})
    before = api.attrs["State"]["StartedAt"]
    done = run_cli("restart", "api", "--no-check", "--wait", "60", "--host", "prod-1", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Restart on prod-1:\n") and "  api: " in done.stdout
    assert "Host prod-1:" not in done.stdout  # no re-check was asked for
    [api] = stack.client.containers.list(filters={"label": labels})
    assert api.attrs["State"]["StartedAt"] != before


def test_host_texts_in_chinese(test_hosts: SharedHosts) -> None:
    hosts_file = test_hosts.file(
        {
            "prod-2": test_hosts.entry("prod-2", deadline=20),
            "prod-3": test_hosts.unreachable(deadline=3),
        },
        "zh.yaml",
    )
    env = {"HOSTS_FILE": str(hosts_file)}
    table = run_cli("--lang", "zh-CN", "check", "--host", "all", env=env)
    assert table.returncode == 1, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["状态", "主机", "耗时", "首要问题"]
    assert lines[-1].startswith("共 2 台主机：") and "总体 失败" in lines[-1]
    gone = next(line for line in lines[1:3] if " prod-3 " in line)
    # the host's own finding (no answer, no route or its deadline: the network decides)
    assert gone.startswith("失败") and "host." in gone and "prod-3：" in gone, gone
    assert "SSH" in gone and any(w in gone for w in ("没有", "无法", "未建立", "时限")), gone
    broken = next(line for line in lines[1:3] if " prod-2 " in line)
    assert "另有" in broken  # "(+N more)" here; the finding itself is the host's own Chinese
    one = run_cli("--lang", "zh-CN", "check", "--host", "prod-3", env=env)
    assert one.stdout.startswith("主机 prod-3：\n"), one.stdout
    unknown = run_cli("--lang", "zh-CN", "check", "--host", "nope", env=env)
    assert unknown.returncode == 2 and "未知主机 'nope'" in unknown.stderr
    refused = run_cli("--lang", "zh-CN", "fix-env", "--yes", "--host", "prod-2", env=env)
    assert refused.returncode == 2
    assert "--yes 不能与 --host 一起使用" in refused.stderr
    every = run_cli("--lang", "zh-CN", "restart", "--host", "all", env=env)
    assert every.returncode == 2 and "请一次只修改一台主机" in every.stderr
    down = run_cli("--lang", "zh-CN", "restart", "api", "--host", "prod-3", env=env)
    assert down.returncode == 1
    assert down.stderr.startswith("dify-ollama restart：prod-3：") and "prod-3" in down.stderr
    # English is unchanged
    english = run_cli("check", "--host", "all", env=env)
    assert english.stdout.splitlines()[0].split()[:3] == ["STATUS", "HOST", "TIME"]
    assert english.stdout.splitlines()[-1].startswith("2 host(s): ")
