// Parallel temporal neighbour sampler over a T-CSR (TGL, Zhou et al., VLDB 2022, Sec. 3.2).
//
// Every hop runs in one OpenMP region with two passes over chunks of roots: pass 1 finds each
// root's eligible slice (binary search, or the pointer cache), chooses its neighbours and counts
// them, a prefix sum over the chunk totals gives every root its output offset, and pass 2 writes
// straight into the final, contiguous output arrays. No locks, no per-thread vectors, and the
// random stream of a root depends only on (seed, call, snapshot, hop, root position), so the
// output does not depend on the thread count.
//
// Safety: the graph arrays are the caller's memory, validated once when the sampler is built but
// writable afterwards, so nothing read from them is trusted as an index. Every root's slice
// [indptr[n], indptr[n + 1]) is checked against [0, M] and every neighbour id against [0, N)
// where it is read (two compares per root and one per sampled edge); a violation raises
// InputError instead of reading out of bounds. Times and event ids are never used as indices, so
// whatever they hold, the reads stay in bounds. Outputs are sized from the eligible edge counts
// (except dense_index, [R, k] by definition), and a call whose outputs would exceed
// SamplerOptions::max_output_bytes is refused before the memory is allocated.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace pyg_tgl {

template <typename IdxT>
struct GraphView {
  const int64_t* indptr;
  const IdxT* indices;
  const int64_t* eid;
  const double* ts;
  int64_t num_nodes;
  int64_t num_entries;
};

struct SamplerOptions {
  std::vector<int64_t> fanouts;
  bool uniform = false;
  bool prop_time = false;
  int64_t history = 1;
  double duration = 0.0;
  bool pointer_cache = false;
  bool dedup = false;
  // Bound on the bytes of output one sample() call may allocate (all snapshots and hops).
  int64_t max_output_bytes = std::numeric_limits<int64_t>::max();
};

// Bytes one hop allocates for R roots, fan-out k and E sampled edges: count [R] and dense_index
// [R, k], nodes and ts [R + E], edge_index [2, E], eid and dt [E], and with dedup the inverse map
// and the next roots [R + E] each. In double: R * k can exceed the int64 range.
inline double hop_output_bytes(int64_t R, int64_t k, int64_t E, bool dedup) noexcept {
  const double r = static_cast<double>(R), e = static_cast<double>(E);
  return 8.0 * r * (1.0 + static_cast<double>(k)) + 16.0 * (r + e) + 32.0 * e +
         (dedup ? 24.0 * (r + e) : 0.0);
}

inline std::string format_bytes(double bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(0) << bytes << " bytes (" << std::setprecision(1)
      << bytes / double(1ULL << 30) << " GiB)";
  return out.str();
}

