"""Entry point of the `dify-ollama` console script.

Exit codes: 0 nothing failed, 1 something failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from config.settings import ConfigError, load_settings

# Subcommand modules in cli/commands/, in help order. Each module defines
# `register(subparsers)`, which adds its parser and sets `func=run(args, settings) -> int`.
COMMANDS = ("check", "fix_env", "restart", "logs", "serve")

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dify-ollama",
        description="Diagnose and repair a self-hosted Dify talking to Ollama on the same host.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cli.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cli.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
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
