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

// out[s] = Σ x[s · n + i]² for each of `segments` consecutive segments of n values (a seed batch's [S, n] blob,
// one sum per seed); on the CPU each is exactly sum_of_squares of its segment alone, on CUDA one segmented CUB
// reduction.
template <class T>
void segment_sums_of_squares(Backend b, const T* x, size_t n, int segments, T* out);
// out[s] = Σ x[i]² over i in [offsets[s], offsets[s+1]) for `segments` ragged segments (offsets [segments + 1] in
// backend memory); on the CPU each exactly sum_of_squares of its segment alone, on CUDA one segmented CUB reduction.
template <class T>
void offset_sums_of_squares(Backend b, const T* x, const int64_t* offsets, int segments, T* out);
// out[s] = Σ x[s · n + i], likewise (each exactly reduce_sum of its segment alone on the CPU).
template <class T>
void segment_sums(Backend b, const T* x, size_t n, int segments, T* out);

}  // namespace dyn
