"""Arbitrary command lines through the real entry point (cli.main.main, in this process), with
the engine at a dead socket and Ollama at a closed port: every run ends with exit code 0, 1 or
2, never a traceback, and a usage or configuration error is said in one line (argparse's usage
block, when it prints one, comes before that line; `serve` names each bad setting on a line of
its own)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cli.main import build_parser, main
from tests.adversarial.conftest import examples


def _subcommands() -> dict[str, list[str]]:
    """Each subcommand's option strings, read from the real parser."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        name: sorted(opt for action in p._actions for opt in action.option_strings)
        for name, p in sub.choices.items()
    }


COMMANDS = _subcommands()
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# Values that broke parsers before, and their relatives.
NASTY = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-0",
    "1e309",
    "0",
    "-1",
    "5001",
    "9" * 5000,
    "-" + "9" * 50,
    "99999999999d",
    "0001-01-01",
    "9999-12-31T23:59:59",
    "1969-12-31",
    "1h30m",
    "10m",
    "",
    " ",
    "--",
    "-",
    "api",
    "apii",
    "../etc",
    "a;rm -rf /",
    "$(id)",
    "\x00",
    "\u202e",
    "é",
    "x" * 300,
    "--since=",
    "--grep=",
    "-s",
    "-g",
    "--wait=nan",
    "--only=",
    "--only=,,,",
]
TOKEN = st.one_of(
    st.sampled_from(NASTY),
    st.sampled_from(sorted({o for opts in COMMANDS.values() for o in opts})),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    # Any text but line breaks: argparse echoes an unknown argument as it is, so one holding a
    # newline prints as two lines (cli/main.py's parser: reported, not changed here).
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters=LINE_BREAKS),
        max_size=30,
    ),
)
# Plausible values, so that many command lines parse and run into the dead engine (exit 1).
PLAUSIBLE = ["api", "worker", "plugin_daemon", "100", "1", "10m", "2h", "timeout", "30", "5"]


def _argv(command: str) -> st.SearchStrategy[list[str]]:
    options = st.sampled_from(COMMANDS[command])
    plausible = st.sampled_from(PLAUSIBLE)
    # one_of picks its branches evenly: listed twice, the real options come up most.
    token = st.one_of(options, options, plausible, plausible, TOKEN)
    # `check` runs the probes (dead engine, closed Ollama port): about a second, so shorter.
    return st.lists(token, max_size=3 if command == "check" else 6).map(lambda t: [command, *t])


ARGV = st.sampled_from(sorted(COMMANDS)).flatmap(_argv)


@pytest.fixture(scope="module")
def dead_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Settings for a host where nothing answers; the bot's own env file is absent."""
    folder = tmp_path_factory.mktemp("cli-fuzz")
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(("SLACK_", "DIFY_", "OLLAMA_", "CHECK_", "FIX_", "OPERATORS")):
            del os.environ[key]
    os.environ.update(
        DOCKER_HOST="unix:///nonexistent/dify-ollama-fuzz.sock",
        OLLAMA_URL="http://127.0.0.1:9",
        CHECK_TIMEOUT="0.5",
        STATE_DIR=str(folder / "state"),
    )
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)
        os.environ.clear()
        os.environ.update(saved)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def _error_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage block (`usage: ...` and its indented continuation)."""
    lines, in_usage = [], False
    for line in stderr.split("\n"):  # not splitlines(): \x1e or \u2028 break no line on a terminal
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and (line.startswith(" ") or not line):
            continue
        in_usage = False
        if line.strip():
            lines.append(line)
    return lines


@settings(max_examples=examples(300))
@given(ARGV)
def test_any_command_line_exits_cleanly(dead_host: Path, argv: list[str]) -> None:
    code, out, err = run(argv)
    event(f"{argv[0]} exit {code}")  # pytest --hypothesis-show-statistics shows the spread
    assert code in (0, 1, 2), (argv, code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out, (argv, err[-2000:])
    if code == 2:
        errors = _error_lines(err)
        # One line per problem (serve lists every bad setting at once, one line each).
        assert errors and all(line.startswith("dify-ollama") for line in errors), (argv, err)
        assert len(errors) == 1 or argv[0] == "serve", (argv, err[-1000:])
    state = dead_host / "state"
    assert not state.exists() or not any(
        p.is_file() and p.name.endswith(".env") for p in state.rglob("*")
    )


def test_the_hostile_arguments_one_by_one(dead_host: Path) -> None:
    """The values that escaped as exceptions before, each on its own: exit 2, one line."""
    for argv in (
        ["logs", "--since", "99999999999d"],
        ["logs", "--since", "0001-01-01"],
        ["logs", "api", "9" * 5000],
        ["restart", "--wait", "nan"],
        ["restart", "--wait", "inf"],
        ["restart", "--wait", "-0"],
        ["restart", "--wait", "1e309"],
    ):
        code, _, err = run(argv)
        assert code == 2 and len(_error_lines(err)) == 1, (argv, err)
