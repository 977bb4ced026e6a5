// T-CSR construction and validation (TGL, Zhou et al., VLDB 2022, Sec. 3.1): a CSR over nodes
// whose per-node slices are sorted by (time, event id), so that a temporal sampler finds the
// edges before a time with one binary search.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common.hpp"

namespace pyg_tgl {

// Validates the event arrays and returns the node count (max id + 1 when num_nodes < 0).
// Throws InputError naming the first offending row.
inline int64_t check_events(const int64_t* src, const int64_t* dst, const double* t,
                            const int64_t* eid, int64_t num_events, int64_t num_nodes,
                            int num_threads) {
  int64_t bad = num_events;
  int64_t max_id = -1;
  const int64_t limit = num_nodes >= 0 ? num_nodes : INT64_MAX;
#pragma omp parallel for num_threads(num_threads) schedule(static) \
    reduction(min : bad) reduction(max : max_id)
  for (int64_t e = 0; e < num_events; ++e) {
    const int64_t u = src[e], v = dst[e];
    const bool ok = u >= 0 && v >= 0 && u < limit && v < limit && !std::isnan(t[e]) &&
                    (eid == nullptr || eid[e] >= 0);
    if (!ok && e < bad) bad = e;
    max_id = std::max(max_id, std::max(u, v));
  }
  if (bad < num_events) {
    const int64_t e = bad;
    std::ostringstream msg;
    auto describe = [&](const char* name, int64_t value) {
      msg << name << "[" << e << "] = " << value;
      if (value < 0)
        msg << " is negative (node ids must be >= 0)";
      else
        msg << " is out of range for num_nodes = " << num_nodes << " (ids must lie in [0, "
            << num_nodes << "))";
    };
    if (src[e] < 0 || src[e] >= limit)
      describe("src", src[e]);
    else if (dst[e] < 0 || dst[e] >= limit)
      describe("dst", dst[e]);
    else if (std::isnan(t[e]))
      msg << "t[" << e << "] is NaN (event times must be numbers)";
    else
      msg << "eid[" << e << "] = " << eid[e] << " is negative (event ids index edge features)";
    throw InputError(msg.str());
  }
  return num_nodes >= 0 ? num_nodes : max_id + 1;
}

// Counts every node's list length into deg[0..N) (zeroed by the caller). Each thread owns a
// contiguous range of node ids and scans all events: no atomics, no per-thread count arrays
// (which would cost threads * N memory on large graphs), and only streaming reads repeat.
inline void count_degrees(const int64_t* src, const int64_t* dst, int64_t num_events,
                          int64_t num_nodes, bool add_reverse, int num_threads, int64_t* deg) {
#pragma omp parallel num_threads(num_threads)
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t lo = num_nodes * tid / nt;
    const uint64_t width = static_cast<uint64_t>(num_nodes * (tid + 1) / nt - lo);
    for (int64_t e = 0; e < num_events; ++e) {
      const int64_t u = src[e];
      if (static_cast<uint64_t>(u - lo) < width) ++deg[u];
      if (add_reverse) {
        const int64_t v = dst[e];
        if (static_cast<uint64_t>(v - lo) < width) ++deg[v];
      }
    }
  }
}

