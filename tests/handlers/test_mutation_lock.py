"""One mutating operation per host: holder named, serialized, idempotent, crash-safe."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from handlers.mutation_lock import (
    AlreadyDone,
    Busy,
    Idempotency,
    MutationLock,
    exclusive,
    once,
    precheck,
)

ROOT = Path(__file__).resolve().parents[2]


def test_second_request_is_told_what_runs_and_who_started_it(tmp_path: Path) -> None:
    lock = MutationLock(tmp_path)
    with lock.hold("fix-env apply", "UALICE", "slack"):
        holder = lock.holder()
        assert holder is not None and holder.user == "UALICE"
        with pytest.raises(Busy) as err, lock.hold("restart", "bob@host", "cli"):
            pass
        assert "`fix-env apply` started by UALICE at " in str(err.value)
    assert lock.holder() is None
    with lock.hold("restart", "bob@host", "cli"):
        pass


def test_threads_are_serialized(tmp_path: Path) -> None:
    """Concurrent requests: never two inside at once; refused ones name the holder."""
    inside: list[int] = []
    overlap: list[bool] = []
    refused: list[str] = []
    gate = threading.Barrier(6)

    def worker(n: int) -> None:
        gate.wait()
        for _ in range(20):
            try:
                with MutationLock(tmp_path).hold(f"op{n}", f"user{n}", "cli"):
                    inside.append(n)
                    overlap.append(len(inside) > 1)
                    time.sleep(0.002)
                    inside.remove(n)
                    return
            except Busy as exc:
                refused.append(str(exc))
                time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(overlap)
    assert refused and all("started by user" in r for r in refused)


def test_a_killed_holder_does_not_leave_a_stale_lock(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from handlers.mutation_lock import "
        "MutationLock\n"
        "with MutationLock(Path(sys.argv[1])).hold('fix-env apply', 'carol@h', 'cli'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
        lock = MutationLock(tmp_path)
        holder = lock.holder()
        assert holder is not None and holder.pid == proc.pid and holder.user == "carol@h"
        with pytest.raises(Busy), lock.hold("restart", "me", "cli"):
            pass
    finally:
        proc.kill()
        proc.wait(10)
    with MutationLock(tmp_path).hold("restart", "me", "cli") as me:
        assert me.user == "me"


def test_idempotency_key_runs_once(tmp_path: Path) -> None:
    runs = []
    with exclusive(tmp_path, "fix-env apply", "UALICE", "slack", key="apply:abc") as record:
        runs.append(1)
        assert record is not None
        record.result = {"backup": "b1"}
    with (
        pytest.raises(AlreadyDone) as err,
        exclusive(tmp_path, "fix-env apply", "UBOB", "slack", key="apply:abc"),
    ):
        runs.append(2)
    assert runs == [1]
    assert err.value.record["result"] == {"backup": "b1"}
    assert "was already done (by UALICE at " in str(err.value)


def test_failed_operation_can_be_retried(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), exclusive(tmp_path, "op", "u", "cli", key="apply:x"):
        raise RuntimeError("boom")
    assert (Idempotency(tmp_path).get("apply:x") or {})["state"] == "failed"
    with exclusive(tmp_path, "op", "u", "cli", key="apply:x"):
        pass
    assert (Idempotency(tmp_path).get("apply:x") or {})["state"] == "done"


def test_double_click_while_running_is_told_it_runs(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def first() -> None:
        with exclusive(tmp_path, "fix-env apply", "UALICE", "slack", key="apply:p1"):
            started.set()
            release.wait(5)

    t = threading.Thread(target=first)
    t.start()
    assert started.wait(5)
    try:
        with (
            pytest.raises(AlreadyDone, match="is already running"),
            exclusive(tmp_path, "fix-env apply", "UALICE", "slack", key="apply:p1"),
        ):
            pass
    finally:
        release.set()
        t.join(5)


def test_lock_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with MutationLock(state).hold("op", "u", "cli"):
        pass
    assert (state.stat().st_mode & 0o777) == 0o700
    assert ((state / "mutation.lock").stat().st_mode & 0o777) == 0o600


def test_precheck_answers_early_without_taking_anything(tmp_path: Path) -> None:
    precheck(tmp_path, "apply:new")  # nothing ran, nothing holds the host: no answer
    with exclusive(tmp_path, "fix-env apply", "UALICE", "slack", key="apply:done"):
        pass
    with pytest.raises(AlreadyDone):
        precheck(tmp_path, "apply:done")
    lock = MutationLock(tmp_path)
    with lock.hold("restart", "bob@host", "cli"), pytest.raises(Busy, match="started by bob@host"):
        precheck(tmp_path)
    assert lock.holder() is None
    precheck(tmp_path)


def test_once_runs_a_key_once_and_lets_a_failed_run_retry(tmp_path: Path) -> None:
    runs = []
    with (
        pytest.raises(RuntimeError),
        once(tmp_path, "fixplan:C1:1.2", "fix-env plan", "U1", "slack"),
    ):
        runs.append("failed")
        raise RuntimeError("engine down")
    with once(tmp_path, "fixplan:C1:1.2", "fix-env plan", "U1", "slack") as record:
        runs.append("done")
        assert record.state == "running"
    with (
        pytest.raises(AlreadyDone),
        once(tmp_path, "fixplan:C1:1.2", "fix-env plan", "U2", "slack"),
    ):
        runs.append("again")
    assert runs == ["failed", "done"]
    assert Idempotency(tmp_path).get("fixplan:C1:1.2")["state"] == "done"  # type: ignore[index]
    assert MutationLock(tmp_path).holder() is None  # `once` never takes the host lock


def test_a_peek_never_makes_a_real_operation_busy(tmp_path: Path) -> None:
    """Status peeks (the Slack side's precheck, `holder()`) run all the time; a change starting
    at that instant must get the lock, not be refused naming a finished operation."""
    lock = MutationLock(tmp_path)
    with lock.hold("fix-env apply", "UOLD", "slack"):
        pass  # a finished operation: its record stays in the file
    stop = threading.Event()
    peeks = [0]

    def peek() -> None:
        while not stop.is_set():
            MutationLock(tmp_path).holder()
            with contextlib.suppress(Busy):  # a peek during a real hold is answered Busy
                precheck(tmp_path)
            peeks[0] += 1

    peekers = [threading.Thread(target=peek) for _ in range(2)]
    for t in peekers:
        t.start()
    refused: list[str] = []
    holds = 0
    deadline = time.monotonic() + 1.0
    try:
        while holds < 300 or (time.monotonic() < deadline and peeks[0] < 300):
            try:
                with MutationLock(tmp_path).hold("restart", f"u{holds}", "cli"):
                    pass
            except Busy as exc:
                refused.append(str(exc))
            holds += 1
    finally:
        stop.set()
        for t in peekers:
            t.join(10)
    assert peeks[0] >= 100, peeks  # the peeks really raced the holds
    assert refused == []


def test_busy_names_the_operation_that_holds_the_lock_now(tmp_path: Path) -> None:
    with MutationLock(tmp_path).hold("fix-env apply", "UOLD", "slack"):
        pass
    with MutationLock(tmp_path).hold("restart", "bob@host", "cli"):
        now = MutationLock(tmp_path).holder()
        assert now is not None and now.operation == "restart"
        with pytest.raises(Busy) as err, MutationLock(tmp_path).hold("x", "me", "cli"):
            pass
    assert "`restart` started by bob@host" in str(err.value) and "UOLD" not in str(err.value)
    assert MutationLock(tmp_path).holder() is None  # released: nobody is named any more


ONCE_CHILD = (
    "import sys, time; from pathlib import Path; from handlers.mutation_lock import once\n"
    "with once(Path(sys.argv[1]), 'fixplan:C1:9.9', 'fix-env plan', 'UKILLED', 'slack'):\n"
    "    print('running', flush=True); time.sleep(60)\n"
)


def test_a_running_record_left_by_a_killed_process_does_not_block_its_key(tmp_path: Path) -> None:
    """A bot killed while posting a plan leaves `running` on disk: while it lives the key is
    taken; once it is dead the next click runs (the record was stale)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", ONCE_CHILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"running\n"
        with (
            pytest.raises(AlreadyDone, match="is already running"),
            once(tmp_path, "fixplan:C1:9.9", "fix-env plan", "UNEXT", "slack"),
        ):
            pass
    finally:
        proc.kill()
        proc.wait(10)
    assert (Idempotency(tmp_path).get("fixplan:C1:9.9") or {})["state"] == "running"
    with once(tmp_path, "fixplan:C1:9.9", "fix-env plan", "UNEXT", "slack") as record:
        assert record.user == "UNEXT"
    assert (Idempotency(tmp_path).get("fixplan:C1:9.9") or {})["state"] == "done"