// One read of a value another thread may be writing (the user's arrays stay writable): the
// value that is bounds-checked is the value that is used.
template <typename T>
inline T load_once(const T* p) noexcept {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

// One sampled hop; see pyg_tgl/data/batch.py (SampledHop) for the meaning of every array.
struct HopResult {
  int64_t num_roots = 0;
  int64_t num_edges = 0;
  int64_t fanout = 0;
  Buffer<int64_t> nodes;        // [R + E]
  Buffer<double> ts;            // [R + E]
  Buffer<int64_t> edge_index;   // [2, E]
  Buffer<int64_t> eid;          // [E]
  Buffer<double> dt;            // [E]
  Buffer<int64_t> dense_index;  // [R, k]
  Buffer<int64_t> count;        // [R]
  // dedup only (not on the last hop): position of each node of this hop among the next hop's
  // roots, which are the unique (node, ts) pairs below in first-appearance order.
  bool has_inverse = false;
  Buffer<int64_t> inverse;      // [R + E]
  Buffer<int64_t> next_nodes;   // [U]
  Buffer<double> next_ts;       // [U]
  int64_t num_next = 0;
};

// Roots whose time cuts are searched in lockstep, and how many roots ahead pass 2 prefetches.
constexpr int kGroup = 16;
constexpr int64_t kPrefetchDistance = 4;
// Smallest chunk of roots a thread claims at once.
constexpr int64_t kMinChunk = 256;

// First position p in [beg, end) with ts[p] >= x (end if none), branch-free (Khuong & Morin,
// "Array layouts for comparison-based searching", 2017).
inline int64_t lower_pos(const double* ts, int64_t beg, int64_t end, double x) noexcept {
  int64_t n = end - beg;
  if (n <= 0) return beg;
  const double* base = ts + beg;
  while (n > 1) {
    const int64_t half = n >> 1;
    base = base[half] < x ? base + half : base;
    n -= half;
  }
  return (base - ts) + (*base < x);
}

// lower_pos for gs <= kGroup independent queries advanced in lockstep. The time cut is the
// sampler's main chain of cache misses on long lists; interleaving several roots' searches keeps
// several misses in flight instead of one.
inline void lower_pos_group(const double* ts, int gs, const int64_t* beg, const int64_t* end,
                            const double* x, int64_t* out) noexcept {
  const double* base[kGroup];
  int64_t n[kGroup];
  int64_t max_n = 0;
  for (int j = 0; j < gs; ++j) {
    n[j] = end[j] - beg[j];
    // An empty slice points at its own query (x < x is false), so it never moves or reads
    // outside the arrays.
    base[j] = n[j] > 0 ? ts + beg[j] : x + j;
    if (n[j] <= 0) n[j] = 1;
    max_n = std::max(max_n, n[j]);
  }
  // A slice of length n needs the same number of halvings as any longer one or fewer; once it
  // reaches length 1 further steps leave it unchanged (half = 0).
  while (max_n > 1) {
    for (int j = 0; j < gs; ++j) {
      const int64_t half = n[j] >> 1;
      base[j] = base[j][half] < x[j] ? base[j] + half : base[j];
      n[j] -= half;
    }
    max_n -= max_n >> 1;
  }
  for (int j = 0; j < gs; ++j)
    out[j] = end[j] <= beg[j] ? beg[j] : (base[j] - ts) + (*base[j] < x[j]);
}

// Unique (node, time) pairs in first-appearance order, with the inverse map. Sequential: it runs
// once per hop on already sampled output, and an open-addressing table keeps it O(n).
inline void unique_pairs(const int64_t* nodes, const double* ts, int64_t n,
                         Buffer<int64_t>& inverse, Buffer<int64_t>& out_nodes,
                         Buffer<double>& out_ts, int64_t& num_unique) {
  int64_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  const uint64_t mask = static_cast<uint64_t>(cap - 1);
  Buffer<int64_t> table(cap);
  std::fill(table.data(), table.data() + cap, int64_t(-1));
  inverse.allocate(n);
  out_nodes.allocate(n);
  out_ts.allocate(n);
  auto bits = [](double x) {
    x += 0.0;  // -0.0 and +0.0 are the same time
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  };
  int64_t u = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t node = nodes[j];
    const uint64_t tb = bits(ts[j]);
    uint64_t slot = splitmix64(static_cast<uint64_t>(node) ^ splitmix64(tb)) & mask;
    while (true) {
      const int64_t idx = table[slot];
      if (idx < 0) {
        table[slot] = u;
        out_nodes[u] = node;
        out_ts[u] = ts[j];
        inverse[j] = u++;
        break;
      }
      if (out_nodes[idx] == node && bits(out_ts[idx]) == tb) {
        inverse[j] = idx;
        break;
      }
      slot = (slot + 1) & mask;
    }
  }
  num_unique = u;
}

class TemporalSamplerCore {
 public:
  // The graph arrays are borrowed: the binding layer keeps their owners alive. num_entries is
  // the length of indices, eid and ts.
  TemporalSamplerCore(const int64_t* indptr, const void* indices, bool indices64,
                      const int64_t* eid, const double* ts, int64_t num_nodes,
                      int64_t num_entries, SamplerOptions opt, int num_threads)
      : indptr_(indptr), indices_(indices), indices64_(indices64), eid_(eid), ts_(ts),
        num_nodes_(num_nodes), num_entries_(num_entries), opt_(std::move(opt)),
        num_threads_(resolve_threads(num_threads)) {
    if (opt_.pointer_cache) {
      // H == 1 needs only the upper cut; H > 1 snapshots share boundaries, so H + 1 cuts.
      num_boundaries_ = opt_.history == 1 ? 1 : opt_.history + 1;
      cache_.allocate(num_boundaries_ * num_nodes_);
      reset_cache();
    }
  }

