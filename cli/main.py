"""Entry point of the `dify-ollama` console script.

Exit codes: 0 nothing failed, 1 something failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import cli.commands
from cli.redaction import protect_output
from config.settings import ConfigError, load_settings
from config.version import version

EXIT_USAGE = 2


def command_modules() -> list[str]:
    """Every module in cli/commands/, in name order: each one is a subcommand. Its
    `register(subparsers)` adds its parser and sets `func=run(args, settings) -> int`."""
    found = pkgutil.iter_modules(cli.commands.__path__)
    return [f"cli.commands.{m.name}" for m in sorted(found, key=lambda m: m.name)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dify-ollama",
        description="Diagnose and repair a self-hosted Dify talking to Ollama on the same host.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_modules():
        register = getattr(importlib.import_module(name), "register", None)
        if not callable(register):
            raise ImportError(f"{name} has no register(subparsers) function")
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    protect_output()  # before anything can echo what was typed
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Only the settings this command uses are validated (it declares them).
        settings = load_settings(getattr(args, "settings_used", None))
    except ConfigError as exc:
        print(f"dify-ollama: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args, settings))
    except KeyboardInterrupt:
        print("dify-ollama: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
