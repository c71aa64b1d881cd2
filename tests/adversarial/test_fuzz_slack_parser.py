"""The Slack command parser (bot/parsing.py) on arbitrary text: words or a UsageError, never
another exception; quoted words come back exactly; the 2000-character cap holds."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.parsing import MAX_TEXT, split, strip_mention
from bot.subcommands import UsageError
from tests.adversarial.conftest import examples

# codec="utf-8": any character UTF-8 can carry (so no lone surrogates, which no JSON body has).
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=MAX_TEXT + 50)
CONTROL = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
# Words as a user types them (no `&`: Slack escapes it as `&amp;`, which split unescapes).
WORD = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=CONTROL + "&"),
    min_size=1,
    max_size=40,
).filter(lambda w: not set(w) & set("\u201c\u201d\u2018\u2019"))


@settings(max_examples=examples(400))
@given(TEXT)
def test_split_returns_words_or_a_usage_error(text: str) -> None:
    try:
        words = split(text)
    except UsageError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(words, tuple) and all(isinstance(w, str) for w in words)
    assert len(text) <= MAX_TEXT


@settings(max_examples=examples(300))
@given(st.lists(WORD, max_size=8))
def test_quoted_words_come_back_exactly(words: list[str]) -> None:
    text = " ".join(shlex.quote(w) for w in words)
    if len(text) > MAX_TEXT:
        return
    assert split(text) == tuple(words)


@settings(max_examples=examples(200))
@given(
    st.from_regex(r"<@[UW][A-Z0-9]{1,11}(\|[a-z]{0,8})?>", fullmatch=True),
    st.lists(WORD, max_size=5),
)
def test_a_leading_mention_is_not_an_argument(mention: str, words: list[str]) -> None:
    text = mention + " " + " ".join(shlex.quote(w) for w in words)
    if len(text) > MAX_TEXT:
        return
    assert split(strip_mention(text)) == tuple(words)
