"""People in Slack messages: handlers name them by raw id, the bot turns Slack ids into mentions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.render.people import error_text, recorded_user
from handlers.mutation_lock import AlreadyDone, Busy, MutationLock, exclusive
from handlers.results import HandlerError


@pytest.mark.parametrize(
    ("holder", "raw", "shown"),
    [
        (
            ("fix-env apply", "UALICE", "slack"),
            "by UALICE at ",
            "`fix-env apply` started by <@UALICE> at ",
        ),
        (
            ("restart", "bob@host", "cli"),
            "by bob@host at ",
            "`restart` started by `bob@host` at ",
        ),
    ],
)
def test_a_busy_host_names_the_holder_the_slack_way(
    tmp_path: Path, holder: tuple[str, str, str], raw: str, shown: str
) -> None:
    lock = MutationLock(tmp_path)
    with lock.hold(*holder), pytest.raises(Busy) as err, lock.hold("x", "UBOB", "slack"):
        pass
    assert raw in str(err.value) and "<@" not in str(err.value)  # raw ids in handlers
    assert shown in error_text(err.value)


def test_a_repeat_names_who_did_it_first(tmp_path: Path) -> None:
    with exclusive(tmp_path, "fix-env apply", "UALICE", "slack", key="apply:abc"):
        pass
    with (
        pytest.raises(AlreadyDone) as err,
        exclusive(tmp_path, "fix-env apply", "UBOB", "slack", key="apply:abc"),
    ):
        pass
    assert "was already done (by UALICE at " in str(err.value)
    assert "was already done (by <@UALICE> at " in error_text(err.value)


def test_other_errors_and_recorded_users() -> None:
    # Handler text is escaped: a mention, a broadcast or a link in it stays text.
    assert error_text(HandlerError("plain <@U1> text")) == "plain &lt;@U1&gt; text"
    assert recorded_user("UOPS") == "<@UOPS>" and recorded_user("WADMIN") == "<@WADMIN>"
    assert recorded_user("alice@host") == "`alice@host`"


def test_people_read_from_records_cannot_inject_mrkdwn(tmp_path: Path) -> None:
    """A lock file or backup manifest is text on disk: whatever it names, the message only
    mentions Slack ids and shows everything else as inert code."""
    hostile = "x>` <!channel> <https://evil.example|docs>"
    lock = MutationLock(tmp_path)
    with (
        lock.hold("restart <!here>", hostile, "cli"),
        pytest.raises(Busy) as err,
        lock.hold("x", "UBOB", "slack"),
    ):
        pass
    shown = error_text(err.value)
    assert "<!" not in shown and "<http" not in shown and "<@" not in shown
    assert "&lt;!channel&gt;" in shown and "&lt;!here&gt;" in shown
    assert recorded_user("U<!channel>") == "`U&lt;!channel&gt;`"
