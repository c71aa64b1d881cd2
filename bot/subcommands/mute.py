"""`mute DURATION [FINDING]` and `unmute [FINDING]`: hold back the watch's alerts (all, or one
finding id) for a while. Operators only (it silences on-call), audited like every command; the
mutes are a file under STATE_DIR, so they survive a restart of the bot."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bot.render.limits import escape
from bot.render.watch import clock
from bot.subcommands import Context, Invocation, Registry, Subcommand, UsageError
from config.i18n import gettext as _
from handlers.history_timeline import parse_since, span
from handlers.watch_store import add_mute, remove_mutes

_FINDING = re.compile(r"[a-z][a-z0-9_]{0,30}\.[a-z][a-z0-9_]{0,30}")
MAX_MUTE = 7 * 86400.0


@dataclass(frozen=True)
class MuteOptions:
    seconds: float
    finding: str | None


def _shape(word: str) -> str:
    if not _FINDING.fullmatch(word):
        raise UsageError(
            _("{word} is not a finding id such as container.reach").format(
                word=f"`{escape(word[:60])}`"
            )
        )
    return word


def _finding(word: str) -> str:
    from handlers.probes import FINDING_IDS  # not in the ack path: it loads docker-py

    if word not in FINDING_IDS:
        raise UsageError(
            _("unknown finding id {word}; known: {known}").format(
                word=f"`{word}`", known=", ".join(FINDING_IDS)
            )
        )
    return word


def parse_mute(args: tuple[str, ...]) -> MuteOptions:
    if not args or len(args) > 2:
        raise UsageError(_("give a duration such as 30m, and optionally one finding id"))
    try:
        seconds = parse_since(args[0])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if seconds > MAX_MUTE:
        raise UsageError(_("a mute lasts at most 7 days"))
    return MuteOptions(seconds, _shape(args[1]) if len(args) == 2 else None)


def parse_unmute(args: tuple[str, ...]) -> str | None:
    if len(args) > 1:
        raise UsageError(_("unmute takes at most one finding id"))
    return _shape(args[0]) if args else None


def run_mute(invocation: Invocation, ctx: Context) -> str:
    options: MuteOptions = invocation.options
    finding = _finding(options.finding) if options.finding else None
    now = time.time()
    mute = add_mute(
        ctx.settings.state_path, finding, now + options.seconds, invocation.user_id, now
    )
    what = f"`{finding}`" if finding else _("every finding")
    ctx.reply(
        ":mute: "
        + _(
            "Watch alerts for {what} muted for {span} (until {time}) by {who}. "
            "`/dify-ollama unmute` lifts it."
        ).format(
            what=what,
            span=span(options.seconds),
            time=clock(mute.until),
            who=invocation.user_mention,
        )
    )
    return "ok"


def run_unmute(invocation: Invocation, ctx: Context) -> str:
    finding = _finding(invocation.options) if invocation.options else None
    lifted = remove_mutes(ctx.settings.state_path, finding, time.time())
    if not lifted:
        ctx.reply(
            _("Nothing was muted for {finding}.").format(finding=f"`{finding}`")
            if finding
            else _("Nothing was muted.")
        )
        return "nothing"
    names = ", ".join(f"`{m.finding}`" if m.finding else _("every finding") for m in lifted)
    ctx.reply(
        ":loud_sound: "
        + _("Unmuted {names} ({who}).").format(names=names, who=invocation.user_mention)
    )
    return "ok"


def register(registry: Registry) -> None:
    registry.add_subcommand(
        Subcommand(
            name="mute",
            usage="mute DURATION [FINDING]",
            summary=_("Hold back watch alerts (all, or one finding) for e.g. 30m"),
            mutating=True,
            run=run_mute,
            parse=parse_mute,
        )
    )
    registry.add_subcommand(
        Subcommand(
            name="unmute",
            usage="unmute [FINDING]",
            summary=_("Lift a mute of the watch's alerts"),
            mutating=True,
            run=run_unmute,
            parse=parse_unmute,
        )
    )
