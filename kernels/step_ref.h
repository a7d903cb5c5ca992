// StepRef: the global env step a batched call works at (the Philox counter word of env and policy draws) — a
// plain host value, or a backend counter plus an offset, so a CUDA Graph replay reads the step it is at instead
// of the one baked in at capture.
#pragma once

#include <cstdint>

#include "kernels/hd.h"

namespace dyn {

struct StepRef {
  const uint32_t* counter = nullptr;  // backend memory, or nullptr
  uint32_t offset = 0;                // the step itself when there is no counter

  StepRef(uint32_t step) : offset(step) {}  // NOLINT(google-explicit-constructor): a step is a StepRef
  StepRef(const uint32_t* c, uint32_t off) : counter(c), offset(off) {}
  DYN_HD uint32_t get() const { return counter ? *counter + offset : offset; }
};

}  // namespace dyn
