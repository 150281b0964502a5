"""quiv_nb.render.state: payload -> bar state -> text, with no frontend, no clock and no threads."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from quiv_nb.render import state as st
from quiv_nb.render.state import (
    BarState,
    apply,
    clean_text,
    finish,
    format_interval,
    format_meter,
    format_number,
    format_postfix,
    format_rate,
    format_stats,
    format_status,
    format_title,
    new_state,
    rewound,
    start,
    tick,
)

RUNNING = start(new_state(), 0.0)


def run(*payloads: tuple[tuple, dict], desc: str = "", total: float | None = None) -> BarState:
    s = start(new_state(desc, total=total), 0.0)
    for args, kwargs in payloads:
        s = apply(s, args, kwargs)
    return s


def kw(**kwargs):
    return ((), kwargs)


# ---------------------------------------------------------------------------------------- payloads


def test_step_and_total():
    s = run(kw(step=3, total=10))
    assert (s.value, s.total, s.fraction) == (3.0, 10.0, 0.3)


@pytest.mark.parametrize("key", ["step", "progress", "n"])
def test_value_aliases(key):
    assert run(kw(**{key: 7})).value == 7.0


def test_value_alias_precedence_and_aliases_are_not_postfix():
    s = run(kw(n=1, progress=2, step=3))
    assert s.value == 3.0
    assert s.postfix == ()
    # a garbage step falls through to the next alias that holds a number
    assert run(kw(step="x", progress=4)).value == 4.0


def test_pct_alone_is_a_percentage():
    s = run(kw(pct=42))
    assert (s.value, s.total) == (42.0, 100.0)
    assert format_stats(s).startswith(" 42% 42/100")


def test_pct_with_a_known_total_scales_to_it():
    assert run(kw(pct=50), total=8).value == 4.0
    assert run(kw(pct=25, total=40)).value == 10.0


def test_pct_is_ignored_when_a_step_is_given():
    s = run(kw(step=3, total=10, pct=90))
    assert s.value == 3.0
    assert dict(s.postfix) == {}


def test_label_precedence_and_the_other_label_keys_become_postfix():
    s = run(kw(message="m", desc="d", stage="s"))
    assert s.label == "s"
    assert dict(s.postfix) == {"desc": "d", "message": "m"}
    assert run(kw(message="only")).label == "only"


def test_title_combines_the_option_desc_with_the_payload_label():
    assert format_title(run(kw(stage="load"), desc="train")) == "train: load"
    assert format_title(run(desc="train")) == "train"
    assert format_title(run(kw(stage="load"))) == "load"


def test_postfix_keeps_payload_order_and_merges_by_key():
    s = run(kw(loss=0.5, acc=0.25), kw(loss=0.125, lr=1e-4))
    assert s.postfix == (("loss", "0.125"), ("acc", "0.25"), ("lr", "0.0001"))
    assert format_postfix(s) == "loss=0.125, acc=0.25, lr=0.0001"


def test_postfix_number_formatting_like_tqdm():
    s = run(kw(a=1 / 3, b=10**12, c=True, d=Fraction(1, 4), e=Decimal("1.50"), f=timedelta(seconds=90), g=2 + 1j))
    d = dict(s.postfix)
    assert d["a"] == "0.333"
    assert d["b"] == "1e+12"
    assert d["c"] == "True"
    assert d["e"] == "1.50"
    assert d["f"] == "0:01:30"
    assert d["g"] == "(2+1j)"
    assert d["d"] in ("0.25", "1/4")


def test_payload_updates_only_what_it_names():
    s = run(kw(step=1, total=10, stage="load", loss=1.0), kw(step=2))
    assert (s.value, s.total, s.label, dict(s.postfix)) == (2.0, 10.0, "load", {"loss": "1"})


def test_positional_payloads():
    assert run(((5,), {})).value == 5.0
    s = run(((5, 20), {}))
    assert (s.value, s.total) == (5.0, 20.0)
    assert run((("loading",), {})).label == "loading"
    s = run((({"step": 2, "total": 4, "x": 1},), {}))
    assert (s.value, s.total, dict(s.postfix)) == (2.0, 4.0, {"x": "1"})
    # keywords beat positionals
    assert run(((5,), {"step": 9})).value == 9.0


class TensorLike:
    """A 1-element tensor / numpy 0-d array stand-in: not a numbers.Number, but float() works."""

    def __float__(self) -> float:
        return 0.25


class Hostile:
    def __float__(self) -> float:
        raise RuntimeError("no")

    def __str__(self) -> str:
        raise RuntimeError("no")

    __repr__ = __str__


def test_tensor_like_values_and_hostile_objects():
    s = run(kw(step=TensorLike(), total=1, loss=TensorLike()))
    assert s.value == 0.25
    assert dict(s.postfix) == {"loss": "0.25"}
    s = run(kw(step=Hostile(), stage=Hostile(), h=Hostile()))
    assert (s.value, s.label, s.postfix) == (0.0, "", ())


@pytest.mark.parametrize(
    "payload",
    [
        {"step": None},
        {"step": float("nan")},
        {"step": float("inf")},
        {"step": "12"},
        {"step": True},
        {"step": [1, 2]},
        {"total": 0},
        {"total": -5},
        {"total": float("nan")},
        {"total": float("-inf")},
        {"pct": float("nan")},
    ],
)
def test_garbage_numbers_are_ignored(payload):
    s = run(kw(step=3, total=10), ((), payload))
    assert (s.value, s.total) == (3.0, 10.0)


def test_negative_value_counts_as_zero_and_value_past_total_is_a_full_bar():
    assert run(kw(step=-4, total=10)).value == 0.0
    s = run(kw(step=150, total=100))
    assert s.fraction == 1.0
    assert format_meter(s).count("█") == 20
    assert "150/100" in format_meter(s)


def test_containers_and_none_are_not_shown():
    s = run(kw(a=[1, 2], b={"x": 1}, c=None, d=(1,), e={1, 2}, stage=["x"]))
    assert s.postfix == ()
    assert s.label == ""


def test_postfix_is_bounded():
    s = run(kw(**{f"k{i}": i for i in range(1000)}))
    assert len(s.postfix) == st.MAX_POSTFIX_ITEMS
    s = run(kw(**{"k" * 100: "v" * 10_000}))
    ((key, value),) = s.postfix
    assert len(key) == st.MAX_KEY and key.endswith("…")
    assert len(value) == st.MAX_VALUE and value.endswith("…")


def test_a_megabyte_string_is_truncated_quickly():
    big = "x" * 1_000_000
    t0 = time.perf_counter()
    s = run(kw(stage=big, note=big))
    assert time.perf_counter() - t0 < 0.05
    assert len(s.label) == st.MAX_LABEL
    assert len(format_meter(s)) < 300


def test_control_characters_and_newlines_are_removed():
    s = run(kw(stage="a\nb\r\tc\x1b[31mred\x00", k="\x9bx"))
    assert s.label == "a b c [31mred"
    assert dict(s.postfix) == {"k": "x"}
    assert "\x1b" not in format_meter(s)


def test_lone_surrogates_do_not_survive():
    s = run(kw(stage="a\ud800b"))
    s.label.encode("utf-8")  # would raise on a lone surrogate


def test_apply_never_raises_on_odd_arguments():
    assert apply(RUNNING, None, None) is RUNNING
    assert apply(RUNNING, "not a tuple", [1, 2]) is RUNNING
    assert apply(RUNNING, (), {}) is RUNNING


def test_clean_text():
    assert clean_text("  a   b  ", 10) == "a b"
    assert clean_text("abcdef", 4) == "abc…"
    assert clean_text(b"caf\xc3\xa9", 10) == "café"
    assert clean_text(Hostile(), 10) == "?"
    assert clean_text(12, 10) == "12"


# ---------------------------------------------------------------------------------------- clock


def test_tick_elapsed_and_smoothed_rate():
    s = apply(start(new_state(total=100), 10.0), (), {"step": 10})
    s = tick(s, 11.0)
    assert s.elapsed == 1.0
    assert s.rate == pytest.approx(10.0)
    s = tick(apply(s, (), {"step": 40}), 12.0)  # sample 30/s, smoothed 0.3*30 + 0.7*10
    assert s.rate == pytest.approx(16.0)
    assert s.eta == pytest.approx(60 / 16.0)


def test_tick_ignores_too_short_windows_and_restarts_when_the_value_goes_back():
    s = tick(apply(start(new_state(), 0.0), (), {"step": 10}), 1.0)
    assert tick(apply(s, (), {"step": 1000}), 1.01).rate == s.rate
    back = tick(apply(s, (), {"step": 2}), 2.0)
    assert back.rate is None
    assert back.mark == (2.0, 2.0)


def test_tick_only_moves_running_bars():
    idle = new_state()
    assert tick(idle, 5.0) is idle
    done = finish(RUNNING, "completed", now=1.0)
    assert tick(done, 9.0) is done


def test_eta_is_zero_at_the_total_and_unknown_without_a_rate():
    assert apply(RUNNING, (), {"step": 5, "total": 5}).eta == 0.0
    assert apply(RUNNING, (), {"step": 1, "total": 5}).eta is None


# ---------------------------------------------------------------------------------------- outcomes


def test_finish_completed_fills_a_known_total_and_uses_the_job_duration():
    s = finish(apply(RUNNING, (), {"step": 3, "total": 10}), "completed", now=99.0, duration=2.0)
    assert (s.status, s.value, s.elapsed, s.rate) == ("completed", 10.0, 2.0, 5.0)
    assert s.is_final and s.eta is None
    assert format_meter(s).endswith("| 10/10 [00:02, 5.00it/s] done")


def test_finish_failed_and_cancelled_keep_the_value_and_show_the_reason():
    base = apply(RUNNING, (), {"step": 3, "total": 10})
    failed = finish(base, "failed", "ValueError: boom\n  more", now=4.0)
    assert (failed.value, failed.elapsed) == (3.0, 4.0)
    assert format_status(failed) == "failed: ValueError: boom more"
    cancelled = finish(base, "cancelled", "timed out after 5s", now=4.0)
    assert format_status(cancelled) == "cancelled: timed out after 5s"
    assert format_status(finish(base, "cancelled", "cancelled (cancel)")) == "cancelled (cancel)"
    assert format_status(finish(base, "cancelled")) == "cancelled"


def test_finish_accepts_str_enums_and_maps_unknown_statuses_to_failed():
    from quiv_nb import JobStatus

    assert finish(RUNNING, JobStatus.CANCELLED).status == "cancelled"
    assert finish(RUNNING, "exploded").status == "failed"
    assert finish(RUNNING, "failed", "x" * 10_000).message.endswith("…")


def test_rewound():
    full = apply(RUNNING, (), {"step": 10, "total": 10})
    assert rewound(full, apply(full, (), {"step": 1}))
    assert not rewound(apply(RUNNING, (), {"step": 5, "total": 10}), apply(RUNNING, (), {"step": 1}))


# ---------------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "00:00"), (59.9, "00:59"), (61, "01:01"), (3600, "1:00:00"), (None, "?"), (math.nan, "?")]
)
def test_format_interval(seconds, text):
    assert format_interval(seconds) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(None, "?it/s"), (0, "?it/s"), (12.3, "12.30it/s"), (0.4, "2.50s/it"), (12345, "12.35kit/s"), (math.inf, "?it/s")],
)
def test_format_rate(rate, text):
    assert format_rate(rate) == text


@pytest.mark.parametrize(
    ("x", "text"), [(3.0, "3"), (2.5, "2.5"), (1 / 3, "0.33"), (123456.7, "1.23e+5"), (1e-5, "1e-5"), (1e300, "1e+300")]
)
def test_format_number(x, text):
    assert format_number(x) == text


def test_format_meter_like_tqdm():
    s = tick(apply(start(new_state("train"), 0.0), (), {"step": 42, "total": 100, "loss": 0.5}), 3.0)
    assert format_meter(s) == "train:  42%|████████▍           | 42/100 [00:03<00:04, 14.00it/s, loss=0.5]"
    assert format_meter(s, ascii=True) == "train:  42%|########4           | 42/100 [00:03<00:04, 14.00it/s, loss=0.5]"
    unknown = tick(apply(start(new_state(unit="B"), 0.0), (7,), {}), 2.0)
    assert format_meter(unknown) == "7B [00:02, 3.50B/s]"
    # An idle bar says what it waits for, not "0/10 [00:00<?, ?it/s]".
    assert format_meter(new_state("x", total=10)) == "x: waiting"
    assert format_meter(replace(new_state("load"), message="waiting for extract")) == "load: waiting for extract"


def test_format_meter_width_trims():
    s = apply(RUNNING, (), {"step": 1, "total": 3, "stage": "a long stage name"})
    line = format_meter(s, width=30)
    assert len(line) == 30 and line.endswith("…")
    assert format_meter(s, width=30, ascii=True).endswith("~")


def test_idle_state_from_options():
    s = new_state("  my\njob ", unit="", total=-1)
    assert (s.desc, s.unit, s.total, s.status) == ("my job", "it", None, "idle")


# ---------------------------------------------------------------------------------------- properties

scalars = (
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(2**70), max_value=2**70)
    | hs.floats(allow_nan=True, allow_infinity=True)
    | hs.text(max_size=200)
    | hs.binary(max_size=50)
    | hs.decimals(allow_nan=True)
    | hs.fractions()
    | hs.complex_numbers(allow_nan=True)
)


def _containers(inner: hs.SearchStrategy) -> hs.SearchStrategy:
    return hs.lists(inner, max_size=3) | hs.dictionaries(hs.text(max_size=5), inner, max_size=3)


values = hs.recursive(scalars, _containers, max_leaves=8)
known_keys = ["step", "progress", "n", "total", "pct", "stage", "desc", "message", "loss"]
keys = hs.sampled_from(known_keys) | hs.text(max_size=30)
payload_kwargs = hs.dictionaries(keys, values, max_size=12)
payload_args = hs.lists(values, max_size=3).map(tuple)


def _check_invariants(s: BarState) -> None:
    assert math.isfinite(s.value) and s.value >= 0
    assert s.total is None or (math.isfinite(s.total) and s.total > 0)
    assert s.fraction is None or 0.0 <= s.fraction <= 1.0
    assert len(s.label) <= st.MAX_LABEL
    assert len(s.postfix) <= st.MAX_POSTFIX_ITEMS
    for key, value in s.postfix:
        assert isinstance(key, str) and isinstance(value, str)
        assert len(key) <= st.MAX_KEY and len(value) <= st.MAX_VALUE


def _check_line(line: str) -> None:
    assert isinstance(line, str)
    assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in line)
    line.encode("utf-8")
    assert len(line) < 600


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(hs.tuples(payload_args, payload_kwargs), min_size=1, max_size=4), hs.floats(0, 1e6))
def test_any_payload_sequence_renders(payloads, later):
    s = start(new_state("desc"), 0.0)
    for args, kwargs in payloads:
        s = tick(apply(s, args, kwargs), later)
        _check_invariants(s)
        _check_line(format_meter(s))
        _check_line(format_stats(s))
    for status in ("completed", "failed", "cancelled"):
        done = finish(s, status, "x\n" * 500, now=later + 1)
        _check_invariants(done)
        _check_line(format_meter(done, width=80))
        assert done.status == status


@settings(max_examples=200, deadline=None)
@given(hs.floats(allow_nan=True, allow_infinity=True), hs.floats(allow_nan=True, allow_infinity=True))
def test_any_step_and_total(step, total):
    s = apply(RUNNING, (step, total), {})
    _check_invariants(s)
    _check_line(format_meter(s))
    s = apply(RUNNING, (), {"step": step, "total": total, "pct": step})
    _check_invariants(s)
    _check_line(format_meter(tick(s, 1.0)))


@settings(max_examples=100, deadline=None)
@given(hs.floats(allow_nan=True, allow_infinity=True) | hs.none())
def test_formatters_take_any_number(x):
    _check_line(format_interval(x))
    _check_line(format_rate(x))
    if x is not None:
        _check_line(format_number(x))


def test_state_module_is_pure():
    src = sys.modules["quiv_nb.render.state"].__file__
    text = open(src, encoding="utf-8").read()
    for name in ("ipywidgets", "IPython", "tqdm", "threading", "time.monotonic"):
        assert f"import {name}" not in text and f"from {name}" not in text


def test_a_cached_bar_says_when_its_result_was_computed() -> None:
    from datetime import datetime, timedelta, timezone

    from quiv_nb.render.bar_look import CACHED_COLOUR, static_html
    from quiv_nb.render.format import cached_note

    now = datetime(2026, 3, 2, 11, 20, tzinfo=timezone.utc)
    computed = now - timedelta(hours=2, minutes=6)
    note = cached_note(computed, now)
    assert note == f"computed {computed.astimezone():%H:%M}, 2h ago"
    assert cached_note(now - timedelta(seconds=3), now).endswith(", just now")
    assert cached_note(now - timedelta(days=3), now).endswith(", 3d ago")
    bar = st.finish(st.start(st.new_state("load"), 0.0), "completed", now=0.01, duration=0.001, cached=note)
    assert st.format_status(bar) == f"cached · {note}"
    ran = st.finish(st.start(st.new_state("load"), 0.0), "completed", now=0.01, duration=0.001)
    assert st.format_status(ran).startswith("done") and not ran.cached
    assert CACHED_COLOUR in static_html(bar) and CACHED_COLOUR not in static_html(ran)
    failed = st.finish(st.start(st.new_state("load"), 0.0), "failed", "boom", cached=note)
    assert failed.cached == ""  # only a completed job can be a reused result
