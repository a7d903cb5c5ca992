// ContraBAR's CPC classifier on one (z, h) pair, decomposed so that no pair row is ever materialised (SPEC §3,
// prior-art §3): f_k(z, h) = w2 · ELU(W1 · LN([z, h]) + b1) + b2, LN with gain γ and bias β over D = E + H values.
// With u = [z, h], μ = Σu / D, var = Σu² / D − μ², r = 1/√(var + ε):
//   W1 · LN(u) + b1 = r · (P_z + P_h − μ c) + d,   P_z = W1[:, :E](γ_z ⊙ z), P_h = W1[:, E:](γ_h ⊙ h),
//   c = W1 γ, d = W1 β + b1,
// so the per-row parts P_z, P_h (one GEMM each over the rows) and the row sums Σu, Σu² of z and h give every pair's
// first layer in O(D1) instead of O(D · D1). One source of math for the forward and both backward passes.
#pragma once

#include <cmath>

#include "kernels/hd.h"
#include "nn/activation.h"
#include "nn/layer_norm.h"

namespace dyn {

template <class T>
struct CpcPairMath {
  int D, D1;         // pair width E + H, classifier hidden width
  const T *pz, *ph;  // [·, D1] per-row first-layer parts of z rows and h rows
  const T *sz, *sh;  // [·, 2] per-row Σ and Σ² of the z and h rows
  const T *c, *d;    // [D1] W1 γ and W1 β + b1
  const T *w2, *b2;  // [D1], [1]

  // The pair's statistics μ and r.
  DYN_HD void stats(int64_t zr, int64_t hr, T& mu, T& r) const {
    using std::sqrt;
    mu = (sz[2 * zr] + sh[2 * hr]) / T(D);
    const T var = (sz[2 * zr + 1] + sh[2 * hr + 1]) / T(D) - mu * mu;
    r = T(1) / sqrt((var > T(0) ? var : T(0)) + T(kLayerNormEps));
  }
  // The first layer's pre-activation at hidden unit m.
  DYN_HD T pre(int64_t zr, int64_t hr, int m, T mu, T r) const {
    return r * (pz[zr * D1 + m] + ph[hr * D1 + m] - mu * c[m]) + d[m];
  }
  // The pair's logit, with its hidden activations a_m = ELU(pre_m) into act [D1] and its μ, r.
  DYN_HD T forward(int64_t zr, int64_t hr, T* act, T& mu, T& r) const {
    stats(zr, hr, mu, r);
    T s = b2[0];
    for (int m = 0; m < D1; ++m) {
      act[m] = activate(Activation::elu, pre(zr, hr, m, mu, r));
      s += w2[m] * act[m];
    }
    return s;
  }
  // Backward of g · logit from the forward's activations: act [D1] holds a_m on entry and r · d/d pre_m on exit (the
  // pair's contribution to d P_z and d P_h). visit(m, a_m, dpre_m) lets the caller accumulate dw2 += g a_m,
  // dd += dpre_m, dc += −r μ dpre_m. ds1/ds2 return the gradient with respect to the pair's Σu and Σu² (shared by
  // its z and h rows). No transcendental: ELU' comes from the stored output.
  template <class Visit>
  DYN_HD void backward(int64_t zr, int64_t hr, T g, T mu, T r, T* act, Visit&& visit, T& ds1, T& ds2) const {
    T dr = T(0), dmu = T(0);
    for (int m = 0; m < D1; ++m) {
      const T a = act[m];
      const T dpre = activate_backward(Activation::elu, a, g * w2[m]);
      visit(m, a, dpre);
      dr += dpre * (pz[zr * D1 + m] + ph[hr * D1 + m] - mu * c[m]);
      dmu -= dpre * r * c[m];
      act[m] = r * dpre;
    }
    const T dvar = dr * T(-0.5) * r * r * r;     // r = (var + ε)^(−½)
    const T dmu_total = dmu - T(2) * mu * dvar;  // var = Σu²/D − μ²
    ds1 = dmu_total / T(D);
    ds2 = dvar / T(D);
  }
};

}  // namespace dyn
