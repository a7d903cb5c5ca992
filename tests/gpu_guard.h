// DYN_REQUIRE_CUDA(): skip a GPU test when no device is present, or fail it under DYN_REQUIRE_GPU=1.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "kernels/backend.h"

inline bool dyn_gpu_required() {
  const char* v = std::getenv("DYN_REQUIRE_GPU");
  return v && std::strcmp(v, "1") == 0;
}

#define DYN_REQUIRE_CUDA()                                                            \
  do {                                                                                \
    if (::dyn::cuda_device_count() == 0) {                                            \
      if (dyn_gpu_required()) FAIL() << "DYN_REQUIRE_GPU=1 but no CUDA device found"; \
      GTEST_SKIP() << "no CUDA device";                                               \
    }                                                                                 \
  } while (0)
