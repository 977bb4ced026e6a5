"""Small neural modules: time encoder, updaters, identity/JODIE/DySAT pieces, prediction heads."""
from __future__ import annotations

import math

import pytest
import torch

from pyg_tgl.nn import (EdgePredictor, GRUUpdater, IdentityLayer, JODIETimeProjection,
                        NodeClassifier, RNNUpdater, SnapshotRNN, TimeEncoder,
                        TransformerUpdater)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- TimeEncoder ----------------------------------------------------------------------------------

def test_time_encoder_tgl_initialisation_and_values():
    enc = TimeEncoder(10)
    expected_w = torch.tensor([10.0 ** (-i) for i in range(10)])  # linspace(0, 9, 10) exponents
    assert torch.allclose(enc.weight, expected_w, rtol=1e-6)
    assert torch.equal(enc.bias, torch.zeros(10))
    t = torch.tensor([0.0, 1.0, 12345.0], dtype=torch.float64)
    out = enc(t)
    assert out.shape == (3, 10) and out.dtype == torch.float32
    assert torch.allclose(out, torch.cos(t.float()[:, None] * expected_w), atol=1e-6)
    assert torch.equal(out[0], torch.ones(10))  # cos(0 * w + 0)
    # Any input shape: [n, slots] -> [n, slots, dim]
    assert enc(torch.zeros(4, 3)).shape == (4, 3, 10)
    assert enc.out_channels == 10  # drop-in for PyG's TimeEncoder


def test_time_encoder_trainable_and_frozen():
    t = torch.rand(7) * 100
    trainable = TimeEncoder(8)
    trainable(t).sum().backward()
    assert trainable.weight.grad is not None and trainable.weight.grad.abs().sum() > 0
    frozen = TimeEncoder(8, trainable=False)
    assert not frozen.weight.requires_grad and not frozen.bias.requires_grad
    assert not frozen(t).requires_grad
    with torch.no_grad():
        trainable.weight.mul_(3)
    trainable.reset_parameters()
    assert torch.allclose(trainable.weight, frozen.weight)
    with pytest.raises(ValueError, match="dim"):
        TimeEncoder(0)


# -- updaters -------------------------------------------------------------------------------------

def _state(n=5, d=6, slots=1, dm=14):
    memory = torch.randn(n, d)
    memory_ts = torch.rand(n, dtype=torch.float64) * 10
    mail = torch.randn(n, slots, dm)
    mail_ts = memory_ts[:, None] + torch.rand(n, slots, dtype=torch.float64)
    t = memory_ts + 20 + torch.rand(n, dtype=torch.float64)
    return memory, memory_ts, mail, mail_ts, t


@pytest.mark.parametrize("cls,cell", [(GRUUpdater, torch.nn.GRUCell),
                                      (RNNUpdater, torch.nn.RNNCell)])
def test_recurrent_updaters_follow_tgl(cls, cell):
    memory, memory_ts, mail, mail_ts, t = _state(slots=2)
    up = cls(dim_mail=14, dim_memory=6, dim_time=4, mailbox_size=2)
    assert isinstance(up.cell, cell)
    out = up(memory, memory_ts, mail, mail_ts, t)
    # TGL: input = [all slots flattened, TE(t - memory_ts)], hidden = stored memory.
    x = torch.cat([mail.reshape(5, -1), up.time_enc((t - memory_ts).float())], dim=1)
    assert torch.allclose(out, up.cell(x, memory), atol=1e-6)
    # The time input is the query time minus the memory's timestamp, not the mail's time.
    out_later = up(memory, memory_ts, mail, mail_ts, t + 1000)
    assert not torch.allclose(out, out_later)
    assert torch.allclose(up(memory, memory_ts, mail, mail_ts + 5, t), out)
    out.sum().backward()
    assert up.cell.weight_ih.grad is not None and up.time_enc.weight.grad is not None


@pytest.mark.parametrize("cls", [GRUUpdater, RNNUpdater, TransformerUpdater])
def test_updaters_answer_repeated_queries_per_node(cls):
    # index: query i is node index[i] at time t[i]; equal to the call on gathered rows.
    memory, memory_ts, mail, mail_ts, _ = _state(n=4, d=6, slots=2, dm=5)
    up = cls(5, 6, dim_time=4, mailbox_size=2).eval()
    index = torch.tensor([2, 0, 2, 2, 3, 0])
    t = torch.tensor([30.0, 31, 32, 30, 40, 50], dtype=torch.float64)
    rows = up(memory[index], memory_ts[index], mail[index], mail_ts[index], t)
    assert torch.allclose(up(memory, memory_ts, mail, mail_ts, t, index=index), rows, atol=1e-6)
    # Gradients reach the same parameters with the same values.
    g1 = torch.autograd.grad(up(memory, memory_ts, mail, mail_ts, t, index=index).sum(),
                             list(up.parameters()))
    g2 = torch.autograd.grad(rows.sum(), list(up.parameters()))
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-5)


