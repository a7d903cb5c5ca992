// Reductions to a backend scalar (the result stays where it is computed): sums and sums of squares.
#pragma once

#include <cstddef>

#include "kernels/backend.h"

namespace dyn {

// out[0] = Σ x[i] (CUB on CUDA, an OpenMP reduction in double on the CPU)
template <class T>
void reduce_sum(Backend b, const T* x, size_t n, T* out);

// out[0] = Σ x[i]²
template <class T>
void sum_of_squares(Backend b, const T* x, size_t n, T* out);

}  // namespace dyn
