"""Compose's variable substitution (`$VAR`, `${VAR}`, `${VAR:-default}`, `$$`, ...), nested.

The rules are Docker Compose v2's (compose-spec/compose-go `template`): `${A:-d}` / `${A-d}`
default when unset-or-empty / unset, `${A:+x}` / `${A+x}` replace when set-and-non-empty / set,
`${A:?msg}` / `${A?msg}` fail when unset-or-empty / unset, `$$` is a literal `$`, and a default
may itself hold substitutions (`${A:-${B:-c}}`), evaluated only when it is used. A `$` that
starts nothing (`$1`, `$ `, a trailing `$`) stays as it is; `${` without a valid name and `}`
is an error, as in Compose.

Compose v1 (docker-compose 1.29, Python) is different, and `substitute_v1` follows it: a
braced default runs to the first `}` and is taken literally (so `${A:-${B}}` gives the value
of `${B` plus a stray `}`: Dify 1.9.1's POSTGRES_USER comes out as `postgres}` under v1),
there is no `:+`/`+`, and a `$` that starts no valid template is an error.

One left-to-right scan with `str.find`; a default is scanned once to find its closing brace
and once more when it is used, one level deeper. Nesting is bounded (MAX_DEPTH), so the work
is at most MAX_DEPTH passes over the text: linear in its length, whatever it holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from handlers.results import HandlerError

MAX_DEPTH = 8  # ${A:-${B:-${C:-...}}}: Dify nests two levels; more is an error, not a hang

Lookup = Callable[[str], str | None]  # None: the variable is unset

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(HandlerError):
    """A template Compose itself would refuse (bad `${...}`, a `:?` variable unset, too deep)."""


def lookup_in(env: Mapping[str, str]) -> Lookup:
    return env.get


def substitute(text: str, lookup: Lookup, _depth: int = 0) -> str:
    """`text` with every substitution applied, the way Compose does it."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        nxt = text[j + 1] if j + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt == "{":
            value, i = _braced(text, j + 2, lookup, _depth)
            out.append(value)
        else:
            m = _NAME.match(text, j + 1)
            if m is None:
                out.append("$")  # not a template: Compose leaves it
                i = j + 1
            else:
                out.append(lookup(m.group()) or "")
                i = m.end()
    return "".join(out)


def _braced(text: str, start: int, lookup: Lookup, depth: int) -> tuple[str, int]:
    """Evaluate `${...}` whose name starts at `start`; return (value, index after `}`)."""
    m = _NAME.match(text, start)
    if m is None:
        raise InterpolationError(f"invalid template {_shown(text, start - 2)}")
    name, k = m.group(), m.end()
    if text.startswith("}", k):
        return lookup(name) or "", k + 1
    op = next((o for o in _OPS if text.startswith(o, k)), None)
    if op is None:
        raise InterpolationError(f"invalid template {_shown(text, start - 2)}")
    arg_start = k + len(op)
    end = _closing_brace(text, arg_start)
    if end < 0:
        raise InterpolationError(f"invalid template {_shown(text, start - 2)} (no closing brace)")
    arg = text[arg_start:end]
    if depth + 1 > MAX_DEPTH:
        raise InterpolationError(f"substitutions nested more than {MAX_DEPTH} deep")
    value = lookup(name)
    is_set, non_empty = value is not None, bool(value)

    def arg_value() -> str:
        return substitute(arg, lookup, depth + 1)

    if op == ":-":
        result = value if non_empty else arg_value()
    elif op == "-":
        result = value if is_set else arg_value()
    elif op == ":+":
        result = arg_value() if non_empty else (value or "")
    elif op == "+":
        result = arg_value() if is_set else ""
    else:  # ":?" / "?"
        if (op == ":?" and not non_empty) or (op == "?" and not is_set):
            reason = arg_value()
            raise InterpolationError(
                f"required variable {name} is missing a value" + (f": {reason}" if reason else "")
            )
        result = value
    return result or "", end + 1


def substitute_v1(text: str, lookup: Lookup) -> str:
    """`text` substituted the way Compose v1 (docker-compose 1.29) does it."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        nxt = text[j + 1] if j + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i = j + 2
            continue
        if nxt != "{":
            m = _NAME.match(text, j + 1)
            if m is None:
                raise InterpolationError(f"invalid interpolation format {_shown(text, j)}")
            out.append(lookup(m.group()) or "")
            i = m.end()
            continue
        m = _NAME.match(text, j + 2)
        close = text.find("}", j + 2)
        if m is None or close < 0:
            raise InterpolationError(f"invalid interpolation format {_shown(text, j)}")
        name, k = m.group(), m.end()
        op = next((o for o in (":-", ":?", "-", "?") if text.startswith(o, k)), "")
        if k != close and not op:
            raise InterpolationError(f"invalid interpolation format {_shown(text, j)}")
        arg = text[k + len(op) : close]
        value = lookup(name)
        if op == ":-":
            out.append(value or arg)
        elif op == "-":
            out.append(arg if value is None else value)
        elif op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise InterpolationError(f"required variable {name} is missing a value: {arg or name}")
        else:
            out.append(value or "")
        i = close + 1
    return "".join(out)


def substitute_with(flavour: str) -> Callable[[str, Lookup], str]:
    """The substitution of a Compose flavour: "v1" (docker-compose 1.x) or "v2"."""
    return substitute_v1 if flavour == "v1" else substitute


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose argument starts at `start` (braces nest)."""
    depth = 1
    i = start
    while True:
        close = text.find("}", i)
        if close < 0:
            return -1
        depth += text.count("{", i, close) - 1
        if depth <= 0:
            return close
        i = close + 1


def _shown(text: str, at: int, width: int = 40) -> str:
    snippet = text[max(at, 0) : max(at, 0) + width]
    return repr(snippet + ("..." if len(text) - at > width else ""))