// Fills the slices of a T-CSR whose indptr is already known, then sorts each slice by (ts, eid).
// Entries are scattered in event order and the sort is stable, so ties keep event order. Each
// thread owns a range of nodes holding about M / threads entries; placement is therefore
// deterministic and lock-free. Returns false if scratch memory for sorting ran out.
template <typename IdxT>
bool fill_tcsr(const int64_t* src, const int64_t* dst, const double* t, const int64_t* eid_in,
               int64_t num_events, int64_t num_nodes, bool add_reverse, int num_threads,
               const int64_t* indptr, IdxT* indices, int64_t* eid, double* ts) {
  const int64_t total = indptr[num_nodes];
  Buffer<int64_t> cursor(num_nodes);
  std::copy(indptr, indptr + num_nodes, cursor.data());
  int64_t* cur = cursor.data();
#pragma omp parallel num_threads(num_threads)
  {
    const int nt = omp_get_num_threads(), tid = omp_get_thread_num();
    auto boundary = [&](int k) -> int64_t {
      if (k <= 0) return 0;
      if (k >= nt) return num_nodes;
      const int64_t target = total / nt * k + total % nt * k / nt;
      return std::lower_bound(indptr, indptr + num_nodes + 1, target) - indptr;
    };
    const int64_t lo = std::min(boundary(tid), num_nodes);
    const uint64_t width = static_cast<uint64_t>(std::max<int64_t>(0, boundary(tid + 1) - lo));
    for (int64_t e = 0; e < num_events; ++e) {
      const int64_t u = src[e], v = dst[e];
      const int64_t id = eid_in ? eid_in[e] : e;
      if (static_cast<uint64_t>(u - lo) < width) {
        const int64_t p = cur[u]++;
        indices[p] = static_cast<IdxT>(v);
        eid[p] = id;
        ts[p] = t[e];
      }
      if (add_reverse && static_cast<uint64_t>(v - lo) < width) {
        const int64_t p = cur[v]++;
        indices[p] = static_cast<IdxT>(u);
        eid[p] = id;
        ts[p] = t[e];
      }
    }
  }

  struct Entry {
    double ts;
    int64_t eid;
    IdxT nbr;
  };
  bool out_of_memory = false;
#pragma omp parallel num_threads(num_threads)
  {
    // Reused across the thread's nodes; only unsorted slices (events not given in time order)
    // ever touch it, so chronological input costs one streaming check and no copy.
    std::vector<Entry> scratch;
#pragma omp for schedule(dynamic, 4096)
    for (int64_t n = 0; n < num_nodes; ++n) {
      const int64_t beg = indptr[n], end = indptr[n + 1];
      bool sorted = true;
      for (int64_t p = beg + 1; p < end && sorted; ++p)
        sorted = ts[p - 1] < ts[p] || (ts[p - 1] == ts[p] && eid[p - 1] <= eid[p]);
      if (sorted) continue;
      try {
        scratch.resize(static_cast<size_t>(end - beg));
        for (int64_t p = beg; p < end; ++p) scratch[p - beg] = Entry{ts[p], eid[p], indices[p]};
        std::stable_sort(scratch.begin(), scratch.end(), [](const Entry& a, const Entry& b) {
          return a.ts < b.ts || (a.ts == b.ts && a.eid < b.eid);
        });
      } catch (const std::bad_alloc&) {
#pragma omp atomic write
        out_of_memory = true;
        continue;
      }
      for (int64_t p = beg; p < end; ++p) {
        ts[p] = scratch[p - beg].ts;
        eid[p] = scratch[p - beg].eid;
        indices[p] = scratch[p - beg].nbr;
      }
    }
  }
  return !out_of_memory;
}

// Checks a T-CSR read from disk or given by the user. Returns "" when valid, else a message
// naming the first offending node.
template <typename IdxT>
std::string validate_tcsr(const int64_t* indptr, int64_t num_nodes, const IdxT* indices,
                          const int64_t* eid, const double* ts, int64_t num_entries,
                          int num_threads) {
  std::ostringstream msg;
  if (num_nodes < 0) return "indptr is empty (it must hold num_nodes + 1 >= 1 offsets)";
  if (indptr[0] != 0) {
    msg << "indptr[0] = " << indptr[0] << ", expected 0";
    return msg.str();
  }
  int64_t bad = num_nodes;
#pragma omp parallel for num_threads(num_threads) schedule(static) reduction(min : bad)
  for (int64_t n = 0; n < num_nodes; ++n)
    if (indptr[n + 1] < indptr[n] && n < bad) bad = n;
  if (bad < num_nodes) {
    msg << "indptr decreases at node " << bad << " (indptr[" << bad << "] = " << indptr[bad]
        << " > indptr[" << bad + 1 << "] = " << indptr[bad + 1] << ")";
    return msg.str();
  }
  if (indptr[num_nodes] != num_entries) {
    msg << "indptr[-1] = " << indptr[num_nodes] << " but indices/eid/ts hold " << num_entries
        << " entries";
    return msg.str();
  }
  auto node_problem = [&](int64_t n, std::ostringstream* out) -> bool {
    for (int64_t p = indptr[n]; p < indptr[n + 1]; ++p) {
      const int64_t nbr = static_cast<int64_t>(indices[p]);
      if (nbr < 0 || nbr >= num_nodes) {
        if (out)
          *out << "node " << n << ": indices[" << p << "] = " << nbr
               << " is not a node id in [0, " << num_nodes << ")";
        return true;
      }
      if (eid[p] < 0) {
        if (out) *out << "node " << n << ": eid[" << p << "] = " << eid[p] << " is negative";
        return true;
      }
      if (std::isnan(ts[p])) {
        if (out) *out << "node " << n << ": ts[" << p << "] is NaN";
        return true;
      }
      if (p > indptr[n] && ts[p] < ts[p - 1]) {
        if (out)
          *out << "node " << n << ": times are not sorted (ts[" << p - 1 << "] = " << ts[p - 1]
               << " > ts[" << p << "] = " << ts[p] << ")";
        return true;
      }
    }
    return false;
  };
  bad = num_nodes;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 4096) reduction(min : bad)
  for (int64_t n = 0; n < num_nodes; ++n)
    if (n < bad && node_problem(n, nullptr)) bad = n;
  if (bad < num_nodes) {
    node_problem(bad, &msg);
    return msg.str();
  }
  return "";
}

}  // namespace pyg_tgl
