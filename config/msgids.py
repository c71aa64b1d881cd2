"""Every message the code translates, found by parsing the source: the calls `_("...")`
(`from config.i18n import gettext as _`) and `ngettext("...", "...", n)`. A catalog is complete
when it has each of them and nothing else (tests/config/test_i18n_catalogs.py).

`python -m config.msgids > new.pot` prints them as a .po template: the start of a new
language's catalog (README: "Languages")."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "cli", "config", "handlers")
SINGULAR = "_"
PLURAL = "ngettext"


@dataclass(frozen=True)
class Message:
    msgid: str
    plural: str | None
    where: str  # path:line of its first use


class DynamicMessage(ValueError):
    """A translated message that is not a string literal: no catalog could list it."""


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
        # `i18n.ngettext(...)`; not some object's method of the same name
        return node.func.attr if node.func.value.id == "i18n" else None
    return None


def _literal(node: ast.expr, where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    raise DynamicMessage(f"{where}: a translated message must be a string literal")


def messages_in(path: Path, root: Path = ROOT) -> list[Message]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        where = f"{path.relative_to(root)}:{node.lineno}"
        if name == SINGULAR and len(node.args) == 1:
            found.append(Message(_literal(node.args[0], where), None, where))
        elif name == PLURAL and len(node.args) == 3:
            singular = _literal(node.args[0], where)
            found.append(Message(singular, _literal(node.args[1], where), where))
    return found


def extract(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Message]:
    """msgid -> its first use, over every module of the packages, in path order."""
    found: dict[str, Message] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for message in messages_in(path, root):
                found.setdefault(message.msgid, message)
    return found


def quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    lines = escaped.split("\n")
    parts = [line + "\\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    if len(parts) <= 1:
        return f'"{parts[0] if parts else ""}"'
    return '""\n' + "\n".join(f'"{p}"' for p in parts)


def template(messages: Iterable[Message]) -> str:
    out = [
        'msgid ""',
        'msgstr ""',
        '"Content-Type: text/plain; charset=UTF-8\\n"',
        '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"',
        "",
    ]
    for message in messages:
        out.append(f"#: {message.where}")
        out.append(f"msgid {quote(message.msgid)}")
        if message.plural is None:
            out.append('msgstr ""')
        else:
            out += [f"msgid_plural {quote(message.plural)}", 'msgstr[0] ""', 'msgstr[1] ""']
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(template(extract().values()))
