// gridworld (SPEC §2, paper D.1): a 5×5 grid with two goals, one of which rewards; which one is the latent
// and moves by the matrix [[stay, 1-stay], [1-stay, stay]] at each new session. The per-env math is DYN_HD, as
// the stages of env_step (sim/env.h); N envs on a backend are a GridBatchEnv (declared at the bottom).
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/philox.h"
#include "kernels/step_ref.h"
#include "sim/env.h"
#include "sim/session.h"

namespace dyn {

constexpr int kGridSize = 5;
constexpr int kGridObsDim = 6;      // agent (x, y), goal 0 (x, y), goal 1 (x, y), each / 4
constexpr int kGridActions = 5;     // stay, up, right, down, left
constexpr int kGridGoalCells = 21;  // cells outside the 2×2 start block
enum GridAction : int { kStay = 0, kUp = 1, kRight = 2, kDown = 3, kLeft = 4 };

struct GridParams {
  SessionParams session;        // H = 60, K = 4, poisson, reset_on_switch = true by default
  float goal_stay_prob = 0.2f;  // P(rewarding goal unchanged at a new session)
  float goal_reward = 1.0f;
  float step_reward = -0.1f;
  uint32_t seed = 0;
};

// Per-env state: 16 bytes.
struct GridState {
  uint8_t ax, ay;        // agent cell
  uint8_t gx[2], gy[2];  // the two goals
  uint8_t goal;          // latent m: index of the rewarding goal
  uint8_t pad;
  SessionState ss;
};
static_assert(sizeof(GridState) == 16, "GridState is meant to be 16 bytes");

// k-th cell (0 <= k < 21) outside the 2×2 start block, row by row from y = 2, then the right part of rows 0–1.
DYN_HD void grid_goal_cell(int k, uint8_t& x, uint8_t& y) {
  if (k < 15) {
    x = uint8_t(k % kGridSize);
    y = uint8_t(2 + k / kGridSize);
  } else {
    x = uint8_t(2 + (k - 15) % 3);
    y = uint8_t((k - 15) / 3);
  }
}

DYN_HD void grid_observe(const GridState& s, float* obs) {
  constexpr float kScale = 1.0f / float(kGridSize - 1);
  obs[0] = s.ax * kScale;
  obs[1] = s.ay * kScale;
  obs[2] = s.gx[0] * kScale;
  obs[3] = s.gy[0] * kScale;
  obs[4] = s.gx[1] * kScale;
  obs[5] = s.gy[1] * kScale;
}

// New episode whose first step has global index `episode_step`: agent at (0, 0), two distinct goals drawn
// uniformly from the 21 cells outside the start block, the rewarding one uniform.
DYN_HD void grid_reset(const GridParams& p, GridState& s, EnvKey key, uint32_t episode_step) {
  Philox rng(key.seed, kStreamEpisodeReset, key.env, episode_step);
  const int g0 = int(rng.uniform_int(kGridGoalCells));
  int g1 = int(rng.uniform_int(kGridGoalCells - 1));
  g1 += g1 >= g0;  // distinct from g0
  grid_goal_cell(g0, s.gx[0], s.gy[0]);
  grid_goal_cell(g1, s.gx[1], s.gy[1]);
  s.goal = uint8_t(rng.uniform_int(2));
  s.ax = s.ay = 0;
  s.pad = 0;
  session_begin_episode(p.session, s.ss, key.seed, key.env, episode_step);
}

// apply_action: move one cell, clipped at the walls.
DYN_HD void grid_apply_action(GridState& s, int a) {
  const int dx = a == kRight ? 1 : a == kLeft ? -1 : 0;
  const int dy = a == kUp ? 1 : a == kDown ? -1 : 0;
  const int x = int(s.ax) + dx, y = int(s.ay) + dy;
  s.ax = uint8_t(x < 0 ? 0 : x >= kGridSize ? kGridSize - 1 : x);
  s.ay = uint8_t(y < 0 ? 0 : y >= kGridSize ? kGridSize - 1 : y);
}

// reward after the move: +1 on the rewarding goal, -0.1 elsewhere.
DYN_HD float grid_reward(const GridParams& p, const GridState& s) {
  return (s.ax == s.gx[s.goal] && s.ay == s.gy[s.goal]) ? p.goal_reward : p.step_reward;
}

// The latent of the current session, as the rewarding goal's cell (x, y) / 4: what an oracle policy sees.
DYN_HD void grid_latent(const GridState& s, float* out) {
  constexpr float kScale = 1.0f / float(kGridSize - 1);
  out[0] = s.gx[s.goal] * kScale;
  out[1] = s.gy[s.goal] * kScale;
}

// The gridworld's stages for env_step (sim/env.h): apply_action → reward; at a session end the latent moves by the
// transition matrix (the goals stay) and, with reset_on_switch, the agent returns to the start.
struct GridEnv {
  using State = GridState;
  GridParams p;
  DYN_HD const SessionParams& session() const { return p.session; }
  DYN_HD float act(GridState& s, int32_t a, const float*) const {  // out-of-range actions act as stay
    grid_apply_action(s, a);
    return grid_reward(p, s);
  }
  DYN_HD void reset(GridState& s, EnvKey key, uint32_t episode_step) const { grid_reset(p, s, key, episode_step); }
  DYN_HD void switch_session(GridState& s, EnvKey key, uint32_t step) const {
    const float u = Philox(key.seed, kStreamLatent, key.env, step).uniform();
    s.goal = uint8_t(two_state_transition(s.goal, p.goal_stay_prob, u));
  }
  DYN_HD void restart_session(GridState& s, Philox&) const { s.ax = s.ay = 0; }  // the goals stay
  DYN_HD void observe(const GridState& s, float* obs) const { grid_observe(s, obs); }
  DYN_HD void latent(const GridState& s, float* out) const { grid_latent(s, out); }
};

// Oracle: knows the latent and walks a shortest path (x first, then y) to the rewarding goal, then stays.
DYN_HD int grid_oracle_action(const GridState& s) {
  const int tx = s.gx[s.goal], ty = s.gy[s.goal];
  if (s.ax < tx) return kRight;
  if (s.ax > tx) return kLeft;
  if (s.ay < ty) return kUp;
  if (s.ay > ty) return kDown;
  return kStay;
}

DYN_HD int grid_random_action(EnvKey key, uint32_t step) {
  return int(Philox(key.seed, kStreamPolicy, key.env, step).uniform_int(kGridActions));
}

// ---- N gridworlds on a backend (sim/gridworld_batch.cu) ----

constexpr int kGridLatentDim = 2;

EnvSpec gridworld_spec(const GridParams& p);

// GridParams from an env config's session, seed and options (goal_stay_prob).
GridParams grid_params(const EnvConfig& cfg);

class GridBatchEnv : public BatchEnv {
 public:
  GridBatchEnv(Backend b, const GridParams& p, int64_t n);
  const GridParams& params() const { return p_; }
  void reset(float* obs, float* latent) override;
  void step(const ActionBatch& actions, const StepBatch& out, StepRef step) override;
  void scripted(bool oracle, const ActionBuffers& out, uint32_t step) override;
  void visit_state(StateVisitor& v, int run) override { v.bytes("state", state_, run, runs_); }
  const GridState* states() const { return state_.data(); }  // [N] (tests, probes)

 private:
  GridParams p_;
  Buffer<GridState> state_;  // [N]
};

}  // namespace dyn
