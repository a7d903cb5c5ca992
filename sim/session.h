// The DLCMDP session process (SPEC §1), shared by every environment: session lengths (poisson | bernoulli |
// fixed), the step-by-step session bookkeeping, ground-truth session_id / session_end, and latent transitions.
//
// Randomness is counter-based: the lengths of an episode are a function of (seed, env, first global step of
// the episode, attempt, session index), so a session's length is regenerated when it starts instead of
// stored — the per-env state stays 8 bytes whatever K is.
#pragma once

#include <cstdint>

#include "kernels/hd.h"
#include "kernels/philox.h"

namespace dyn {

enum class SessionModel : uint8_t { poisson = 0, bernoulli = 1, fixed = 2 };

struct SessionParams {
  int horizon = 60;  // H, steps per episode
  int sessions = 4;  // K, sessions per episode (poisson, fixed)
  SessionModel model = SessionModel::poisson;
  float switch_prob = 0.0f;  // p, per-step switch probability (bernoulli)
  bool reset_on_switch = true;
};

// Per-env session bookkeeping (8 bytes).
struct SessionState {
  uint16_t t;              // step within the episode, 0..H-1
  uint16_t session;        // index i of the current session
  uint16_t session_end_t;  // first step after the current session (poisson, fixed)
  uint16_t attempt;        // accepted rejection attempt of this episode's Poisson lengths
};

// After this many rejected draws (possible only when H/K is small, e.g. K = H) the episode uses fixed lengths.
constexpr int kMaxSessionAttempts = 64;
constexpr uint16_t kFixedFallback = 0xFFFF;

// Length of session i under the fixed model: floor((i+1)H/K) - floor(iH/K), so lengths differ by at most one.
DYN_HD int fixed_session_length(int horizon, int sessions, int i) {
  return int((int64_t(i + 1) * horizon) / sessions - (int64_t(i) * horizon) / sessions);
}

// The i-th Poisson length (i < K-1) of rejection attempt `attempt`: each has its own counter, so it can be
// regenerated in O(1) at the session's start.
DYN_HD int poisson_session_draw(const SessionParams& p, uint32_t seed, uint32_t env, uint32_t episode_step, int attempt,
                                int i) {
  Philox rng(seed, kStreamSessionLength, env, episode_step, (uint32_t(attempt) << 16) | uint32_t(i));
  return rng.poisson(float(p.horizon) / float(p.sessions));
}

// SPEC §1: draw l_0..l_{K-2} ~ Poisson(H/K); if any is 0 or their sum is >= H, draw all again. Returns the
// accepted attempt, or kFixedFallback when kMaxSessionAttempts attempts were all rejected.
DYN_HD uint16_t accept_poisson_lengths(const SessionParams& p, uint32_t seed, uint32_t env, uint32_t episode_step) {
  for (int a = 0; a < kMaxSessionAttempts; ++a) {
    int sum = 0;
    bool ok = true;
    for (int i = 0; i < p.sessions - 1 && ok; ++i) {
      const int l = poisson_session_draw(p, seed, env, episode_step, a, i);
      sum += l;
      ok = l > 0 && sum < p.horizon;
    }
    if (ok) return uint16_t(a);
  }
  return kFixedFallback;
}

// Length of session i of the current episode (poisson and fixed models). The last session gets the remainder.
DYN_HD int session_length(const SessionParams& p, const SessionState& s, uint32_t seed, uint32_t env,
                          uint32_t episode_step, int i) {
  if (p.model == SessionModel::fixed || s.attempt == kFixedFallback)
    return fixed_session_length(p.horizon, p.sessions, i);
  if (i < p.sessions - 1) return poisson_session_draw(p, seed, env, episode_step, s.attempt, i);
  return p.horizon - s.t;  // called at the start of the last session: the remainder
}

// Starts an episode whose first step has global index `episode_step`.
DYN_HD void session_begin_episode(const SessionParams& p, SessionState& s, uint32_t seed, uint32_t env,
                                  uint32_t episode_step) {
  s.t = 0;
  s.session = 0;
  s.attempt = p.model == SessionModel::poisson ? accept_poisson_lengths(p, seed, env, episode_step) : 0;
  s.session_end_t = p.model == SessionModel::bernoulli ? uint16_t(p.horizon)
                                                       : uint16_t(session_length(p, s, seed, env, episode_step, 0));
}

// What one step did to the session process.
struct SessionTick {
  int session_id;    // ground-truth session index of this step
  bool session_end;  // d_t: this step is the last of its session (always true on the episode's last step)
  bool truncated;    // time limit H reached: the episode ends here (not a termination)
};

// Advances the session process by one step taken at global step `step`. On a session end that is not the
// episode's end, s moves to the next session (the caller then applies the latent transition and, if
// reset_on_switch, resets the physical state). On truncation the caller starts a new episode.
DYN_HD SessionTick session_advance(const SessionParams& p, SessionState& s, uint32_t seed, uint32_t env,
                                   uint32_t step) {
  const uint32_t episode_step = step - s.t;
  SessionTick tick;
  tick.session_id = s.session;
  tick.truncated = s.t + 1 >= p.horizon;
  if (p.model == SessionModel::bernoulli)
    tick.session_end = tick.truncated || Philox(seed, kStreamSessionSwitch, env, step).bernoulli(p.switch_prob);
  else
    tick.session_end = tick.truncated || s.t + 1 >= s.session_end_t;
  s.t = uint16_t(s.t + 1);
  if (tick.session_end && !tick.truncated) {
    s.session = uint16_t(s.session + 1);
    if (p.model != SessionModel::bernoulli)
      s.session_end_t = uint16_t(s.t + session_length(p, s, seed, env, episode_step, s.session));
  }
  return tick;
}

// Latent transition for a two-valued latent with matrix [[stay, 1-stay], [1-stay, stay]] (gridworld's
// rewarding goal, halfcheetah_dir's direction). `u` is a uniform in (0, 1].
DYN_HD int two_state_transition(int m, float stay_prob, float u) { return u <= stay_prob ? m : 1 - m; }

}  // namespace dyn
