"""Wrapping text with Chinese characters by terminal columns (handlers/text_width.py)."""

from __future__ import annotations

import textwrap

import pytest

from handlers.report_text import wrap_text
from handlers.text_width import NO_LINE_END, NO_LINE_START, display_width, ljust, wrap_wide

REMEDY = (
    "让 Ollama 监听所有网络接口：运行 `sudo systemctl edit ollama`，然后运行 "
    "`sudo systemctl daemon-reload && sudo systemctl restart ollama`（不使用 systemd 时：用 "
    "`OLLAMA_HOST=0.0.0.0:11434 ollama serve` 启动）。见 http://127.0.0.1:11434/api/version。"
)


def test_columns() -> None:
    assert display_width("ok") == 2
    assert display_width("失败") == 4
    assert display_width("Ollama：正常") == 6 + 2 + 4
    assert ljust("失败", 6) == "失败  " and ljust("FAIL", 6) == "FAIL  "


@pytest.mark.parametrize("width", [30, 40, 57, 80, 100])
def test_lines_fit_and_keep_words_and_commands_whole(width: int) -> None:
    lines = wrap_text(REMEDY, width, "    ", "    ")
    for line in lines:
        assert display_width(line) <= width or " " not in line.strip(), line
        assert line[4:5] not in NO_LINE_START, line  # no line starts with closing punctuation
        assert line[-1] not in NO_LINE_END, line  # nor ends with opening punctuation
    joined = "".join(line[4:] for line in lines)
    for whole in ("http://127.0.0.1:11434/api/version", "OLLAMA_HOST=0.0.0.0:11434", "systemd"):
        assert whole in joined
    command = "`sudo systemctl daemon-reload && sudo systemctl restart ollama`"
    if width >= 70:  # a command that fits on a line is never broken
        assert any(command in line for line in lines)
    # nothing lost but the spaces where lines broke
    assert joined.replace(" ", "") == REMEDY.replace(" ", "")


def test_aligned_columns_and_leading_spaces_stay() -> None:
    row = "  失败  docker.engine        无法连接 Docker 引擎"
    assert wrap_wide(row, 100) == [row]


def test_english_text_takes_the_textwrap_path_unchanged() -> None:
    text = "Ollama answers at http://127.0.0.1:11434 and ollama list shows two models pulled"
    assert wrap_text(text, 30) == textwrap.wrap(
        text, 30, break_long_words=False, break_on_hyphens=False
    )
