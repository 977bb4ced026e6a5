"""Mailbox and NodeMemory: exact state after hand-made event sequences, TGL and PyG semantics."""
from __future__ import annotations

import pytest
import torch

from pyg_tgl.data.batch import SampledHop, TemporalBatch
from pyg_tgl.models import build_model
from pyg_tgl.nn import Mailbox, NodeMemory, latest_entry_of, latest_per_node

F64 = torch.float64


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_batch(src, dst, t, eid, neg, blocks=None) -> TemporalBatch:
    src, dst, neg = (torch.tensor(v, dtype=torch.long) for v in (src, dst, neg))
    t = torch.tensor(t, dtype=F64)
    q = neg.numel() // src.numel()
    return TemporalBatch(src=src, dst=dst, t=t, eid=torch.tensor(eid, dtype=torch.long),
                         neg_dst=neg, root_nodes=torch.cat([src, dst, neg]),
                         root_ts=torch.cat([t, t, t.repeat(q)]), blocks=blocks or [])


# -- latest_per_node / Mailbox --------------------------------------------------------------------

def test_latest_per_node_matches_brute_force():
    g = torch.Generator().manual_seed(5)
    for _ in range(20):
        n = int(torch.randint(1, 40, (1,), generator=g))
        nodes = torch.randint(0, 8, (n,), generator=g)
        ts = torch.randint(0, 4, (n,), generator=g).to(F64)  # many ties
        keep = latest_per_node(nodes, ts)
        best = {}
        for i in range(n):  # latest time, ties to the later position
            v = int(nodes[i])
            if v not in best or ts[i] >= ts[best[v]]:
                best[v] = i
        assert keep.tolist() == [best[v] for v in sorted(best)]
        # The fixed-shape form names the same winner for every entry.
        assert latest_entry_of(nodes, ts).tolist() == [best[int(v)] for v in nodes]


def test_mailbox_single_slot_keeps_latest_mail_per_node():
    mb = Mailbox(6, dim_mail=2)
    nodes = torch.tensor([1, 2, 1, 3, 1])
    ts = torch.tensor([5.0, 5.0, 7.0, 6.0, 7.0], dtype=F64)
    mails = torch.arange(5.0).repeat_interleave(2).view(5, 2)  # row i holds [i, i]
    got = mb.deliver(nodes, mails, ts)
    assert got.tolist() == [1, 2, 3]
    assert mb.mail[:, 0].tolist() == [[0, 0], [4, 4], [1, 1], [3, 3], [0, 0], [0, 0]]
    assert mb.mail_ts[:, 0].tolist() == [0, 7, 5, 6, 0, 0]
    # A later delivery overwrites the single slot.
    mb.deliver(torch.tensor([1]), torch.tensor([[9.0, 9.0]]), torch.tensor([8.0], dtype=F64))
    assert mb.mail[1, 0].tolist() == [9, 9] and float(mb.mail_ts[1, 0]) == 8
    mb.reset_state()
    assert not mb.mail.any() and not mb.mail_ts.any()


def test_mailbox_ring_buffer_wraps():
    mb = Mailbox(3, dim_mail=1, mailbox_size=3)
    for step in range(1, 5):
        mb.deliver(torch.tensor([0]), torch.tensor([[float(step)]]),
                   torch.tensor([float(step)], dtype=F64))
    assert mb.mail[0, :, 0].tolist() == [4, 2, 3]  # the 4th mail overwrote the oldest slot
    assert mb.mail_ts[0].tolist() == [4, 2, 3]
    assert mb.next_pos.tolist() == [1, 0, 0]
    # One mail per node per call, even when several arrive for it.
    mb.deliver(torch.tensor([2, 2]), torch.tensor([[1.0], [2.0]]),
               torch.tensor([1.0, 1.0], dtype=F64))
    assert mb.mail[2, :, 0].tolist() == [2, 0, 0] and mb.next_pos.tolist() == [1, 0, 1]


def test_mailbox_mean_combine():
    mb = Mailbox(2, dim_mail=2, combine="mean")
    mb.deliver(torch.tensor([1, 1, 0]), torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 5.0]]),
               torch.tensor([2.0, 4.0, 1.0], dtype=F64))
    assert mb.mail[1, 0].tolist() == [2, 4] and float(mb.mail_ts[1, 0]) == 3
    assert mb.mail[0, 0].tolist() == [5, 5]


