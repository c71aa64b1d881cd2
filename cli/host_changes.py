"""`fix-env --host NAME` and `restart --host NAME`: the host's own CLI changes that host.

The confirmation stays the CLI's: fix-env shows the plan the host made and saved, and only
`--apply PLAN_ID` (that exact plan, applied by the host) changes anything, so `--yes` is
refused with `--host`: a remote plan is seen before it is applied. One host at a time: `--host
all` is refused for both. The host's lock, backup, undo and history are its own; its backups
and locks name the SSH account the bot's key logs in as.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cli.hosts import EXIT_USAGE, on_one_host
from cli.output import fit, print_report

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.transport import Answer

ONE_AT_A_TIME = "is refused for changes: change one host at a time (--host NAME)"


def _usage(command: str, message: str) -> int:
    print(f"dify-ollama {command}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _indented(lines: list[str]) -> str:
    return fit("\n".join(f"  {line}" for line in lines))


def _strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    return [str(v) for v in value] if isinstance(value, list) else []


# --- fix-env ------------------------------------------------------------------------------------
def fix_env_on_host(args: argparse.Namespace, settings: Settings) -> int:
    """`fix-env --host NAME [--apply PLAN_ID | --undo [BACKUP_ID]]`, after the local checks of
    the flags' combinations."""
    if args.host == "all":
        return _usage("fix-env", f"--host all {ONE_AT_A_TIME}")
    if args.yes:
        return _usage(
            "fix-env",
            f"--yes does not go with --host: run `dify-ollama fix-env --host {args.host}` to "
            "see the host's plan, then apply it with the `--apply PLAN_ID` it shows",
        )
    if args.restart:
        return _usage(
            "fix-env",
            f"--restart does not go with --host: run `dify-ollama restart --host {args.host}` "
            "afterwards",
        )
    if args.force:
        return _usage(
            "fix-env", "--undo --force is not sent over --host: run it on the host itself"
        )
    if args.undo:
        backup = None if args.undo == "latest" else args.undo
        answer = on_one_host(args, settings, "fix-env", lambda tr: tr.fix_env("undo", backup), "")
        return answer if isinstance(answer, int) else _undone(args, answer)
    if args.apply:
        plan_id = args.apply
        answer = on_one_host(args, settings, "fix-env", lambda tr: tr.fix_env("apply", plan_id), "")
        return answer if isinstance(answer, int) else _applied(args, answer)
    answer = on_one_host(args, settings, "fix-env", lambda tr: tr.fix_env("plan"), "")
    return answer if isinstance(answer, int) else _planned(args, answer)


def _planned(args: argparse.Namespace, answer: Answer) -> int:
    from handlers.fix_model import Plan

    assert answer.data is not None
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    try:
        plan = Plan.from_json(answer.data)
    except (TypeError, ValueError, KeyError):
        return _usage_error_from(answer, "did not answer with a fix-env plan")
    print(f"Host {answer.host}:")
    print(fit(plan.render()))
    if plan.has_changes:
        print(
            fit(
                f"\nNothing was changed. Apply this plan on {answer.host} with "
                f"`dify-ollama fix-env --host {answer.host} --apply {plan.id}`."
            )
        )
    return answer.exit_code


def _usage_error_from(answer: Answer, what: str) -> int:
    print(f"dify-ollama fix-env: {answer.host} {what}", file=sys.stderr)
    return answer.exit_code or 1


def _restart_needed(host: str) -> None:
    print(
        fit(
            "\nThe running containers still have the old configuration: run "
            f"`dify-ollama restart --host {host}` to recreate the affected services and verify."
        )
    )


def _applied(args: argparse.Namespace, answer: Answer) -> int:
    assert answer.data is not None
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    applied = answer.data.get("applied")
    if not isinstance(applied, dict):
        return _usage_error_from(answer, "did not say what it applied")
    print(f"Applied fix-env plan {applied.get('plan_id', '?')} on {answer.host}:")
    lines = [f"changed: {c}" for c in _strings(applied, "changed")]
    lines += [f"warning: {w}" for w in _strings(applied, "warnings")]
    backup = applied.get("backup_id", "")
    lines.append(
        f"backup: {applied.get('backup_dir', '?')} on {answer.host} "
        f"(undo: `dify-ollama fix-env --host {answer.host} --undo {backup}`)"
    )
    print(_indented(lines))
    _restart_needed(answer.host)
    return answer.exit_code


def _undone(args: argparse.Namespace, answer: Answer) -> int:
    assert answer.data is not None
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    data = answer.data
    if "error" in data:  # files changed there after the fix: the host's CLI refused
        print("Changed since the fix (secrets masked):")
        print(str(data.get("diff", "")))
        print(f"\nTo restore the backup over those changes, on {answer.host}: {data.get('force')}")
        print(f"dify-ollama fix-env: {answer.host}: {data['error']}", file=sys.stderr)
        return answer.exit_code or 1
    print(f"Undone fix-env backup {data.get('backup_id', '?')} on {answer.host}:")
    lines = [f"restored: {r}" for r in _strings(data, "restored")]
    lines += [f"warning: {w}" for w in _strings(data, "warnings")]
    if data.get("safety_copy"):
        lines.append(f"the state before this undo is saved in {data['safety_copy']}")
    print(_indented(lines))
    _restart_needed(answer.host)
    return answer.exit_code


# --- restart ------------------------------------------------------------------------------------
def restart_on_host(args: argparse.Namespace, settings: Settings, default_wait: str) -> int:
    """`restart --host NAME [SERVICE...]`: the host recreates (or restarts the named services),
    waits and re-checks with its own defaults; the exit code is its verdict."""
    from handlers.transport import Answer, as_report

    if args.host == "all":
        return _usage("restart", f"--host all {ONE_AT_A_TIME}")
    if args.all:
        return _usage("restart", "--all runs on this machine only; name services instead")
    if args.no_check or args.wait != default_wait:
        return _usage(
            "restart", "--wait and --no-check are not sent over --host (the host's defaults apply)"
        )
    services = tuple(args.services)
    answer = on_one_host(args, settings, "restart", lambda tr: tr.restart(services), "")
    if isinstance(answer, int):
        return answer
    assert answer.data is not None
    if args.json:
        print(json.dumps(answer.data, indent=2))
        return answer.exit_code
    restart = answer.data.get("restart")
    restart = restart if isinstance(restart, dict) else {}
    lines = [f"$ {c}" for c in _strings(restart, "commands")]
    for outcome in restart.get("outcomes") or ():
        if isinstance(outcome, dict):
            lines.append(
                f"{outcome.get('service')}: {outcome.get('action')} ({outcome.get('state')})"
            )
    if restart.get("not_ready"):
        lines.append("not ready in time: " + ", ".join(_strings(restart, "not_ready")))
    lines += _strings(restart, "notes")
    print(f"Restart on {answer.host}:")
    print(_indented(lines))
    check = answer.data.get("check")
    if isinstance(check, dict):
        print()
        print(f"Host {answer.host}:")
        print_report(as_report(Answer(answer.host, answer.exit_code, check)))
    return answer.exit_code
