// Reductions to a backend scalar: CUB on CUDA, OpenMP reductions in double on the CPU.
#include <cub/device/device_reduce.cuh>

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
  DYN_CUDA_CHECK(
      cub::DeviceReduce::TransformReduce(nullptr, temp_bytes, x, out, int64_t(n), ::cuda::std::plus<T>(), op, T(0)));
  static Buffer<uint8_t> temp;  // grown on demand
  if (temp.size() < temp_bytes) temp = Buffer<uint8_t>(b, temp_bytes);
  DYN_CUDA_CHECK(cub::DeviceReduce::TransformReduce(temp.data(), temp_bytes, x, out, int64_t(n), ::cuda::std::plus<T>(),
                                                    op, T(0)));
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
