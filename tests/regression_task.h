// A tiny regression task for optimiser tests: an MLP 2 → 32 → 32 → 1 (tanh) fits y = sin(2x₀) · cos(x₁) on
// 256 fixed points with Adam, on a given backend.
#pragma once

#include <cmath>
#include <vector>

#include "kernels/philox.h"
#include "nn/adam.h"
#include "nn/mlp.h"

struct RegressionResult {
  double initial_loss, final_loss;
};

inline RegressionResult train_regression(dyn::Backend b, int steps) {
  using namespace dyn;
  const int n = 256;
  ParamLayout layout;
  const Mlp mlp({{2, 32, 32, 1}, Activation::tanh, Activation::none}, layout, "f", 1.0, 1.0);
  ParamBlob<float> params(b, layout, 1);
  std::vector<float> x(n * 2), y(n);
  Philox rng(5, 0, 0, 0);
  for (int i = 0; i < n; ++i) {
    x[2 * i] = 2.0f * rng.uniform() - 1.0f;
    x[2 * i + 1] = 2.0f * rng.uniform() - 1.0f;
    y[i] = std::sin(2.0f * x[2 * i]) * std::cos(x[2 * i + 1]);
  }
  Buffer<float> xb(b, x.size()), dy(b, n);
  xb.from_host(x);
  AdamConfig cfg;
  cfg.lr = 3e-3f;
  cfg.max_grad_norm = 1.0f;
  Adam<float> adam(b, layout.total(), cfg);
  MlpWorkspace<float> ws;
  RegressionResult res{0, 0};
  for (int s = 0; s <= steps; ++s) {
    mlp.forward(b, params.value.data(), xb.data(), n, ws);
    // mean squared error and its gradient, on the host (the task is tiny)
    const std::vector<float> pred = ws.act.back().to_host();
    std::vector<float> g(n);
    double loss = 0;
    for (int i = 0; i < n; ++i) {
      loss += double(pred[i] - y[i]) * (pred[i] - y[i]) / n;
      g[i] = 2.0f * (pred[i] - y[i]) / n;
    }
    if (s == 0) res.initial_loss = loss;
    res.final_loss = loss;
    if (s == steps) break;
    dy.from_host(g);
    mlp.backward(b, params.value.data(), params.grad.data(), xb.data(), dy.data(), static_cast<float*>(nullptr), ws,
                 false);
    adam.step(params.value.data(), params.grad.data());
  }
  return res;
}