def test_recurrent_updater_without_time():
    memory, memory_ts, mail, mail_ts, t = _state()
    up = GRUUpdater(14, 6, dim_time=0)
    assert up.time_enc is None
    assert torch.allclose(up(memory, memory_ts, mail, mail_ts, t),
                          up.cell(mail.reshape(5, -1), memory))
    with pytest.raises(ValueError, match="dim_memory"):
        GRUUpdater(14, 0)


def test_transformer_updater_matches_apan_formula():
    n, d, slots, dm, heads = 4, 6, 3, 5, 2
    memory, memory_ts, mail, mail_ts, t = _state(n, d, slots, dm)
    up = TransformerUpdater(dm, d, dim_time=4, mailbox_size=slots, num_heads=heads).eval()
    out = up(memory, memory_ts, mail, mail_ts, t)
    assert out.shape == (n, d)
    # Per node, per head, by explicit loops.
    expected = torch.empty(n, d)
    hd = d // heads
    for i in range(n):
        x = torch.cat([mail[i], up.time_enc((t[i] - mail_ts[i]).float())], dim=1)
        q, k, v = up.w_q(memory[i]), up.w_k(x), up.w_v(x)
        agg = []
        for h in range(heads):
            sl = slice(h * hd, (h + 1) * hd)
            s = torch.nn.functional.leaky_relu(k[:, sl] @ q[sl], 0.2)
            agg.append(torch.softmax(s, 0) @ v[:, sl])
        agg = torch.cat(agg)
        expected[i] = torch.relu(up.mlp(up.norm(agg + memory[i])))
    assert torch.allclose(out, expected, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        TransformerUpdater(dm, 5, num_heads=2)


# -- message-passing helpers ----------------------------------------------------------------------

def test_identity_layer_is_layer_norm():
    x = torch.randn(6, 8) * 3 + 1
    out = IdentityLayer(8)(x)
    assert torch.allclose(out.mean(1), torch.zeros(6), atol=1e-5)
    assert torch.allclose(out.var(1, unbiased=False), torch.ones(6), atol=1e-3)


def test_jodie_time_projection():
    proj = JODIETimeProjection(4)
    h = torch.randn(3, 4)
    memory_ts = torch.tensor([0.0, 10.0, 50.0], dtype=torch.float64)
    t = torch.tensor([100.0, 100.0, 50.0], dtype=torch.float64)
    out = proj(h, memory_ts, t)
    gap = ((t - memory_ts) / (t + 1)).float()[:, None]
    assert torch.allclose(out, h * (1 + gap * proj.lin.weight.view(1, -1) + proj.lin.bias))
    # No time elapsed: only the bias scales the embedding.
    assert torch.allclose(out[2], h[2] * (1 + proj.lin.bias))


def test_snapshot_rnn_returns_last_step():
    comb = SnapshotRNN(5)
    xs = torch.randn(3, 4, 5)
    h = torch.zeros(4, 5)
    rnn = comb.rnn
    for x in xs:  # explicit Elman recurrence, oldest snapshot first
        h = torch.tanh(x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + h @ rnn.weight_hh_l0.T
                       + rnn.bias_hh_l0)
    assert torch.allclose(comb(xs), h, atol=1e-6)


# -- heads ----------------------------------------------------------------------------------------

def test_edge_predictor_formula_and_negative_layout():
    pred = EdgePredictor(6)
    h_src, h_dst = torch.randn(4, 6), torch.randn(4, 6)
    out = pred(h_src, h_dst)
    expected = pred.out_fc(torch.relu(pred.src_fc(h_src) + pred.dst_fc(h_dst))).view(-1)
    assert out.shape == (4,) and torch.allclose(out, expected)
    # Three negatives per source, negative-major: row q * B + i pairs with source i.
    h_neg = torch.randn(12, 6)
    neg = pred(h_src, h_neg)
    for q in range(3):
        for i in range(4):
            row = q * 4 + i
            assert torch.allclose(neg[row], pred(h_src[i:i + 1], h_neg[row:row + 1])[0])
    with pytest.raises(ValueError, match="multiple"):
        pred(h_src, torch.randn(5, 6))


def test_node_classifier_learns_separable_labels():
    x = torch.randn(200, 8)
    y = (x[:, 0] > 0).long()
    clf = NodeClassifier(8, 16, 2)
    opt = torch.optim.Adam(clf.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(x), y).backward()
        opt.step()
    assert (clf(x).argmax(1) == y).float().mean() > 0.95


def test_time_encoder_keeps_float64_differences():
    # Differences of Unix times are taken in float64 before the cast: 1 s apart stays 1 s apart.
    enc = TimeEncoder(4)
    t = torch.tensor([1.7e9 + 1.0], dtype=torch.float64)
    dt = t - torch.tensor([1.7e9], dtype=torch.float64)
    assert torch.allclose(enc(dt), torch.cos(torch.tensor([1.0, 1e-3, 1e-6, 1e-9])), atol=1e-6)
    assert math.isclose(float(dt), 1.0)