def test_mailbox_rejects_bad_input():
    mb = Mailbox(4, dim_mail=3)
    with pytest.raises(IndexError, match=r"\[0, 4\).*\[0, 7\]"):
        mb.deliver(torch.tensor([0, 7]), torch.zeros(2, 3), torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match=r"mails must be \[2, 3\]"):
        mb.deliver(torch.tensor([0, 1]), torch.zeros(2, 4), torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="ts must be"):
        mb.deliver(torch.tensor([0, 1]), torch.zeros(2, 3), torch.zeros(3, dtype=F64))
    with pytest.raises(ValueError, match="mail_combine"):
        Mailbox(4, 3, combine="max")


def test_hundred_million_nodes_cost_only_their_tensors():
    # Allocation on the meta device checks shapes and byte counts without touching RAM: there is
    # no per-node Python object anywhere, so 1e8 nodes cost exactly the flat tensors.
    n = 100_000_000
    mb = Mailbox(n, dim_mail=4, device="meta")
    assert mb.nbytes == Mailbox.bytes_needed(n, 4) == n * (4 * 4 + 8)
    mem = NodeMemory(n, raw_msg_dim=0, memory_dim=2, time_dim=2, device="meta",
                     ts_dtype=torch.float32)
    assert mem.nbytes == n * (2 * 4 + 4) + n * (4 * 4 + 4)  # 2.4 GB with float32 times
    assert mem.memory.shape == (n, 2) and mem.mailbox.mail.shape == (n, 1, 4)
    ring = Mailbox(n, dim_mail=4, mailbox_size=10, device="meta", ts_dtype=torch.float32)
    assert ring.next_pos.dtype == torch.uint8  # one byte of ring position per node


def test_large_memory_on_cpu_works_end_to_end():
    n = 2_000_000
    mem = NodeMemory(n, raw_msg_dim=0, memory_dim=2, time_dim=2, ts_dtype=torch.float32)
    src = torch.tensor([0, n - 1, 12345])
    dst = torch.tensor([n - 2, 7, 0])
    t = torch.tensor([1.0, 2.0, 3.0])
    mem.update_state(src, dst, t)
    assert mem.mailbox.mail_ts[[0, n - 1, n - 2, 7, 12345], 0].tolist() == [3, 2, 1, 2, 3]
    out, last = mem(torch.tensor([0, n - 1, 5]))
    assert out.shape == (3, 2) and last.tolist() == [3, 2, 0]


# -- storage placement ----------------------------------------------------------------------------

def test_storage_follows_module_moves_unless_fixed():
    mem = NodeMemory(10, 2, 4, 4)
    mem.double()  # a dtype change must not round timestamps or recast the state
    assert mem.memory.dtype == torch.float32 and mem.memory_ts.dtype == F64
    mem.to("meta")
    assert mem.memory.device.type == "meta" and mem.mailbox.mail.device.type == "meta"
    fixed = NodeMemory(10, 2, 4, 4, device="cpu")
    fixed.to("meta")
    assert fixed.memory.device.type == "cpu" and fixed.mailbox.mail.device.type == "cpu"
    assert fixed.updater.cell.weight_ih.device.type == "meta"
    # State is outside the state dict (like TGL's mailbox), but can be saved explicitly.
    assert not any("memory" == k or "mail" in k for k in NodeMemory(10, 2, 4, 4).state_dict())


def test_memory_state_round_trip():
    a = NodeMemory(6, 1, 3, 2, mailbox_size=2)
    a.update_state(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1.0, 2.0]),
                   torch.randn(2, 1))
    b = NodeMemory(6, 1, 3, 2, mailbox_size=2)
    b.load_memory_state({k: v.clone() for k, v in a.memory_state().items()})
    for k, v in a.memory_state().items():
        assert torch.equal(v, b.memory_state()[k]), k
    with pytest.raises(ValueError, match="shape"):
        NodeMemory(7, 1, 3, 2, mailbox_size=2).load_memory_state(a.memory_state())


# -- NodeMemory, PyG's calling convention ---------------------------------------------------------

