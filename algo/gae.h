// Generalised advantage estimation (Schulman et al. 2016) for one environment over a time-major rollout,
// truncation-aware: at a time limit the return bootstraps from V(final observation); at a termination from 0;
// the advantage never flows across an episode boundary.
#pragma once

#include <cstdint>

#include "kernels/hd.h"

namespace dyn {

// Arrays are [T, N] (values [T + 1, N]: values[T] is V of the observation after the last step); env is the column.
// final_values[t, env] is V(final observation) where truncated[t, env] (may be nullptr when nothing truncates).
template <class T>
DYN_HD void gae_row(int steps, int n, int env, const T* rewards, const T* values, const uint8_t* terminated,
                    const uint8_t* truncated, const T* final_values, T gamma, T lambda, T* adv, T* ret) {
  T next_adv = T(0);
  for (int t = steps - 1; t >= 0; --t) {
    const int64_t i = int64_t(t) * n + env;
    const bool term = terminated && terminated[i], trunc = truncated && truncated[i];
    const T next_v = term ? T(0) : trunc ? final_values[i] : values[i + n];
    const T delta = rewards[i] + gamma * next_v - values[i];                   // δ_t = r_t + γ V(s_{t+1}) − V(s_t)
    const T a = delta + ((term || trunc) ? T(0) : gamma * lambda * next_adv);  // A_t = δ_t + γλ A_{t+1}
    adv[i] = a;
    ret[i] = a + values[i];
    next_adv = a;
  }
}

}  // namespace dyn
