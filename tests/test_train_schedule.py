"""Batch schedules: chronological and random chunk scheduling (TGL's ``reorder``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_tgl.train.schedule import (BatchSchedule, chronological_batches, interleaved_batches,
                                    offset_batches)


def _assert_partition(batches, events):
    flat = torch.cat(batches)
    assert flat.numel() == events.numel(), "some event is missing or repeated"
    assert torch.equal(torch.sort(flat).values, torch.sort(events).values)
    for b in batches:  # each batch in time (= event) order
        assert b.numel() > 0
        assert torch.all(b[1:] > b[:-1])


@pytest.mark.parametrize("variant", ["offset", "interleave", "tgl"])
@pytest.mark.parametrize("n,bs,reorder", [(1000, 100, 4), (997, 60, 16), (37, 8, 8), (5, 20, 4)])
def test_random_chunk_covers_each_event_once_per_epoch(variant, n, bs, reorder):
    events = torch.arange(100, 100 + n)  # a training split that does not start at event 0
    sched = BatchSchedule(slice(100, 100 + n), bs, "random_chunk", reorder, variant, seed=3)
    for epoch in range(12):
        batches = sched.batches(epoch)
        _assert_partition(batches, events)
        # Interleaved chunks round up when reorder does not divide the batch size.
        assert max(b.numel() for b in batches) <= reorder * -(-bs // reorder)


def test_offset_moves_batch_boundaries_by_whole_chunks():
    sched = BatchSchedule(slice(0, 1000), 100, "random_chunk", reorder=4, seed=0)
    offsets = set()
    for epoch in range(40):
        c = sched.choice(epoch)
        assert c.startswith("offset:")
        o = int(c.split(":")[1])
        offsets.add(o)
        batches = sched.batches(epoch)
        if o:
            assert batches[0].tolist() == list(range(o))
            assert batches[1][0] == o
        # Every boundary after the first sits at o + k * batch_size.
        starts = [int(b[0]) for b in batches[1 if o else 0:]]
        assert all((s - o) % 100 == 0 for s in starts)
    assert offsets == {0, 25, 50, 75}
    # The choice is a function of (seed, epoch): a resumed run sees the same schedule.
    again = BatchSchedule(slice(0, 1000), 100, "random_chunk", reorder=4, seed=0)
    assert all(torch.equal(torch.cat(sched.batches(e)), torch.cat(again.batches(e)))
               and len(sched.batches(e)) == len(again.batches(e)) for e in range(5))


def test_interleave_matches_tgl_grouping():
    # TGL: group_idx pattern repeated per chunk, added to position // batch_size, pandas groupby.
    n, bs, reorder = 230, 20, 4
    chunk = bs // reorder
    pattern = []
    for i in range(reorder):
        pattern += list(range(-i, reorder - i))
    group_idx = np.tile(np.repeat(np.array(pattern), chunk), n // bs + 1)[:n]
    groups = np.arange(n) // bs + group_idx
    expected = [np.nonzero(groups == g)[0].tolist() for g in np.unique(groups)]
    got = [b.tolist() for b in interleaved_batches(slice(0, n), bs, reorder)]
    assert got == expected


def test_tgl_variant_draws_all_groupings():
    sched = BatchSchedule(slice(0, 400), 40, "random_chunk", reorder=4, variant="tgl", seed=1)
    seen = {sched.choice(e) for e in range(200)}
    assert seen == {"offset:0", "interleave", "offset:10", "offset:20", "offset:30"}


def test_chronological_and_bad_input():
    assert [b.tolist() for b in chronological_batches(slice(3, 10), 3)] == [[3, 4, 5], [6, 7, 8],
                                                                           [9]]
    sched = BatchSchedule(torch.arange(10), 4)
    assert [b.tolist() for b in sched.batches(0)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b.tolist() for b in offset_batches(torch.arange(6), 4, 2)] == [[0, 1], [2, 3, 4, 5]]
    with pytest.raises(ValueError, match=r"batch_size=8 < schedule.reorder=16"):
        BatchSchedule(slice(0, 100), 8, "random_chunk", reorder=16)
    with pytest.raises(ValueError, match="allowed"):
        BatchSchedule(slice(0, 100), 8, "shuffle")
    with pytest.raises(ValueError, match="variant"):
        BatchSchedule(slice(0, 100), 8, "random_chunk", reorder=2, variant="zigzag")