  void reset_cache() {
    if (!opt_.pointer_cache) return;
    int64_t* c = cache_.data();
    const int64_t n = num_nodes_, nb = num_boundaries_;
    const int64_t* ip = indptr_;
#pragma omp parallel for num_threads(num_threads_) schedule(static)
    for (int64_t i = 0; i < nb * n; ++i) c[i] = ip[i % n];
  }

  int num_threads() const { return num_threads_; }
  void set_num_threads(int n) { num_threads_ = resolve_threads(n); }
  const SamplerOptions& options() const { return opt_; }

  // Throws InputError for bad roots; otherwise returns blocks[snapshot][hop].
  std::vector<std::vector<HopResult>> sample(const int64_t* roots, const double* root_ts,
                                             int64_t num_roots, uint64_t seed,
                                             uint64_t call_index) {
    for (int64_t i = 0; i < num_roots; ++i) {
      if (roots[i] < 0 || roots[i] >= num_nodes_) {
        std::ostringstream msg;
        msg << "root_nodes[" << i << "] = " << roots[i] << " is not a node id in [0, "
            << num_nodes_ << ")";
        throw InputError(msg.str());
      }
      if (std::isnan(root_ts[i])) {
        std::ostringstream msg;
        msg << "root_ts[" << i << "] is NaN";
        throw InputError(msg.str());
      }
    }
    check_call_size(num_roots);
    if (indices64_) return sample_all<int64_t>(roots, root_ts, num_roots, seed, call_index);
    return sample_all<int32_t>(roots, root_ts, num_roots, seed, call_index);
  }

 private:
  // Lower bound of the output bytes of hops [hop, L) of one snapshot when hop `hop` has R roots:
  // without dedup every hop keeps all roots of the one before; with dedup the roots after hop 0
  // are unique pairs, so only hop 1 may have fewer (at least one, when R > 0).
  double later_hops_bytes(int64_t hop, int64_t R) const noexcept {
    const int64_t L = static_cast<int64_t>(opt_.fanouts.size());
    double b = 0.0;
    for (int64_t m = hop; m < L; ++m) {
      const int64_t roots = opt_.dedup && hop == 0 && m > 0 ? std::min<int64_t>(R, 1) : R;
      b += hop_output_bytes(roots, opt_.fanouts[m], 0, opt_.dedup && m + 1 < L);
    }
    return b;
  }

  std::string fanouts_str() const {
    std::ostringstream out;
    out << "[";
    for (size_t i = 0; i < opt_.fanouts.size(); ++i) out << (i ? ", " : "") << opt_.fanouts[i];
    out << "]";
    return out.str();
  }

  // Refuses a call whose outputs cannot fit in max_output_bytes whatever the degrees are:
  // dense_index alone is roots x fan-out per hop.
  void check_call_size(int64_t R) const {
    const double need = static_cast<double>(opt_.history) * later_hops_bytes(0, R);
    if (need <= static_cast<double>(opt_.max_output_bytes)) return;
    std::ostringstream msg;
    msg << "sampling " << R << " roots with num_neighbors " << fanouts_str() << " and history "
        << opt_.history << " needs at least " << format_bytes(need)
        << " of output (dense_index alone holds roots x fan-out int64 per hop), above "
           "max_output_bytes = "
        << format_bytes(static_cast<double>(opt_.max_output_bytes))
        << "; sample fewer roots per call, lower the fan-outs, or raise max_output_bytes";
    throw InputError(msg.str());
  }

