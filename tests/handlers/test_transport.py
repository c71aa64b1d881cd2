"""The transport's pure parts: what ssh's failures mean, the argv it runs, answers as reports,
rows worst first. The real SSH paths run in tests/hosts behind a real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.hosts import split_host
from config import i18n
from config.hosts import HostEntry, SshTarget
from handlers import transport as t
from handlers.fanout import summary_rows, summary_text
from handlers.results import Status
from handlers.ssh_transport import SshPool, SshTransport, classify, remote_words, ssh_argv

TARGET = SshTarget("difyops", "10.0.0.5", 2222, Path("/k/id"), Path("/k/known"))
HOST = HostEntry("prod-1", TARGET, {"DIFY_DIR": "/srv/dify docker", "CHECK_TIMEOUT": "5"})


def test_the_argv_is_strict_and_the_remote_words_are_quoted() -> None:
    argv = ssh_argv(HOST, Path("/run/ctl/prod-1"), ["logs", "api", "50"], 10)
    assert argv[0] == "/usr/bin/ssh"
    joined = " ".join(argv)
    for option in (
        "-F none",
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/k/known",
        "GlobalKnownHostsFile=/dev/null",
        "IdentitiesOnly=yes",
        "IdentityAgent=none",
        "-i /k/id",
        "ControlPath=/run/ctl/prod-1",
        "-p 2222",
        "-l difyops",
    ):
        assert option in joined
    # the host comes after `--`: never read as an option
    assert argv[-3:-1] == ["--", "10.0.0.5"]
    assert argv[-1] == "CHECK_TIMEOUT=5 'DIFY_DIR=/srv/dify docker' dify-ollama logs api 50 --json"
    assert remote_words(HOST, ["check"])[-2:] == ["check", "--json"]


def test_with_an_agent_the_argv_names_its_socket_and_no_key_file() -> None:
    target = SshTarget(
        "difyops", "10.0.0.5", 22, None, Path("/k/known"), agent=Path("/run/agent/sock")
    )
    host = HostEntry("prod-a", target)
    argv = ssh_argv(host, Path("/run/ctl/prod-a"), ["check"], 10)
    assert "-i" not in argv
    assert "IdentityAgent=/run/agent/sock" in argv and "IdentityAgent=none" not in argv
    assert "IdentitiesOnly=no" in argv and "IdentitiesOnly=yes" not in argv
    assert "IdentityFile=none" in argv  # not the bot user's ~/.ssh/id_* keys either
    for kept in (
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "UserKnownHostsFile=/k/known",
        "ForwardAgent=no",
        "ClearAllForwardings=yes",
    ):
        assert kept in argv
    assert argv[-3:-1] == ["--", "10.0.0.5"]
    # the key's argv is unchanged
    keyed = ssh_argv(HOST, Path("/run/ctl/prod-1"), ["check"], 10)
    assert keyed[keyed.index("-i") + 1] == "/k/id" and not any("sock" in w for w in keyed)


def test_a_refused_agent_login_says_to_load_the_key_into_the_agent() -> None:
    target = SshTarget("difyops", "10.0.0.5", 22, None, Path("/k/known"), agent=Path("/a/sock"))
    found = classify(HostEntry("prod-a", target), 255, "difyops@10.0.0.5: Permission denied")
    assert found is not None and found.id == t.HOST_REACH and "refused" in found.summary
    assert "ssh-add" in found.remedy and "/a/sock" in found.remedy
    keyed = classify(HOST, 255, "difyops@10.0.0.5: Permission denied (publickey).")
    assert keyed is not None and "/k/id.pub" in keyed.remedy and "ssh-add" not in keyed.remedy


def test_the_host_answers_in_the_bots_language() -> None:
    assert not any(w.startswith("BOT_LANGUAGE=") for w in remote_words(HOST, ["check"]))
    with i18n.language("zh-CN"):
        words = remote_words(HOST, ["check"])
    assert "BOT_LANGUAGE=zh-CN" in words
    assert words.index("BOT_LANGUAGE=zh-CN") < words.index("dify-ollama")


@pytest.mark.parametrize(
    ("stderr", "finding"),
    [
        ("Host key verification failed.", t.HOST_KEY),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", t.HOST_KEY),
        ("root@10.0.0.5: Permission denied (publickey).", t.HOST_REACH),
        ("ssh: connect to host 10.0.0.5 port 2222: Connection refused", t.HOST_REACH),
        ("ssh: connect to host 10.0.0.5 port 2222: Connection timed out", t.HOST_REACH),
        ("ssh: Could not resolve hostname nope: Name or service not known", t.HOST_REACH),
    ],
)
def test_sshs_own_failures_are_host_findings_with_a_remedy(stderr: str, finding: str) -> None:
    found = classify(HOST, 255, stderr)
    assert found is not None and found.id == finding and found.status is Status.FAIL
    assert found.remedy and found.summary.startswith("prod-1")


def test_the_forced_commands_answers_are_host_findings() -> None:
    missing = classify(HOST, 127, "dify-ollama-ssh-command: dify-ollama not found at /x")
    refused = classify(HOST, 126, "dify-ollama-ssh-command: refused: ...")
    assert (
        missing is not None and missing.id == t.HOST_PRODUCT and "not installed" in missing.summary
    )
    assert refused is not None and refused.id == t.HOST_PRODUCT
    # the CLI's own exit codes speak for themselves
    assert classify(HOST, 1, "") is None and classify(HOST, 2, "usage") is None


def test_names_for_the_remote_cli_are_never_options() -> None:
    pool = SshPool()
    try:
        transport = SshTransport(HOST, pool)
        with pytest.raises(ValueError, match="not a name"):
            transport.logs("--all", 10)
        with pytest.raises(ValueError, match="not a name"):
            transport.restart(["api", "-rf"])
        assert oct(pool.dir.stat().st_mode & 0o777) == "0o700"  # the control sockets' folder
    finally:
        pool.close()
    assert not pool.dir.exists()


def test_answers_become_reports_and_nothing_is_ever_ok_by_default() -> None:
    data = {
        "findings": [
            {"id": "ollama.host", "status": "ok", "summary": "up", "metrics": {"ms": 3}},
            {"id": "x", "status": "weird", "summary": "?"},
        ],
        "context": {"project": "docker"},
    }
    report = t.as_report(t.Answer("h", 1, data))
    assert report.context == {"project": "docker", "host": "h"}
    assert report.finding("x").status is Status.FAIL  # type: ignore[union-attr]
    assert report.finding("ollama.host").metrics == {"ms": 3.0}  # type: ignore[union-attr]
    empty = t.as_report(t.Answer("h", 0, {"findings": []}))
    assert empty.status is Status.FAIL and empty.findings[0].id == t.HOST_ANSWER
    garbage = t.as_report(t.Answer("h", 2, None, error="dify-ollama: configuration error"))
    assert garbage.status is Status.FAIL and "configuration error" in garbage.findings[0].detail


def test_rows_are_worst_first_and_the_table_says_so() -> None:
    ok = t.Answer("a-ok", 0, {"findings": [{"id": "i", "status": "ok", "summary": "fine"}]})
    warn = t.Answer("b-warn", 0, {"findings": [{"id": "w", "status": "warn", "summary": "meh"}]})
    down = t.Answer(
        "c-down", 1, problem=t.host_problem("c-down", t.HOST_REACH, "{host}: down", "", "boot it")
    )
    rows = summary_rows([ok, warn, down])
    assert [r.host for r in rows] == ["c-down", "b-warn", "a-ok"]
    text = summary_text(rows, 80)
    assert text.splitlines()[1].startswith("FAIL    c-down") and "host.reach" in text
    assert text.splitlines()[-1] == "3 host(s): 1 ok, 1 warn, 1 fail; overall fail"


@pytest.mark.parametrize(
    ("args", "host", "rest"),
    [
        (("@prod-2", "api", "50"), "prod-2", ("api", "50")),
        (("@ALL",), "all", ()),
        (("api", "@prod-2"), None, ("api", "@prod-2")),  # only the first word
        (("@-rf",), None, ("@-rf",)),
        ((), None, ()),
    ],
)
def test_the_host_word(args: tuple[str, ...], host: str | None, rest: tuple[str, ...]) -> None:
    assert split_host(args) == (host, rest)


def test_host_findings_and_the_table_in_chinese() -> None:
    ok = t.Answer("a-ok", 0, {"findings": [{"id": "i", "status": "ok", "summary": "fine"}]})
    two = t.Answer(
        "b-two",
        1,
        {
            "findings": [
                {"id": "ollama.host", "status": "fail", "summary": "Ollama 没有应答"},
                {"id": "w", "status": "warn", "summary": "meh"},
            ]
        },
    )
    with i18n.language("zh-CN"):
        refused = classify(HOST, 255, "difyops@10.0.0.5: Permission denied (publickey).")
        down = classify(HOST, 255, "ssh: connect to host 10.0.0.5 port 2222: Connection refused")
        missing = classify(HOST, 127, "dify-ollama not found")
        garbage = t.as_report(t.Answer("h", 2, None, error="x"))
        rows = summary_rows([ok, two, t.Answer("c-down", 1, problem=down)])
        text = summary_text(rows, 80)
    assert refused is not None and refused.summary == "prod-1：SSH 拒绝了机器人的密钥"
    assert "/k/id.pub" in refused.remedy and "强制命令" in refused.remedy
    assert down is not None
    assert down.summary == "prod-1：difyops@10.0.0.5:2222 拒绝了 SSH 连接"
    assert down.remedy == "在该主机上启动 sshd，或修正 HOSTS_FILE 中的端口。"
    assert missing is not None and "没有安装 dify-ollama" in missing.summary
    assert garbage.findings[0].summary == "h 没有返回检查报告"
    lines = text.splitlines()
    assert lines[0].split() == ["状态", "主机", "耗时", "首要问题"]
    assert lines[1].startswith("失败    b-two") or lines[1].startswith("失败    c-down")
    # the host's own Chinese summary as it came, "(+1 more)" translated here
    assert "ollama.host：Ollama 没有应答（另有 1 项）" in text
    assert "1 项检查正常" in text
    assert lines[-1] == "共 3 台主机：1 台正常, 2 台失败；总体 失败"
    # ids, host names and the address stay as they are; English is unchanged afterwards
    english = summary_text(summary_rows([ok, two]), 80).splitlines()
    assert english[0].split() == ["STATUS", "HOST", "TIME", "FIRST", "PROBLEM"]
    assert "ollama.host: Ollama 没有应答 (+1 more)" in english[1]
    assert english[-1] == "2 host(s): 1 ok, 1 fail; overall fail"


def test_a_chinese_headline_is_cut_by_columns() -> None:
    long = t.Answer("h", 1, {"findings": [{"id": "x", "status": "fail", "summary": "中" * 80}]})
    with i18n.language("zh-CN"):
        [line] = summary_text(summary_rows([long]), 60).splitlines()[1:2]
    from handlers.text_width import display_width

    assert display_width(line) <= 60 and line.endswith("…")


def test_the_chat_allowance_is_the_settings_default_unless_the_entry_sets_it() -> None:
    from config.settings import Settings

    assert Settings.model_fields["chat_timeout"].default == t.CHAT_TIMEOUT_DEFAULT
    assert t.chat_allowance(HOST) == t.CHAT_TIMEOUT_DEFAULT
    assert t.chat_allowance(HostEntry("h", TARGET, {"CHAT_TIMEOUT": "15"})) == 15.0
