"""argparse's own error texts in the current language.

argparse translates through the stdlib's global gettext domain, which has no catalog here, so
its messages arrive in English ("argument COMMAND: invalid choice: 'x' (choose from ...)").
`translate` takes such a message apart with plain string operations (no regular expression
sees the user's text) and rebuilds it from our catalog's templates; a message it does not know
comes back unchanged. In English the rebuilt text equals the original."""

from __future__ import annotations

from config.i18n import gettext as _
from config.i18n import ngettext


def _after(text: str, prefix: str) -> str | None:
    return text[len(prefix) :] if text.startswith(prefix) else None


def _expected(text: str) -> str | None:
    """`expected N argument(s)` (argparse's ngettext), N a small number."""
    words = text.split(" ")
    if (
        len(words) == 3
        and words[0] == "expected"
        and words[2] in ("argument", "arguments")
        and words[1].isdigit()
        and len(words[1]) <= 6
    ):
        count = int(words[1])
        template = ngettext("expected {count} argument", "expected {count} arguments", count)
        return template.format(count=count)
    return None


def problem(text: str) -> str:
    """One of argparse's messages without the `argument NAME: ` part."""
    exact = {
        "expected one argument": _("expected one argument"),
        "expected at most one argument": _("expected at most one argument"),
        "expected at least one argument": _("expected at least one argument"),
    }
    if text in exact:
        return exact[text]
    if (rest := _after(text, "invalid choice: ")) is not None and rest.endswith(")"):
        value, found, choices = rest[:-1].rpartition(" (choose from ")
        if found:
            return _("invalid choice: {value} (choose from {choices})").format(
                value=value, choices=choices
            )
    if (rest := _after(text, "invalid ")) is not None and " value: " in rest:
        kind, _sep, value = rest.partition(" value: ")
        if kind.isidentifier():
            return _("invalid {type} value: {value}").format(type=kind, value=value)
    prefixed = (
        (
            "the following arguments are required: ",
            _("the following arguments are required: {names}"),
        ),
        ("unrecognized arguments: ", _("unrecognized arguments: {names}")),
        ("not allowed with argument ", _("not allowed with argument {names}")),
        ("ignored explicit argument ", _("ignored explicit argument {names}")),
    )
    for prefix, template in prefixed:
        if (rest := _after(text, prefix)) is not None:
            return template.format(names=rest)
    if (rest := _after(text, "one of the arguments ")) is not None and rest.endswith(
        " is required"
    ):
        return _("one of the arguments {names} is required").format(
            names=rest.removesuffix(" is required")
        )
    if (rest := _after(text, "ambiguous option: ")) is not None and " could match " in rest:
        option, _sep, matches = rest.partition(" could match ")
        return _("ambiguous option: {option} could match {matches}").format(
            option=option, matches=matches
        )
    return _expected(text) or text


def translate(message: str) -> str:
    """An argparse error message (as `ArgumentParser.error` receives it) in our language."""
    rest = _after(message, "argument ")
    if rest is not None and ": " in rest:
        name, _sep, text = rest.partition(": ")
        return _("argument {name}: {problem}").format(name=name, problem=problem(text))
    return problem(message)