  std::string over_budget_message(int64_t snapshot, int64_t hop, int64_t R, int64_t k,
                                  int64_t E, bool counted, double need) const {
    std::ostringstream msg;
    msg << "sampling needs " << (counted ? "" : "at least ") << format_bytes(need)
        << " of output, above max_output_bytes = "
        << format_bytes(static_cast<double>(opt_.max_output_bytes)) << ": snapshot " << snapshot
        << " hop " << hop << " has " << R << " roots x fan-out " << k << " (dense_index "
        << format_bytes(8.0 * static_cast<double>(R) * static_cast<double>(k)) << ")";
    if (counted) msg << " and " << E << " sampled edges";
    msg << "; sample fewer roots per call, lower num_neighbors " << fanouts_str()
        << ", or raise max_output_bytes";
    return msg.str();
  }

  static constexpr const char* kModified =
      ": the T-CSR's arrays were modified in place after the sampler was built; build the TCSR "
      "again and a new TemporalSampler";

  // A root of the hop is node n, whose indptr slice is out of bounds.
  std::string bad_slice_message(int64_t snapshot, int64_t hop, int64_t n) const {
    std::ostringstream msg;
    msg << "snapshot " << snapshot << " hop " << hop << ": indptr[" << n
        << "] = " << load_once(indptr_ + n) << " and indptr[" << n + 1
        << "] = " << load_once(indptr_ + n + 1) << " do not delimit a slice of the "
        << num_entries_ << " entries (0 <= indptr[n] <= indptr[n + 1] <= " << num_entries_
        << " is required)" << kModified;
    return msg.str();
  }

  // A neighbour id `n` outside [0, N) came out of indices; names the first such entry (an O(M)
  // scan, on the error path only).
  template <typename IdxT>
  std::string bad_neighbour_message(const GraphView<IdxT>& g, int64_t snapshot, int64_t hop,
                                    int64_t n) const {
    std::ostringstream msg;
    msg << "snapshot " << snapshot << " hop " << hop << ": ";
    int64_t p = 0;
    while (p < num_entries_ &&
           static_cast<uint64_t>(load_once(g.indices + p)) < static_cast<uint64_t>(num_nodes_))
      ++p;
    if (p < num_entries_)
      msg << "indices[" << p << "] = " << static_cast<int64_t>(load_once(g.indices + p));
    else
      msg << "a sampled neighbour id " << n;
    msg << " is not a node id in [0, " << num_nodes_ << ")" << kModified;
    return msg.str();
  }

  template <typename IdxT>
  std::vector<std::vector<HopResult>> sample_all(const int64_t* roots, const double* root_ts,
                                                 int64_t num_roots, uint64_t seed,
                                                 uint64_t call_index) {
    const GraphView<IdxT> g{indptr_, static_cast<const IdxT*>(indices_), eid_, ts_, num_nodes_,
                            num_entries_};
    const int64_t num_hops = static_cast<int64_t>(opt_.fanouts.size());
    std::vector<std::vector<HopResult>> blocks(static_cast<size_t>(opt_.history));
    // Bytes allocated by the finished hops of this call.
    double spent = 0.0;
    for (int64_t s = 0; s < opt_.history; ++s) {
      blocks[s].resize(static_cast<size_t>(num_hops));
      const int64_t* rn = roots;
      const double* rt = root_ts;
      int64_t nr = num_roots;
      for (int64_t l = 0; l < num_hops; ++l) {
        HopResult& h = blocks[s][l];
        // Hop 0 roots come in chronological batches; with prop_time deeper hops inherit those
        // times. Neighbours at their own edge times go back in time, where the cache only
        // falls back to a search, so it is not used for them.
        const bool use_cache = opt_.pointer_cache && (l == 0 || opt_.prop_time);
        // The snapshots not started yet sample the same hop-0 roots.
        const double reserved =
            spent + static_cast<double>(opt_.history - 1 - s) * later_hops_bytes(0, num_roots);
        sample_hop<IdxT>(g, rn, rt, nr, opt_.fanouts[l], s, l, seed, call_index, use_cache,
                         reserved, h);
        spent += hop_output_bytes(h.num_roots, h.fanout, h.num_edges,
                                  opt_.dedup && l + 1 < num_hops);
        if (opt_.dedup && l + 1 < num_hops) {
          unique_pairs(h.nodes.data(), h.ts.data(), h.num_roots + h.num_edges, h.inverse,
                       h.next_nodes, h.next_ts, h.num_next);
          h.has_inverse = true;
          rn = h.next_nodes.data();
          rt = h.next_ts.data();
          nr = h.num_next;
        } else {
          rn = h.nodes.data();
          rt = h.ts.data();
          nr = h.num_roots + h.num_edges;
        }
      }
    }
    return blocks;
  }

