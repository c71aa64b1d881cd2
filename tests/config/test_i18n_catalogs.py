"""Every catalog against the code (no engine): it has every message the code translates, none
the code no longer uses, each translated, and each keeps the msgid's `{placeholders}`."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

from config import i18n, msgids, po

LANGUAGES = [code for code in i18n.available() if code != i18n.DEFAULT]


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.fixture(scope="module")
def used() -> dict[str, msgids.Message]:
    return msgids.extract()


def catalog(code: str) -> dict[str, po.Entry]:
    return {e.msgid: e for e in po.read(i18n.catalog_path(code)) if e.msgid}


def test_there_is_a_chinese_catalog() -> None:
    assert "zh-CN" in LANGUAGES
    assert i18n.catalog_path("zh-CN") == (
        Path(i18n.__file__).parent / "locales/zh_CN/LC_MESSAGES/dify_ollama.po"
    )


def test_the_code_translates_messages_with_named_placeholders_only(
    used: dict[str, msgids.Message],
) -> None:
    assert len(used) > 100
    positional = [m.where for m in used.values() if "" in fields(m.msgid)]
    assert positional == [], "use {name} placeholders, never {}"
    for message in used.values():
        for name in fields(message.msgid):
            assert name.isidentifier(), f"{message.where}: placeholder {{{name}}}"


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalog_has_every_message_the_code_uses(
    code: str, used: dict[str, msgids.Message]
) -> None:
    have = catalog(code)
    missing = [m for m in used.values() if m.msgid not in have]
    assert missing == [], "add to the catalog:\n" + msgids.template(missing)


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalog_has_no_stale_message(code: str, used: dict[str, msgids.Message]) -> None:
    stale = sorted(set(catalog(code)) - set(used))
    assert stale == [], "the code no longer uses these: remove them from the catalog"


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_message_translated_with_its_placeholders(code: str) -> None:
    for msgid, entry in catalog(code).items():
        assert not entry.fuzzy, f"fuzzy: {msgid!r}"
        assert all(entry.msgstr), f"untranslated: {msgid!r}"
        wanted = fields(msgid) | fields(entry.msgid_plural or "")
        for text in entry.msgstr:
            assert fields(text) == wanted, f"placeholders differ: {msgid!r} -> {text!r}"
        # the same line structure keeps multi-line remedies and code blocks intact
        assert all(text.count("\n") == msgid.count("\n") for text in entry.msgstr), msgid


@pytest.mark.parametrize("code", LANGUAGES)
def test_plural_entries_match_the_code(code: str, used: dict[str, msgids.Message]) -> None:
    for msgid, entry in catalog(code).items():
        message = used.get(msgid)
        if message is not None:
            assert entry.msgid_plural == message.plural, msgid


def test_the_scan_fails_on_a_message_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("from config.i18n import gettext as _\n_(f'at {url}')\n")
    with pytest.raises(msgids.DynamicMessage, match=r"m\.py:2"):
        msgids.messages_in(tmp_path / "m.py", tmp_path)


def test_the_scan_finds_singular_and_plural_calls(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from config.i18n import gettext as _, ngettext\n"
        "x = _('one {a}').format(a=1)\n"
        "y = ngettext('{n} file', '{n} files', 2)\n"
        "z = i18n.ngettext('{n} dir', '{n} dirs', 2)\n"
    )
    found = {m.msgid: m.plural for m in msgids.messages_in(tmp_path / "m.py", tmp_path)}
    assert found == {"one {a}": None, "{n} file": "{n} files", "{n} dir": "{n} dirs"}


def test_template_round_trips_through_the_reader(used: dict[str, msgids.Message]) -> None:
    entries = po.parse(msgids.template(used.values()))
    assert {e.msgid for e in entries if e.msgid} == set(used)


def test_package_data_ships_every_catalog() -> None:
    import tomllib

    project = tomllib.loads((msgids.ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["config"]
    config_dir = msgids.ROOT / "config"
    for catalog_file in config_dir.glob("locales/**/*.po"):
        relative = catalog_file.relative_to(config_dir)
        assert any(relative.match(p) for p in patterns), relative


def test_language_codes_and_choice() -> None:
    assert i18n.normalize("zh_cn") == "zh-CN"
    assert i18n.normalize(" EN ") == "en"
    with pytest.raises(i18n.UnknownLanguage, match="must be one of en, zh-CN"):
        i18n.normalize("fr")
    assert i18n.flag_value(["--lang", "zh-CN", "check"]) == "zh-CN"
    assert i18n.flag_value(["--lang=zh-CN", "check"]) == "zh-CN"
    # after the subcommand it is that command's word (a grep text), not the language
    assert i18n.flag_value(["logs", "--grep", "--lang"]) is None
    assert i18n.from_argv_or_env([], {"BOT_LANGUAGE": "zh-cn"}) == "zh-CN"
    assert i18n.from_argv_or_env(["--lang", "en"], {"BOT_LANGUAGE": "zh-CN"}) == "en"
    assert i18n.from_argv_or_env([], {"BOT_LANGUAGE": "xx"}) == "en"


def test_language_block_restores_the_previous_one() -> None:
    assert i18n.current() == "en"
    with i18n.language("zh-CN"):
        assert i18n.current() == "zh-CN"
        assert i18n.gettext("usage: ") != "usage: "
    assert i18n.current() == "en"
    assert i18n.gettext("usage: ") == "usage: "


def _binds_underscore(function: ast.AST) -> bool:
    """Whether the function itself (not a comprehension or a nested function inside it)
    assigns `_`: then every `_()` in it is an UnboundLocalError."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            continue
        if isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store):
            return True
        stack.extend(ast.iter_child_nodes(node))
    return False


def test_no_function_that_translates_also_assigns_underscore() -> None:
    offenders = []
    for package in msgids.PACKAGES:
        for path in sorted((msgids.ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                calls = any(
                    isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_"
                    for n in ast.walk(node)
                )
                if calls and _binds_underscore(node):
                    offenders.append(f"{path.relative_to(msgids.ROOT)}:{node.lineno}")
    assert offenders == [], "rename the `_` variable (e.g. `for name, _x in ...`)"


# Skips that say a check does not apply are recognised by how their summary begins
# (handlers/probes/__init__.py NOT_APPLICABLE): a translation must begin the same way.
LEADING_FIELDS = ("no_plugins", "not_requested", "not_run", "no_chat_model")


@pytest.mark.parametrize("code", LANGUAGES)
def test_not_applicable_skips_keep_their_prefix(code: str) -> None:
    for msgid, entry in catalog(code).items():
        for name in LEADING_FIELDS:
            if msgid.startswith("{" + name + "}"):
                assert entry.msgstr[0].startswith("{" + name + "}"), msgid


def test_not_applicable_in_chinese() -> None:
    from handlers.probes import account_for_skips, chat, plugin
    from handlers.results import Finding, Status

    with i18n.language("zh-CN"):
        zero_x = Finding(
            "dify.plugin",
            Status.SKIP,
            i18n.gettext("{no_plugins}: api and worker call Ollama themselves").format(
                no_plugins=plugin.no_plugins()
            ),
        )
        no_model = Finding(
            "dify.chat",
            Status.SKIP,
            i18n.gettext(
                "{no_chat_model} (LLM) is configured in Dify: nothing to chat with"
            ).format(no_chat_model=chat.no_chat_model()),
        )
        ok = Finding("dify.base_url", Status.OK, "ok")
        out = account_for_skips((ok, zero_x, no_model))
    assert [f.status for f in out] == [Status.OK, Status.SKIP, Status.SKIP]
    assert out[1].summary.startswith("Dify 0.x 没有插件")
