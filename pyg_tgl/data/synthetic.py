r"""A synthetic temporal interaction generator for scale tests (up to billions of events).

Every event is a pure function of ``(seed, event index)`` computed with a counter-based hash
(SplitMix64), so the stream can be produced in chunks of any size, in any order, with the same
result, and never needs more memory than one chunk. The graph has structure a temporal GNN can
learn, planted in three mechanisms chosen per event:

* **repeat** (probability ``p_repeat``): the source talks to one of its ``num_friends`` current
  partners. Partners are fixed within an epoch of ``friend_window`` time units and redrawn at the
  next one, so recent partners predict the next destination (what memory-based models exploit).
* **community** (``p_community``): a uniformly random member of the source's current community.
  Communities are contiguous blocks of node ids in a frame that slides over time (``drift``
  community widths over the whole time span), so memberships drift slowly: nodes at a block's
  edge move to the neighbouring community.
* **popular** (the rest): a node drawn from the same power law as the sources (global hubs).

Sources follow a power law over node ranks (activity exponent ``alpha``), with ranks scattered over
ids by an affine permutation so that hubs fall in every community. Times are
``floor(e * time_span / num_events)`` for event ``e``: non-decreasing, with ties when events are
denser than the time unit. Optional edge features encode the mechanism (plus noise).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .storage import NpyWriter, PathLike

__all__ = ["SyntheticConfig", "synthetic_events", "generate_synthetic"]

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
# Independent streams of the per-event hash.
_S_SRC, _S_KIND, _S_SLOT, _S_COMM, _S_POP, _S_FRIEND, _S_FEAT = range(1, 8)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> _U64(30))) * _M1
        z = (z ^ (z >> _U64(27))) * _M2
        return z ^ (z >> _U64(31))


def _hash(key: np.ndarray, stream: int, seed: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        salt = _mix(np.asarray([(seed * 0x100 + stream) % 2 ** 64], dtype=_U64))[0]
        return _mix(key.astype(_U64) ^ salt)


def _uniform(h: np.ndarray) -> np.ndarray:
    """[0, 1) doubles from the top 53 bits of a hash."""
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


@dataclass(frozen=True)
class SyntheticConfig:
    r"""Parameters of the synthetic generator (see the module docs for the model).

    Args:
        num_nodes: number of nodes (``2 <= num_nodes < 2**32``).
        num_events: number of events.
        seed: seed; the same configuration always gives the same events.
        num_communities: number of communities (default ``max(1, num_nodes // 100)``, at most
            ``num_nodes``).
        alpha: power-law exponent of node activity over ranks (``p(rank r) ~ (r + 1)^-alpha``).
        p_repeat: probability that an event repeats a current partner of its source.
        p_community: probability of a uniformly random member of the source's community.
        num_friends: current partners per node and epoch.
        friend_window: epoch length in time units (default ``time_span / 50``).
        drift: how many community widths the community frame slides over the whole time span.
        time_span: time covered by the events (default 30 days in seconds).
        edge_dim: edge feature dimension (0: none).
    """

    num_nodes: int
    num_events: int
    seed: int = 0
    num_communities: Optional[int] = None
    alpha: float = 1.0
    p_repeat: float = 0.5
    p_community: float = 0.35
    num_friends: int = 4
    friend_window: Optional[float] = None
    drift: float = 1.0
    time_span: float = 30 * 86400.0
    edge_dim: int = 0

    def __post_init__(self) -> None:
        if not 2 <= int(self.num_nodes) < 2 ** 32:
            raise ValueError(f"synthetic: num_nodes must be in [2, 2**32), got {self.num_nodes}")
        if int(self.num_events) < 0:
            raise ValueError(f"synthetic: num_events must be >= 0, got {self.num_events}")
        if not (0 <= self.p_repeat and 0 <= self.p_community and self.p_repeat + self.p_community <= 1):
            raise ValueError(f"synthetic: need p_repeat, p_community >= 0 and p_repeat + "
                             f"p_community <= 1, got {self.p_repeat} and {self.p_community}")
        if self.num_communities is not None and not 1 <= int(self.num_communities) <= int(self.num_nodes):
            raise ValueError(f"synthetic: num_communities must be in [1, num_nodes], got "
                             f"{self.num_communities}")
        if int(self.num_friends) < 1 or self.alpha <= 0 or self.time_span <= 0:
            raise ValueError("synthetic: num_friends >= 1, alpha > 0 and time_span > 0 are required")
        if int(self.edge_dim) < 0:
            raise ValueError(f"synthetic: edge_dim must be >= 0, got {self.edge_dim}")

    @property
    def communities(self) -> int:
        if self.num_communities is not None:
            return int(self.num_communities)
        return max(1, min(int(self.num_nodes), int(self.num_nodes) // 100))

    @property
    def window(self) -> float:
        return float(self.friend_window) if self.friend_window else float(self.time_span) / 50.0

    def as_dict(self) -> Dict:
        return asdict(self)


class _Model:
    """Derived constants of a :class:`SyntheticConfig`."""

    def __init__(self, cfg: SyntheticConfig) -> None:
        self.cfg = cfg
        self.n = int(cfg.num_nodes)
        self.k = cfg.communities
        self.step = float(cfg.time_span) / max(1, int(cfg.num_events))
        self.window = cfg.window
        # Affine permutation rank -> node id: a multiplier coprime with n, derived from the seed.
        h = int(_mix(np.asarray([cfg.seed * 7919 + 17], dtype=_U64))[0])
        a = (h % self.n) | 1
        while math.gcd(a, self.n) != 1:
            a += 2
        self.a = a % self.n if self.n > 1 else 1
        self.b = (h >> 32) % self.n
        # Frame shift per time unit: `drift` community widths over the span.
        self.shift_rate = float(cfg.drift) * (self.n / self.k) / float(cfg.time_span)
        if cfg.edge_dim:
            rng = np.random.default_rng(cfg.seed)
            self.protos = rng.standard_normal((3, int(cfg.edge_dim))).astype(np.float32)

    def rank_to_node(self, rank: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return ((rank.astype(_U64) * _U64(self.a) + _U64(self.b)) % _U64(self.n)).astype(np.int64)

    def power_law_rank(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF of a bounded continuous power law on [1, n + 1), floored to ranks."""
        alpha = float(self.cfg.alpha)
        top = float(self.n + 1)
        if abs(alpha - 1.0) < 1e-9:
            x = np.power(top, u)
        else:
            e = 1.0 - alpha
            x = np.power(1.0 - u * (1.0 - top ** e), 1.0 / e)
        return np.clip(np.floor(x) - 1.0, 0, self.n - 1).astype(np.int64)

    def shift(self, t: np.ndarray) -> np.ndarray:
        return np.floor(t * self.shift_rate).astype(np.int64) % self.n

    def community(self, node: np.ndarray, shift: np.ndarray) -> np.ndarray:
        pos = (node + shift) % self.n
        return pos * self.k // self.n

    def member(self, comm: np.ndarray, u: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """The node at relative position ``u`` in [0, 1) of community ``comm`` (frame ``shift``)."""
        lo = -(-comm * self.n // self.k)
        hi = -(-(comm + 1) * self.n // self.k)
        pos = lo + np.minimum((u * (hi - lo)).astype(np.int64), hi - lo - 1)
        return (pos - shift) % self.n


def synthetic_events(cfg: SyntheticConfig, start: int, stop: int
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
    r"""Events ``start .. stop - 1`` of the stream defined by ``cfg``.

    Returns:
        ``(src, dst, t, msg)``: int64, int64, float64 arrays and float32 ``[n, edge_dim]``
        features (``None`` when ``edge_dim == 0``). Identical whatever the chunking.
    """
    m = _Model(cfg)
    return _events(m, start, stop)


def _events(m: _Model, start: int, stop: int):
    cfg = m.cfg
    e = np.arange(start, stop, dtype=np.int64)
    seed = int(cfg.seed)
    t = np.floor(e.astype(np.float64) * m.step)
    src = m.rank_to_node(m.power_law_rank(_uniform(_hash(e, _S_SRC, seed))))
    kind_u = _uniform(_hash(e, _S_KIND, seed))
    repeat = kind_u < cfg.p_repeat
    in_comm = ~repeat & (kind_u < cfg.p_repeat + cfg.p_community)
    shift_now = m.shift(t)
    dst = m.rank_to_node(m.power_law_rank(_uniform(_hash(e, _S_POP, seed))))
    if in_comm.any():
        c = m.community(src[in_comm], shift_now[in_comm])
        dst[in_comm] = m.member(c, _uniform(_hash(e[in_comm], _S_COMM, seed)), shift_now[in_comm])
    if repeat.any():
        s = src[repeat]
        # Partners are fixed per (source, epoch, slot): computed in the frame of the epoch start so
        # that they do not move while the frame drifts within the epoch.
        epoch = np.floor(t[repeat] / m.window).astype(np.int64)
        shift_ep = m.shift(epoch.astype(np.float64) * m.window)
        slot = (_hash(e[repeat], _S_SLOT, seed) % _U64(cfg.num_friends)).astype(np.int64)
        key = (s.astype(_U64) * _U64(0x100000001B3)) ^ (epoch.astype(_U64) * _U64(cfg.num_friends)
                                                        + slot.astype(_U64))
        with np.errstate(over="ignore"):
            u = _uniform(_hash(key, _S_FRIEND, seed))
        dst[repeat] = m.member(m.community(s, shift_ep), u, shift_ep)
    loop = dst == src
    dst[loop] = (dst[loop] + 1) % m.n
    msg = None
    if cfg.edge_dim:
        kind = np.where(repeat, 0, np.where(in_comm, 1, 2))
        d = int(cfg.edge_dim)
        # Box-Muller noise from the hash stream (no stateful generator, so chunking is free).
        idx = (e[:, None].astype(_U64) * _U64(2 * d) + np.arange(2 * d, dtype=_U64)[None, :])
        u = _uniform(_hash(idx.reshape(-1), _S_FEAT, seed)).reshape(len(e), 2 * d)
        noise = np.sqrt(-2.0 * np.log1p(-u[:, :d])) * np.cos(2.0 * np.pi * u[:, d:])
        msg = (m.protos[kind] + 0.5 * noise).astype(np.float32)
    return src, dst, t, msg


def generate_synthetic(out_dir: PathLike, cfg: SyntheticConfig, *, chunk_size: int = 1 << 20,
                       progress: bool = False) -> Dict[str, Path]:
    r"""Writes the events of ``cfg`` to ``src.npy``, ``dst.npy``, ``t.npy`` (and ``msg.npy``) in
    ``out_dir``, ``chunk_size`` events at a time; memory use is bounded by one chunk whatever
    ``num_events`` is.

    Returns:
        name -> path of the written files.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    m = _Model(cfg)
    total = int(cfg.num_events)
    writers = {"src": NpyWriter(out_dir / "src.npy", np.int64),
               "dst": NpyWriter(out_dir / "dst.npy", np.int64),
               "t": NpyWriter(out_dir / "t.npy", np.float64)}
    if cfg.edge_dim:
        writers["msg"] = NpyWriter(out_dir / "msg.npy", np.float32, (int(cfg.edge_dim),))
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, unit="ev", unit_scale=True, desc="synthetic")
    try:
        for s in range(0, total, chunk_size):
            stop = min(total, s + chunk_size)
            src, dst, t, msg = _events(m, s, stop)
            writers["src"].write(src)
            writers["dst"].write(dst)
            writers["t"].write(t)
            if msg is not None:
                writers["msg"].write(msg)
            if bar is not None:
                bar.update(stop - s)
        return {k: w.close() for k, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
