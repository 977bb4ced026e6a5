// pybind11 bindings of the pyg_tgl C++ core (module pyg_tgl._core).
//
// Arrays cross the boundary as numpy buffers without copies: inputs are borrowed (C-contiguous,
// exact dtype, converted by numpy only when the cast is safe), outputs are malloc'ed buffers
// handed to numpy with a capsule that frees them. The Python wrappers in pyg_tgl/data turn them
// into torch tensors with torch.from_numpy. Heavy work runs with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sampler.hpp"
#include "tcsr.hpp"

namespace py = pybind11;
using namespace pyg_tgl;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

template <typename T>
py::array to_numpy(Buffer<T>& buf, std::vector<py::ssize_t> shape) {
  T* p = buf.data();
  py::capsule owner(p, [](void* q) { std::free(q); });
  buf.release();
  return py::array_t<T>(shape, p, owner);
}

void require_1d(const py::array& a, const char* name) {
  if (a.ndim() != 1)
    throw InputError(std::string(name) + " must be one-dimensional, got " +
                     std::to_string(a.ndim()) + " dimensions");
}

void require_len(const py::array& a, const char* name, py::ssize_t n, const char* ref) {
  if (a.shape(0) != n)
    throw InputError(std::string(name) + " has " + std::to_string(a.shape(0)) +
                     " entries but " + ref + " has " + std::to_string(n));
}

// Builds a T-CSR. index_kind: 0 = int32 neighbour ids, 1 = int64, -1 = int32 iff N < 2^31.
py::tuple build_tcsr_py(CArray<int64_t> src, CArray<int64_t> dst, CArray<double> t,
                        std::optional<CArray<int64_t>> eid, int64_t num_nodes, bool add_reverse,
                        int index_kind, int num_threads) {
  require_1d(src, "src");
  require_1d(dst, "dst");
  require_1d(t, "t");
  require_len(dst, "dst", src.shape(0), "src");
  require_len(t, "t", src.shape(0), "src");
  if (eid) {
    require_1d(*eid, "eid");
    require_len(*eid, "eid", src.shape(0), "src");
  }
  const int64_t E = src.shape(0);
  const int nt = resolve_threads(num_threads);
  const int64_t* s = src.data();
  const int64_t* d = dst.data();
  const double* tt = t.data();
  const int64_t* e_in = eid ? eid->data() : nullptr;

  int64_t N;
  Buffer<int64_t> indptr;
  {
    py::gil_scoped_release release;
    N = check_events(s, d, tt, e_in, E, num_nodes, nt);
    indptr.allocate(N + 1);
    std::fill(indptr.data(), indptr.data() + N + 1, int64_t(0));
    count_degrees(s, d, E, N, add_reverse, nt, indptr.data() + 1);
    for (int64_t n = 0; n < N; ++n) indptr[n + 1] += indptr[n];
  }
  const int64_t M = indptr[N];
  const bool wide = index_kind == 1 || (index_kind < 0 && N > std::numeric_limits<int32_t>::max());
  if (index_kind == 0 && N > std::numeric_limits<int32_t>::max())
    throw InputError("int32 neighbour indices cannot hold " + std::to_string(N) + " nodes");
  py::array indices =
      wide ? py::array(py::array_t<int64_t>(M)) : py::array(py::array_t<int32_t>(M));
  py::array_t<int64_t> out_eid(M);
  py::array_t<double> out_ts(M);
  void* idx_ptr = indices.mutable_data();
  int64_t* eid_ptr = out_eid.mutable_data();
  double* ts_ptr = out_ts.mutable_data();
  bool ok;
  {
    py::gil_scoped_release release;
    ok = wide ? fill_tcsr<int64_t>(s, d, tt, e_in, E, N, add_reverse, nt, indptr.data(),
                                   static_cast<int64_t*>(idx_ptr), eid_ptr, ts_ptr)
              : fill_tcsr<int32_t>(s, d, tt, e_in, E, N, add_reverse, nt, indptr.data(),
                                   static_cast<int32_t*>(idx_ptr), eid_ptr, ts_ptr);
  }
  if (!ok) throw std::bad_alloc();
  py::array indptr_np = to_numpy(indptr, {static_cast<py::ssize_t>(N + 1)});
  return py::make_tuple(indptr_np, indices, out_eid, out_ts);
}

bool is_int64(const py::array& a) { return a.dtype().is(py::dtype::of<int64_t>()); }
bool is_int32(const py::array& a) { return a.dtype().is(py::dtype::of<int32_t>()); }

