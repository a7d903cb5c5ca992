// N gridworlds (of one run or a seed batch's) on either backend: each call is one parallel_for over the DYN_HD env math
// (env_step of sim/env.h).
#include <stdexcept>
#include <string>

#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/env_rows.h"
#include "sim/gridworld.h"

namespace dyn {

namespace {

struct OracleGrids {
  const GridState* state;
  int32_t* actions;
  DYN_HD void operator()(int64_t i) const { actions[i] = grid_oracle_action(state[i]); }
};

struct RandomGrids {
  uint32_t step;
  BatchRows rows;
  int32_t* actions;
  DYN_HD void operator()(int64_t i) const { actions[i] = grid_random_action(rows.key(i), step); }
};

}  // namespace

EnvSpec gridworld_spec(const GridParams& p) {
  EnvSpec s;
  s.name = "gridworld";
  s.obs_dim = kGridObsDim;
  s.action_kind = ActionKind::discrete;
  s.action_dim = kGridActions;
  s.latent_dim = kGridLatentDim;
  s.horizon = p.session.horizon;
  s.has_oracle = true;
  return s;
}

GridParams grid_params(const EnvConfig& cfg) {
  GridParams p;
  p.session = cfg.session;
  p.seed = cfg.seed;
  p.goal_stay_prob = float(cfg.option("goal_stay_prob", double(p.goal_stay_prob)));
  return p;
}

GridBatchEnv::GridBatchEnv(Backend b, const GridParams& p, int64_t n)
    : BatchEnv(b, gridworld_spec(p), n, p.seed), p_(p), state_(b, size_t(n)) {}

void GridBatchEnv::reset(float* obs, float* latent) {
  DYN_NVTX_RANGE("gridworld_reset");
  parallel_for(b_, n_,
               ResetRows<GridEnv>{GridEnv{p_}, state_.data(), obs, latent, kGridObsDim, kGridLatentDim, rows()});
}

void GridBatchEnv::step(const ActionBatch& actions, const StepBatch& out, StepRef step) {
  DYN_NVTX_RANGE("gridworld_step");
  if (!actions.index) throw std::invalid_argument("gridworld: actions are indices (ActionBatch::index)");
  parallel_for(
      b_, n_,
      StepRows<GridEnv>{
          GridEnv{p_}, state_.data(), {actions.index, nullptr}, out, kGridObsDim, 0, kGridLatentDim, step, rows()});
}

void GridBatchEnv::scripted(bool oracle, const ActionBuffers& out, uint32_t step) {
  DYN_NVTX_RANGE("gridworld_policy");
  if (oracle)
    parallel_for(b_, n_, OracleGrids{state_.data(), out.index});
  else
    parallel_for(b_, n_, RandomGrids{step, rows(), out.index});
}

}  // namespace dyn
