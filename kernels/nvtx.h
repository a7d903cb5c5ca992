// NVTX3 ranges for Nsight: DYN_NVTX_RANGE("name") marks the enclosing scope. Costs nothing without a profiler.
#pragma once

#include <nvtx3/nvToolsExt.h>

namespace dyn {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace dyn

#define DYN_NVTX_CAT2(a, b) a##b
#define DYN_NVTX_CAT(a, b) DYN_NVTX_CAT2(a, b)
#define DYN_NVTX_RANGE(name) ::dyn::NvtxRange DYN_NVTX_CAT(dyn_nvtx_, __LINE__)(name)
