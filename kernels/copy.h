// Small backend operations every stage needs, queued on the backend's stream (so they can be captured into a CUDA
// Graph): copying, adding or scaling n values, moving a block of columns between row-major matrices, and advancing a
// counter in backend memory by a fixed amount.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace dyn {

// dst[i] = src[i] for i < n (backend memory).
template <class T>
void copy_values(Backend b, const T* src, T* dst, int64_t n);

// dst[i] += src[i] for i < n (backend memory).
template <class T>
void add_values(Backend b, const T* src, T* dst, int64_t n);

// x[i] *= factor for i < n (backend memory).
template <class T>
void scale_values(Backend b, T* x, T factor, int64_t n);

// dst[r, c0 + c] = src[r, c] for r < rows, c < width: a [rows, width] block into columns c0.. of dst [rows, dst_w].
template <class T>
void place_columns(Backend b, const T* src, int64_t rows, int width, T* dst, int dst_w, int c0);

// dst[r, c] = src[r, c0 + c]: columns c0..c0 + width of src [rows, src_w] out into dst [rows, width].
template <class T>
void take_columns(Backend b, const T* src, int src_w, int c0, int64_t rows, int width, T* dst);

// counter[i] += by for each of `counters` counters, on the backend.
void advance_counter(Backend b, uint32_t* counter, uint32_t by, int counters = 1);

}  // namespace dyn
