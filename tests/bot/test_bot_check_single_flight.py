"""Concurrent check requests share one run; every requester still gets the report."""

from __future__ import annotations

import threading
import time

from tests.bot.conftest import sample_report


def test_concurrent_checks_share_one_run(run_bot):
    runs = []
    release = threading.Event()

    def slow_check(_settings):
        runs.append(time.monotonic())
        release.wait(10)
        return sample_report()

    bot = run_bot(check=slow_check, worker_threads=3)
    threads = [
        threading.Thread(target=bot.command, args=("check",), kwargs={"user": f"U{i}"})
        for i in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.slack.wait_for("chat.postMessage", 3)  # progress lines of the requests being served
    time.sleep(0.2)
    release.set()
    updates = bot.slack.wait_for("chat.update", 6)
    assert len(runs) == 1
    assert sum("Shared a check" in str(u.params["blocks"]) for u in updates) == 5
    assert sorted(line["user"] for line in bot.wait_audit(6)) == [f"U{i}" for i in range(6)]


def test_a_check_after_a_finished_one_runs_again(run_bot):
    runs = []

    def check(_settings):
        runs.append(1)
        return sample_report()

    bot = run_bot(check=check)
    bot.command("check")
    bot.slack.wait_for("chat.update")
    bot.command("check")
    bot.slack.wait_for("chat.update", 2)
    assert len(runs) == 2
