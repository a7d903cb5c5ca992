// Elementwise activations and their derivatives, written in terms of the activation's output y.
#pragma once

#include <cmath>
#include <type_traits>

#include "kernels/hd.h"

namespace dyn {

enum class Activation { none, relu, tanh, elu };  // elu: x for x > 0, e^x − 1 otherwise (α = 1, ContraBAR)

// tanh through one exp, for the GRU's candidate gate: sign(x)·(1 − e)/(1 + e) with e = exp(−2|x|), and its
// Taylor series below |x| = 1/16, where 1 − e would cancel. glibc's tanhf goes through expm1f, which costs several
// expf; worst error vs std::tanh: a few float ulps, ~1e-14 relative in double (tests/test_mlp.cpp,
// Activation.TanhExpMatchesStdTanh). activate() keeps std::tanh: inlining this branchy body there stopped GCC
// from vectorising the ReLU path of the per-element functors (the reward decoder's pair layer went from 3% to
// 24% of a VariBAD iteration).
template <class T>
DYN_HD T tanh_exp(T x) {
  using std::exp;
  const T ax = x < T(0) ? -x : x;
  if (ax < T(0.0625)) {
    const T x2 = x * x;  // x − x³/3 + 2x⁵/15 − 17x⁷/315 + 62x⁹/2835; the next term is < 1e-14 relative here
    return x * (T(1) + x2 * (T(-1) / T(3) + x2 * (T(2) / T(15) + x2 * (T(-17) / T(315) + x2 * (T(62) / T(2835))))));
  }
  const T e = exp(T(-2) * ax);
  const T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}

template <Activation A, class T>
DYN_HD T activate_as(T x);
template <Activation A, class T>
DYN_HD T activate_backward_as(T y, T g);

// ELU's negative branch is exp(x) − 1, not expm1: glibc's expm1f was 42% of a CPC step; absolute error ~1e-7 in float.
template <class T>
DYN_HD T activate(Activation a, T x) {
  if (a == Activation::relu) return activate_as<Activation::relu>(x);
  if (a == Activation::tanh) return activate_as<Activation::tanh>(x);
  if (a == Activation::elu) return activate_as<Activation::elu>(x);
  return x;
}

// d activation / d x at output y, times the upstream gradient g.
template <class T>
DYN_HD T activate_backward(Activation a, T y, T g) {
  if (a == Activation::relu) return activate_backward_as<Activation::relu>(y, g);
  if (a == Activation::tanh) return activate_backward_as<Activation::tanh>(y, g);
  if (a == Activation::elu) return activate_backward_as<Activation::elu>(y, g);  // d(e^x − 1)/dx = e^x = y + 1
  return g;
}

// The same with the activation fixed at compile time: hot per-element loops instantiate one branch-free body per
// activation (with_activation picks it once per call), because a runtime switch inside the element function kept GCC
// from vectorising them — adding ELU's branch made DynaMITE's gridworld iteration 5–6% slower.
template <Activation A, class T>
DYN_HD T activate_as(T x) {
  if constexpr (A == Activation::relu) return x > T(0) ? x : T(0);
  using std::exp;
  using std::tanh;
  if constexpr (A == Activation::tanh) return tanh(x);
  if constexpr (A == Activation::elu) return x > T(0) ? x : exp(x) - T(1);
  return x;
}
template <Activation A, class T>
DYN_HD T activate_backward_as(T y, T g) {
  if constexpr (A == Activation::relu) return y > T(0) ? g : T(0);
  if constexpr (A == Activation::tanh) return g * (T(1) - y * y);
  if constexpr (A == Activation::elu) return y > T(0) ? g : g * (y + T(1));
  return g;
}

// f(std::integral_constant<Activation, a>{}) for the runtime a (host side, once per batched call).
template <class F>
void with_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::relu:
      f(std::integral_constant<Activation, Activation::relu>{});
      break;
    case Activation::tanh:
      f(std::integral_constant<Activation, Activation::tanh>{});
      break;
    case Activation::elu:
      f(std::integral_constant<Activation, Activation::elu>{});
      break;
    default:
      f(std::integral_constant<Activation, Activation::none>{});
      break;
  }
}

template <class T>
DYN_HD T sigmoid(T x) {
  using std::exp;
  return T(1) / (T(1) + exp(-x));
}

}  // namespace dyn
