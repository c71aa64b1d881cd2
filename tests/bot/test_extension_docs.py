"""docs/bot-extension.md, followed to the letter: its example modules, dropped into
bot/subcommands/ and cli/commands/ (by extending the packages' search path, so the source tree
is never written), are found without being listed anywhere and answer through the running bot
and through `dify-ollama`. And a broken module is an error, never a silently missing command."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import bot.subcommands
import cli.commands
from bot.subcommands import load_registry
from cli.main import build_parser, main
from tests.bot.conftest import BotFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "bot-extension.md"
NO_ENGINE = "unix:///nonexistent/docker.sock"


def doc_modules() -> dict[str, str]:
    """The doc's complete example modules: python blocks whose first line names their file."""
    blocks = re.findall(r"```python\n(# ([\w/]+\.py)\n.*?)```", DOC.read_text(), flags=re.S)
    return {path: code for code, path in blocks}


def plug_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, package: ModuleType, files: dict[str, str]
) -> None:
    """Make `files` ({"x.py": source}) modules of `package`, as if they were in its folder."""
    folder = tmp_path / package.__name__.replace(".", "_")
    folder.mkdir()
    for name, code in files.items():
        (folder / name).write_text(code)
        module = f"{package.__name__}.{name.removesuffix('.py')}"
        monkeypatch.delitem(sys.modules, module, raising=False)  # imported afresh, then dropped
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    modules = doc_modules()
    assert set(modules) == {"bot/subcommands/hello.py", "cli/commands/hello.py"}
    plug_in(
        monkeypatch, tmp_path, bot.subcommands, {"hello.py": modules["bot/subcommands/hello.py"]}
    )
    plug_in(monkeypatch, tmp_path, cli.commands, {"hello.py": modules["cli/commands/hello.py"]})
    yield
    for name in ("bot.subcommands.hello", "cli.commands.hello"):
        sys.modules.pop(name, None)


def test_the_slack_example_answers_through_the_bot(examples: None, run_bot: BotFactory) -> None:
    registry = load_registry()
    assert registry.subcommands["hello"].summary == "Say hello and how the Docker engine is"
    running = run_bot(registry=registry, docker_host=NO_ENGINE)
    help_text = running.command("help").json()["text"]
    assert "`/dify-ollama hello [NAME]`" in help_text
    assert running.command("hello Ada", user="UADA").content == b""  # acked, then answered
    [posted] = running.slack.wait_for("chat.postMessage")
    assert posted.params["text"] == (
        "Hello Ada (asked by <@UADA>): Docker socket /nonexistent/docker.sock does not exist."
    )
    [line] = running.wait_audit(2)[1:]
    assert (line["command"], line["args"], line["outcome"]) == ("hello", ["Ada"], "ok")
    usage = running.command("hello Ada Lovelace").json()["text"]
    assert "hello takes at most one name" in usage and "`/dify-ollama hello [NAME]`" in usage


def test_the_terminal_example_answers_through_dify_ollama(
    examples: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no bot env file from wherever the tests run
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    assert "hello" in build_parser().format_help()
    assert main(["hello", "Ada"]) == 1
    assert capsys.readouterr().out == (
        "Hello Ada: Docker socket /nonexistent/docker.sock does not exist.\n"
    )


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ('"""A module that forgot register."""\n', "has no register"),
        ("import no_such_module_anywhere\n", "no_such_module_anywhere"),
    ],
)
def test_a_broken_module_is_an_error_not_a_missing_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: str, error: str
) -> None:
    plug_in(monkeypatch, tmp_path, bot.subcommands, {"broken.py": code})
    plug_in(monkeypatch, tmp_path, cli.commands, {"broken.py": code})
    with pytest.raises(ImportError, match=error):
        load_registry()
    with pytest.raises(ImportError, match=error):
        build_parser()
    for name in ("bot.subcommands.broken", "cli.commands.broken"):
        sys.modules.pop(name, None)