void check_graph_arrays(const CArray<int64_t>& indptr, const py::array& indices,
                        const CArray<int64_t>& eid, const CArray<double>& ts) {
  require_1d(indptr, "indptr");
  require_1d(indices, "indices");
  require_1d(eid, "eid");
  require_1d(ts, "ts");
  if (!(is_int64(indices) || is_int32(indices)))
    throw InputError("indices must be int32 or int64, got " +
                     std::string(py::str(indices.dtype())));
  if (!(indices.flags() & py::array::c_style))
    throw InputError("indices must be C-contiguous");
  require_len(eid, "eid", indices.shape(0), "indices");
  require_len(ts, "ts", indices.shape(0), "indices");
  if (indptr.shape(0) < 1) throw InputError("indptr is empty (it must hold num_nodes + 1 offsets)");
}

// validate_tcsr on arrays that passed check_graph_arrays; "" when valid.
std::string validate_arrays(const CArray<int64_t>& indptr, const py::array& indices,
                            const CArray<int64_t>& eid, const CArray<double>& ts,
                            int num_threads) {
  const int64_t N = indptr.shape(0) - 1, M = indices.shape(0);
  const int nt = resolve_threads(num_threads);
  // Everything that touches Python objects happens before the GIL is released.
  const void* ip = indices.data();
  const bool wide = is_int64(indices);
  const int64_t* ptr = indptr.data();
  const int64_t* e = eid.data();
  const double* t = ts.data();
  py::gil_scoped_release release;
  if (wide)
    return validate_tcsr<int64_t>(ptr, N, static_cast<const int64_t*>(ip), e, t, M, nt);
  return validate_tcsr<int32_t>(ptr, N, static_cast<const int32_t*>(ip), e, t, M, nt);
}

std::string validate_tcsr_py(CArray<int64_t> indptr, py::array indices, CArray<int64_t> eid,
                             CArray<double> ts, int num_threads) {
  check_graph_arrays(indptr, indices, eid, ts);
  return validate_arrays(indptr, indices, eid, ts, num_threads);
}

// Owns references to the graph arrays so the borrowed pointers of the core stay valid. (numpy
// arrays made from torch tensors keep their storage alive and make it non-resizable, so neither
// Tensor.resize_ nor Tensor.set_ can free the memory under the sampler; only writes can change
// it, and the core bounds-checks everything it reads as an index.)
class PySampler {
 public:
  PySampler(CArray<int64_t> indptr, py::array indices, CArray<int64_t> eid, CArray<double> ts,
            std::vector<int64_t> fanouts, bool uniform, bool prop_time, int64_t history,
            double duration, bool pointer_cache, bool dedup, int64_t max_output_bytes,
            int num_threads)
      : indptr_(indptr), indices_(indices), eid_(eid), ts_(ts) {
    check_graph_arrays(indptr, indices, eid, ts);
    if (fanouts.empty()) throw InputError("num_neighbors must hold at least one fan-out");
    for (size_t i = 0; i < fanouts.size(); ++i)
      if (fanouts[i] <= 0)
        throw InputError("num_neighbors[" + std::to_string(i) + "] = " +
                         std::to_string(fanouts[i]) + " must be a positive fan-out");
    if (history < 1) throw InputError("history must be >= 1, got " + std::to_string(history));
    if (history > 1 && !(duration > 0.0 && std::isfinite(duration)))
      throw InputError("duration must be a positive finite number when history > 1, got " +
                       std::to_string(duration));
    if (max_output_bytes <= 0)
      throw InputError("max_output_bytes must be positive, got " +
                       std::to_string(max_output_bytes));
    for (size_t i = 0; i < fanouts.size(); ++i)
      if (fanouts[i] > max_output_bytes / 8)
        throw InputError("num_neighbors[" + std::to_string(i) + "] = " +
                         std::to_string(fanouts[i]) + ": one root's dense_index row alone needs " +
                         format_bytes(8.0 * static_cast<double>(fanouts[i])) +
                         ", above max_output_bytes = " +
                         format_bytes(static_cast<double>(max_output_bytes)));
    const int nt = resolve_threads(num_threads);
    const std::string problem = validate(nt);
    if (!problem.empty())
      throw InputError("invalid T-CSR: " + problem +
                       " (the sampler validates its graph; a TCSR built with validate=False "
                       "must still pass TCSR.validate())");
    const int64_t N = indptr.shape(0) - 1;
    SamplerOptions opt;
    opt.fanouts = std::move(fanouts);
    opt.uniform = uniform;
    opt.prop_time = prop_time;
    opt.history = history;
    opt.duration = duration;
    opt.pointer_cache = pointer_cache;
    opt.dedup = dedup;
    opt.max_output_bytes = max_output_bytes;
    core_ = std::make_unique<TemporalSamplerCore>(indptr_.data(), indices_.data(),
                                                  is_int64(indices_), eid_.data(), ts_.data(), N,
                                                  static_cast<int64_t>(indices_.shape(0)),
                                                  std::move(opt), nt);
  }

