"""The language of every user-facing text (Slack and CLI): gettext catalogs, one .po file per
language in config/locales/<ll_CC>/LC_MESSAGES/dify_ollama.po, compiled in memory by
config.po when the language is chosen. English is the text in the code (no catalog).

Choosing the language is cheap on purpose (`--help` must not load the settings model):
`from_argv_or_env` reads the `--lang` flag or BOT_LANGUAGE directly; the settings validate
BOT_LANGUAGE with `normalize` and are the authoritative check.

One process speaks one language (the bot answers in BOT_LANGUAGE): `use` sets it for all
threads. Messages with values use named placeholders, `_("at {url}").format(url=...)`, so a
translation may put them in another order."""

from __future__ import annotations

import gettext as stdlib_gettext
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from config import po

DOMAIN = "dify_ollama"
DEFAULT = "en"
ENV_VAR = "BOT_LANGUAGE"
FLAG = "--lang"
LOCALES = Path(__file__).with_name("locales")

_translations: stdlib_gettext.NullTranslations = stdlib_gettext.NullTranslations()
_current = DEFAULT


class UnknownLanguage(ValueError):
    """A language code with no catalog; the message lists the ones there are."""


def code_of(folder: str) -> str:
    """`zh_CN` (the folder, gettext's spelling) -> `zh-CN` (what people type)."""
    return folder.replace("_", "-")


def catalog_path(code: str) -> Path:
    return LOCALES / code.replace("-", "_") / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def available() -> tuple[str, ...]:
    """`en` and every language that has a catalog: adding a language is adding a file."""
    found = sorted(
        code_of(p.parent.parent.name) for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")
    )
    return (DEFAULT, *found)


def normalize(value: str) -> str:
    """The canonical code for `value` (case and `_`/`-` do not matter), or UnknownLanguage."""
    wanted = value.strip().replace("_", "-").lower()
    for code in available():
        if code.lower() == wanted:
            return code
    # The value is not echoed: settings errors never repeat what was typed.
    raise UnknownLanguage(f"must be one of {', '.join(available())}")


@cache
def translations(code: str) -> stdlib_gettext.NullTranslations:
    if code == DEFAULT:
        return stdlib_gettext.NullTranslations()
    return stdlib_gettext.GNUTranslations(io.BytesIO(po.compile_mo(po.read(catalog_path(code)))))


def use(code: str) -> str:
    """Speak `code` (any spelling `normalize` accepts) from now on; returns the previous code."""
    global _translations, _current
    canonical = normalize(code)
    previous = _current
    _translations, _current = translations(canonical), canonical
    return previous


def current() -> str:
    return _current


@contextmanager
def language(code: str) -> Iterator[str]:
    """`code` for the duration of a block (tests, one CLI run in a process that goes on)."""
    previous = use(code)
    try:
        yield current()
    finally:
        use(previous)


def gettext(message: str) -> str:
    """The message in the current language (import it as `_`; the catalog test finds it)."""
    return _translations.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return _translations.ngettext(singular, plural, count)


def flag_value(words: Sequence[str]) -> str | None:
    """The value of a top-level `--lang X` / `--lang=X`: only before the subcommand, as the
    parser reads it (a later `--lang` is some subcommand's argument, e.g. a grep text)."""
    for index, word in enumerate(words):
        if word == FLAG:
            return words[index + 1] if index + 1 < len(words) else None
        if word.startswith(FLAG + "="):
            return word[len(FLAG) + 1 :]
        if not word.startswith("-"):
            return None
    return None


def from_argv_or_env(words: Sequence[str], environ: Mapping[str, str] | None = None) -> str:
    """The language a CLI run starts in: the flag, else BOT_LANGUAGE, else English. An unknown
    value starts in English; the parser (flag) or the settings (variable) then reject it."""
    environ = os.environ if environ is None else environ
    for value in (flag_value(words), environ.get(ENV_VAR)):
        if value:
            try:
                return normalize(value)
            except UnknownLanguage:
                return DEFAULT
    return DEFAULT
