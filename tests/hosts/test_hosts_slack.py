"""`/dify-ollama ... @host` through the running bot, at the wire (signed requests in, the Slack
double out), against three hosts over real SSH (tests/hosts/conftest.py)."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote_plus

import pytest

from bot.subcommands.hosts import (
    HOST_CHAT,
    HOST_CHECK,
    HOST_FIX_APPLY,
    HOST_FIX_UNDO,
    HOST_LOGS,
    HOST_RESTART,
)
from config import i18n
from tests.bot.fakes.slack_api import Call, SlackApiDouble
from tests.hosts.conftest import SharedHosts, put_loopback_incident
from tests.rig.log_containers import assert_no_canary

pytestmark = [pytest.mark.docker, pytest.mark.slow]

OPERATOR = "UOPS"  # the bot's OPERATORS
PROD1_OPERATOR = "UPRODONE"  # prod-1's own operators


def buttons(call: Call) -> list[dict[str, Any]]:
    return [
        element
        for block in call.params.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
    ]


def everything_sent(slack: SlackApiDouble) -> str:
    raw = b"\n".join(call.raw for call in slack.calls) + b"\n".join(slack.uploads.values())
    text = raw.decode("utf-8", errors="replace")
    return text + "\n" + unquote_plus(text)


def audited(bot: Any, wanted: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """(command, host, outcome) of the audit lines, once `wanted` are there (or 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        found = {(a["command"], a.get("host"), a.get("outcome")) for a in bot.audit()}
        if wanted <= found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def start(run_bot: Any, shared: SharedHosts, entries: dict[str, Any] | None = None) -> Any:
    if entries is None:
        entries = {
            "prod-1": shared.entry("prod-1", deadline=30, operators=[PROD1_OPERATOR]),
            "prod-2": shared.entry("prod-2", deadline=30),
            "prod-3": shared.entry("prod-3", deadline=30),
        }
    return run_bot(hosts_file=shared.file(entries, "slack.yaml"), operators=(OPERATOR,))


def test_check_at_all_is_one_summary_worst_first_with_buttons_per_host(
    run_bot: Any, test_hosts: SharedHosts
) -> None:
    entries = {
        "prod-1": test_hosts.entry("prod-1", deadline=20),
        "prod-2": test_hosts.entry("prod-2", deadline=20),
        "prod-3": test_hosts.unreachable(deadline=4),
    }
    bot = start(run_bot, test_hosts, entries)
    assert bot.command("check @all").status_code == 200
    [summary] = bot.slack.wait_for(
        "chat.update", where=lambda c: "Dify hosts" in str(c.params.get("text")), timeout=40
    )
    sections = [b["text"]["text"] for b in summary.params["blocks"] if b.get("type") == "section"]
    assert len(sections) == 3  # one row per host
    order = [next(h for h in ("prod-1", "prod-2", "prod-3") if f"*{h}*" in s) for s in sections]
    assert sorted(order) == ["prod-1", "prod-2", "prod-3"]
    rank = {":x:": 0, ":white_circle:": 1, ":warning:": 2, ":white_check_mark:": 3}
    ranks = [next(v for k, v in rank.items() if s.startswith(k)) for s in sections]
    assert ranks == sorted(ranks)  # worst first
    gone = sections[order.index("prod-3")]
    assert gone.startswith(":x:") and "host." in gone
    # every button carries its host; "Check again" on every row
    values = [json.loads(b["value"]) for b in buttons(summary)]
    checks = {
        v["host"]
        for b, v in zip(buttons(summary), values, strict=True)
        if b["action_id"] == HOST_CHECK
    }
    assert checks == {"prod-1", "prod-2", "prod-3"}
    assert all("host" in v for v in values)
    assert_no_canary(everything_sent(bot.slack), test_hosts.logs.canaries)
    [line] = [a for a in bot.wait_audit(1, timeout=10) if a["command"] == "check"]
    assert line["host"] == "all" and line["outcome"] == "fail"


def test_check_on_a_named_host_names_it_and_its_buttons_carry_it(
    run_bot: Any, test_hosts: SharedHosts
) -> None:
    bot = start(run_bot, test_hosts)
    bot.command("check @prod-2")
    [report] = bot.slack.wait_for(
        "chat.update", where=lambda c: "prod-2" in json.dumps(c.params.get("blocks")), timeout=40
    )
    blocks = json.dumps(report.params["blocks"])
    assert "Host *prod-2*" in blocks and "ollama.host" in blocks
    found = {b["action_id"]: json.loads(b["value"]) for b in buttons(report)}
    assert found[HOST_CHECK] == {"host": "prod-2"}
    # "Check again" re-checks that same host (a click, authorized for it)
    bot.click(HOST_CHECK, json.dumps({"host": "prod-2"}), action_ts="2.1")
    bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: "on host *prod-2*" in str(c.params.get("text")),
        timeout=10,
    )
    assert_no_canary(everything_sent(bot.slack), test_hosts.logs.canaries)


