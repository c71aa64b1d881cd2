"""Entry point of the `dify-ollama` console script.

Exit codes: 0 nothing failed, 1 something failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import cli.commands
from cli import argparse_text
from cli.redaction import protect_output, warm
from config import i18n
from config.i18n import gettext as _

# Static text only: printing it needs no secret set (and must stay fast).
INFO_FLAGS = frozenset({"-h", "--help", "--version"})

EXIT_USAGE = 2


def command_modules() -> list[str]:
    """Every module in cli/commands/, in name order: each one is a subcommand. Its
    `register(subparsers)` adds its parser and sets `func=run(args, settings) -> int`."""
    found = pkgutil.iter_modules(cli.commands.__path__)
    return [f"cli.commands.{m.name}" for m in sorted(found, key=lambda m: m.name)]


class _VersionAction(argparse.Action):
    """`--version`, reading the package metadata only when asked (not on every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        from config.version import version

        print(f"{parser.prog} {version()}")  # stdout, as argparse's own version action
        parser.exit()


def language_flag(value: str) -> str:
    try:
        return i18n.normalize(value)
    except i18n.UnknownLanguage as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.HelpFormatter):
    def add_usage(
        self, usage: str | None, actions: object, groups: object, prefix: str | None = None
    ) -> None:
        super().add_usage(usage, actions, groups, _("usage: ") if prefix is None else prefix)  # type: ignore[arg-type]


class Parser(argparse.ArgumentParser):
    """argparse with our texts translated: the usage prefix and the error line (argparse's own
    explanations after "error:" stay English)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs["add_help"] = False  # added below, with its help text translated
        super().__init__(*args, **kwargs)
        # argparse's own titles come from its gettext domain, which has no catalog here.
        self._positionals.title = _("positional arguments")
        self._optionals.title = _("options")
        self.add_argument("-h", "--help", action="help", help=_("show this help message and exit"))

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        text = argparse_text.translate(message)
        self.exit(EXIT_USAGE, _("{prog}: error: {message}\n").format(prog=self.prog, message=text))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dify-ollama",
        description=_("Diagnose and repair a self-hosted Dify talking to Ollama on the same host."),
    )
    parser.add_argument(
        "--version", action=_VersionAction, help=_("print the installed version and exit")
    )
    parser.add_argument(
        i18n.FLAG,
        type=language_flag,
        default=None,
        metavar="|".join(i18n.available()),
        help=_("language of this run's output (default: BOT_LANGUAGE, else en)"),
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    for name in command_modules():
        register = getattr(importlib.import_module(name), "register", None)
        if not callable(register):
            raise ImportError(f"{name} has no register(subparsers) function")
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # Help and argument errors speak the language already: read cheaply, before the parser.
    with i18n.language(i18n.from_argv_or_env(words)):
        return run(words)


def run(words: list[str]) -> int:
    if not INFO_FLAGS.intersection(words):
        protect_output()  # before anything can echo what was typed
    parser = build_parser()
    args = parser.parse_args(words)
    # After parsing: `--help` never pays for loading the configuration.
    from config.settings import ConfigError, load_settings

    try:
        # Only the settings this command uses are validated (it declares them).
        settings = load_settings(getattr(args, "settings_used", None))
    except ConfigError as exc:
        print(_("dify-ollama: configuration error: {error}").format(error=exc), file=sys.stderr)
        return EXIT_USAGE
    # The settings may name the language in the bot's env file; the flag wins.
    i18n.use(args.lang or settings.bot_language)
    warm(settings)
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        print(_("dify-ollama: interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
