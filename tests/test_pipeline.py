"""The pipeline state machine: resolving `after`, cycles, removal, and the run/skip rule (no threads)."""

from __future__ import annotations

import pytest

from quiv_nb import ConfigurationError
from quiv_nb.errors import DependentTasksError
from quiv_nb.models import JobStatus
from quiv_nb.pipeline import Pipeline, Run, Skip, resolve_upstream

DONE, FAILED, CANCELLED, SKIPPED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED


def build(edges: dict[str, list[str]]) -> Pipeline:
    """A pipeline whose task ids are their names: {task: [upstreams]} in insertion order."""
    p = Pipeline()
    for task, ups in edges.items():
        p.add(task, task, {u: u for u in ups})
    return p


# ---------------------------------------------------------------- resolving `after`


TASKS = {"id-e": "extract", "id-t": "transform", "id-x": "dup", "id-y": "dup"}


def test_resolve_by_name_id_and_list_keeps_order_and_drops_repeats() -> None:
    assert resolve_upstream("load", "extract", TASKS) == {"id-e": "extract"}
    assert resolve_upstream("load", "id-t", TASKS) == {"id-t": "transform"}
    got = resolve_upstream("load", ["transform", "id-e", "extract"], TASKS)
    assert list(got.items()) == [("id-t", "transform"), ("id-e", "extract")]