def test_update_state_exact_sequence_pyg_convention():
    mem = NodeMemory(5, raw_msg_dim=1, memory_dim=3, time_dim=2).eval()
    up = mem.updater
    z3, z7 = torch.zeros(1, 3), torch.zeros(1, 1, 7)
    zt = torch.zeros(1, dtype=F64)

    # Batch A: 0 -> 1 at t=10. Nothing pending: both nodes absorb an empty mail at time 0.
    mem.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([10.0], dtype=F64),
                     torch.tensor([[0.5]]))
    u0 = up(z3, zt, z7, torch.zeros(1, 1, dtype=F64), zt)
    assert torch.allclose(mem.memory[[0, 1]], u0.expand(2, 3), atol=1e-6)
    assert mem.memory_ts.tolist() == [0, 0, 0, 0, 0]
    expected_mail = torch.cat([u0[0], u0[0], torch.tensor([0.5])])
    assert torch.allclose(mem.mailbox.mail[0, 0], expected_mail, atol=1e-6)
    assert torch.allclose(mem.mailbox.mail[1, 0], expected_mail, atol=1e-6)
    assert mem.mailbox.mail_ts[:, 0].tolist() == [10, 10, 0, 0, 0]

    # forward() computes the update from the pending mail without writing it.
    before = {k: v.clone() for k, v in mem.memory_state().items()}
    out, last = mem(torch.tensor([0, 4]))
    assert last.tolist() == [10, 0]
    m0 = up(u0, zt, mem.mailbox.mail[:1], torch.full((1, 1), 10.0, dtype=F64),
            torch.full((1,), 10.0, dtype=F64))
    assert torch.allclose(out[0], m0[0], atol=1e-6)
    for k, v in mem.memory_state().items():
        assert torch.equal(v, before[k]), f"forward() modified {k}"

    # Batch B: 0 -> 2 at t=15. Node 0 absorbs its pending mail (time gap 10 - 0, the TGN
    # paper's gap between consecutive events); node 2 is fresh; node 1 is untouched.
    mem.update_state(torch.tensor([0]), torch.tensor([2]), torch.tensor([15.0], dtype=F64),
                     torch.tensor([[-1.0]]))
    assert torch.allclose(mem.memory[0], m0[0], atol=1e-6)
    assert torch.allclose(mem.memory[2], u0[0], atol=1e-6)
    assert torch.allclose(mem.memory[1], u0[0], atol=1e-6)
    assert mem.memory_ts.tolist() == [10, 0, 0, 0, 0]
    assert torch.allclose(mem.mailbox.mail[0, 0], torch.cat([m0[0], u0[0], torch.tensor([-1.0])]),
                          atol=1e-6)
    assert torch.allclose(mem.mailbox.mail[2, 0], torch.cat([u0[0], m0[0], torch.tensor([-1.0])]),
                          atol=1e-6)
    assert mem.mailbox.mail_ts[:, 0].tolist() == [15, 10, 15, 0, 0]


def test_compute_runs_each_node_time_query_once_with_the_same_result():
    mem = NodeMemory(8, raw_msg_dim=2, memory_dim=4, time_dim=3).eval()
    mem.update_state(torch.tensor([0, 1, 2]), torch.tensor([3, 4, 0]),
                     torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.randn(3, 2))
    mem.update_state(torch.tensor([0, 5]), torch.tensor([1, 0]),
                     torch.tensor([4.0, 5.0], dtype=F64), torch.randn(2, 2))
    n_id = torch.tensor([0, 3, 0, 0, 7, 3, 1, 0])
    t = torch.tensor([9.0, 9.0, 6.0, 9.0, 9.0, 2.0, 6.0, 6.0], dtype=F64)
    calls = []
    hook = mem.updater.register_forward_hook(lambda m, args, kw, out: calls.append(out.shape[0]),
                                             with_kwargs=True)
    state = mem.compute(n_id, t)
    hook.remove()
    assert calls == [6]  # (0, 6), (0, 9), (1, 6), (3, 2), (3, 9), (7, 9)
    # Row by row with the stored state gathered per query.
    mail, mail_ts = mem.mailbox.gather(n_id)
    rows = mem.updater(mem.memory[n_id], mem.memory_ts[n_id], mail, mail_ts, t)
    assert torch.allclose(state.memory, rows, atol=1e-6)
    assert torch.equal(state.memory_ts, mem.memory_ts[n_id]) and torch.equal(state.ts, t)
    assert torch.equal(state.last_update, torch.maximum(mem.memory_ts[n_id], mail_ts.amax(1)))


def test_custom_updater_gets_one_row_per_query():
    class Elapsed(torch.nn.Module):  # memory <- memory + (t - memory_ts), no index support
        def forward(self, memory, memory_ts, mail, mail_ts, t):
            return memory + (t - memory_ts).float().unsqueeze(1)

    mem = NodeMemory(4, 0, 2, 0, updater=Elapsed())
    mem.write(torch.tensor([1]), torch.tensor([[1.0, 2.0]]), torch.tensor([3.0], dtype=F64))
    out, last = mem(torch.tensor([1, 1, 2]), torch.tensor([5.0, 4.0, 5.0], dtype=F64))
    assert out.tolist() == [[3, 4], [2, 3], [5, 5]] and last.tolist() == [3, 3, 0]


