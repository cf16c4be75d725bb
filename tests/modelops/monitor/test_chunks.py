"""Chunks cut by the rows' own log times: the same chunks however often (or late) somebody looks."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modelops.monitor import chunks


@dataclass(frozen=True)
class Row:
    ts: float


def _rows(*times: float) -> list[Row]:
    return [Row(t) for t in times]


def test_an_interval_joins_the_pending_chunk_when_it_closes_and_a_chunk_waits_for_enough_rows() -> None:
    chunker: chunks.Chunker[Row] = chunks.Chunker(interval_s=60, min_rows=3, start=1000.0)
    chunker.add(_rows(1000, 1010, 1030, 1050))  # two in [960, 1020), two in [1020, 1080)
    assert chunker.close(1019.0) == [], "nothing closed yet"
    assert chunker.close(1021.0) == [] and chunker.waiting == 4, "2 rows closed: fewer than a chunk, they wait"
    assert chunker.close(1080.0) == [_rows(1000, 1010, 1030, 1050)], "the next interval completes the chunk"


def test_one_late_look_cuts_the_same_chunks_as_a_look_after_every_interval() -> None:
    times = [1000 + 7.0 * i for i in range(60)]  # 7 min of rows, 8 or 9 an interval
    often: chunks.Chunker[Row] = chunks.Chunker(60, 10, start=times[0])
    cut_often = []
    for i, t in enumerate(times):
        often.add([Row(t)])
        if i % 5 == 4:
            cut_often += often.close(t)
    cut_often += often.close(2000.0)
    once: chunks.Chunker[Row] = chunks.Chunker(60, 10, start=times[0])
    once.add(_rows(*times))
    assert once.close(2000.0) == cut_often
    assert all(len(c) >= 10 for c in cut_often)


def test_a_row_that_arrives_after_its_interval_was_judged_is_counted_late_and_judged_next() -> None:
    chunker: chunks.Chunker[Row] = chunks.Chunker(60, 2, start=960.0)
    chunker.add(_rows(970, 980))
    assert chunker.close(1030.0) == [_rows(970, 980)]
    chunker.add(_rows(990, 1030))  # 990 belongs to the judged interval
    assert chunker.late == 1
    assert chunker.close(1100.0) == [_rows(990, 1030)]


@pytest.mark.parametrize(
    ("interval", "now", "closed", "look"),
    [(60, 1021.0, 960.0, 1022.0), (60, 1022.0, 1020.0, 1082.0), (1, 10.4, 9.0, 10.5)],
)
def test_an_interval_closes_a_settle_after_its_end(interval, now, closed, look) -> None:
    assert chunks.closed_until(now, interval) == closed
    assert chunks.next_look(now, interval) == pytest.approx(look)
