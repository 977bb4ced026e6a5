// Shared helpers of the pyg_tgl C++ core: owned uninitialised buffers, the counter-based random
// generator and the error type translated to Python's ValueError.
#pragma once

#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace pyg_tgl {

// Bad user input (not an internal bug); the binding layer turns it into ValueError.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A malloc'ed array that is handed to numpy without a copy (the capsule calls free()).
// std::vector would value-initialise every element, which costs a full extra pass over the
// output of every sampled hop.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n) { allocate(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : ptr_(o.ptr_), size_(o.size_) {
    o.ptr_ = nullptr;
    o.size_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      std::free(ptr_);
      ptr_ = o.ptr_;
      size_ = o.size_;
      o.ptr_ = nullptr;
      o.size_ = 0;
    }
    return *this;
  }
  ~Buffer() { std::free(ptr_); }

  // Returns false instead of throwing so that it can be called inside OpenMP regions.
  bool try_allocate(int64_t n) noexcept {
    std::free(ptr_);
    size_ = 0;
    // malloc(0) may return nullptr; one spare element keeps "nullptr == failure" unambiguous.
    ptr_ = static_cast<T*>(std::malloc(static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)));
    if (ptr_ == nullptr) return false;
    size_ = n;
    return true;
  }
  void allocate(int64_t n) {
    if (!try_allocate(n)) throw std::bad_alloc();
  }
  // Gives up ownership (the caller must free()).
  T* release() noexcept {
    T* p = ptr_;
    ptr_ = nullptr;
    size_ = 0;
    return p;
  }
  T* data() const noexcept { return ptr_; }
  int64_t size() const noexcept { return size_; }
  T& operator[](int64_t i) const noexcept { return ptr_[i]; }

 private:
  T* ptr_ = nullptr;
  int64_t size_ = 0;
};

// SplitMix64 finaliser (Steele et al., OOPSLA 2014): a bijective 64-bit mixer. Hashing a
// counter with it gives a stream whose value at any position is computed directly, so every root
// gets its own reproducible draws whatever thread handles it.
inline uint64_t splitmix64(uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Key of the random stream of one (seed, call, snapshot, hop); a root's stream is then
// root_key(hop_key, position).
inline uint64_t hop_key(uint64_t seed, uint64_t call, uint64_t snapshot, uint64_t hop) noexcept {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ call);
  h = splitmix64(h ^ snapshot);
  return splitmix64(h ^ hop);
}

inline uint64_t root_key(uint64_t hkey, uint64_t position) noexcept {
  return splitmix64(hkey ^ splitmix64(position));
}

inline uint64_t random_draw(uint64_t rkey, uint64_t draw) noexcept {
  return splitmix64(rkey + draw * 0xD1B54A32D192ED03ULL);
}

// Maps a uniform 64-bit value to [0, n) by multiply-shift (Lemire, 2019); the bias is at most
// n / 2^64, far below anything a sampler can observe.
inline uint64_t bounded(uint64_t x, uint64_t n) noexcept {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
}

inline int resolve_threads(int num_threads) noexcept {
  return num_threads > 0 ? num_threads : omp_get_max_threads();
}

}  // namespace pyg_tgl
