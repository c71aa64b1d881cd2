"""The watch's decisions, engine-free: reports in, state and notices out (handlers/watch.py)."""

from __future__ import annotations

import json

from handlers.results import Finding, Report, Status
from handlers.watch import (
    ActionDone,
    Mutes,
    WatchState,
    situation_of,
    state_json,
    state_of,
    step,
)

OK, WARN, FAIL, SKIP = Status.OK, Status.WARN, Status.FAIL, Status.SKIP
IDS = (
    "docker.engine",
    "dify.project",
    "dify.containers",
    "ollama.host",
    "ollama.bind",
    "container.reach",
    "dify.web",
)


def report(**statuses: Status) -> Report:
    """Every id ok unless named (dots as underscores: container_reach=FAIL)."""
    named = {k.replace("_", ".", 1): v for k, v in statuses.items()}
    findings = []
    for fid in IDS:
        status = named.get(fid, OK)
        metrics = {"containers": 7.0} if fid == "dify.containers" else {}
        findings.append(Finding(fid, status, f"{fid} is {status}", "evidence", "remedy", "api"))
        if metrics:
            findings[-1] = Finding(fid, status, f"{fid} is {status}", metrics=metrics)
    return Report(tuple(findings), 100, {"host": "h"})


def ollama_down() -> Report:
    return report(ollama_host=FAIL, ollama_bind=FAIL, container_reach=FAIL)


def run(state, reports, start=1000.0, every=10.0, fail_after=2, mutes=None, actions=()):
    """Feed reports; return the final state and every notice as (run index, kind, ids)."""
    said = []
    for index, rep in enumerate(reports):
        state, notices = step(
            state,
            rep,
            now=start + index * every,
            fail_after=fail_after,
            mutes=mutes,
            actions=actions,
        )
        said += [(index, n.kind, n.finding_ids) for n in notices]
        for n in notices:
            if n.kind == "opened":
                state = state.with_ref(n.incident.id, f"ts{index}")
    return state, said


def test_one_bad_run_says_nothing_two_open_one_alert_for_all_that_failed_together():
    state, said = run(WatchState(), [report(), ollama_down()])
    assert said == [] and state.incident is None
    state, said = run(state, [ollama_down()])
    assert said == [(0, "opened", ("ollama.host", "ollama.bind", "container.reach"))]
    assert state.incident is not None and state.incident.ref == "ts0"
    state, said = run(state, [ollama_down()] * 5)
    assert said == []  # unchanged: silence


def test_recovery_after_fail_after_good_runs_closes_with_duration_and_who_acted():
    state, _ = run(WatchState(), [ollama_down(), ollama_down()], start=1000)
    opened = state.incident.opened_at
    fix = ActionDone(opened + 60, "UOPS", "fix-env:apply", "applied")
    state, said = run(state, [report()], start=1400, actions=[fix])
    assert said == [] and state.incident is not None  # one good run is not a recovery yet
    state, notices = step(state, report(), now=1420.0, fail_after=2, actions=[fix])
    assert [n.kind for n in notices] == ["closed"]
    assert notices[0].actions == (fix,)
    assert notices[0].incident.closed_at == 1420.0 and notices[0].incident.ref == "ts1"
    assert state.incident is None


def test_partial_recovery_and_a_new_problem_go_into_the_same_incident():
    state, _ = run(WatchState(), [ollama_down(), ollama_down()])
    part = report(ollama_host=FAIL)  # bind and reach recover, host still fails
    state, said = run(state, [part, part, report(ollama_host=FAIL, dify_web=WARN)] * 1)
    assert (1, "recovered", ("ollama.bind", "container.reach")) in said
    state, said = run(state, [report(ollama_host=FAIL, dify_web=WARN)])
    assert said == [(0, "joined", ("dify.web",))]


def test_changed_status_or_text_of_a_member_is_told_once():
    state, _ = run(WatchState(), [report(dify_web=WARN)] * 2)
    state, said = run(state, [report(dify_web=FAIL)] * 3)
    assert said == [(0, "changed", ("dify.web",))]


