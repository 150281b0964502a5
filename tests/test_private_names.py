"""Every private name quiv_nb relies on, checked where it lives: a release that moves one fails here,
naming what moved and what of quiv_nb depends on it, instead of breaking a feature quietly.

Speed shortcuts are kept only where undoing them costs >= 10 % on the one-shot burst
(`python benchmarks/bench_shortcuts.py`, benchmarks/RESULTS.md "Private-API shortcuts"); the
ipykernel/pyzmq ones make busy-cell controls work (docs/design.md, "Controls while a cell is busy");
distributed's topic table keeps a Dask progress topic's memory bounded.
"""

from __future__ import annotations

import _thread
import asyncio
import inspect
import threading
from importlib import metadata

import pytest

from quiv_nb.locks import YieldingRLock
from quiv_nb.models import Job, Task


def _version(dist: str) -> tuple[int, ...]:
    return tuple(int(p) for p in metadata.version(dist).split(".")[:2] if p.isdigit())


# ------------------------------------------------------------------------------ CPython (3.10-3.13 checked)


def test_the_scheduler_lock_subclasses_the_c_rlock() -> None:
    """locks.YieldingRLock subclasses `_thread.RLock` (what `threading.RLock()` returns) and leaves
    `release` and the methods `threading.Condition` uses (`_is_owned`, `_release_save`,
    `_acquire_restore`) to it: the timeline's Condition waits on this lock."""
    assert isinstance(_thread.RLock, type), "_thread.RLock is no longer a type: locks.YieldingRLock cannot subclass it"
    lock = YieldingRLock()
    for name in ("_is_owned", "_release_save", "_acquire_restore", "release"):
        assert hasattr(lock, name), f"_thread.RLock has no {name} any more: threading.Condition(YieldingRLock()) breaks"
    with lock, lock:  # re-entrant
        assert lock._is_owned()
    cond = threading.Condition(lock)
    with cond:
        assert not cond.wait(0.01)  # waits release and re-take the lock through the C methods
    assert not lock._is_owned()


def test_snapshots_can_be_filled_through_their_dict() -> None:
    """records.TaskRecord/JobRecord.snapshot build `Task`/`Job` with `object.__new__` and one
    `__dict__.update`: that needs frozen dataclasses without `__slots__` (a dict per instance)."""
    for cls in (Task, Job):
        snap = object.__new__(cls)
        assert isinstance(getattr(snap, "__dict__", None), dict), (
            f"{cls.__name__} instances have no __dict__ (slots?): records' snapshot fast path cannot fill them"
        )


def test_asyncio_running_loop_markers_exist() -> None:
    """dispatch.run_in_temporary_loop sets the thread's running-loop marker aside for a nested run
    (an async callback with no main loop, called from an async handler); no public API does that.
    `_get_running_loop` / `_set_running_loop` are in `asyncio.events.__all__` for loop implementations."""
    for name in ("_get_running_loop", "_set_running_loop"):
        assert callable(getattr(asyncio, name, None)), f"asyncio.{name} is gone: dispatch.run_in_temporary_loop breaks"
    assert asyncio._get_running_loop() is None


# ------------------------------------------------------------------------------ ipykernel 7.4.0 / pyzmq 27.3 checked


def _ipykernel_at_least(version: tuple[int, int], why: str) -> None:
    """Skip (saying why) where the installed ipykernel predates the code path that needs the name."""
    pytest.importorskip("ipykernel")
    if _version("ipykernel") < version:
        pytest.skip(f"ipykernel {metadata.version('ipykernel')}: {why}")


