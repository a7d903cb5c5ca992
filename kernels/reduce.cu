// Reductions to a backend scalar: CUB on CUDA, OpenMP reductions in double on the CPU.
#include <cub/device/device_reduce.cuh>
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
  // Grown on demand, one per host thread (the seed batch's runs reduce on their own streams), and a grown-out buffer
  // is kept alive: a captured CUDA Graph may still point at it.
  thread_local std::vector<Buffer<uint8_t>> temps;
  if (temps.empty() || temps.back().size() < temp_bytes)
    temps.emplace_back(b, temp_bytes > (size_t(1) << 16) ? temp_bytes : (size_t(1) << 16));
  DYN_CUDA_CHECK(cub::DeviceReduce::TransformReduce(temps.back().data(), temp_bytes, x, out, int64_t(n),
                                                    ::cuda::std::plus<T>(), op, T(0), cuda_stream()));
}

}  // namespace

template <class T>
void reduce_sum(Backend b, const T* x, size_t n, T* out) {
  transform_sum(b, x, n, out, Identity<T>());
}

template <class T>
void sum_of_squares(Backend b, const T* x, size_t n, T* out) {
  transform_sum(b, x, n, out, Square<T>());
}

template void reduce_sum<float>(Backend, const float*, size_t, float*);
template void reduce_sum<double>(Backend, const double*, size_t, double*);
template void sum_of_squares<float>(Backend, const float*, size_t, float*);
template void sum_of_squares<double>(Backend, const double*, size_t, double*);

}  // namespace dyn