@pytest.mark.parametrize(
    "after, message",
    [
        (None, "after must be a task name or id, or a non-empty list of them, got None"),
        ([], "after must be a task name or id"),
        ("", "after must be a task name or id"),
        (["extract", 3], "after must be a task name or id"),
        ("extrct", "after names 'extrct', which is no task; add the upstream task first (tasks: 'dup', 'extract'"),
        ("dup", "after names 'dup', which 2 tasks share (id-x, id-y); pass one task id instead"),
        (["extract", "load"], "task 'load' cannot run after itself"),
    ],
)
def test_resolve_rejects(after: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_upstream("load", after, TASKS)
    assert message in str(info.value)


def test_resolve_with_no_tasks_says_so() -> None:
    with pytest.raises(ConfigurationError, match=r"\(tasks: none yet\)"):
        resolve_upstream("b", "a", {})


# ---------------------------------------------------------------- the trigger rule


def test_chain_passes_each_result_down() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    assert p.on_job_final("a", DONE, 1) == [Run("b", {"a": 1})]
    assert p.on_job_final("b", DONE, 2) == [Run("c", {"b": 2})]
    assert p.on_job_final("c", DONE, 3) == []


def test_join_runs_once_when_all_upstreams_completed_with_latest_results() -> None:
    p = build({"join": ["x", "y", "z"]})
    assert p.on_job_final("x", DONE, "x1") == []
    assert p.on_job_final("x", DONE, "x2") == []  # x again before the others: latest wins, still one round
    assert p.on_job_final("z", DONE, "z1") == []
    assert p.on_job_final("y", DONE, "y1") == [Run("join", {"x": "x2", "y": "y1", "z": "z1"})]
    # The next round starts empty.
    assert p.on_job_final("y", DONE, "y2") == []


def test_upstream_dict_follows_the_after_order_and_uses_names() -> None:
    p = Pipeline()
    p.add("id-load", "load", {"id-t": "transform", "id-e": "extract"})
    p.on_job_final("id-e", DONE, "E")
    (run,) = p.on_job_final("id-t", DONE, "T")
    assert run == Run("id-load", {"transform": "T", "extract": "E"})
    assert list(run.upstream) == ["transform", "extract"]
    assert p.upstream_names("id-load") == ("transform", "extract")


def test_fan_out_then_fan_in() -> None:
    middles = [f"m{i}" for i in range(50)]
    p = build({**{m: ["root"] for m in middles}, "join": middles})
    fan_out = p.on_job_final("root", DONE, "R")
    assert fan_out == [Run(m, {"root": "R"}) for m in middles]
    for m in middles[:-1]:
        assert p.on_job_final(m, DONE, m.upper()) == []
    (join,) = p.on_job_final(middles[-1], DONE, "LAST")
    assert join.task_id == "join" and len(join.upstream) == 50 and join.upstream["m0"] == "M0"


@pytest.mark.parametrize(
    "status, error, verb",
    [
        (FAILED, "ValueError: bad row", "failed: ValueError: bad row"),
        (CANCELLED, "timed out after 5s", "was cancelled: timed out after 5s"),
        (CANCELLED, None, "was cancelled"),
        (SKIPPED, None, "was skipped"),
    ],
)
def test_failure_skips_every_task_downstream_once_naming_the_upstream(
    status: JobStatus, error: str | None, verb: str
) -> None:
    #      a
    #    /   \
    #   b     c      d runs after b and c (a diamond), e after d
    #    \   /
    #      d -- e
    p = build({"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]})
    decisions = p.on_job_final("a", status, None, error)
    assert decisions == [
        Skip("b", f"upstream 'a' {verb}"),
        Skip("c", f"upstream 'a' {verb}"),
        Skip("d", f"upstream 'b' was skipped (upstream 'a' {verb})"),
        Skip("e", f"upstream 'd' was skipped (upstream 'a' {verb})"),
    ]


def test_a_failure_breaks_the_round_of_a_join() -> None:
    p = build({"join": ["x", "y"]})
    assert p.on_job_final("x", DONE, "x1") == []
    assert p.on_job_final("y", FAILED, None, "boom") == [Skip("join", "upstream 'y' failed: boom")]
    # x's result of the broken round was dropped: the next round needs both again.
    assert p.on_job_final("y", DONE, "y2") == []
    assert p.on_job_final("x", DONE, "x2") == [Run("join", {"x": "x2", "y": "y2"})]


def test_unrelated_tasks_and_leaves_decide_nothing() -> None:
    p = build({"b": ["a"]})
    assert p.on_job_final("other", DONE, 1) == []
    assert p.on_job_final("b", FAILED) == []


def test_a_trigger_for_a_running_task_is_held_and_released_when_it_ends() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    p.hold("b", {"a": "second"})
    p.hold("b", {"a": "third"})  # latest wins
    decisions = p.on_job_final("b", DONE, "B1")
    assert decisions == [Run("b", {"a": "third"}), Run("c", {"b": "B1"})]
    assert p.on_job_final("b", DONE, "B2") == [Run("c", {"b": "B2"})]


# ---------------------------------------------------------------- removal


def test_removal_with_dependents_is_refused_listing_them() -> None:
    p = build({"b": ["a"], "c": ["b"], "d": ["a"]})
    with pytest.raises(DependentTasksError) as info:
        p.check_removal("a", cascade=False)
    assert "task 'a' cannot be removed: 'b', 'd', 'c' run after it" in str(info.value)
    assert "cascade=True" in str(info.value)
    assert info.value.dependents == ["b", "d", "c"]
    assert isinstance(info.value, ConfigurationError)
    with pytest.raises(DependentTasksError, match="'c' runs after it; remove that first"):
        p.check_removal("b", cascade=False)


def test_cascade_lists_dependents_farthest_first_and_removal_cleans_up() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    assert p.check_removal("a", cascade=True) == ["c", "b"]
    assert p.check_removal("c", cascade=False) == []
    for task in ("c", "b", "a"):
        p.remove(task)
    assert "a" not in p and "b" not in p and "c" not in p
    assert p.on_job_final("a", DONE, 1) == []


def test_removing_a_leaf_keeps_the_rest() -> None:
    p = build({"b": ["a"], "c": ["a"]})
    p.remove("b")
    assert p.dependents("a") == ["c"]
    assert p.on_job_final("a", DONE, 1) == [Run("c", {"a": 1})]


def test_a_retired_run_once_upstream_stays_until_its_dependents_go() -> None:
    p = build({"b": ["a"]})
    assert p.on_job_final("a", DONE, 1) == [Run("b", {"a": 1})]
    p.retire("a")
    assert p.upstream_names("b") == ("a",)  # Task.after still says what b runs after
    p.remove("b")
    assert "a" not in p


def test_retiring_a_task_without_dependents_forgets_it() -> None:
    p = build({"b": ["a"]})
    p.retire("b")
    assert "b" not in p and "a" not in p


# ---------------------------------------------------------------- replace=True and cycles


def test_replacing_an_upstream_hands_it_the_dependents() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    p.add("a2", "a", {}, replaces=["a"])
    assert "a" not in p
    assert p.dependents("a2") == ["b", "c"]
    assert p.on_job_final("a2", DONE, "new") == [Run("b", {"a": "new"})]


def test_replacing_a_join_input_drops_its_half_round() -> None:
    p = build({"join": ["x", "y"]})
    p.on_job_final("x", DONE, "old x")
    p.add("x2", "x", {}, replaces=["x"])
    assert p.on_job_final("y", DONE, "y") == []
    assert p.on_job_final("x2", DONE, "new x") == [Run("join", {"x": "new x", "y": "y"})]


def test_replacing_a_middle_task_keeps_both_sides() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    p.add("b2", "b", {"a": "a"}, replaces=["b"])
    assert p.dependents("a") == ["b2", "c"]
    assert p.upstream_names("c") == ("b",)


def test_a_replacement_that_would_close_a_cycle_is_refused_and_changes_nothing() -> None:
    p = build({"b": ["a"], "c": ["b"]})
    with pytest.raises(ConfigurationError, match=r"after would make a cycle: a -> b -> c -> a"):
        p.add("a2", "a", {"c": "c"}, replaces=["a"])
    assert p.dependents("a") == ["b", "c"]
    assert p.on_job_final("a", DONE, 1) == [Run("b", {"a": 1})]


def test_running_after_the_task_being_replaced_is_refused() -> None:
    p = build({"b": ["a"]})
    with pytest.raises(ConfigurationError, match="cannot run after the task it replaces"):
        p.add("a2", "a", {"a": "a"}, replaces=["a"])


def test_tasks_without_edges_are_not_tracked() -> None:
    p = Pipeline()
    p.add("lonely", "lonely", {})
    assert "lonely" not in p
    assert p.upstream_names("lonely") == ()


def test_a_new_task_named_like_a_retired_upstream_takes_its_place() -> None:
    p = build({"b": ["a"]})
    p.on_job_final("a", DONE, 1)
    p.retire("a")
    assert p.retired_named("a") == ["a"] and p.retired_named("b") == []
    p.add("a2", "a", {}, replaces=p.retired_named("a"))
    assert "a" not in p and p.retired_named("a") == []
    assert p.on_job_final("a2", DONE, 2) == [Run("b", {"a": 2})]