def test_write_keeps_latest_duplicate_and_checks_shapes():
    mem = NodeMemory(4, 0, 2, 2)
    mem.write(torch.tensor([1, 1, 2]), torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]),
              torch.tensor([5.0, 4.0, 1.0], dtype=F64))
    assert mem.memory[1].tolist() == [1, 1] and mem.memory_ts.tolist() == [0, 5, 1, 0]
    with pytest.raises(ValueError, match="expected memory"):
        mem.write(torch.tensor([1]), torch.zeros(1, 3), torch.zeros(1, dtype=F64))
    with pytest.raises(ValueError, match="raw_msg"):
        NodeMemory(4, 2, 2, 2).update_state(torch.tensor([0]), torch.tensor([1]),
                                            torch.tensor([1.0]))
    with pytest.raises(ValueError, match="memory_update"):
        NodeMemory(4, 0, 2, 2, updater="lstm")


# -- A model's memory, TGL's calling convention -------------------------------------------------

def _identity_cfg(updater="gru", deliver_to="self", mailbox_size=1):
    return {"sampling": {"no_sample": True, "history": 1},
            "memory": {"type": "node", "dim_time": 4, "deliver_to": deliver_to,
                       "mail_combine": "last", "memory_update": updater,
                       "mailbox_size": mailbox_size, "attention_head": 2,
                       "combine_node_feature": True, "dim_out": 4},
            "gnn": {"arch": "identity"}}


def test_tgl_memory_exact_sequence():
    edge_feat = torch.tensor([[0.1], [0.2], [0.3], [0.4]])
    model = build_model(_identity_cfg(), num_nodes=6, edge_feat=edge_feat).eval()
    mem = model.memory
    up = mem.updater
    zeros = lambda n, *s, dt=torch.float32: torch.zeros(n, *s, dtype=dt)  # noqa: E731

    # Batch 1: e0 = 0 -> 1 at t=1, e1 = 2 -> 3 at t=2, negatives 4, 4.
    b1 = make_batch([0, 2], [1, 3], [1.0, 2.0], [0, 1], [4, 4])
    with torch.no_grad():
        _, _, update = model.step(b1)
    assert not mem.memory.any() and not mem.mailbox.mail.any()  # nothing written before update
    model.apply_update(update)
    t1 = torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=F64)
    u = up(zeros(4, 4), zeros(4, dt=F64), zeros(4, 1, 9), zeros(4, 1, dt=F64), t1)
    assert torch.allclose(mem.memory[:4], u, atol=1e-6)
    assert mem.memory_ts.tolist() == [1, 1, 2, 2, 0, 0]  # stamped with the query (event) time
    assert mem.mailbox.mail_ts[:, 0].tolist() == [1, 1, 2, 2, 0, 0]
    mail = mem.mailbox.mail[:, 0]
    assert torch.allclose(mail[0], torch.cat([u[0], u[1], edge_feat[0]]), atol=1e-6)
    assert torch.allclose(mail[1], torch.cat([u[1], u[0], edge_feat[0]]), atol=1e-6)
    assert torch.allclose(mail[3], torch.cat([u[3], u[2], edge_feat[1]]), atol=1e-6)
    assert not mail[4].any() and not mem.memory[4].any()  # the negative wrote nothing

    # Batch 2: e2 = 0 -> 2 and e3 = 1 -> 0, both at t=5; negatives 3, 4.
    b2 = make_batch([0, 1], [2, 0], [5.0, 5.0], [2, 3], [3, 4])
    with torch.no_grad():
        _, _, update = model.step(b2)
    model.apply_update(update)
    # Node 0 at t=5: batch 1's mail absorbed into batch 1's memory, time input 5 - 1.
    nodes = torch.tensor([0, 1, 2])
    batch1_mails = torch.stack([torch.cat([u[0], u[1], edge_feat[0]]),
                                torch.cat([u[1], u[0], edge_feat[0]]),
                                torch.cat([u[2], u[3], edge_feat[1]])]).unsqueeze(1)
    expected = up(u[:3], t1[:3], batch1_mails, t1[:3].unsqueeze(1),
                  torch.full((3,), 5.0, dtype=F64))
    assert torch.allclose(mem.memory[nodes], expected, atol=1e-6)
    assert mem.memory_ts.tolist() == [5, 5, 5, 2, 0, 0]  # negative 3 kept batch 1's state
    new_mail = mem.mailbox.mail[:, 0]
    # Node 0 took part in e2 (as source) and e3 (as destination) at the same time: the later
    # event of the batch wins.
    assert torch.allclose(new_mail[0], torch.cat([expected[0], expected[1], edge_feat[3]]),
                          atol=1e-6)
    assert torch.allclose(new_mail[1], torch.cat([expected[1], expected[0], edge_feat[3]]),
                          atol=1e-6)
    assert torch.allclose(new_mail[2], torch.cat([expected[2], expected[0], edge_feat[2]]),
                          atol=1e-6)
    assert torch.allclose(new_mail[3], torch.cat([u[3], u[2], edge_feat[1]]), atol=1e-6)
    assert mem.mailbox.mail_ts[:, 0].tolist() == [5, 5, 5, 2, 0, 0]

    model.reset_state()
    assert not mem.memory.any() and not mem.memory_ts.any() and not mem.mailbox.mail.any()


