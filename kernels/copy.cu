// copy_values and advance_counter: one parallel_for each.
#include "kernels/copy.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

template <class T>
struct CopyValues {
  const T* src;
  T* dst;
  DYN_HD void operator()(int64_t i) const { dst[i] = src[i]; }
};

struct AdvanceCounter {
  uint32_t* counter;
  uint32_t by;
  DYN_HD void operator()(int64_t) const { *counter += by; }
};

}  // namespace

template <class T>
void copy_values(Backend b, const T* src, T* dst, int64_t n) {
  parallel_for(b, n, CopyValues<T>{src, dst});
}

void advance_counter(Backend b, uint32_t* counter, uint32_t by) { parallel_for(b, 1, AdvanceCounter{counter, by}); }

template void copy_values<float>(Backend, const float*, float*, int64_t);
template void copy_values<uint8_t>(Backend, const uint8_t*, uint8_t*, int64_t);
template void copy_values<int32_t>(Backend, const int32_t*, int32_t*, int64_t);

}  // namespace dyn