def test_ipykernel_routes_comm_replies_through_a_per_comm_hook() -> None:
    """kernel.controls.answer_on_sender_shell overrides `BaseComm._reply_subshell_for` on one comm
    (checked on ipykernel 7.4.0); ipykernel's shell channel thread must still read it from the comm."""
    _ipykernel_at_least((7, 4), "no per-comm routing before 7.4 (nothing to override)")
    from ipykernel import kernelbase
    from ipykernel.comm.comm import BaseComm

    assert callable(getattr(BaseComm, "_reply_subshell_for", None)), (
        f"ipykernel {metadata.version('ipykernel')} moved BaseComm._reply_subshell_for (checked on 7.4.0): "
        "dashboard clicks during a busy cell would wait for the cell"
    )
    assert "_reply_subshell_for" in inspect.getsource(kernelbase), (
        f"ipykernel {metadata.version('ipykernel')} no longer reads a comm's _reply_subshell_for (checked on 7.4.0)"
    )


def test_ipykernel_main_shell_stream_is_reachable() -> None:
    """kernel.controls.comm_messages_flow takes over the main shell's stream during a wait, reached as
    `kernel.shell_channel_thread.manager.get_shell_channel_to_subshell_pair(None).to_stream` (7.4.0)."""
    _ipykernel_at_least((7, 0), "6.x waits poll with jupyter-ui-poll instead")
    from ipykernel.socket_pair import SocketPair
    from ipykernel.subshell_manager import SubshellManager

    assert callable(getattr(SubshellManager, "get_shell_channel_to_subshell_pair", None)), (
        f"ipykernel {metadata.version('ipykernel')} moved SubshellManager.get_shell_channel_to_subshell_pair "
        "(checked on 7.4.0): clicks during %quiv wait would wait for the cell"
    )
    assert "to_stream" in getattr(SocketPair, "__annotations__", {}), (
        f"ipykernel {metadata.version('ipykernel')}: SocketPair has no to_stream (checked on 7.4.0)"
    )


def test_pyzmq_stream_keeps_its_receive_callback() -> None:
    """comm_messages_flow saves and restores a ZMQStream's `_recv_callback` / `_recv_copy` (pyzmq has
    no public getter; checked on pyzmq 27.3)."""
    zmq = pytest.importorskip("zmq")
    from tornado.platform.asyncio import AsyncIOLoop
    from zmq.eventloop.zmqstream import ZMQStream

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PAIR)
    io_loop = AsyncIOLoop(make_current=False)
    try:
        stream = ZMQStream(sock, io_loop)

        def callback(msg: list[bytes]) -> None:
            return None

        stream.on_recv(callback, copy=False)
        assert getattr(stream, "_recv_callback", None) is callback, (
            f"pyzmq {zmq.__version__}: ZMQStream no longer keeps its callback in _recv_callback"
        )
        assert getattr(stream, "_recv_copy", None) is False, f"pyzmq {zmq.__version__}: ZMQStream._recv_copy moved"
        stream.close()
    finally:
        sock.close(linger=0)
        ctx.term()
        io_loop.close()


# ------------------------------------------------------------------------------ distributed 2026.8.0 checked


@pytest.mark.dask
def test_distributed_keeps_topics_where_the_trim_reaches_them() -> None:
    """dask.remote._trim_topic clears our progress topic's stored events on the scheduler through
    `Scheduler._broker._topics` (checked on distributed 2026.8.0); without it a topic keeps the last
    1,000 batches for the scheduler's lifetime (the trim then does nothing: no error, more memory)."""
    pytest.importorskip("distributed")
    from distributed.broker import Broker

    broker = Broker(10, None)  # type: ignore[arg-type]
    topics = getattr(broker, "_topics", None)
    assert isinstance(topics, dict), (
        f"distributed {metadata.version('distributed')} moved Broker._topics (checked on 2026.8.0): "
        "quiv_nb.dask no longer trims its progress topics"
    )
    broker.subscribe("quiv_nb-progress-x", "client")
    assert hasattr(topics["quiv_nb-progress-x"], "events"), "distributed's Topic no longer stores .events"
    from distributed import scheduler

    assert "self._broker = Broker(" in inspect.getsource(scheduler.Scheduler.__init__), (
        "distributed's Scheduler no longer keeps its Broker in _broker"
    )