def test_logs_on_a_named_host_are_redacted_on_the_host(
    run_bot: Any, test_hosts: SharedHosts
) -> None:
    bot = start(run_bot, test_hosts)
    bot.command("logs @prod-2 api 50")
    parent, reply = (c.params for c in bot.slack.wait_for("chat.postMessage", 2, timeout=40))
    assert "on host *prod-2*" in json.dumps(parent["blocks"])
    assert reply["thread_ts"] == parent.get("ts", reply["thread_ts"])
    sent = everything_sent(bot.slack)
    assert "[REDACTED]" in sent and "done" in sent
    assert_no_canary(sent, test_hosts.logs.canaries)
    # the Logs button of a host report carries host and service
    bot.click(HOST_LOGS, json.dumps({"host": "prod-2", "service": "worker", "lines": 5}))
    bot.wait_audit(2, timeout=40)
    # --grep and --since travel as `--grep=VALUE` words: a value may even start with "-"
    bot.command("logs @prod-2 api 50 --since 1h --grep DONE")
    bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: "matching 'DONE'" in json.dumps(c.params.get("blocks")),
        timeout=40,
    )
    [grepped] = bot.slack.wait_for(
        "chat.postMessage", where=lambda c: "api: 1 lines" in str(c.params.get("text")), timeout=40
    )
    assert "done" in json.dumps(grepped.params.get("blocks"))
    assert_no_canary(everything_sent(bot.slack), test_hosts.logs.canaries)


def test_unknown_hosts_and_all_outside_check_answer_at_once(
    run_bot: Any, test_hosts: SharedHosts
) -> None:
    bot = start(run_bot, test_hosts)
    answer = bot.command("check @nope").json()
    assert "Unknown host `nope`" in answer["text"] and "`prod-1`" in answer["text"]
    answer = bot.command("logs @all api").json()
    assert "`@all` works with `check` only" in answer["text"]


def test_every_mutation_is_authorized_for_its_host(run_bot: Any, test_hosts: SharedHosts) -> None:
    bot = start(run_bot, test_hosts)
    # prod-1 has operators of its own: the bot's OPERATORS may not change it ...
    denied = bot.command("restart @prod-1 api", user=OPERATOR).json()
    assert "only operators" in denied["text"].lower()
    value = json.dumps({"host": "prod-1", "plan": "abc123"})
    bot.click(HOST_FIX_APPLY, value, user=OPERATOR, action_ts="3.1")
    bot.click(
        HOST_FIX_UNDO,
        json.dumps({"host": "prod-1", "backup": None}),
        user=OPERATOR,
        action_ts="3.2",
    )
    # ... prod-1's operator may (and gets the host's own answer: no such plan there)
    bot.click(HOST_FIX_APPLY, value, user=PROD1_OPERATOR, action_ts="3.3")
    lines = bot.wait_audit(4, timeout=40)
    outcomes = [(a["command"], a["user"], a.get("host"), a["outcome"]) for a in lines]
    assert ("restart", OPERATOR, "prod-1", "denied") in outcomes
    assert ("host:fix-env:apply", OPERATOR, "prod-1", "denied") in outcomes
    assert ("host:fix-env:undo", OPERATOR, "prod-1", "denied") in outcomes
    assert ("host:fix-env:apply", PROD1_OPERATOR, "prod-1", "error") in outcomes
    bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: "plan abc123 is unknown on this host" in str(c.params.get("text")),
        timeout=10,
    )
    # prod-2 has none of its own: OPERATORS apply, and prod-1's operator is nobody there
    refused = bot.command("fix-env @prod-2", user=PROD1_OPERATOR).json()
    assert "only operators" in refused["text"].lower()


