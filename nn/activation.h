// Elementwise activations and their derivatives, written in terms of the activation's output y.
#pragma once

#include <cmath>

#include "kernels/hd.h"

namespace dyn {

enum class Activation { none, relu, tanh };

template <class T>
DYN_HD T activate(Activation a, T x) {
  if (a == Activation::relu) return x > T(0) ? x : T(0);
  using std::tanh;
  if (a == Activation::tanh) return tanh(x);
  return x;
}

// d activation / d x at output y, times the upstream gradient g.
template <class T>
DYN_HD T activate_backward(Activation a, T y, T g) {
  if (a == Activation::relu) return y > T(0) ? g : T(0);
  if (a == Activation::tanh) return g * (T(1) - y * y);
  return g;
}

template <class T>
DYN_HD T sigmoid(T x) {
  using std::exp;
  return T(1) / (T(1) + exp(-x));
}

}  // namespace dyn