def test_changed_numbers_in_a_summary_are_not_a_change():
    a = Report((Finding("dify.web", FAIL, "no answer in 3012 ms"),), 1)
    b = Report((Finding("dify.web", FAIL, "no answer in 3047 ms"),), 1)
    state, _ = run(WatchState(), [a, a])
    state, said = run(state, [b])
    assert said == []


def test_flapping_opens_once_and_then_only_counts():
    flaps = [ollama_down(), report()] * 15  # bad, good, bad, good ... never two in a row
    state, said = run(WatchState(), flaps)
    kinds = [kind for _, kind, _ in said]
    assert kinds.count("opened") == 1
    assert kinds.count("flapping") == 1  # told once in the thread ...
    assert "closed" not in kinds and "recovered" not in kinds
    assert state.incident is not None and state.incident.flaps >= 10  # ... then counted
    assert set(kinds) <= {"opened", "flapping", "updated"}
    # It settles: good long enough to leave the flap window, then one close.
    state, said = run(state, [report()] * 12, start=5000)
    assert [kind for _, kind, _ in said] == ["closed"]


def test_skip_is_neither_bad_nor_a_recovery():
    state, _ = run(WatchState(), [ollama_down()] * 2)
    skipped = report(ollama_host=FAIL, ollama_bind=FAIL, container_reach=SKIP)
    state, said = run(state, [skipped] * 4)
    assert said == [] and state.incident.member("container.reach").open


def test_engine_down_is_one_message_and_the_consequences_stay_silent():
    down = report(
        docker_engine=FAIL,
        dify_project=SKIP,
        dify_containers=FAIL,
        container_reach=FAIL,
        dify_web=FAIL,
    )
    assert situation_of(down) == "engine-down"
    state, said = run(WatchState(), [down] * 6)
    assert said == [(1, "opened", ("docker.engine",))]
    state, said = run(state, [report()] * 2)
    assert [kind for _, kind, _ in said] == ["closed"]


def test_an_open_alert_survives_an_engine_outage_without_a_duplicate():
    state, said = run(WatchState(), [ollama_down()] * 2)
    engine_down = report(
        docker_engine=FAIL, ollama_host=FAIL, ollama_bind=FAIL, container_reach=FAIL
    )
    state, said = run(state, [engine_down] * 3 + [ollama_down()] * 3)
    assert said == [(1, "joined", ("docker.engine",)), (4, "recovered", ("docker.engine",))]
    assert state.incident.member("container.reach").open


def test_dify_taken_down_on_purpose_is_one_calm_message():
    stopped = Report(
        tuple(
            Finding(
                fid,
                FAIL if fid in ("dify.containers", "dify.web", "container.reach") else OK,
                fid,
                metrics={"containers": 0.0} if fid == "dify.containers" else {},
            )
            for fid in IDS
        ),
        1,
    )
    assert situation_of(stopped) == "dify-stopped"
    crashed = report(dify_containers=FAIL)
    assert situation_of(crashed) == "normal"
    state, said = run(WatchState(), [stopped] * 5)
    assert said == [(1, "opened", ("dify.containers",))]
    assert state.incident.situation == "dify-stopped"


def test_mutes_hold_back_alerts_until_lifted_and_expire():
    muted = Mutes(all_until=2000.0)
    state, said = run(WatchState(), [ollama_down()] * 4, mutes=muted)
    assert said == [] and state.incident is None
    state, said = run(state, [ollama_down()], start=2100, mutes=muted)  # expired
    assert [kind for _, kind, _ in said] == ["opened"]


def test_a_muted_finding_is_left_out_the_others_alert():
    mutes = Mutes(findings={"ollama.bind": 9e9})
    _state, said = run(WatchState(), [ollama_down()] * 2, mutes=mutes)
    assert said == [(1, "opened", ("ollama.host", "container.reach"))]


def test_state_round_trips_through_json_so_a_restart_continues_silently():
    state, _ = run(WatchState(), [ollama_down()] * 2 + [report(ollama_host=FAIL)] * 2)
    again = state_of(json.loads(json.dumps(state_json(state))))
    assert again == state
    _, said = run(again, [report(ollama_host=FAIL)])
    assert said == []
