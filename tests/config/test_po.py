"""config/po.py: the .po subset the catalogs use, and the .mo bytes the stdlib gettext reads."""

from __future__ import annotations

import gettext
import io

import pytest

from config import po

SAMPLE = r"""# a translator's comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=1; plural=0;\n"

#: bot/render/check.py:1
msgid "Ollama answers at {url}"
msgstr "Ollama 在 {url} 应答"

msgid ""
"two lines,\n"
"a \"quote\" and a \\ and a\ttab"
msgstr ""
"两行，\n"
"一个\"引号\"、一个 \\ 和一个\t制表符"

msgid "{count} problem"
msgid_plural "{count} problems"
msgstr[0] "{count} 个问题"

#, fuzzy
msgid "not reviewed"
msgstr "未审阅"

msgid "untranslated"
msgstr ""

msgctxt "button"
msgid "Fix"
msgstr "修复"
"""


def translations() -> gettext.GNUTranslations:
    return gettext.GNUTranslations(io.BytesIO(po.compile_mo(po.parse(SAMPLE))))


def test_entries_strings_continuations_and_escapes() -> None:
    entries = {e.msgid: e for e in po.parse(SAMPLE)}
    assert entries["Ollama answers at {url}"].msgstr == ["Ollama 在 {url} 应答"]
    two = entries['two lines,\na "quote" and a \\ and a\ttab']
    assert two.msgstr == ['两行，\n一个"引号"、一个 \\ 和一个\t制表符']
    assert entries["{count} problem"].msgid_plural == "{count} problems"
    assert entries["not reviewed"].fuzzy
    assert entries["Fix"].msgctxt == "button"
    assert entries[""].msgstr[0].startswith("Content-Type")


def test_compiled_catalog_reads_with_the_stdlib() -> None:
    t = translations()
    assert t.gettext("Ollama answers at {url}") == "Ollama 在 {url} 应答"
    assert t.gettext('two lines,\na "quote" and a \\ and a\ttab').startswith("两行，\n")
    assert t.ngettext("{count} problem", "{count} problems", 5) == "{count} 个问题"
    assert t.ngettext("{count} problem", "{count} problems", 1) == "{count} 个问题"
    assert t.pgettext("button", "Fix") == "修复"
    # fuzzy and untranslated entries fall back to the English in the code
    assert t.gettext("not reviewed") == "not reviewed"
    assert t.gettext("untranslated") == "untranslated"
    assert t.gettext("not in the catalog") == "not in the catalog"


def test_plural_forms_of_a_two_form_language() -> None:
    text = (
        'msgid ""\nmsgstr "Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgid "{n} file"\nmsgid_plural "{n} files"\n'
        'msgstr[0] "{n} Datei"\nmsgstr[1] "{n} Dateien"\n'
    )
    t = gettext.GNUTranslations(io.BytesIO(po.compile_mo(po.parse(text))))
    assert t.ngettext("{n} file", "{n} files", 1) == "{n} Datei"
    assert t.ngettext("{n} file", "{n} files", 2) == "{n} Dateien"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('msgid "a"\nmsgstr "b\\x"\n', "unknown escape"),
        ('msgid "a"\nmsgstr "b"c"\n', "unescaped quote"),
        ('msgid "a"\nmsgstr b\n', "expected a quoted string"),
        ('msgid "a"\n', "msgid without msgstr"),
        ('"orphan"\n', "continues no keyword"),
        ('msgid "a"\nmsgstr[1] "b"\n', "out of order"),
        ('msgid "a"\nmsgstr[x] "b"\n', "bad plural index"),
        ('msgid "a"\nmsgfoo "b"\n', "unknown keyword"),
    ],
)
def test_what_it_does_not_accept_names_the_line(text: str, problem: str) -> None:
    with pytest.raises(po.PoError, match=problem) as info:
        po.parse(text, "x.po")
    assert str(info.value).startswith("x.po:")


def test_entries_without_blank_lines_between_them() -> None:
    entries = po.parse(
        'msgid "a"\nmsgstr "1"\nmsgid "b"\nmsgstr "2"\n#: c\nmsgid "c"\nmsgstr "3"\n'
    )
    assert [(e.msgid, e.msgstr) for e in entries] == [("a", ["1"]), ("b", ["2"]), ("c", ["3"])]
