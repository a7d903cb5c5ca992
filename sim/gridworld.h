// gridworld (SPEC §2, paper D.1): a 5×5 grid with two goals, one of which rewards; which one is the latent
// and moves by the matrix [[stay, 1-stay], [1-stay, stay]] at each new session. The per-env math is DYN_HD;
// the batched calls over N environments (either backend) are declared at the bottom.
//
// One step reads like the recipe: apply_action → reward → session process → (switch: latent transition,
// reset_on_switch) → (truncation: new episode) → observe.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/hd.h"
#include "kernels/philox.h"
#include "kernels/step_ref.h"
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

// Where one env writes its step results; each pointer is the env's own row (or nullptr where optional).
struct GridOut {
  float* obs;            // [6]
  float* reward;         // [1]
  uint8_t* session_end;  // [1] d_t
  uint8_t* truncated;    // [1] time limit
  uint8_t* terminated;   // [1] always 0 for gridworld
  int32_t* session_id;   // [1]
  float* final_obs;      // [6] or nullptr: the observation the action led to, before any auto-reset (at a
                         // session switch with reset_on_switch, or the episode end) replaces it in obs
};

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
DYN_HD void grid_reset(const GridParams& p, GridState& s, uint32_t env, uint32_t episode_step) {
  Philox rng(p.seed, kStreamEpisodeReset, env, episode_step);
  const int g0 = int(rng.uniform_int(kGridGoalCells));
  int g1 = int(rng.uniform_int(kGridGoalCells - 1));
  g1 += g1 >= g0;  // distinct from g0
  grid_goal_cell(g0, s.gx[0], s.gy[0]);
  grid_goal_cell(g1, s.gx[1], s.gy[1]);
  s.goal = uint8_t(rng.uniform_int(2));
  s.ax = s.ay = 0;
  s.pad = 0;
  session_begin_episode(p.session, s.ss, p.seed, env, episode_step);
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

// One step of one env at global step `step` with action `a` (out-of-range actions act as stay).
DYN_HD void grid_step(const GridParams& p, GridState& s, int a, uint32_t env, uint32_t step, const GridOut& out) {
  grid_apply_action(s, a);
  const float r = grid_reward(p, s);
  const SessionTick tick = session_advance(p.session, s.ss, p.seed, env, step);
  if (out.final_obs) grid_observe(s, out.final_obs);  // where the action led, before any reset
  if (tick.truncated) {
    grid_reset(p, s, env, step + 1);
  } else if (tick.session_end) {
    // session switch: the latent moves by the transition matrix; the goals stay
    const float u = Philox(p.seed, kStreamLatent, env, step).uniform();
    s.goal = uint8_t(two_state_transition(s.goal, p.goal_stay_prob, u));
    if (p.session.reset_on_switch) s.ax = s.ay = 0;
  }
  grid_observe(s, out.obs);
  *out.reward = r;
  *out.session_end = tick.session_end;
  *out.truncated = tick.truncated;
  *out.terminated = 0;
  *out.session_id = tick.session_id;
}

// Oracle: knows the latent and walks a shortest path (x first, then y) to the rewarding goal, then stays.
DYN_HD int grid_oracle_action(const GridState& s) {
  const int tx = s.gx[s.goal], ty = s.gy[s.goal];
  if (s.ax < tx) return kRight;
  if (s.ax > tx) return kLeft;
  if (s.ay < ty) return kUp;
  if (s.ay > ty) return kDown;
  return kStay;
}

DYN_HD int grid_random_action(uint32_t seed, uint32_t env, uint32_t step) {
  return int(Philox(seed, kStreamPolicy, env, step).uniform_int(kGridActions));
}

// ---- batched over N environments, on either backend (sim/gridworld_batch.cu) ----

// Time-slice outputs of one batched step; each array is [N] or [N, 6], on the same backend as the state.
struct GridBatchOut {
  float* obs;            // [N, 6]
  float* reward;         // [N]
  uint8_t* session_end;  // [N]
  uint8_t* truncated;    // [N]
  uint8_t* terminated;   // [N]
  int32_t* session_id;   // [N]
  float* final_obs;      // [N, 6] or nullptr
};

enum class ScriptedPolicy { random, oracle };

// Resets all N envs (episode starting at global step `episode_step`) and writes their observations.
void gridworld_reset(Backend b, const GridParams& p, GridState* state, float* obs, int64_t n, uint32_t episode_step);
// Steps all N envs at global step `step` with actions [N].
void gridworld_step(Backend b, const GridParams& p, GridState* state, const int32_t* actions, const GridBatchOut& out,
                    int64_t n, StepRef step);
// Scripted actions [N] for global step `step`.
void gridworld_policy(Backend b, ScriptedPolicy policy, const GridParams& p, const GridState* state, int32_t* actions,
                      int64_t n, uint32_t step);

}  // namespace dyn
