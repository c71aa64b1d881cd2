"""`fix-env --host NAME` and `restart --host NAME`: the host's own CLI changes that host.

The confirmation stays the CLI's: fix-env shows the plan the host made and saved, and only
`--apply PLAN_ID` (that exact plan, applied by the host) changes anything, so `--yes` is
refused with `--host`: a remote plan is seen before it is applied. `restart --all` needs
`--yes-really` here as on this machine (checked before anything is sent). One host at a time:
`--host all` is refused for both. The host's lock, backup, undo and history are its own; its
backups and locks name the SSH account the bot's key logs in as.

Texts that come from the host (its plan's lines, notes, warnings, errors) are already in the
host's language (the bot's, passed over SSH); only the lines written here are translated.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from cli.hosts import host_line, on_one_host, usage
from cli.output import fit, print_report
from config.i18n import gettext as _

# What a plan or backup id looks like (as the host printed it); the forced command on the host
# (scripts/dify-ollama-ssh-command, its _NAME) refuses anything else, with a message about
# the forced command that would mislead here.
ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

if TYPE_CHECKING:
    from config.settings import Settings
    from handlers.transport import Answer


def one_at_a_time() -> str:
    return _("--host all is refused for changes: change one host at a time (--host NAME)")


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
        return usage("fix-env", one_at_a_time())
    if args.yes:
        return usage(
            "fix-env",
            _(
                "--yes does not go with --host: run `dify-ollama fix-env --host {host}` to see "
                "the host's plan, then apply it with the `--apply PLAN_ID` it shows"
            ).format(host=args.host),
        )
    if args.restart:
        return usage(
            "fix-env",
            _(
                "--restart does not go with --host: run `dify-ollama restart --host {host}` "
                "afterwards"
            ).format(host=args.host),
        )
    if args.force:
        return usage(
            "fix-env", _("--undo --force is not sent over --host: run it on the host itself")
        )
    for flag, value in (("--apply", args.apply), ("--undo", args.undo)):
        if value and value != "latest" and not ID_SHAPE.fullmatch(value):
            return usage(
                "fix-env",
                _(
                    "{flag} takes the id the host printed (letters, digits, '.', '_', '-'): "
                    "{value} is not one"
                ).format(flag=flag, value=repr(value[:60])),
            )
    if args.undo:
        backup = None if args.undo == "latest" else args.undo
        answered = on_one_host(args, settings, "fix-env", lambda tr: tr.fix_env("undo", backup), "")
        return answered if isinstance(answered, int) else _undone(*answered)
    if args.apply:
        plan_id = args.apply
        answered = on_one_host(
            args, settings, "fix-env", lambda tr: tr.fix_env("apply", plan_id), ""
        )
        return answered if isinstance(answered, int) else _applied(*answered)
    answered = on_one_host(args, settings, "fix-env", lambda tr: tr.fix_env("plan"), "")
    return answered if isinstance(answered, int) else _planned(*answered)


def _planned(answer: Answer, data: dict[str, Any]) -> int:
    from handlers.fix_model import Plan

    try:
        plan = Plan.from_json(data)
    except (TypeError, ValueError, KeyError):
        return _not_understood(answer, _("{host} did not answer with a fix-env plan"))
    print(host_line(answer.host))
    print(fit(plan.render()))
    if plan.has_changes:
        print(
            fit(
                "\n"
                + _(
                    "Nothing was changed. Apply this plan on {host} with "
                    "`dify-ollama fix-env --host {host} --apply {plan_id}`."
                ).format(host=answer.host, plan_id=plan.id)
            )
        )
    return answer.exit_code


def _not_understood(answer: Answer, message: str) -> int:
    import sys

    error = message.format(host=answer.host)
    print(_("dify-ollama fix-env: {error}").format(error=error), file=sys.stderr)
    return answer.exit_code or 1


def _restart_needed(host: str) -> None:
    print(
        fit(
            "\n"
            + _(
                "The running containers still have the old configuration: run "
                "`dify-ollama restart --host {host}` to recreate the affected services and "
                "verify."
            ).format(host=host)
        )
    )


def _applied(answer: Answer, data: dict[str, Any]) -> int:
    applied = data.get("applied")
    if not isinstance(applied, dict):
        return _not_understood(answer, _("{host} did not say what it applied"))
    print(
        _("Applied fix-env plan {plan_id} on {host}:").format(
            plan_id=applied.get("plan_id", "?"), host=answer.host
        )
    )
    lines = [_("changed: {what}").format(what=c) for c in _strings(applied, "changed")]
    lines += [_("warning: {what}").format(what=w) for w in _strings(applied, "warnings")]
    lines.append(
        _(
            "backup: {folder} on {host} (undo: `dify-ollama fix-env --host {host} --undo "
            "{backup_id}`)"
        ).format(
            folder=applied.get("backup_dir", "?"),
            host=answer.host,
            backup_id=applied.get("backup_id", ""),
        )
    )
    print(_indented(lines))
    _restart_needed(answer.host)
    return answer.exit_code


def _undone(answer: Answer, data: dict[str, Any]) -> int:
    import sys

    if "error" in data:  # files changed there after the fix: the host's CLI refused
        print(_("Changed since the fix (secrets masked):"))
        print(str(data.get("diff", "")))
        print(
            "\n"
            + _("To restore the backup over those changes, on {host}: {command}").format(
                host=answer.host, command=data.get("force")
            )
        )
        print(
            _("dify-ollama {command}: {host}: {error}").format(
                command="fix-env", host=answer.host, error=data["error"]
            ),
            file=sys.stderr,
        )
        return answer.exit_code or 1
    print(
        _("Undone fix-env backup {id} on {host}:").format(
            id=data.get("backup_id", "?"), host=answer.host
        )
    )
    lines = [_("restored: {what}").format(what=r) for r in _strings(data, "restored")]
    lines += [_("warning: {what}").format(what=w) for w in _strings(data, "warnings")]
    if data.get("safety_copy"):
        lines.append(
            _("the state before this undo is saved in {path}").format(path=data["safety_copy"])
        )
    print(_indented(lines))
    _restart_needed(answer.host)
    return answer.exit_code


# --- restart ------------------------------------------------------------------------------------
def restart_on_host(args: argparse.Namespace, settings: Settings, wait: float | None) -> int:
    """`restart --host NAME [SERVICE... | --all --yes-really] [--wait S] [--no-check]`, after
    the same checks of the flags as on this machine: the host recreates (or restarts the named
    services, or all of them), waits (`wait`, else its default) and re-checks unless told not
    to; the exit code is its verdict."""
    from handlers.restart import DEFAULT_WAIT
    from handlers.transport import Answer, as_report

    if args.host == "all":
        return usage("restart", one_at_a_time())
    services = tuple(args.services)
    everything, verify = bool(args.all), not args.no_check
    answered = on_one_host(
        args,
        settings,
        "restart",
        lambda tr: tr.restart(services, everything=everything, wait=wait, verify=verify),
        "",
        longer=DEFAULT_WAIT if wait is None else wait,
    )
    if isinstance(answered, int):
        return answered
    answer, data = answered
    restart = data.get("restart")
    restart = restart if isinstance(restart, dict) else {}
    lines = [f"$ {c}" for c in _strings(restart, "commands")]
    for outcome in restart.get("outcomes") or ():
        if isinstance(outcome, dict):
            lines.append(
                f"{outcome.get('service')}: {outcome.get('action')} ({outcome.get('state')})"
            )
    if restart.get("not_ready"):
        lines.append(
            _("not ready in time: {services}").format(
                services=", ".join(_strings(restart, "not_ready"))
            )
        )
    lines += _strings(restart, "notes")
    print(_("Restart on {host}:").format(host=answer.host))
    print(_indented(lines))
    check = data.get("check")
    if isinstance(check, dict):
        print()
        print(host_line(answer.host))
        print_report(as_report(Answer(answer.host, answer.exit_code, check)))
    return answer.exit_code