def test_fix_env_apply_and_undo_on_a_named_host(
    run_bot: Any, test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    stack = restore_prod1
    env_path = stack.dir / ".env"
    put_loopback_incident(env_path)  # on prod-1
    env_before = env_path.read_bytes()
    bot = start(run_bot, test_hosts)
    bot.command("fix-env @prod-1", user=PROD1_OPERATOR)
    [plan] = bot.slack.wait_for(
        "chat.update", where=lambda c: "fix-env plan" in str(c.params.get("text")), timeout=60
    )
    blocks = json.dumps(plan.params["blocks"])
    assert "Host *prod-1*" in blocks
    apply = [b for b in buttons(plan) if b["action_id"] == HOST_FIX_APPLY]
    assert apply, blocks
    value = json.loads(apply[0]["value"])
    assert value["host"] == "prod-1" and value["plan"]
    assert "Apply this fix on prod-1?" in apply[0]["confirm"]["title"]["text"]
    assert (stack.dir / ".env").read_bytes() == env_before  # a plan changes nothing

    bot.click(HOST_FIX_APPLY, apply[0]["value"], user=PROD1_OPERATOR, action_ts="4.1")
    [applied] = bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: "fix-env applied on host" in str(c.params.get("text")),
        timeout=60,
    )
    undo = next(b for b in buttons(applied) if b["action_id"] == HOST_FIX_UNDO)
    assert json.loads(undo["value"])["host"] == "prod-1"
    changed = (stack.dir / ".env").read_bytes() != env_before or any(
        p.name.startswith("docker-compose.") and "override" in p.name for p in stack.dir.iterdir()
    )
    assert changed

    bot.click(HOST_FIX_UNDO, undo["value"], user=PROD1_OPERATOR, action_ts="4.2")
    bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: "fix-env undone on host" in str(c.params.get("text")),
        timeout=60,
    )
    assert (stack.dir / ".env").read_bytes() == env_before
    wanted = {
        ("host:fix-env:apply", "prod-1", "applied"),
        ("host:fix-env:undo", "prod-1", "undone"),
    }
    assert wanted <= audited(bot, wanted)