  // Validates the arrays this sampler reads (O(N + M)); "" when valid.
  std::string validate(int num_threads) const {
    return validate_arrays(indptr_, indices_, eid_, ts_, num_threads);
  }

  py::list sample(CArray<int64_t> roots, CArray<double> root_ts, uint64_t seed,
                  uint64_t call_index) {
    require_1d(roots, "root_nodes");
    require_1d(root_ts, "root_ts");
    require_len(root_ts, "root_ts", roots.shape(0), "root_nodes");
    const int64_t* r = roots.data();
    const double* rt = root_ts.data();
    const int64_t n = roots.shape(0);
    std::vector<std::vector<HopResult>> blocks;
    {
      py::gil_scoped_release release;
      blocks = core_->sample(r, rt, n, seed, call_index);
    }
    py::list out;
    for (auto& hops : blocks) {
      py::list py_hops;
      for (HopResult& h : hops) {
        const py::ssize_t R = h.num_roots, E = h.num_edges, k = h.fanout;
        py::object inverse = py::none();
        if (h.has_inverse) inverse = to_numpy(h.inverse, {R + E});
        py_hops.append(py::make_tuple(
            to_numpy(h.nodes, {R + E}), to_numpy(h.ts, {R + E}), R,
            to_numpy(h.edge_index, {2, E}), to_numpy(h.eid, {E}), to_numpy(h.dt, {E}),
            to_numpy(h.dense_index, {R, k}), to_numpy(h.count, {R}), inverse));
      }
      out.append(py_hops);
    }
    return out;
  }

  void reset_cache() {
    py::gil_scoped_release release;
    core_->reset_cache();
  }
  int num_threads() const { return core_->num_threads(); }
  void set_num_threads(int n) { core_->set_num_threads(n); }

 private:
  CArray<int64_t> indptr_;
  py::array indices_;
  CArray<int64_t> eid_;
  CArray<double> ts_;
  std::unique_ptr<TemporalSamplerCore> core_;
};

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pyg_tgl C++ core: T-CSR construction and the parallel temporal sampler.";
  py::register_exception<InputError>(m, "InputError", PyExc_ValueError);

  m.def("build_tcsr", &build_tcsr_py, py::arg("src"), py::arg("dst"), py::arg("t"),
        py::arg("eid").none(true), py::arg("num_nodes"), py::arg("add_reverse"),
        py::arg("index_kind"), py::arg("num_threads"),
        "Builds (indptr, indices, eid, ts) of a T-CSR; num_nodes < 0 means max id + 1.");
  m.def("validate_tcsr", &validate_tcsr_py, py::arg("indptr"), py::arg("indices"),
        py::arg("eid"), py::arg("ts"), py::arg("num_threads"),
        "Returns '' for a valid T-CSR, else a message naming the first offending node.");
  m.def("max_threads", []() { return omp_get_max_threads(); },
        "OpenMP's default thread count in this process.");

  py::class_<PySampler>(m, "Sampler")
      .def(py::init<CArray<int64_t>, py::array, CArray<int64_t>, CArray<double>,
                    std::vector<int64_t>, bool, bool, int64_t, double, bool, bool, int64_t,
                    int>(),
           py::arg("indptr"), py::arg("indices"), py::arg("eid"), py::arg("ts"),
           py::arg("fanouts"), py::arg("uniform"), py::arg("prop_time"), py::arg("history"),
           py::arg("duration"), py::arg("pointer_cache"), py::arg("dedup"),
           py::arg("max_output_bytes"), py::arg("num_threads"),
           "Validates the T-CSR (InputError naming the first problem) and keeps references to "
           "its arrays.")
      .def("sample", &PySampler::sample, py::arg("roots"), py::arg("root_ts"), py::arg("seed"),
           py::arg("call_index"),
           "Returns [snapshot][hop] tuples (nodes, ts, num_roots, edge_index, eid, dt, "
           "dense_index, count, inverse_or_None).")
      .def("validate", &PySampler::validate, py::arg("num_threads"),
           "Re-validates the arrays the sampler reads: '' when valid, else the first problem.")
      .def("reset_cache", &PySampler::reset_cache)
      .def_property("num_threads", &PySampler::num_threads, &PySampler::set_num_threads);
}
