"""The redactor's fast paths against the straightforward one: byte-identical output.

bench/baseline_redact_v1.py is the redactor as it was before the speed work (every pass a
regular expression over the whole text, the literal pass a prefix-trie alternation). The
redactor of handlers/redact.py must give exactly its output and count, on generated text full
of what the passes look for (secrets in every form, short secrets at word boundaries,
overlapping secrets, secret keys, shapes, newlines, non-ASCII, lone surrogates) and on a slice
of every input of bench/bench_redact.py. Masking more would be safe but would still be a
change to explain; masking less would be a leak: both fail here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import baseline_redact_v1 as v1
from bench.bench_redact import CANARIES, EXAMPLE, cases
from handlers.envfile import read_env_file
from handlers.redact import BATCH_LINES, MAX_LINE, Redactor, pass_spans
from tests.adversarial.conftest import examples

# Secrets: long ones, short ones (4-7 characters: masked only as whole tokens), and pairs
# that overlap (one's tail is the other's head).
LONG = st.text(alphabet=st.sampled_from("abcXYZ0189-_.:/=+ "), min_size=8, max_size=24)
SHORT = st.text(alphabet=st.sampled_from("abcXY01-_"), min_size=4, max_size=7)
SECRETS = st.lists(st.one_of(LONG, SHORT), min_size=1, max_size=4)


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    return [secret, quote(secret, safe=""), json.dumps(secret)[1:-1], raw.hex(), b64, b64[1:-2]]


# One real-looking match of every shape (each must be found on the lines the anchors pick).
SHAPES = [
    "postgresql://dify:s3cret-pw@db:5432/dify",
    "Authorization: Bearer abcdefgh1234",
    "bearer abcdefgh1234",
    "Cookie: sid=1234",
    "Proxy-Authorization: Basic dXNlcjpwYXNz",
    "set-cookie: session=abc123",
    "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
    "xoxp-1234567890-abcdef",
    "xoxe.xoxp-1-abcdefghij",
    "xoxe-1-abcdefghijk",
    "xapp-1-A0123456789",
    "sk-proj-abcdefghijklmnop1234",
    "sk_live_abcdefghijklmnop1234",
    "rk_test_abcdefghijklmnop1234",
    "AKIAABCDEFGHIJKLMNOP",
    "ASIAABCDEFGHIJKLMNOP",
    "ghp_" + "a" * 36,
    "github_pat_" + "B" * 22,
    "glpat-" + "c" * 20,
    "AIza" + "d" * 35,
    "hf_" + "e" * 30,
    "app-" + "f" * 24,
    "dataset-" + "g" * 24,
    "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4",
]
KEYS = [
    "ORACLE_PWD=x1y2z3",
    'db.Password = "p4ss w0rd"',
    "Secret-Key: 'abc'",
    "connection_string=postgres://u@h",
    '"apiKey": "v"',
]

PIECES = [
    *"abcXYZ019 _-=:\"'/@#&;,.\n\t\\é",
    "\udcff",  # a lone surrogate (bytes decoded with surrogateescape)
    "K",  # Kelvin sign: case-folds to k
    "key",
    "password",
    "API_KEY",
    "token_count",
    "MYSQL_PWD",
    "Bearer ",
    "Authorization: ",
    "Cookie: ",
    "://",
    "http://u:",
    "@h",
    "eyJ",
    "xoxb-",
    "sk-",
    "AKIA",
    "ghp_",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "true",
    "[REDACTED]",
    *SHAPES,
    *KEYS,
    "access_token_expire_minutes=60",
]


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> tuple[frozenset[str], str]:
    secrets = draw(SECRETS)
    if len(secrets) >= 2 and len(secrets[0]) >= 3:  # an overlapping pair
        secrets.append(secrets[0][-3:] + secrets[1])
    planted = [form for secret in secrets for form in _forms(secret)]
    piece = st.one_of(st.sampled_from(PIECES), st.sampled_from(planted))
    parts = draw(st.lists(piece, max_size=40))
    return frozenset(secrets), "".join(parts)


@settings(max_examples=examples(600))
@given(texts_with_secrets())
def test_same_output_as_the_straightforward_redactor(case: tuple[frozenset[str], str]) -> None:
    secrets, text = case
    ours, theirs = Redactor(secrets), v1.Redactor(secrets)
    assert ours.redact_counted(text) == theirs.redact_counted(text), text
    lines = text.split("\n")
    assert list(ours.redact_lines(lines)) == list(theirs.redact_lines(lines)), text


@settings(max_examples=examples(300))
@given(texts_with_secrets(), st.integers(min_value=1, max_value=60))
def test_same_output_on_long_text(case: tuple[frozenset[str], str], copies: int) -> None:
    """Long text, where the anchors are sparse enough to choose the lines the passes scan."""
    secrets, text = case
    long = "\n".join([text, "INFO nothing here " * 30, text] * copies)
    ours, theirs = Redactor(secrets), v1.Redactor(secrets)
    assert ours.redact_counted(long) == theirs.redact_counted(long), text


@settings(max_examples=examples(200))
@given(
    texts_with_secrets(),
    st.sampled_from(['key="v1" ', "password=hunter2 ", "'token': 'x', ", 'key="key="', "pwd=a"]),
    st.integers(min_value=65, max_value=400),
    st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=3),
)
def test_same_output_when_one_pass_finds_nearly_everything(
    case: tuple[frozenset[str], str], pair: str, copies: int, cuts: list[float]
) -> None:
    """Text dense with secret pairs (the key=value pass finds hundreds of spans), with the
    other passes' finds inside, touching or overlapping them (cut in anywhere, even inside a
    pair): those few are put into the many one by one, which must give the merge's result."""
    secrets, text = case
    dense = pair * copies
    at = sorted(int(cut * len(dense)) for cut in cuts)
    pieces = [dense[a:b] for a, b in zip([0, *at], [*at, len(dense)], strict=True)]
    long = text.join(pieces)
    ours, theirs = Redactor(secrets), v1.Redactor(secrets)
    assert ours.redact_counted(long) == theirs.redact_counted(long), text