  // lower_bound of x in node n's slice, starting from the cached position of boundary b. The
  // result is exact whatever the cache holds: a stale pointer only costs a longer search.
  int64_t cached_lower(int64_t b, int64_t n, int64_t beg, int64_t end, double x) const noexcept {
    int64_t* slot = cache_.data() + b * num_nodes_ + n;
    int64_t p = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (p < beg || p > end) p = beg;
    int64_t r;
    if (p > beg && ts_[p - 1] >= x) {
      r = lower_pos(ts_, beg, p, x);  // the root went back in time
    } else if (p < end && ts_[p] < x) {
      // Gallop forward (ts[a] < x known), so a long-idle node costs O(log gap), not O(gap).
      int64_t a = p, step = 1;
      while (a + step < end && ts_[a + step] < x) {
        a += step;
        step <<= 1;
      }
      r = lower_pos(ts_, a + 1, std::min(a + step, end), x);
    } else {
      r = p;
    }
    // Roots repeated within a batch race here; any value in [beg, end] is a valid hint, so a
    // relaxed store is enough.
    if (r != p) __atomic_store_n(slot, r, __ATOMIC_RELAXED);
    return r;
  }

  // Picks the T-CSR positions of one root's neighbours from its eligible slice [lo, hi) into
  // out[0..c), by decreasing position; returns c.
  int64_t choose(int64_t lo, int64_t hi, int64_t k, bool uniform, uint64_t hkey,
                 int64_t root_position, int64_t* out) const noexcept {
    const int64_t n_el = hi - lo;
    if (!uniform || n_el <= k) {
      const int64_t c = std::min(n_el, k);
      for (int64_t j = 0; j < c; ++j) out[j] = hi - 1 - j;
      return c;
    }
    // Floyd's algorithm: k distinct offsets in [0, n_el) with exactly k draws.
    const uint64_t rkey = root_key(hkey, static_cast<uint64_t>(root_position));
    int64_t m = 0;
    if (k <= 64) {
      // Small fan-outs: a branch-free linear membership test beats a binary search plus memmove
      // per draw at this size.
      for (int64_t j = n_el - k, d = 0; j < n_el; ++j, ++d) {
        const int64_t r = static_cast<int64_t>(
            bounded(random_draw(rkey, static_cast<uint64_t>(d)), static_cast<uint64_t>(j + 1)));
        bool taken = false;
        for (int64_t q = 0; q < m; ++q) taken |= out[q] == r;
        out[m++] = taken ? j : r;  // j exceeds every earlier pick, so it is always new
      }
      // Decreasing order by rank counting: the picks are distinct, so the number of larger picks
      // is each one's output slot. O(k^2) compares without a single unpredictable branch, which
      // beats an insertion sort (one mispredict per element) for these sizes.
      int64_t sorted[64];
      for (int64_t a = 0; a < m; ++a) {
        const int64_t v = out[a];
        int64_t rank = 0;
        for (int64_t b = 0; b < m; ++b) rank += out[b] > v;
        sorted[rank] = v + lo;
      }
      std::copy(sorted, sorted + m, out);
      return m;
    } else {
      // Large fan-outs: keep the picks sorted so the membership test is a binary search.
      for (int64_t j = n_el - k, d = 0; j < n_el; ++j, ++d) {
        const int64_t r = static_cast<int64_t>(
            bounded(random_draw(rkey, static_cast<uint64_t>(d)), static_cast<uint64_t>(j + 1)));
        int64_t* pos = std::lower_bound(out, out + m, r);
        if (pos != out + m && *pos == r) {
          out[m++] = j;
        } else {
          std::memmove(pos + 1, pos, static_cast<size_t>(out + m - pos) * sizeof(int64_t));
          *pos = r;
          ++m;
        }
      }
    }
    std::reverse(out, out + m);
    for (int64_t j = 0; j < m; ++j) out[j] += lo;
    return m;
  }

