"""PyG's own ``TGNMemory`` test, run against pyg_tgl's :class:`NodeMemory` and against
``TGNMemory`` itself, so the two cannot drift apart unnoticed.

The assertions of :func:`check_pyg_test_tgn` re-express those of PyG's
``test/nn/models/test_tgn.py`` (pyg-team/pytorch_geometric, last changed in commit
d68ecc043aa2b4bdabeb42018b6c65bdf99b2a1d; the same file at tag 2.8.0.post1, commit
d4e1c45689967a614a7f3d873ad4ba83c4a1f3bd, whose ``torch_geometric/nn/models/tgn.py`` equals the
installed 2.8.1's). The installed wheel ships no tests, hence the re-expression here; the memory
constructor is the only thing that varies. Comments marked "not in PyG's test" are our additions.
"""
from __future__ import annotations

import pytest
import torch
from torch_geometric.data import TemporalData
from torch_geometric.loader import TemporalDataLoader
from torch_geometric.nn import TGNMemory
from torch_geometric.nn.models.tgn import IdentityMessage, LastAggregator, LastNeighborLoader

from pyg_tgl.nn import NodeMemory

MEMORY_DIM = TIME_DIM = 16


def pyg_memory(num_nodes: int, raw_msg_dim: int) -> torch.nn.Module:
    """The constructor call of PyG's test."""
    return TGNMemory(num_nodes=num_nodes, raw_msg_dim=raw_msg_dim, memory_dim=MEMORY_DIM,
                     time_dim=TIME_DIM,
                     message_module=IdentityMessage(raw_msg_dim, MEMORY_DIM, TIME_DIM),
                     aggregator_module=LastAggregator())


def our_memory(num_nodes: int, raw_msg_dim: int) -> torch.nn.Module:
    """NodeMemory substituted for it (same keyword names, no message/aggregator modules)."""
    return NodeMemory(num_nodes=num_nodes, raw_msg_dim=raw_msg_dim, memory_dim=MEMORY_DIM,
                      time_dim=TIME_DIM)


MEMORIES = {"TGNMemory": pyg_memory, "NodeMemory": our_memory}


def check_pyg_test_tgn(make_memory, neg_sampling_ratio: float, seed: int = 0) -> list:
    """PyG's ``test_tgn`` with ``make_memory`` building the memory. Returns what the memory
    answered at each step (``(step, n_id, last_update)``), for comparing two memories."""
    torch.manual_seed(seed)
    src = torch.tensor([0, 1, 0, 2, 0, 3, 1, 4, 2, 3])
    dst = torch.tensor([1, 2, 1, 1, 3, 2, 4, 3, 3, 4])
    t = torch.arange(10)
    msg = torch.randn(10, 16)
    data = TemporalData(src=src, dst=dst, t=t, msg=msg)

    loader = TemporalDataLoader(data, batch_size=5, neg_sampling_ratio=neg_sampling_ratio)
    neighbor_loader = LastNeighborLoader(data.num_nodes, size=3)
    assert neighbor_loader.cur_e_id == 0
    assert neighbor_loader.e_id.size() == (data.num_nodes, 3)

    memory = make_memory(data.num_nodes, msg.size(-1))
    assert memory.memory.size() == (data.num_nodes, MEMORY_DIM)
    assert memory.last_update.size() == (data.num_nodes, )
    # Not in PyG's test: the two memories then draw the same negatives (their constructors
    # consume different amounts of the random stream).
    torch.manual_seed(seed + 1)
    trace = []

    # Training:
    for i, batch in enumerate(loader):
        n_id, edge_index, e_id = neighbor_loader(batch.n_id)
        z, last_update = memory(n_id)
        trace.append((f"train batch {i}", n_id, last_update))
        memory.update_state(batch.src, batch.dst, batch.t, batch.msg)
        neighbor_loader.insert(batch.src, batch.dst)
        if i == 0:
            assert n_id.size(0) >= 4
            assert edge_index.numel() == 0
            assert e_id.numel() == 0
            assert z.size() == (n_id.size(0), MEMORY_DIM)
            assert torch.sum(last_update) == 0
        else:
            assert n_id.size(0) == 5
            assert edge_index.numel() == 12
            assert e_id.numel() == 6
            assert z.size() == (n_id.size(0), MEMORY_DIM)
            assert torch.equal(last_update, torch.tensor([4, 3, 3, 4, 0]))

    # Inference:
    memory.eval()
    all_n_id = torch.arange(data.num_nodes)
    z, last_update = memory(all_n_id)
    trace.append(("eval", all_n_id, last_update))
    assert z.size() == (data.num_nodes, MEMORY_DIM)
    assert torch.equal(last_update, torch.tensor([4, 6, 8, 9, 9]))

    post_src = torch.tensor([3, 4])
    post_dst = torch.tensor([4, 3])
    post_t = torch.tensor([10, 10])
    post_msg = torch.randn(2, 16)
    memory.update_state(post_src, post_dst, post_t, post_msg)
    post_z, post_last_update = memory(all_n_id)
    trace.append(("eval after update_state", all_n_id, post_last_update))
    assert torch.allclose(z[0:3], post_z[0:3])
    assert torch.equal(post_last_update, torch.tensor([4, 6, 8, 10, 10]))
    # Not in PyG's test: the events did reach nodes 3 and 4, so the reset below has work to do.
    assert not torch.allclose(z[3:], post_z[3:])
    assert memory.memory.abs().sum() > 0 and memory.last_update.sum() > 0

    memory.reset_state()
    assert memory.memory.sum() == 0
    assert memory.last_update.sum() == 0
    return trace


@pytest.mark.parametrize("neg_sampling_ratio", [0.0, 1.0])
@pytest.mark.parametrize("memory_name", sorted(MEMORIES))
def test_pyg_test_tgn(memory_name: str, neg_sampling_ratio: float) -> None:
    check_pyg_test_tgn(MEMORIES[memory_name], neg_sampling_ratio)


@pytest.mark.parametrize("neg_sampling_ratio", [0.0, 1.0])
def test_node_memory_answers_as_tgn_memory_does(neg_sampling_ratio: float) -> None:
    # Not in PyG's test: beyond the values PyG asserts, every (n_id, last_update) that the two
    # memories return along the test's event stream is the same.
    ours = check_pyg_test_tgn(our_memory, neg_sampling_ratio)
    theirs = check_pyg_test_tgn(pyg_memory, neg_sampling_ratio)
    assert [step for step, *_ in ours] == [step for step, *_ in theirs]
    for (step, n_ours, last_ours), (_, n_theirs, last_theirs) in zip(ours, theirs):
        assert torch.equal(n_ours, n_theirs), step
        assert torch.equal(last_ours, last_theirs), step
