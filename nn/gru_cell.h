// GRU cell math for one hidden unit, PyTorch's gate equations (so weights are interchangeable):
//   r = σ(gi_r + gh_r)            gi = W_ih x + b_ih      [3H] in the order (r, z, n)
//   z = σ(gi_z + gh_z)            gh = W_hh h + b_hh      [3H]
//   n = tanh(gi_n + r ⊙ gh_n)
//   h' = (1 − z) ⊙ n + z ⊙ h
#pragma once


#include "kernels/hd.h"
#include "nn/activation.h"

namespace dyn {

template <class T>
struct GruUnit {
  T r, z, n, h;  // gates and the new hidden value
};

template <class T>
DYN_HD GruUnit<T> gru_cell_forward(T gi_r, T gi_z, T gi_n, T gh_r, T gh_z, T gh_n, T hprev) {
  GruUnit<T> u;
  u.r = sigmoid(gi_r + gh_r);
  u.z = sigmoid(gi_z + gh_z);
  u.n = tanh_exp(gi_n + u.r * gh_n);
  u.h = (T(1) - u.z) * u.n + u.z * hprev;
  return u;
}

template <class T>
struct GruUnitGrad {
  T gi_r, gi_z, gi_n;  // d loss / d gi (= d pre-activations of r, z and the input part of n)
  T gh_r, gh_z, gh_n;  // d loss / d gh
  T hprev;             // the direct part of d loss / d h_prev (through z ⊙ h)
};

// Backward of gru_cell_forward given dh = d loss / d h' and the stored gates and gh_n.
template <class T>
DYN_HD GruUnitGrad<T> gru_cell_backward(T dh, T r, T z, T n, T gh_n, T hprev) {
  GruUnitGrad<T> g;
  const T dn = dh * (T(1) - z);
  const T dz = dh * (hprev - n);
  const T dn_pre = dn * (T(1) - n * n);
  const T dr = dn_pre * gh_n;
  g.gi_r = dr * r * (T(1) - r);
  g.gi_z = dz * z * (T(1) - z);
  g.gi_n = dn_pre;
  g.gh_r = g.gi_r;
  g.gh_z = g.gi_z;
  g.gh_n = dn_pre * r;
  g.hprev = dh * z;
  return g;
}

}  // namespace dyn
