"""A malformed X-Slack-Request-Timestamp (issue 11): 401, like a bad signature, never a 500
with a traceback. Real signed requests (the signature is right for the text sent as the
timestamp) to the running server; the bot must still answer a good request afterwards."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest

from tests.bot.conftest import SIGNING_SECRET, sign

BODY = b"command=%2Fdify-ollama&text=help&user_id=U1&channel_id=C1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _signed_with(timestamp: str) -> dict[str, str]:
    base = b"v0:" + timestamp.encode() + b":" + BODY
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}", **FORM}


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "12 34", "1.5", "-1", "1e9", "0x10", "1_700_000_000", "9" * 5000]
)
def test_malformed_timestamp_is_401(run_bot, caplog, timestamp: str) -> None:
    bot = run_bot()
    with caplog.at_level(logging.ERROR):
        response = bot.http.post(bot.url, content=BODY, headers=_signed_with(timestamp))
    assert response.status_code == 401
    assert "Traceback" not in caplog.text and not [
        r for r in caplog.records if r.levelno >= logging.ERROR
    ]
    good = bot.http.post(bot.url, content=BODY, headers={**sign(BODY), **FORM})
    assert good.status_code == 200 and "/dify-ollama check" in good.text
