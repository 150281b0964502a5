"""`quiv_nb.dask.wire`: the record types survive the wire as Dask's msgpack carries them, no cluster needed."""

from __future__ import annotations

import pickle

import pytest

msgpack = pytest.importorskip("msgpack")
pytest.importorskip("distributed")

from quiv_nb.dask.wire import (  # noqa: E402
    Ended,
    JobRecords,
    Progress,
    Started,
    decode_batch,
    encode_batch,
    plain_payload,
    restore,
    restore_kwargs,
)
from quiv_nb.execution import Outcome  # noqa: E402


def over_the_wire(value: object) -> object:
    """What a subscriber receives: Dask unpacks msgpack with use_list=False (sequences come back as tuples)."""
    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False, use_list=False)


def test_a_batch_round_trips_with_its_record_types_and_order() -> None:
    outcome = pickle.dumps(Outcome(True, result=[1, 2]))
    batch = [
        JobRecords("a", [Started(), plain_payload((3,), {"step": 1, "shape": (2, [3])}), Ended(outcome)]),
        JobRecords("b", [Started(), Ended(None)]),
    ]
    decoded = decode_batch(over_the_wire(encode_batch(batch)))
    assert [job_id for job_id, _ in decoded] == ["a", "b"]
    (started, progress, ended), (started_b, ended_b) = decoded[0].records, decoded[1].records
    assert (started, started_b) == (Started(), Started())
    assert isinstance(progress, Progress)
    assert [restore(a) for a in progress.args] == [3]
    assert restore_kwargs(progress.kwargs) == {"step": 1, "shape": [2, [3]]}
    assert isinstance(ended, Ended) and pickle.loads(ended.outcome) == Outcome(True, result=[1, 2])
    assert ended_b == Ended(None)


def test_an_unknown_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown quiv_nb record tag 7"):
        decode_batch([["a", [[7]]]])
