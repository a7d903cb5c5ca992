// copy_values, add_values, scale_values, place_columns / take_columns and advance_counter: one parallel_for each.
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

template <class T>
struct AddValues {
  const T* src;
  T* dst;
  DYN_HD void operator()(int64_t i) const { dst[i] += src[i]; }
};

template <class T>
struct MoveColumns {  // dst[r, dc0 + c] = src[r, sc0 + c]
  const T* src;
  T* dst;
  int64_t src_w, sc0, dst_w, dc0;
  DYN_HD void operator()(int64_t r, int64_t c) const { dst[r * dst_w + dc0 + c] = src[r * src_w + sc0 + c]; }
};

template <class T>
struct ScaleValues {
  T* x;
  T factor;
  DYN_HD void operator()(int64_t i) const { x[i] *= factor; }
};

struct AdvanceCounter {
  uint32_t* counter;
  uint32_t by;
  DYN_HD void operator()(int64_t i) const { counter[i] += by; }
};

}  // namespace

template <class T>
void copy_values(Backend b, const T* src, T* dst, int64_t n) {
  parallel_for(b, n, CopyValues<T>{src, dst});
}

template <class T>
void add_values(Backend b, const T* src, T* dst, int64_t n) {
  parallel_for(b, n, AddValues<T>{src, dst});
}

template <class T>
void scale_values(Backend b, T* x, T factor, int64_t n) {
  parallel_for(b, n, ScaleValues<T>{x, factor});
}

template <class T>
void place_columns(Backend b, const T* src, int64_t rows, int width, T* dst, int dst_w, int c0) {
  parallel_for_2d(b, rows, width, MoveColumns<T>{src, dst, width, 0, dst_w, c0});
}

template <class T>
void take_columns(Backend b, const T* src, int src_w, int c0, int64_t rows, int width, T* dst) {
  parallel_for_2d(b, rows, width, MoveColumns<T>{src, dst, src_w, c0, width, 0});
}

void advance_counter(Backend b, uint32_t* counter, uint32_t by, int counters) {
  parallel_for(b, counters, AdvanceCounter{counter, by});
}

template void copy_values<float>(Backend, const float*, float*, int64_t);
template void copy_values<uint8_t>(Backend, const uint8_t*, uint8_t*, int64_t);
template void copy_values<int32_t>(Backend, const int32_t*, int32_t*, int64_t);
template void copy_values<double>(Backend, const double*, double*, int64_t);
template void add_values<float>(Backend, const float*, float*, int64_t);
template void add_values<double>(Backend, const double*, double*, int64_t);
template void scale_values<float>(Backend, float*, float, int64_t);
template void scale_values<double>(Backend, double*, double, int64_t);
template void place_columns<float>(Backend, const float*, int64_t, int, float*, int, int);
template void place_columns<double>(Backend, const double*, int64_t, int, double*, int, int);
template void take_columns<float>(Backend, const float*, int, int, int64_t, int, float*);
template void take_columns<double>(Backend, const double*, int, int, int64_t, int, double*);

}  // namespace dyn
