// Reductions to a backend scalar: CUB on CUDA, OpenMP reductions in double on the CPU.
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include <cub/device/device_reduce.cuh>
#include <cub/device/device_segmented_reduce.cuh>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/reduce.h"

namespace dyn {

namespace {

template <class T>
struct Square {
  DYN_HD T operator()(T x) const { return x * x; }
};
template <class T>
struct Identity {
  DYN_HD T operator()(T x) const { return x; }
};

// Start offset of segment s: s · n.
struct SegmentStart {
  int64_t n;
  DYN_HD int64_t operator()(int64_t s) const { return s * n; }
};

// A CUB temp buffer of at least `bytes` on the CUDA stream, grown on demand, one per host thread (the seed batch's
// runs reduce on their own streams); a grown-out buffer is kept alive: a captured CUDA Graph may still point at it.
uint8_t* cub_temp(size_t bytes) {
  thread_local std::vector<Buffer<uint8_t>> temps;
  if (temps.empty() || temps.back().size() < bytes)
    temps.emplace_back(Backend::cuda, bytes > (size_t(1) << 16) ? bytes : (size_t(1) << 16));
  return temps.back().data();
}

template <class T, class Op>
void transform_sum(Backend b, const T* x, size_t n, T* out, Op op) {
  if (b == Backend::cpu) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < int64_t(n); ++i) s += double(op(x[i]));
    out[0] = T(s);
    return;
  }
  size_t temp_bytes = 0;
  DYN_CUDA_CHECK(cub::DeviceReduce::TransformReduce(nullptr, temp_bytes, x, out, int64_t(n), ::cuda::std::plus<T>(), op,
                                                    T(0), cuda_stream()));
  DYN_CUDA_CHECK(cub::DeviceReduce::TransformReduce(cub_temp(temp_bytes), temp_bytes, x, out, int64_t(n),
                                                    ::cuda::std::plus<T>(), op, T(0), cuda_stream()));
}

// out[s] = Σ op(x[s · n + i]) for each of `segments` segments: on the CPU each exactly transform_sum of its segment
// alone, on CUDA one segmented CUB reduction.
template <class T, class Op>
void segment_transform_sums(Backend b, const T* x, size_t n, int segments, T* out, Op op) {
  if (segments <= 0) return;
  if (b == Backend::cpu || segments == 1) {
    for (int s = 0; s < segments; ++s) transform_sum(b, x + size_t(s) * n, n, out + s, op);
    return;
  }
  const auto values = thrust::make_transform_iterator(x, op);
  const auto starts = thrust::make_transform_iterator(thrust::counting_iterator<int64_t>(0), SegmentStart{int64_t(n)});
  size_t temp_bytes = 0;
  DYN_CUDA_CHECK(
      cub::DeviceSegmentedReduce::Sum(nullptr, temp_bytes, values, out, segments, starts, starts + 1, cuda_stream()));
  DYN_CUDA_CHECK(cub::DeviceSegmentedReduce::Sum(cub_temp(temp_bytes), temp_bytes, values, out, segments, starts,
                                                 starts + 1, cuda_stream()));
}

}  // namespace

template <class T>
void offset_sums_of_squares(Backend b, const T* x, const int64_t* offsets, int segments, T* out) {
  if (segments <= 0) return;
  if (b == Backend::cpu) {
    for (int s = 0; s < segments; ++s)
      transform_sum(b, x + offsets[s], size_t(offsets[s + 1] - offsets[s]), out + s, Square<T>());
    return;
  }
  const auto values = thrust::make_transform_iterator(x, Square<T>());
  size_t temp_bytes = 0;
  DYN_CUDA_CHECK(
      cub::DeviceSegmentedReduce::Sum(nullptr, temp_bytes, values, out, segments, offsets, offsets + 1, cuda_stream()));
  DYN_CUDA_CHECK(cub::DeviceSegmentedReduce::Sum(cub_temp(temp_bytes), temp_bytes, values, out, segments, offsets,
                                                 offsets + 1, cuda_stream()));
}

template <class T>
void reduce_sum(Backend b, const T* x, size_t n, T* out) {
  transform_sum(b, x, n, out, Identity<T>());
}

template <class T>
void sum_of_squares(Backend b, const T* x, size_t n, T* out) {
  transform_sum(b, x, n, out, Square<T>());
}

template <class T>
void segment_sums(Backend b, const T* x, size_t n, int segments, T* out) {
  segment_transform_sums(b, x, n, segments, out, Identity<T>());
}

template <class T>
void segment_sums_of_squares(Backend b, const T* x, size_t n, int segments, T* out) {
  segment_transform_sums(b, x, n, segments, out, Square<T>());
}

template void reduce_sum<float>(Backend, const float*, size_t, float*);
template void reduce_sum<double>(Backend, const double*, size_t, double*);
template void sum_of_squares<float>(Backend, const float*, size_t, float*);
template void sum_of_squares<double>(Backend, const double*, size_t, double*);
template void offset_sums_of_squares<float>(Backend, const float*, const int64_t*, int, float*);
template void offset_sums_of_squares<double>(Backend, const double*, const int64_t*, int, double*);
template void segment_sums<float>(Backend, const float*, size_t, int, float*);
template void segment_sums<double>(Backend, const double*, size_t, int, double*);
template void segment_sums_of_squares<float>(Backend, const float*, size_t, int, float*);
template void segment_sums_of_squares<double>(Backend, const double*, size_t, int, double*);

}  // namespace dyn
