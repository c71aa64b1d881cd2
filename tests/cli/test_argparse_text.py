"""argparse's own error messages in the chosen language (cli/argparse_text.py), no engine.
The messages are the real ones: produced by argparse from the real `dify-ollama` parser."""

from __future__ import annotations

import pytest

from cli import argparse_text
from cli.main import main
from config import i18n

BAD = [
    (["frobnicate"], "参数 COMMAND：无效的选择：'frobnicate'（可选：'check', "),
    (["logs", "a", "b", "c"], "无法识别的参数：c"),
    (["restart", "--wait"], "参数 --wait：需要一个参数"),
    (["fix-env", "--yes", "--undo"], "参数 --undo：不能与参数 --yes/-y 同时使用"),
    (["history", "--png"], "参数 --png：需要一个参数"),
    ([], "缺少必需的参数：COMMAND"),
]


@pytest.mark.parametrize(("argv", "chinese"), BAD)
def test_real_parser_errors_in_chinese(
    argv: list[str], chinese: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--lang", "zh-CN", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("用法：dify-ollama"), err
    assert chinese in err.splitlines()[-1], err
    assert "：错误：" in err.splitlines()[-1]


@pytest.mark.parametrize("argv", [argv for argv, _zh in BAD])
def test_english_messages_come_back_unchanged(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    last = capsys.readouterr().err.splitlines()[-1]
    message = last.split(": error: ", 1)[1]
    assert argparse_text.translate(message) == message


@pytest.mark.parametrize(
    "message",
    [
        "argument COMMAND: invalid choice: 'x' (choose from 'a', 'b')",
        "argument --wait: invalid float value: 'x'",
        "expected 2 arguments",
        "expected 1 argument",
        "one of the arguments --a --b is required",
        "ambiguous option: --ch could match --check, --chat",
        "ignored explicit argument 'x'",
        "something argparse may say one day",
        "argument x",  # no ": ": not taken apart
    ],
)
def test_every_pattern_is_identity_in_english_and_known_in_chinese(message: str) -> None:
    assert i18n.current() == "en"
    assert argparse_text.translate(message) == message
    with i18n.language("zh-CN"):
        translated = argparse_text.translate(message)
    if message.startswith("something") or message == "argument x":
        assert translated == message
    else:
        assert translated != message
