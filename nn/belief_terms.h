// The belief model's per-trajectory loss terms (SPEC §3, paper eq. 4–7), DYN_HD: the KL chain of the
// session-ELBO (N(0, I) at t = 0, the learned prior p_θ(m'|m) at a session start, the previous posterior
// otherwise), the session-consistency hinge, and the termination BCE, each with its gradient. One call handles
// one trajectory sequentially over its latents, so a batch is one parallel_for over trajectories.
//
// Layout: latent t = 0..T of trajectory b is row t·B + b. Each posterior row q holds [μ (d), log σ² (d),
// termination logit (1)]; each prior row p holds p_θ's [μ', log σ²'] computed from that row's posterior, so the
// prior of a session starting at latent t is row t − 1's (the previous session's final posterior).
// Latent t ≥ 1 has consumed transition t − 1 and belongs to its session: sess(t) = sid[t − 1], sess(0) = sid[0].
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/hd.h"
#include "nn/distributions.h"

namespace dyn {

template <class T>
struct BeliefTermWeights {
  T kl = T(0.01);            // on Σ_t KL, summed over trajectories (VariBAD's reduction)
  T consistency = 0;         // β / (number of valid (t, t+1) pairs in the batch); 0: off
  T termination = 0;         // weight / (number of BCE terms in the batch); 0: off
  bool session_kl = true;    // session starts get their own prior; false: q_{t−1} everywhere (VariBAD)
  bool conditioning = true;  // that prior is p_θ(·|previous final posterior); false: N(0, I)
};

// The session of latent t of trajectory b; sid [T, B].
DYN_HD int32_t latent_session(const int32_t* sid, int b, int B, int t) {
  return sid[int64_t(t == 0 ? 0 : t - 1) * B + b];
}

// log(1 + e^x), stable.
template <class T>
DYN_HD T softplus(T x) {
  using std::exp;
  using std::log;
  return x > T(0) ? x + log(T(1) + exp(-x)) : log(T(1) + exp(x));
}

// Adds the weighted KL, consistency and BCE terms of trajectory b (steps = T transitions, T + 1 latents) and
// their gradients: dq [T+1, B, 2d+1], dprior [T+1, B, 2d]. sums[0..2] (this trajectory's row of a [B, 3]
// buffer) receive the unweighted Σ KL, Σ hinge and Σ BCE. send [T, B] is the ground-truth session end of each
// transition: the BCE target of latent t ≥ 1 is send[t − 1]. elbo [T+1, B] marks the latents whose KL term counts
// (the ELBO indices of a subsampled loss; nullptr: all).
template <class T>
DYN_HD void belief_terms_row(int b, int B, int steps, int d, const T* q, const T* prior, const int32_t* sid,
                             const uint8_t* send, const uint8_t* elbo, const BeliefTermWeights<T>& w, T* dq, T* dprior,
                             T* sums) {
  const int qw = 2 * d + 1, pw = 2 * d;
  auto Q = [&](int t) { return q + (int64_t(t) * B + b) * qw; };
  auto DQ = [&](int t) { return dq + (int64_t(t) * B + b) * qw; };
  T kl_sum = 0, hinge_sum = 0, bce_sum = 0;
  // KL chain (eq. 5's regulariser)
  for (int t = 0; t <= steps; ++t) {
    if (elbo && !elbo[int64_t(t) * B + b]) continue;
    const T* mu = Q(t);
    const T* lv = mu + d;
    T* dmu = DQ(t);
    T* dlv = dmu + d;
    const bool start = t > 0 && w.session_kl && latent_session(sid, b, B, t) != latent_session(sid, b, B, t - 1);
    if (t == 0 || (start && !w.conditioning)) {
      kl_sum += gaussian_kl_std_normal(mu, lv, d);
      gaussian_kl_std_normal_grad(mu, lv, d, w.kl, dmu, dlv);
    } else {
      // the learned prior from the previous session's final posterior, or the previous posterior itself
      const T* p = start ? prior + (int64_t(t - 1) * B + b) * pw : Q(t - 1);
      T* dp = start ? dprior + (int64_t(t - 1) * B + b) * pw : DQ(t - 1);
      kl_sum += gaussian_kl(mu, lv, p, p + d, d);
      gaussian_kl_grad(mu, lv, p, p + d, d, w.kl, dmu, dlv, dp, dp + d);
    }
  }
  // consistency (eq. 4): max(KL(q_{t+1} ‖ q_end) − KL(q_t ‖ q_end), 0) for t, t+1 in one session, where q_end
  // is that session's final posterior (not detached); sessions are contiguous, so walk back from each end
  if (w.consistency > T(0)) {
    int end = steps;
    for (int t = steps - 1; t >= 0; --t) {
      if (latent_session(sid, b, B, t) != latent_session(sid, b, B, t + 1)) {
        end = t;  // t closes the previous session; no pair across the boundary
        continue;
      }
      const T *qe = Q(end), *q0 = Q(t), *q1 = Q(t + 1);
      const T diff = gaussian_kl(q1, q1 + d, qe, qe + d, d) - gaussian_kl(q0, q0 + d, qe, qe + d, d);
      if (diff > T(0)) {  // the hinge's corner (diff = 0) takes the zero branch, as max(·, 0)
        hinge_sum += diff;
        T *de = DQ(end), *d0 = DQ(t), *d1 = DQ(t + 1);
        gaussian_kl_grad(q1, q1 + d, qe, qe + d, d, w.consistency, d1, d1 + d, de, de + d);
        gaussian_kl_grad(q0, q0 + d, qe, qe + d, d, -w.consistency, d0, d0 + d, de, de + d);
      }
    }
  }
  // termination BCE with logits: latent t ≥ 1 predicts whether transition t − 1 ended its session
  if (w.termination > T(0)) {
    for (int t = 1; t <= steps; ++t) {
      using std::exp;
      const T x = Q(t)[2 * d], y = send[int64_t(t - 1) * B + b] ? T(1) : T(0);
      bce_sum += softplus(x) - y * x;
      DQ(t)[2 * d] += w.termination * (T(1) / (T(1) + exp(-x)) - y);
    }
  }
  sums[0] = kl_sum;
  sums[1] = hinge_sum;
  sums[2] = bce_sum;
}

}  // namespace dyn
