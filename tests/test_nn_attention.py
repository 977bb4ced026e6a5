"""TemporalAttention: TGL's formula, and the dense fixed fan-out path equal to message passing."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch_geometric.nn import MessagePassing

from pyg_tgl.data.batch import SampledHop
from pyg_tgl.nn import TemporalAttention


def make_hop(counts, fanout: int, seed: int = 0) -> SampledHop:
    """A hop in the sampler's layout: roots, then each root's neighbours in turn."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.as_tensor(counts, dtype=torch.long)
    num_roots, num_edges = counts.numel(), int(counts.sum())
    root = torch.repeat_interleave(torch.arange(num_roots), counts)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(num_edges) - start[root]  # position within the root's list
    dense = torch.full((num_roots, fanout), -1, dtype=torch.long)
    dense[root, rank] = num_roots + torch.arange(num_edges)
    return SampledHop(
        nodes=torch.randint(0, 50, (num_roots + num_edges,), generator=g),
        ts=torch.rand(num_roots + num_edges, generator=g, dtype=torch.float64) * 100,
        num_roots=num_roots,
        edge_index=torch.stack([num_roots + torch.arange(num_edges), root]),
        eid=torch.randint(0, 1000, (num_edges,), generator=g),
        dt=torch.rand(num_edges, generator=g, dtype=torch.float64) * 1000 + 1,
        dense_index=dense, count=counts)


CONFIGS = [c for c in itertools.product([0, 8], [0, 3], [0, 4], ["leaky_relu", "scaled_dot"])
           if sum(c[:3]) > 0]


@pytest.mark.parametrize("dim_node,dim_edge,dim_time,score", CONFIGS)
def test_dense_equals_message_passing(dim_node, dim_edge, dim_time, score):
    torch.manual_seed(1)
    hop = make_hop([3, 0, 5, 1, 5, 2, 0], fanout=5)
    layer = TemporalAttention(dim_node, dim_edge, dim_time, dim_out=8, num_heads=2,
                              dropout=0.3, att_dropout=0.3, score=score).eval()
    x = torch.randn(hop.num_nodes, dim_node, requires_grad=True) if dim_node else None
    e = torch.randn(hop.num_edges, dim_edge, requires_grad=True) if dim_edge else None
    sparse = layer.forward_hop(x, hop, e, dense=False)
    dense = layer.forward_hop(x, hop, e, dense=True)
    assert sparse.shape == dense.shape == (hop.num_roots, 8)
    assert torch.allclose(sparse, dense, atol=1e-5)
    # Same gradients too (dense is a drop-in for training).
    w = torch.randn_like(sparse)
    params = [p for p in layer.parameters() if p.requires_grad]
    inputs = [t for t in (x, e) if t is not None]
    g_sparse = torch.autograd.grad((sparse * w).sum(), params + inputs, allow_unused=True)
    g_dense = torch.autograd.grad((dense * w).sum(), params + inputs, allow_unused=True)
    for a, b in zip(g_sparse, g_dense):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-5)


def test_dense_full_fanout_grid():
    # Every root has all k neighbours: the dense path reads the edges as an [R, k] grid.
    torch.manual_seed(5)
    hop = make_hop([3, 3, 3, 3], fanout=3)
    layer = TemporalAttention(4, 2, 4, dim_out=4).eval()
    x, e = torch.randn(hop.num_nodes, 4), torch.randn(hop.num_edges, 2)
    assert torch.allclose(layer.forward_hop(x, hop, e), layer.forward_hop(x, hop, e, dense=False),
                          atol=1e-5)


def test_matches_tgl_formula_by_hand():
    torch.manual_seed(2)
    hop = make_hop([2, 3], fanout=3)
    layer = TemporalAttention(4, 2, 6, dim_out=4, num_heads=2).eval()
    x = torch.randn(hop.num_nodes, 4)
    e = torch.randn(hop.num_edges, 2)
    out = layer.forward_hop(x, hop, e)
    te = layer.time_enc
    for i in range(hop.num_roots):
        q = layer.w_q(torch.cat([x[i], te(torch.zeros(()))]))
        nbr = hop.edge_index[0][hop.edge_index[1] == i]
        edges = nbr - hop.num_roots
        z = torch.cat([x[nbr], e[edges], te(hop.dt[edges])], dim=1)
        k, v = layer.w_k(z), layer.w_v(z)
        agg = []
        for h in range(2):
            sl = slice(2 * h, 2 * h + 2)
            att = torch.softmax(torch.nn.functional.leaky_relu(k[:, sl] @ q[sl], 0.2), 0)
            agg.append(att @ v[:, sl])
        expected = layer.norm(torch.relu(layer.w_out(torch.cat(agg + [x[i]]))))
        assert torch.allclose(out[i], expected, atol=1e-5)


def test_root_without_neighbours_aggregates_zero():
    torch.manual_seed(3)
    layer = TemporalAttention(4, 0, 4, dim_out=4).eval()
    hop = make_hop([0, 0], fanout=2)  # a batch without any edge
    x = torch.randn(2, 4)
    out = layer.forward_hop(x, hop)
    expected = layer.norm(torch.relu(layer.w_out(torch.cat([torch.zeros(2, 4), x], 1))))
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(layer.forward_hop(x, hop, dense=False), expected, atol=1e-6)
    assert torch.isfinite(out).all()


def test_dense_equals_sparse_on_real_sampler_hops(small_graph):
    from pyg_tgl.data.sampler import TemporalSampler
    from pyg_tgl.data.tcsr import TCSR

    g = small_graph
    tcsr = TCSR.from_edges(torch.from_numpy(g.src), torch.from_numpy(g.dst),
                           torch.from_numpy(g.t), num_nodes=g.num_nodes)
    sampler = TemporalSampler(tcsr, [4, 3], strategy="uniform", num_threads=1)
    roots = torch.arange(g.num_nodes)
    blocks = sampler.sample(roots, torch.full((g.num_nodes,), float(g.t.max()) * 0.7))
    torch.manual_seed(4)
    for hop in blocks[0]:
        layer = TemporalAttention(6, 0, 5, dim_out=6, num_heads=3).eval()
        x = torch.randn(hop.num_nodes, 6)
        assert hop.count.min() == 0  # some roots have no past edge at that time
        assert torch.allclose(layer.forward_hop(x, hop, dense=True),
                              layer.forward_hop(x, hop, dense=False), atol=1e-5)


def test_is_a_pyg_message_passing_layer_and_checks_input():
    layer = TemporalAttention(4, 3, 2, dim_out=4)
    assert isinstance(layer, MessagePassing)
    hop = make_hop([1, 2], fanout=2)
    with pytest.raises(ValueError, match="x must be"):
        layer.forward_hop(None, hop, torch.randn(3, 3))
    with pytest.raises(ValueError, match="edge_attr must be"):
        layer.forward_hop(torch.randn(hop.num_nodes, 4), hop, None)
    with pytest.raises(ValueError, match="no input"):
        TemporalAttention(0, 0, 0, dim_out=4)
    with pytest.raises(ValueError, match="divisible"):
        TemporalAttention(4, 0, 0, dim_out=5, num_heads=2)
    with pytest.raises(ValueError, match="score"):
        TemporalAttention(4, 0, 0, dim_out=4, score="cosine")
