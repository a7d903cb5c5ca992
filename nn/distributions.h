// Distributions for policies and beliefs, per row, DYN_HD: categorical over logits, diagonal Gaussian with a
// log-std (policies), and the KL between diagonal Gaussians in (mean, log-variance) form (beliefs, as VariBAD),
// each with its gradients.
#pragma once

#include <cmath>

#include "kernels/hd.h"
#include "kernels/philox.h"

namespace dyn {

constexpr double kLog2Pi = 1.8378770664093453;

// ---- categorical over logits z[A] ----

template <class T>
DYN_HD T log_sum_exp(const T* z, int a) {
  using std::exp;
  using std::log;
  T m = z[0];
  for (int i = 1; i < a; ++i) m = z[i] > m ? z[i] : m;
  T s = 0;
  for (int i = 0; i < a; ++i) s += exp(z[i] - m);
  return m + log(s);
}

template <class T>
DYN_HD T categorical_log_prob(const T* z, int a, int action) {
  return z[action] - log_sum_exp(z, a);
}

// d log p(action) / d z = onehot(action) − softmax(z)
template <class T>
DYN_HD void categorical_log_prob_grad(const T* z, int a, int action, T g, T* dz) {
  using std::exp;
  const T lse = log_sum_exp(z, a);
  for (int i = 0; i < a; ++i) dz[i] += g * (T(i == action) - exp(z[i] - lse));
}

// H = −Σ p log p
template <class T>
DYN_HD T categorical_entropy(const T* z, int a) {
  using std::exp;
  const T lse = log_sum_exp(z, a);
  T h = 0;
  for (int i = 0; i < a; ++i) h -= exp(z[i] - lse) * (z[i] - lse);
  return h;
}

// d H / d z_i = −p_i (log p_i + H)
template <class T>
DYN_HD void categorical_entropy_grad(const T* z, int a, T g, T* dz) {
  using std::exp;
  const T lse = log_sum_exp(z, a), h = categorical_entropy(z, a);
  for (int i = 0; i < a; ++i) {
    const T lp = z[i] - lse;
    dz[i] += g * (-exp(lp) * (lp + h));
  }
}

template <class T>
DYN_HD int categorical_mode(const T* z, int a) {
  int best = 0;
  for (int i = 1; i < a; ++i) best = z[i] > z[best] ? i : best;
  return best;
}

// Inversion of one uniform against the softmax CDF.
template <class T>
DYN_HD int categorical_sample(const T* z, int a, Philox& rng) {
  using std::exp;
  const T lse = log_sum_exp(z, a);
  const T u = T(rng.uniform());
  T cdf = 0;
  for (int i = 0; i < a - 1; ++i) {
    cdf += exp(z[i] - lse);
    if (u <= cdf) return i;
  }
  return a - 1;
}

// ---- diagonal Gaussian N(mu, exp(log_std)²) over d dimensions ----

template <class T>
DYN_HD T gaussian_log_prob(const T* mu, const T* log_std, const T* x, int d) {
  using std::exp;
  T lp = 0;
  for (int i = 0; i < d; ++i) {
    const T e = (x[i] - mu[i]) * exp(-log_std[i]);
    lp += T(-0.5) * e * e - log_std[i] - T(0.5 * kLog2Pi);
  }
  return lp;
}

// Adds g · d log p / d (mu, log_std, x); any output may be nullptr.
template <class T>
DYN_HD void gaussian_log_prob_grad(const T* mu, const T* log_std, const T* x, int d, T g, T* dmu, T* dlog_std, T* dx) {
  using std::exp;
  for (int i = 0; i < d; ++i) {
    const T inv_var = exp(T(-2) * log_std[i]);
    const T diff = x[i] - mu[i];
    if (dmu) dmu[i] += g * diff * inv_var;
    if (dlog_std) dlog_std[i] += g * (diff * diff * inv_var - T(1));
    if (dx) dx[i] -= g * diff * inv_var;
  }
}

// H = Σ (log σ + ½ log 2πe); d H / d log σ = 1
template <class T>
DYN_HD T gaussian_entropy(const T* log_std, int d) {
  T h = 0;
  for (int i = 0; i < d; ++i) h += log_std[i] + T(0.5 * (1.0 + kLog2Pi));
  return h;
}

// Reparameterised sample x = mu + σ ⊙ eps with eps ~ N(0, I) written to eps (kept for the backward pass).
template <class T>
DYN_HD void gaussian_rsample(const T* mu, const T* log_std, int d, Philox& rng, T* eps, T* x) {
  using std::exp;
  for (int i = 0; i < d; ++i) {
    eps[i] = T(rng.normal());
    x[i] = mu[i] + exp(log_std[i]) * eps[i];
  }
}

// Backward of gaussian_rsample: dmu += dx, dlog_std += dx ⊙ eps ⊙ σ.
template <class T>
DYN_HD void gaussian_rsample_grad(const T* log_std, const T* eps, const T* dx, int d, T* dmu, T* dlog_std) {
  using std::exp;
  for (int i = 0; i < d; ++i) {
    dmu[i] += dx[i];
    dlog_std[i] += dx[i] * eps[i] * exp(log_std[i]);
  }
}

// ---- KL between diagonal Gaussians in (mean, log-variance) form ----

// KL(q1 ‖ q2) = ½ Σ [ logvar2 − logvar1 + (var1 + (mu1 − mu2)²) / var2 − 1 ]
template <class T>
DYN_HD T gaussian_kl(const T* mu1, const T* logvar1, const T* mu2, const T* logvar2, int d) {
  using std::exp;
  T kl = 0;
  for (int i = 0; i < d; ++i) {
    const T diff = mu1[i] - mu2[i];
    kl += logvar2[i] - logvar1[i] + (exp(logvar1[i]) + diff * diff) * exp(-logvar2[i]) - T(1);
  }
  return T(0.5) * kl;
}

// Adds g · gradients of gaussian_kl to both sides; any output may be nullptr (e.g. a detached side).
template <class T>
DYN_HD void gaussian_kl_grad(const T* mu1, const T* logvar1, const T* mu2, const T* logvar2, int d, T g, T* dmu1,
                             T* dlogvar1, T* dmu2, T* dlogvar2) {
  using std::exp;
  for (int i = 0; i < d; ++i) {
    const T inv_var2 = exp(-logvar2[i]), var1 = exp(logvar1[i]), diff = mu1[i] - mu2[i];
    if (dmu1) dmu1[i] += g * diff * inv_var2;
    if (dmu2) dmu2[i] -= g * diff * inv_var2;
    if (dlogvar1) dlogvar1[i] += g * T(0.5) * (var1 * inv_var2 - T(1));
    if (dlogvar2) dlogvar2[i] += g * T(0.5) * (T(1) - (var1 + diff * diff) * inv_var2);
  }
}

// KL(q ‖ N(0, I)) = ½ Σ [ var + mu² − 1 − logvar ]
template <class T>
DYN_HD T gaussian_kl_std_normal(const T* mu, const T* logvar, int d) {
  using std::exp;
  T kl = 0;
  for (int i = 0; i < d; ++i) kl += exp(logvar[i]) + mu[i] * mu[i] - T(1) - logvar[i];
  return T(0.5) * kl;
}

template <class T>
DYN_HD void gaussian_kl_std_normal_grad(const T* mu, const T* logvar, int d, T g, T* dmu, T* dlogvar) {
  using std::exp;
  for (int i = 0; i < d; ++i) {
    if (dmu) dmu[i] += g * mu[i];
    if (dlogvar) dlogvar[i] += g * T(0.5) * (exp(logvar[i]) - T(1));
  }
}

}  // namespace dyn
