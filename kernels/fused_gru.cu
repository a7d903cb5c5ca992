// Fused GRU forward over a whole sequence (CUDA, float). After one GEMM for the input projection of all steps,
// a single launch runs every step: each block owns NB streams and keeps W_hh ([3H][H+1], padded) and its
// streams' hidden state in shared memory for all T steps; each of the 256 threads computes NT streams × U units
// × 3 gates of W_hh h per step from shared memory, then the gate math (nn/gru_cell.h). The stored gates, hprev
// and outputs match Gru::forward, so the unfused backward applies. Gru::recur takes it on CUDA for hidden 64 and
// 128 (kernels/gru.cu), for a whole sequence or a single online step. Tested against the CPU path in
// tests/test_nn_gpu.cpp (label gpu) and, through the same launch plans, in tests/test_fused_emulated.cpp.
#include <stdexcept>
#include <string>

#include "kernels/check.h"
#include "kernels/fused_gru_kernels.cuh"
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "nn/gru.h"
#include "nn/mlp.h"

namespace dyn {

namespace {

using namespace fused_gru;

template <int H>
void launch_gru(const FusedGruPlan& p) {
  const size_t bytes = gru_smem_bytes<H>();
  static const bool opted_in = [&] {  // once: allow more than 48 KiB of dynamic shared memory
    DYN_CUDA_CHECK(
        cudaFuncSetAttribute(fused_gru_forward_kernel<H>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    return true;
  }();
  (void)opted_in;
  fused_gru_forward_kernel<H>
      <<<p.blocks, kThreads, bytes, cuda_stream()>>>(p.w_hh, p.b_hh, p.gi, p.reset, p.h0, p.steps, p.streams, p.out);
  DYN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

bool fused_gru_supported(int hidden) { return hidden == 64 || hidden == 128; }

void launch_fused_gru(const FusedGruPlan& plan) {
  DYN_NVTX_RANGE("gru_recur_fused");
  if (plan.steps == 0 || plan.streams == 0) return;
  if (plan.hidden == 64)
    launch_gru<64>(plan);
  else if (plan.hidden == 128)
    launch_gru<128>(plan);
  else
    throw std::invalid_argument("launch_fused_gru: hidden " + std::to_string(plan.hidden) + " (allowed: 64, 128)");
}

void gru_forward_fused(const Gru& gru, const float* params, const float* x, const uint8_t* reset, const float* inject,
                       const float* h0, int steps, int batch, GruWorkspace<float>& ws) {
  DYN_NVTX_RANGE("gru_forward_fused");
  const int H = gru.hidden();
  if (!fused_gru_supported(H)) throw std::invalid_argument("gru_forward_fused: hidden size must be 64 or 128");
  ws.reserve(Backend::cuda, steps, batch, H);
  // gi = x W_ihᵀ + b_ih (+ injection) for all steps: one GEMM
  gru.project_input(Backend::cuda, params, x, 0, steps, ws);
  float* gi = ws.gi.data();
  if (inject)
    parallel_for(Backend::cuda, int64_t(steps) * batch * 3 * H, [=] DYN_LAMBDA(int64_t i) { gi[i] += inject[i]; });
  launch_fused_gru(gru.fused_recur_plan(params, reset, h0, 0, steps, ws));
}

}  // namespace dyn