def test_restart_on_a_named_host_re_checks_it(
    run_bot: Any, test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    stack = restore_prod1
    bot = start(run_bot, test_hosts)

    def started() -> str:
        labels = [f"com.docker.compose.project={stack.project}", "com.docker.compose.service=api"]
        [api] = stack.client.containers.list(filters={"label": labels})
        return str(api.attrs["State"]["StartedAt"])

    before = started()
    bot.command("restart @prod-1 api", user=PROD1_OPERATOR)
    [done] = bot.slack.wait_for(
        "chat.update",
        where=lambda c: "after the restart" in str(c.params.get("text")),
        timeout=180,
    )
    assert "(prod-1)" in done.params["text"]
    assert started() != before  # the host's api really restarted
    # the verdict is the re-check's: prod-1's Dify is healthy again after the restart
    outcomes = {
        o
        for c, h, o in audited(bot, {("restart", "prod-1", "ok")})
        if c == "restart" and h == "prod-1"
    }
    assert "ok" in outcomes, outcomes


def test_the_watch_watches_every_host_and_names_it_in_alerts(
    run_bot: Any, test_hosts: SharedHosts
) -> None:
    entries = {
        "prod-2": test_hosts.entry("prod-2", deadline=20),
        "prod-3": test_hosts.entry("prod-3", deadline=20),
    }
    bot = run_bot(
        hosts_file=test_hosts.file(entries, "watch.yaml"),
        watch_channel="CWATCH",
        watch_interval_floor=0.2,
        watch_interval=2,
        watch_fail_after=1,
    )
    assert bot.bot.watch is None  # the file lists no local host: this machine is not watched
    assert sorted(w.host for w in bot.bot.host_watches) == ["prod-2", "prod-3"]
    [alert] = bot.slack.wait_for(
        "chat.postMessage",
        where=lambda c: (
            c.params.get("channel") == "CWATCH" and "on prod-2" in str(c.params.get("text"))
        ),
        timeout=60,
    )
    assert "ollama.host" in json.dumps(alert.params.get("blocks"))
    for call in bot.slack.of("chat.postMessage"):
        if call.params.get("channel") == "CWATCH":
            text = str(call.params.get("text"))
            assert "on prod-2" in text or "on prod-3" in text, text  # every alert names it
            assert not [b for b in buttons(call) if "host" not in b.get("value", "host")]
    # each host's watch state is its own, under STATE_DIR/hosts/NAME
    saved = bot.settings.state_path / "hosts" / "prod-2"
    deadline = time.monotonic() + 20  # saved right after the alert is posted
    while not any(saved.rglob("state.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(saved.rglob("state.json"))
    assert_no_canary(everything_sent(bot.slack), test_hosts.logs.canaries)


def test_chat_test_and_restart_all_on_a_named_host(
    run_bot: Any, test_hosts: SharedHosts, restore_prod1: Any
) -> None:
    settings = {**test_hosts.settings["prod-1"], "CHAT_TIMEOUT": "10"}
    entry = test_hosts.rig.entry(
        test_hosts.by_name["prod-1"], settings=settings, deadline=30, operators=[PROD1_OPERATOR]
    )
    bot = start(run_bot, test_hosts, {"prod-1": entry})
    bot.command("check @prod-1")
    [report] = bot.slack.wait_for(
        "chat.update", where=lambda c: "prod-1" in json.dumps(c.params.get("blocks")), timeout=40
    )
    chat = next(b for b in buttons(report) if b["action_id"] == HOST_CHAT)
    assert chat["text"]["text"] == "Chat test" and json.loads(chat["value"]) == {"host": "prod-1"}
    # the click runs the host's own `check --only dify.chat --chat` and answers in the thread
    bot.click(HOST_CHAT, chat["value"], action_ts="6.1")
    [answered] = bot.slack.wait_for(
        "chat.update",
        where=lambda c: "`dify.chat`" in json.dumps(c.params.get("blocks")),
        timeout=40,
    )
    assert "Host *prod-1*" in json.dumps(answered.params["blocks"])
    assert ("host:check:chat-test", "prod-1") in {
        (c, h) for c, h, _o in audited(bot, {("host:check:chat-test", "prod-1", "ok")})
    }
    # `restart @prod-1 --all` asks first, as on this machine: a danger button for that host
    assert bot.command("restart @prod-1 --all", user=PROD1_OPERATOR).content == b""
    [asked] = bot.slack.wait_for(
        "chat.postMessage", where=lambda c: HOST_RESTART in json.dumps(c.params.get("blocks"))
    )
    [element] = [b for b in buttons(asked) if b["action_id"] == HOST_RESTART]
    assert json.loads(element["value"]) == {"host": "prod-1", "all": True}
    assert element["style"] == "danger"
    assert element["confirm"]["title"]["text"] == "Stop and restart the whole Dify stack on prod-1?"
    assert "On host *prod-1*" in str(asked.params.get("text"))
    # clicked (Slack's confirmation passed): prod-1's own stack goes down and up, every
    # container renewed, and the re-check finds it healthy
    before = {c.id for c in restore_prod1.containers()}
    bot.click(HOST_RESTART, element["value"], user=PROD1_OPERATOR, action_ts="6.2")
    [done] = bot.slack.wait_for(
        "chat.update",
        where=lambda c: "after the restart" in str(c.params.get("text")),
        timeout=180,
    )
    assert "Verified" in str(done.params["text"]) and "(prod-1)" in str(done.params["text"])
    assert ("host:restart", "prod-1", "ok") in audited(bot, {("host:restart", "prod-1", "ok")})
    assert not before & {c.id for c in restore_prod1.containers()}


def test_host_summary_buttons_and_errors_in_chinese(run_bot: Any, test_hosts: SharedHosts) -> None:
    entries = {
        "prod-2": test_hosts.entry("prod-2", deadline=20),
        "prod-3": test_hosts.unreachable(deadline=3),
    }
    with i18n.language("zh-CN"):
        bot = start(run_bot, test_hosts, entries)
        bot.command("check @all")
        [summary] = bot.slack.wait_for(
            "chat.update", where=lambda c: "Dify 主机" in str(c.params.get("text")), timeout=40
        )
        answer = bot.command("check @nope").json()
        every = bot.command("logs @all api").json()
        bot.command("check @prod-3")
        [gone] = bot.slack.wait_for(
            "chat.update",
            where=lambda c: (
                "主机 *prod-3*" in json.dumps(c.params.get("blocks"), ensure_ascii=False)
            ),
            timeout=40,
        )
    assert str(summary.params["text"]).startswith(":x: Dify 主机：已检查 2 台（2 台失败）")
    blocks = json.dumps(summary.params["blocks"], ensure_ascii=False)
    assert "请求人" in blocks and "最严重的排在前面" in blocks
    labels = {b["text"]["text"] for b in buttons(summary)}
    assert "重新检查" in labels
    # prod-2's own finding came back in Chinese (its CLI ran in the bot's language): the
    # summary after the finding id, without the "(+N more)" this side adds
    sections = [b["text"]["text"] for b in summary.params["blocks"] if b.get("type") == "section"]
    row = next(t for t in sections if "*prod-2*" in t)
    headline = row.split("\n", 1)[1]
    hosts_own = re.sub(r"^[a-z_.]{1,40}(: |\uff1a)", "", headline).split("\uff08\u53e6\u6709")[0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in hosts_own), row
    assert "*prod-3* · 失败" in blocks
    assert "未知主机 `nope`" in answer["text"]
    assert "`@all` 只能用于 `check`" in every["text"]
    one = json.dumps(gone.params["blocks"], ensure_ascii=False)
    # the host's finding (down, no route or its deadline: the network decides), in Chinese
    assert ":x: *prod-3：" in one and "SSH" in one and "*修复方法：* " in one, one
