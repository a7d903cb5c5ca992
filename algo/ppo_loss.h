// PPO's per-sample loss terms (Schulman et al. 2017) with their derivatives: the clipped surrogate, the clipped
// value loss (as OpenAI baselines / VariBAD) and the entropy bonus. The batch loss is
//   mean(policy) + vf_coef · mean(value) − ent_coef · mean(entropy).
#pragma once

#include <cmath>

#include "kernels/hd.h"

namespace dyn {

template <class T>
struct PpoSample {
  T policy;      // −min(r A, clip(r, 1 − ε, 1 + ε) A)
  T value;       // ½ max((v − R)², (v_clip − R)²)
  T d_logp;      // d policy / d log π(a|s)
  T d_value;     // d value / d v
  T ratio;       // r = π / π_old
  bool clipped;  // the surrogate's gradient is zero here
};

template <class T>
DYN_HD PpoSample<T> ppo_sample(T logp, T old_logp, T adv, T v, T old_v, T ret, T clip) {
  using std::exp;
  PpoSample<T> s;
  s.ratio = exp(logp - old_logp);
  const T lo = T(1) - clip, hi = T(1) + clip;
  const T r_clip = s.ratio < lo ? lo : s.ratio > hi ? hi : s.ratio;
  const T s1 = s.ratio * adv, s2 = r_clip * adv;
  s.policy = -(s1 < s2 ? s1 : s2);
  // min picks s2 only when it is strictly smaller, and s2 depends on logp only inside the clip range
  s.clipped = s2 < s1 && r_clip != s.ratio;
  s.d_logp = s.clipped ? T(0) : -adv * s.ratio;
  const T dv = v - old_v;
  const T dv_clip = dv < -clip ? -clip : dv > clip ? clip : dv;
  const T v_clip = old_v + dv_clip;
  const T l1 = (v - ret) * (v - ret), l2 = (v_clip - ret) * (v_clip - ret);
  s.value = T(0.5) * (l1 > l2 ? l1 : l2);
  s.d_value = l1 >= l2 ? (v - ret) : (dv_clip == dv ? (v_clip - ret) : T(0));
  return s;
}

}  // namespace dyn