@pytest.mark.parametrize(
    ("secret", "middle", "masked"),
    [
        ('"abcdefghij', 'key="v1"abcdefghij', 'key="[REDACTED]'),  # touches a value's end
        ('xyzxyzxy key="', 'xyzxyzxy key="v1"', '[REDACTED]"'),  # touches a value's start
        ('1"abcdefgh', 'key="v1"abcdefgh', 'key="[REDACTED]'),  # overlaps a value
    ],
)
@pytest.mark.parametrize("copies", [0, 100])
def test_a_secret_touching_a_masked_value_is_masked_with_it(
    secret: str, middle: str, masked: str, copies: int
) -> None:
    """Touching or overlapping masks become one, alone or among many pairs."""
    dense = "password=hunter2 " * copies
    text = f"{dense}{middle} {dense}"
    expected = f"{'password=[REDACTED] ' * copies}{masked} {'password=[REDACTED] ' * copies}"
    ours, theirs = Redactor(frozenset({secret})), v1.Redactor(frozenset({secret}))
    assert ours.redact_counted(text) == (expected, 2 * copies + 1)
    assert theirs.redact_counted(text) == (expected, 2 * copies + 1)


@settings(max_examples=examples(400))
@given(texts_with_secrets(), st.sampled_from(["", "\n", " " * 600 + "\n"]))
def test_anchored_passes_find_what_the_whole_text_scan_finds(
    case: tuple[frozenset[str], str], padding: str
) -> None:
    """Each pass on the lines holding its anchors (sparse or dense) against the pass over the
    whole text (ASCII text, as the fast path requires)."""
    text = padding + case[1].encode("ascii", "replace").decode() + padding
    assert pass_spans(text, anchored=True) == pass_spans(text, anchored=False), text


@pytest.mark.parametrize("secret", SHAPES + KEYS)
def test_every_shape_and_key_is_found_alone_on_its_line(secret: str) -> None:
    """A line with nothing but one match, among lines without anchors: the fast path must pick
    that line by its anchor (a missing anchor word would skip it)."""
    text = "INFO nothing here\n" * 40 + f"x {secret} y\n" + "INFO nothing here\n" * 40
    fast, whole = pass_spans(text, anchored=True), pass_spans(text, anchored=False)
    assert fast == whole and (whole[0] or whole[1]), secret
    assert "[REDACTED]" in Redactor().redact(text)


@settings(max_examples=examples(300))
@given(st.text(max_size=300), st.frozensets(st.text(min_size=4, max_size=12), max_size=3))
def test_same_output_on_any_text(text: str, secrets: frozenset[str]) -> None:
    assert Redactor(secrets).redact_counted(text) == v1.Redactor(secrets).redact_counted(text)


@settings(max_examples=examples(200))
@given(texts_with_secrets())
def test_literal_pass_finds_what_the_trie_finds(case: tuple[frozenset[str], str]) -> None:
    """The automaton's spans (every occurrence) cover exactly what the trie's do (the
    longest at each start): the same union, position by position."""
    secrets, text = case
    redactor = Redactor(secrets)

    def covered(spans: list[tuple[int, int]]) -> set[int]:
        return {i for start, end in spans for i in range(start, end)}

    assert covered(redactor._literal_spans(text)) == covered(redactor._literal_spans_re(text))


def test_a_lone_surrogate_in_the_text_takes_the_regex_path_and_still_masks() -> None:
    redactor = Redactor(frozenset({"hunter2-secret", "abc1"}))
    assert redactor._automaton is not None
    text = "\udcff hunter2-secret abc1 xabc1"
    assert redactor.redact(text) == "\udcff [REDACTED] [REDACTED] xabc1"
    assert redactor._literal_spans(text) == redactor._literal_spans_re(text)


