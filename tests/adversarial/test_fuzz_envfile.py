"""The `.env` reader and line editor (handlers/envfile.py, handlers/env_edit.py) on generated
files: reading never raises on any bytes; editing one key changes only that key's line (and
every other byte stays, undecodable ones included); and what we read is what Compose reads:
a bounded number of generated files go through the real `docker-compose config` (v1.29.2;
it needs no engine for `config`), marked slow."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from handlers import env_edit
from handlers.envfile import (
    decode_for_editing,
    encode_for_writing,
    parse_env_bytes,
    parse_env_text,
    plain_dotenv_items,
)
from handlers.results import HandlerError
from tests.adversarial.conftest import examples

KEY = st.from_regex(r"[A-Z_][A-Z0-9_]{0,20}", fullmatch=True)
# Value characters: printable, no `$` (Compose interpolates it in .env; we read it as data, on
# purpose: Dify's values hold `$`), no quotes or backslashes in unquoted values.
PLAIN = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="$\"'\\#`"
    ),
    max_size=30,
).map(str.strip)
QUOTED = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="$\"'\\`"
    ),
    max_size=30,
)


FORMS = ("plain", "single", "double", "escaped", "export", "comment", "spaced")


@st.composite
def lines(draw: st.DrawFn, forms: tuple[str, ...] = FORMS) -> tuple[str, str]:
    """(the .env line, the value it assigns) for one key, in one of the ways people write it."""
    key = draw(KEY)
    form = draw(st.sampled_from(forms))
    if form == "single":
        value = draw(QUOTED)
        return f"{key}='{value}'", value
    if form == "double":
        value = draw(QUOTED)
        return f'{key}="{value}"', value
    if form == "escaped":  # escapes inside double quotes are decoded
        value = draw(QUOTED)
        return f'{key}="{value}\\"q\\\\"', value + '"q\\'
    value = draw(PLAIN)
    if form == "export":
        return f"export {key}={value}", value
    if form == "comment":
        return f"{key}={value} # a note", value
    if form == "spaced":
        return f"{key} = {value}", value
    return f"{key}={value}", value


@st.composite
def env_files(draw: st.DrawFn, forms: tuple[str, ...] = FORMS) -> tuple[str, dict[str, str]]:
    """A .env text and the values it assigns (unique keys, comments and blank lines between)."""
    items = draw(
        st.lists(
            lines(forms),
            min_size=1,
            max_size=12,
            unique_by=lambda x: x[0].split("=")[0].removeprefix("export ").split()[0],
        )
    )
    text_lines: list[str] = []
    expected: dict[str, str] = {}
    for line, value in items:
        if draw(st.booleans()):
            text_lines.append(draw(st.sampled_from(["", "# comment", "   ", "#KEY=commented"])))
        text_lines.append(line)
        key = line.removeprefix("export ").split("=")[0].strip()
        expected[key] = value
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "", "", "\ufeff"]))  # Windows editors write one
    return bom + ending.join(text_lines) + draw(st.sampled_from(["", ending])), expected


@settings(max_examples=examples(500))
@given(st.binary(max_size=400))
def test_reading_any_bytes_never_raises(data: bytes) -> None:
    env = parse_env_bytes(data)
    assert isinstance(env.values, dict)
    assert encode_for_writing(decode_for_editing(data)) == data
    for number in env.undecodable:
        assert 1 <= number <= data.count(b"\n") + 1


@settings(max_examples=examples(300))
@given(env_files())
def test_reading_gives_the_values_written(case: tuple[str, dict[str, str]]) -> None:
    text, expected = case
    values = parse_env_text(text).values
    for key, value in expected.items():
        assert values.get(key) == value, (key, text)


NEW = st.from_regex(r"https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9]{0,8})?", fullmatch=True)


@settings(max_examples=examples(300))
@given(env_files(), NEW, st.binary(max_size=8))
def test_editing_one_key_changes_only_its_line(
    case: tuple[str, dict[str, str]], new: str, junk: bytes
) -> None:
    text, expected = case
    key = sorted(expected)[0]
    # A line of bytes that are not UTF-8 somewhere in the file must come back unchanged too.
    raw = text.encode() + (b"" if text.endswith("\n") else b"\n")
    raw += b"JUNK=" + junk.replace(b"\n", b"").replace(b"\r", b"") + b"\n"
    source = decode_for_editing(raw)
    try:
        edited, edits = env_edit.set_values(source, {key: new})
    except HandlerError:
        return  # refused (a form the editor will not touch): nothing written, nothing lost
    before = encode_for_writing(source).split(b"\n")
    after = encode_for_writing(edited).split(b"\n")
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
    if edits:
        assert len(before) == len(after), (text, edited)
        assert len(changed) == 1
        line = before[changed[0]].decode("utf-8", "replace").lstrip("\ufeff \t")
        assert line.removeprefix("export").lstrip().startswith(key), (line, key)
    values = parse_env_text(edited).values
    assert values[key] == new
    assert {k: v for k, v in values.items() if k not in (key, "JUNK")} == {
        k: v for k, v in parse_env_text(source).values.items() if k not in (key, "JUNK")
    }


# --- against Compose's own reading ----------------------------------------------------------------
COMPOSE = shutil.which("docker-compose", path="/usr/bin:/bin:/usr/local/bin")


def _compose_reads(folder: Path, keys: list[str]) -> dict[str, str]:
    """The values `docker-compose config` interpolates for ${KEY} from folder/.env."""
    services = {"a": {"image": "x", "environment": {k: "${" + k + "}" for k in keys}}}
    (folder / "docker-compose.yaml").write_text(
        yaml.safe_dump({"version": "3", "services": services})
    )
    done = subprocess.run(
        [COMPOSE or "docker-compose", "config"],
        cwd=folder,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder)},  # no variable of ours leaks in
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    environment = yaml.safe_load(done.stdout)["services"]["a"].get("environment") or {}
    return {k: "" if v is None else str(v) for k, v in environment.items()}


# Compose v1 reads .env with python-dotenv 0.21, which cannot parse an escaped quote inside
# double quotes (KEY="a\\"b"): it drops that line and the next one ("could not parse
# statement"). Compose v2 and python-dotenv 1.x (ours) read the escape; that form is compared
# with v1 no further.
V1_FORMS = tuple(f for f in FORMS if f != "escaped")


@pytest.mark.slow
@settings(max_examples=examples(10))
@given(env_files(V1_FORMS))
def test_we_read_what_compose_v1_reads(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, dict[str, str]]
) -> None:
    assert COMPOSE, "docker-compose (v1) is installed by scripts/install-test-deps"
    text, expected = case
    assume(all(k != "COMPOSE_FILE" and not k.startswith("COMPOSE_") for k in expected))
    folder = tmp_path_factory.mktemp("compose-env")
    (folder / ".env").write_text(text)
    compose = _compose_reads(folder, sorted(expected))
    ours = parse_env_text(text).values
    for key in expected:
        assert ours.get(key, "") == compose.get(key, ""), (key, text)


# Pieces of lines, plain and not: what the fast reader must either read exactly as
# python-dotenv does or hand over to it (None).
LINE_PIECES = [
    "KEY",
    "DB_PASSWORD",
    "a.b-c",
    "_X9",
    "export",
    "export ",
    "=",
    " ",
    "  ",
    "#",
    " #",
    "# note",
    "value",
    "v#x",
    "'",
    '"',
    "\\",
    "\t",
    "\r",
    "\x0c",
    "\xa0",
    "\u2028",
    "é",
    "$",
    "http://h:1/x?a=b",
    "=:",
    "\n",
]


LINES = st.lists(st.lists(st.sampled_from(LINE_PIECES), max_size=6).map("".join), max_size=8)


@settings(max_examples=examples(1500))
@given(LINES.map("\n".join))
@example("KEY= # note")
@example("KEY=  #")
@example("KEY=#v")
@example("KEY=v #c\nB= v  ")
@example("export =1")
@example("export KEY=1")
@example("A#B=1")
@example("KEY = v\nKEY=w")
def test_the_fast_reader_reads_what_python_dotenv_reads(text: str) -> None:
    """Every binding in order, a key given twice included (Compose v1's reading expands each
    in turn: handlers/compose_dotenv.parse_v1), and the dict python-dotenv makes of them."""
    from io import StringIO

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    fast = plain_dotenv_items(text)
    if fast is not None:
        bindings = [(b.key, b.value) for b in parse_stream(StringIO(text)) if b.key is not None]
        assert fast == bindings, repr(text)
        expected = dotenv_values(stream=StringIO(text), interpolate=False)
        assert list(dict(fast).items()) == list(expected.items()), repr(text)


@pytest.mark.parametrize(
    "example", sorted(Path(__file__).parents[1].glob("data/dify-*/.env.example")), ids=str
)
def test_dify_s_own_env_files_take_the_fast_reader(example: Path) -> None:
    from io import StringIO

    from dotenv import dotenv_values

    text = example.read_text(encoding="utf-8")
    fast = plain_dotenv_items(text)
    assert fast is not None
    assert list(dict(fast).items()) == list(
        dotenv_values(stream=StringIO(text), interpolate=False).items()
    )
