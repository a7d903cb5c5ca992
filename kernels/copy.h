// Small backend operations every stage needs, queued on the backend's stream (so they can be captured into a CUDA
// Graph): copying n values, and advancing a counter in backend memory by a fixed amount.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace dyn {

// dst[i] = src[i] for i < n (backend memory).
template <class T>
void copy_values(Backend b, const T* src, T* dst, int64_t n);

// *counter += by, on the backend.
void advance_counter(Backend b, uint32_t* counter, uint32_t by);

}  // namespace dyn