def test_deliver_to_neighbours_apan():
    # Roots: src 0, dst 1 (event at t=9), negative 2. Sampled neighbours: 0 -> {3},
    # 1 -> {4, 0}, 2 -> {5}.
    hop = SampledHop(nodes=torch.tensor([0, 1, 2, 3, 4, 0, 5]),
                     ts=torch.tensor([9.0, 9, 9, 3, 4, 5, 6], dtype=F64), num_roots=3,
                     edge_index=torch.tensor([[3, 4, 5, 6], [0, 1, 1, 2]]),
                     eid=torch.tensor([0, 1, 2, 3]), dt=torch.tensor([6.0, 5, 4, 3], dtype=F64),
                     dense_index=torch.tensor([[3, -1], [4, 5], [6, -1]]),
                     count=torch.tensor([1, 2, 1]))
    model = build_model(_identity_cfg("transformer", "neighbors", mailbox_size=2),
                        num_nodes=6).eval()
    mem = model.memory
    batch = make_batch([0], [1], [9.0], [7], [2], blocks=[[hop]])
    with torch.no_grad():
        _, _, update = model.step(batch)
    model.apply_update(update)
    m = mem.memory
    src_mail = torch.cat([m[0], m[1]])
    dst_mail = torch.cat([m[1], m[0]])
    mail = mem.mailbox.mail
    assert torch.allclose(mail[3, 0], src_mail) and torch.allclose(mail[4, 0], dst_mail)
    assert torch.allclose(mail[1, 0], dst_mail)
    # Node 0 got its own mail and, as neighbour of root 1, root 1's mail at the same time: one
    # mail per node and batch, the later entry (the neighbour copy) wins, as in TGL.
    assert torch.allclose(mail[0, 0], dst_mail) and not mail[0, 1].any()
    assert not mail[5].any() and not mail[2].any()  # neighbours of negatives get nothing
    assert mem.mailbox.next_pos.tolist() == [1, 1, 0, 1, 1, 0]
    assert mem.mailbox.mail_ts[:, 0].tolist() == [9, 9, 0, 9, 9, 0]
    assert mem.memory_ts.tolist() == [9, 9, 0, 0, 0, 0]  # only the positive roots write memory


def test_a_step_returns_its_writes_and_applies_none():
    model = build_model(_identity_cfg(), num_nodes=4)
    batch = make_batch([0], [1], [1.0], [0], [2])
    with torch.no_grad():
        model.score(batch)
        first = model.step(batch)[2].memory
        again = model.step(batch)[2].memory  # nothing was consumed or written in between
    assert not model.memory.memory.any() and not model.memory.mailbox.mail.any()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert first.nodes.tolist() == [0, 1] and first.mail_nodes.tolist() == [0, 1]
    model.apply_update(model.step(batch)[2])
    assert model.memory.memory[:2].any() and not model.memory.memory[2:].any()


def test_the_memory_modules_keep_their_import_paths():
    # The mailbox and the storage helpers live in their own modules; the names that
    # pyg_tgl.nn.memory always offered still import from there, as the same objects.
    import pyg_tgl.nn as nn
    from pyg_tgl.nn import mailbox, memory, storage
    for name in ("Mailbox", "NodeMemory", "MemoryState", "MemoryQuery", "MemoryWrites",
                 "latest_entry_of", "latest_per_node", "unique_pairs"):
        assert getattr(memory, name) is getattr(nn, name, getattr(memory, name))
    assert memory.Mailbox is mailbox.Mailbox is nn.Mailbox
    assert memory.unique_pairs is storage.unique_pairs
    assert issubclass(memory.NodeMemory, storage._StateModule)