  // Samples one hop into `out`. `reserved` counts the bytes of this call's other hops (finished
  // ones, and the lower bound of the snapshots still to come); this hop and the lower bound of
  // its later hops must fit in max_output_bytes on top of it.
  template <typename IdxT>
  void sample_hop(const GraphView<IdxT>& g, const int64_t* rn, const double* rt, int64_t R,
                  int64_t k, int64_t snapshot, int64_t hop, uint64_t seed, uint64_t call_index,
                  bool use_cache, double reserved, HopResult& out) {
    const int64_t num_hops = static_cast<int64_t>(opt_.fanouts.size());
    const bool dedup_here = opt_.dedup && hop + 1 < num_hops, last_hop = hop + 1 == num_hops;
    if (g.num_nodes == 0 && R > 0)  // sample() refuses such roots first; pass 1 needs N > 0
      throw InputError("the T-CSR has no nodes, so no root is valid");
    const double limit = static_cast<double>(opt_.max_output_bytes);
    // Later hops have at least as many roots as this one (without dedup) or at least one.
    const double later = hop + 1 < num_hops
        ? later_hops_bytes(hop + 1, opt_.dedup && hop == 0 ? std::min<int64_t>(R, 1) : R)
        : 0.0;
    {
      const double need = reserved + hop_output_bytes(R, k, 0, dedup_here) + later;
      if (need > limit)
        throw InputError(over_budget_message(snapshot, hop, R, k, 0, false, need));
    }
    out.num_roots = R;
    out.fanout = k;
    out.count.allocate(R);
    // Pass 1 stores each root's chosen T-CSR positions here; pass 2 replaces them by node
    // positions, so the choice needs no extra [R, k] scratch array.
    out.dense_index.allocate(R * k);
    const int64_t H = opt_.history;
    const double D = opt_.duration;
    const bool uniform = opt_.uniform, prop_time = opt_.prop_time;
    // Boundaries b of the pointer cache: time t - (H - b) * D; snapshot s spans [s, s + 1].
    const int64_t b_hi = H == 1 ? 0 : snapshot + 1, b_lo = snapshot;
    const double off_hi = static_cast<double>(H - 1 - snapshot) * D;
    const double off_lo = static_cast<double>(H - snapshot) * D;
    const uint64_t hkey = hop_key(seed, call_index, static_cast<uint64_t>(snapshot),
                                  static_cast<uint64_t>(hop));
    int64_t* count = out.count.data();
    int64_t* dense = out.dense_index.data();

    // Roots are cut into chunks claimed dynamically by whichever thread is free, and output
    // offsets are per chunk. With a static split, one thread descheduled by the OS (other
    // processes, or PyTorch's own threads while the loader prefetches) would stall the whole
    // hop at the barrier; here it only delays the chunk it holds.
    const int nt_max = num_threads_;
    const bool parallel = nt_max > 1 && R * std::max<int64_t>(k, 8) >= 4096;
    const int64_t num_chunks =
        parallel ? std::max<int64_t>(1, std::min<int64_t>((R + kMinChunk - 1) / kMinChunk,
                                                         int64_t(8) * nt_max))
                 : 1;
    const int64_t chunk = (R + num_chunks - 1) / std::max<int64_t>(num_chunks, 1);
    std::vector<int64_t> chunk_off(static_cast<size_t>(num_chunks) + 1, 0);
    // Per chunk, the first root whose node id or indptr slice is out of bounds (pass 1; -1 if
    // none), and whether a neighbour id written in pass 2 is out of range. Per chunk, so that the
    // error reported does not depend on the thread count.
    std::vector<int64_t> bad_root(static_cast<size_t>(num_chunks), -1);
    std::vector<char> bad_nbr_chunk(static_cast<size_t>(num_chunks), 0);
    const uint64_t N = static_cast<uint64_t>(g.num_nodes), M = static_cast<uint64_t>(g.num_entries);
    bool alloc_failed = false, input_bad = false, over_budget = false;
    int64_t total = 0;

#pragma omp parallel num_threads(nt_max) if (parallel)
    {
      int64_t beg[kGroup], end[kGroup], lo[kGroup], hi[kGroup];
      double x[kGroup];
#pragma omp for schedule(dynamic, 1)
      for (int64_t ci = 0; ci < num_chunks; ++ci) {
        const int64_t a = ci * chunk, b = std::min(R, a + chunk);
        int64_t local = 0;
        for (int64_t i0 = a; i0 < b; i0 += kGroup) {
          const int gs = static_cast<int>(std::min<int64_t>(kGroup, b - i0));
          for (int j = 0; j < gs; ++j) {
            const int64_t n = rn[i0 + j];
            const bool node_ok = static_cast<uint64_t>(n) < N;
            // Node 0's offsets stand in for a bad id (N > 0 here), so the loads need no branch.
            const int64_t* slice = g.indptr + (node_ok ? n : 0);
            const int64_t lo_n = load_once(slice), hi_n = load_once(slice + 1);
            // As unsigned, a negative bound exceeds M, so two compares check 0 <= lo <= hi <= M.
            const bool ok = node_ok & (static_cast<uint64_t>(hi_n) <= M) &
                            (static_cast<uint64_t>(lo_n) <= static_cast<uint64_t>(hi_n));
            if (__builtin_expect(!ok, 0)) {
              if (bad_root[ci] < 0) bad_root[ci] = i0 + j;
              beg[j] = end[j] = 0;  // an empty slice: nothing is read for this root
            } else {
              beg[j] = lo_n;
              end[j] = hi_n;
            }
            x[j] = H == 1 ? rt[i0 + j] : rt[i0 + j] - off_hi;
          }
          if (use_cache) {
            // A bad id has no cache slot (its slice is empty anyway).
            for (int j = 0; j < gs; ++j) {
              const int64_t n = rn[i0 + j];
              hi[j] = static_cast<uint64_t>(n) < N ? cached_lower(b_hi, n, beg[j], end[j], x[j])
                                                   : beg[j];
            }
          } else {
            lower_pos_group(g.ts, gs, beg, end, x, hi);
          }
          if (H > 1) {
            for (int j = 0; j < gs; ++j) x[j] = rt[i0 + j] - off_lo;
            if (use_cache) {
              for (int j = 0; j < gs; ++j) {
                const int64_t n = rn[i0 + j];
                lo[j] = static_cast<uint64_t>(n) < N
                            ? std::min(cached_lower(b_lo, n, beg[j], end[j], x[j]), hi[j])
                            : hi[j];
              }
            } else {
              lower_pos_group(g.ts, gs, beg, hi, x, lo);
            }
            // inf - inf: a root at +inf whose window offset overflowed to inf has a NaN bound,
            // and "lo <= ts < hi" holds for no edge. (The lower offset is the larger one, so the
            // upper bound can only be NaN when this one is.)
            for (int j = 0; j < gs; ++j)
              if (std::isnan(x[j])) lo[j] = hi[j];
          } else {
            for (int j = 0; j < gs; ++j) lo[j] = beg[j];
          }
          for (int j = 0; j < gs; ++j) {
            const int64_t i = i0 + j;
            const int64_t c = choose(lo[j], hi[j], k, uniform, hkey, i, dense + i * k);
            count[i] = c;
            local += c;
          }
        }
        chunk_off[ci + 1] = local;
      }
#pragma omp single
      {
        for (int64_t ci = 0; ci < num_chunks; ++ci) {
          chunk_off[ci + 1] += chunk_off[ci];
          input_bad |= bad_root[ci] >= 0;
        }
        total = chunk_off[num_chunks];
        over_budget = reserved + hop_output_bytes(R, k, total, dedup_here) + later > limit;
        if (!input_bad && !over_budget)
          alloc_failed = !(out.nodes.try_allocate(R + total) && out.ts.try_allocate(R + total) &&
                           out.edge_index.try_allocate(2 * total) &&
                           out.eid.try_allocate(total) && out.dt.try_allocate(total));
      }
      if (!alloc_failed && !input_bad && !over_budget) {
        int64_t* nodes = out.nodes.data();
        double* nts = out.ts.data();
        int64_t* row = out.edge_index.data();
        int64_t* col = row + total;
        int64_t* eid = out.eid.data();
        double* dt = out.dt.data();
        // nowait: the end of the parallel region joins the threads anyway.
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t ci = 0; ci < num_chunks; ++ci) {
          const int64_t a = ci * chunk, b = std::min(R, a + chunk);
          int64_t off = chunk_off[ci];
          for (int64_t i = a; i < b; ++i) {
            // The chosen positions of a later root are known: start its (random) loads now so
            // that they overlap with this root's writes.
            if (i + kPrefetchDistance < b) {
              const int64_t ip = i + kPrefetchDistance;
              const int64_t* prow = dense + ip * k;
              for (int64_t j = 0, cp = count[ip]; j < cp; ++j) {
                __builtin_prefetch(g.indices + prow[j]);
                __builtin_prefetch(g.ts + prow[j]);
                __builtin_prefetch(g.eid + prow[j]);
              }
            }
            const double t = rt[i];
            nodes[i] = rn[i];
            nts[i] = t;
            const int64_t c = count[i];
            int64_t* drow = dense + i * k;
            for (int64_t j = 0; j < c; ++j) {
              const int64_t p = drow[j];
              const int64_t q = R + off + j;
              const double et = g.ts[p];
              nodes[q] = static_cast<int64_t>(g.indices[p]);
              nts[q] = prop_time ? t : et;
              eid[off + j] = g.eid[p];
              dt[off + j] = t - et;
              row[off + j] = q;
              col[off + j] = i;
              drow[j] = q;
            }
            for (int64_t j = c; j < k; ++j) drow[j] = -1;
            off += c;
          }
          // The last hop's neighbour ids, checked in a loop of their own (inside the loop above
          // the check cost several instructions per edge in register pressure): v lies in
          // [0, N) iff neither v nor N - 1 - v has the sign bit set, OR-ed branch-free, which
          // vectorises. Earlier hops need no such pass: the next hop checks each of its roots.
          if (last_hop) {
            uint64_t sign = 0;
            const uint64_t last = N - 1;
            for (int64_t q = R + chunk_off[ci]; q < R + off; ++q) {
              const uint64_t v = static_cast<uint64_t>(nodes[q]);
              sign |= v | (last - v);
            }
            if (__builtin_expect(sign >> 63, 0)) bad_nbr_chunk[ci] = 1;
          }
        }
      }
    }
    for (int64_t ci = 0; ci < num_chunks; ++ci) {
      if (bad_root[ci] < 0) continue;
      // Hop 0's roots were checked by sample(), so a bad id here is a neighbour id of the hop
      // before; otherwise the node's indptr slice is the problem.
      const int64_t n = rn[bad_root[ci]];
      if (static_cast<uint64_t>(n) >= N)
        throw InputError(bad_neighbour_message(g, snapshot, hop, n));
      throw InputError(bad_slice_message(snapshot, hop, n));
    }
    if (over_budget)
      throw InputError(over_budget_message(snapshot, hop, R, k, total, true,
                                           reserved + hop_output_bytes(R, k, total, dedup_here) +
                                               later));
    if (alloc_failed) throw std::bad_alloc();
    for (int64_t ci = 0; ci < num_chunks; ++ci) {
      if (!bad_nbr_chunk[ci]) continue;
      int64_t q = R + chunk_off[ci];
      while (q < R + chunk_off[ci + 1] && static_cast<uint64_t>(out.nodes[q]) < N) ++q;
      throw InputError(bad_neighbour_message(g, snapshot, hop, out.nodes[q]));
    }
    out.num_edges = total;
  }

  const int64_t* indptr_;
  const void* indices_;
  bool indices64_;
  const int64_t* eid_;
  const double* ts_;
  int64_t num_nodes_;
  int64_t num_entries_;
  SamplerOptions opt_;
  int num_threads_;
  int64_t num_boundaries_ = 0;
  Buffer<int64_t> cache_;
};

}  // namespace pyg_tgl
