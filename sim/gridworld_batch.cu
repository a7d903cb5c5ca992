// gridworld over N environments on either backend: each call is one parallel_for over the DYN_HD env math.
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/gridworld.h"

namespace dyn {

void gridworld_reset(Backend b, const GridParams& p, GridState* state, float* obs, int64_t n, uint32_t episode_step) {
  DYN_NVTX_RANGE("gridworld_reset");
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    grid_reset(p, state[i], uint32_t(i), episode_step);
    grid_observe(state[i], obs + i * kGridObsDim);
  });
}

void gridworld_step(Backend b, const GridParams& p, GridState* state, const int32_t* actions, const GridBatchOut& out,
                    int64_t n, StepRef step) {
  DYN_NVTX_RANGE("gridworld_step");
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    GridState s = state[i];
    const GridOut o{out.obs + i * kGridObsDim,
                    out.reward + i,
                    out.session_end + i,
                    out.truncated + i,
                    out.terminated + i,
                    out.session_id + i,
                    out.final_obs ? out.final_obs + i * kGridObsDim : nullptr};
    grid_step(p, s, actions[i], uint32_t(i), step.get(), o);
    state[i] = s;
  });
}

void gridworld_policy(Backend b, ScriptedPolicy policy, const GridParams& p, const GridState* state, int32_t* actions,
                      int64_t n, uint32_t step) {
  DYN_NVTX_RANGE("gridworld_policy");
  const uint32_t seed = p.seed;
  if (policy == ScriptedPolicy::oracle)
    parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { actions[i] = grid_oracle_action(state[i]); });
  else
    parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { actions[i] = grid_random_action(seed, uint32_t(i), step); });
}

}  // namespace dyn