@pytest.fixture(scope="module")
def stock() -> tuple[Redactor, v1.Redactor]:
    """The benchmark's redactor: a stock install's secrets plus the canaries."""
    env = read_env_file(EXAMPLE).values | CANARIES
    container_env = [f"{k}={v}" for k, v in env.items()]
    env_path = EXAMPLE.parent / ".env"
    return (
        Redactor.from_sources(env, container_env, env_path=env_path),
        v1.Redactor.from_sources(env, container_env, env_path=env_path),
    )


@pytest.mark.parametrize(("name", "text"), list(cases().items()), ids=list(cases()))
def test_same_output_on_the_benchmark_inputs(
    stock: tuple[Redactor, v1.Redactor], name: str, text: str
) -> None:
    """The first 70 000 characters of each input (one line over MAX_LINE where the input has
    long lines) with the canaries planted, whole and line by line."""
    ours, theirs = stock
    sample = text[:70_000] + "\n" + " ".join(CANARIES.values()) + "\n" + text[-2_000:]
    assert ours.redact_counted(sample) == theirs.redact_counted(sample), name
    lines = sample.split("\n")
    assert list(ours.redact_lines(lines)) == list(theirs.redact_lines(lines)), name


def test_lines_read_before_a_failing_source_are_yielded_before_its_error() -> None:
    """redact_lines reads BATCH_LINES at a time: what the source gave before it failed (a
    dropped Docker stream) still comes out, redacted, in order, and then the error."""
    secret = "hunter2-secret-value"

    def source() -> Iterator[str]:
        for i in range(BATCH_LINES + 10):
            yield f"line {i} password={secret}" if i % 7 == 0 else f"line {i}"
        raise ConnectionError("stream dropped")

    out: list[tuple[str, int]] = []
    with pytest.raises(ConnectionError, match="stream dropped"):
        for item in Redactor(frozenset({secret})).redact_lines(source()):
            out.append(item)
    assert len(out) == BATCH_LINES + 10
    assert out[0] == ("line 0 password=[REDACTED]", 1) and out[1] == ("line 1", 0)
    assert out[-1] == (f"line {BATCH_LINES + 9}", 0)
    assert not any(secret in line for line, _ in out)


@pytest.mark.parametrize(
    "secrets",
    [
        # A secret with a newline (a PEM key or a JSON credential as a value): lines are not
        # joined, so it cannot match across two lines that line by line it would not.
        frozenset({"first-half\nsecond-half"}),
        frozenset({"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"}),
    ],
)
def test_a_secret_holding_a_newline_is_redacted_line_by_line(secrets: frozenset[str]) -> None:
    lines = ["x first-half", "second-half y", "first-half\nsecond-half", "ok"] * 100
    lines += ["-----BEGIN PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "tail"]
    ours, theirs = Redactor(secrets), v1.Redactor(secrets)
    assert not ours._batchable
    assert list(ours.redact_lines(lines)) == list(theirs.redact_lines(lines))
    got = list(ours.redact_lines(iter(lines)))
    assert not any(secret in line for secret in secrets for line, _ in got)
    assert got[2] == ("[REDACTED]", 1) or "first-half\nsecond-half" not in secrets


def test_batches_with_long_lines_key_blocks_and_inner_newlines() -> None:
    """Over several batches: a line longer than MAX_LINE (cut), a key block that starts in one
    batch and ends in the next, a line with a newline inside; the same as line by line."""
    secret = "hunter2-secret-value"
    lines = [f"INFO {i} token={secret}" for i in range(BATCH_LINES - 3)]
    lines += ["-----BEGIN RSA PRIVATE KEY-----", *["QUJD" * 16] * 10, "-----END RSA PRIVATE KEY-"]
    lines += ["-----END RSA PRIVATE KEY-----", "after the key", "two\nlines password=abc"]
    lines += ["k" * (MAX_LINE + 500) + f" {secret}", *[f"Bearer abcdefgh{i}" for i in range(600)]]
    ours, theirs = Redactor(frozenset({secret})), v1.Redactor(frozenset({secret}))
    assert ours._batchable
    got = list(ours.redact_lines(lines))
    assert got == list(theirs.redact_lines(lines))
    assert got[BATCH_LINES - 2] == ("[REDACTED]", 1)  # inside the key block, next batch
    assert "characters cut]" in got[BATCH_LINES + 12][0]


def test_a_span_crossing_lines_in_a_batch_sends_the_batch_line_by_line() -> None:
    """No pass matches across a newline; should one ever do (a new shape), the batch must not
    cut the mask between lines: each line is then redacted on its own."""

    class CrossingSpans(Redactor):
        def spans(self, text: str) -> list[tuple[int, int]]:
            found = super().spans(text)
            if "\n" in text:  # the joined batch: one span from inside line 1 into line 2
                first = text.index("\n")
                return sorted([*found, (first - 3, first + 4)])
            return found

    lines = ["alpha-one", "beta-two password=hunter2", "gamma"]
    crossing = CrossingSpans(frozenset())
    assert list(crossing.redact_lines(lines)) == [crossing.redact_counted(line) for line in lines]
    assert "hunter2" not in "".join(line for line, _ in crossing.redact_lines(lines))
