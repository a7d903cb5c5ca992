// Seed-batched ops (GEMM, MLP, GRU, LayerNorm, Adam) against the same ops called once per seed: each function runs S
// seeds' worth of an op both ways on one backend and returns the two results as flat vectors (batched, alone), for
// tests/test_seed_ops.cpp (CPU: bit for bit) and tests/test_seed_ops_gpu.cpp (CUDA: within rounding).
#pragma once

#include <utility>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/copy.h"
#include "kernels/gemm.h"
#include "nn/adam.h"
#include "nn/gru.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"
#include "tests/random_vectors.h"

template <class T>
using BatchedAndAlone = std::pair<std::vector<T>, std::vector<T>>;

struct GemmCase {
  bool trans_a, trans_b;
  int m, n, k;
  bool shared_b;  // stride_b = 0: every product multiplies the same B
};

// C_s = 0.5 op(A_s) op(B_s) + 0.25 C_s for S products, by gemm_strided_batched and by S gemm calls.
template <class T>
BatchedAndAlone<T> gemm_seeds(dyn::Backend b, const GemmCase& g, int seeds) {
  using namespace dyn;
  const int lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n, ldc = g.n;
  const int64_t sa = int64_t(g.m) * g.k, sb = g.shared_b ? 0 : int64_t(g.k) * g.n, sc = int64_t(g.m) * g.n;
  const Buffer<T> a = Buffer<T>::copy_of(b, randn<T>(size_t(sa) * seeds, 11));
  const Buffer<T> bm = Buffer<T>::copy_of(b, randn<T>(size_t(int64_t(g.k) * g.n) * (g.shared_b ? 1 : seeds), 12));
  const std::vector<T> c0 = randn<T>(size_t(sc) * seeds, 13);
  Buffer<T> batched = Buffer<T>::copy_of(b, c0), alone = Buffer<T>::copy_of(b, c0);
  gemm_strided_batched<T>(b, g.trans_a, g.trans_b, g.m, g.n, g.k, T(0.5), a.data(), lda, sa, bm.data(), ldb, sb,
                          T(0.25), batched.data(), ldc, sc, seeds);
  for (int s = 0; s < seeds; ++s)
    gemm<T>(b, g.trans_a, g.trans_b, g.m, g.n, g.k, T(0.5), a.data() + s * sa, lda, bm.data() + s * sb, ldb, T(0.25),
            alone.data() + s * sc, ldc);
  return {batched.to_host(), alone.to_host()};
}

// S copies of an MLP (each seed its own initial weights) forward and backward, gradients accumulated onto a
// non-zero start: forward_seeds / backward_seeds over the [S, P] blob against forward / backward per seed. Each
// result is the concatenation of the outputs, the parameter gradients and dx.
template <class T>
BatchedAndAlone<T> mlp_seeds(dyn::Backend b, const dyn::MlpShape& shape, int seeds, int batch) {
  using namespace dyn;
  ParamLayout layout;
  const Mlp mlp(shape, layout, "m");
  const size_t P = layout.total();
  const int in = shape.sizes.front(), out = shape.sizes.back();
  std::vector<T> params, one;
  for (int s = 0; s < seeds; ++s) {
    initialize_params(layout, uint32_t(100 + s), one);
    params.insert(params.end(), one.begin(), one.end());
  }
  const std::vector<T> jitter = randn<T>(params.size(), 24, 0.1);  // non-zero biases, different in every seed
  for (size_t i = 0; i < params.size(); ++i) params[i] += jitter[i];
  const Buffer<T> p = Buffer<T>::copy_of(b, params);
  const Buffer<T> x = Buffer<T>::copy_of(b, randn<T>(size_t(seeds) * batch * in, 21));
  const Buffer<T> dy = Buffer<T>::copy_of(b, randn<T>(size_t(seeds) * batch * out, 22));
  const std::vector<T> g0 = randn<T>(P * seeds, 23, 0.1);
  auto run = [&](bool batched) {
    Buffer<T> grads = Buffer<T>::copy_of(b, g0), dx(b, size_t(seeds) * batch * in), y(b, size_t(seeds) * batch * out);
    dx.zero();
    if (batched) {
      MlpWorkspace<T> ws;
      mlp.forward_seeds(b, p.data(), P, x.data(), seeds, batch, ws);
      copy_values(b, ws.act.back().data(), y.data(), int64_t(seeds) * batch * out);
      mlp.backward_seeds(b, p.data(), grads.data(), P, x.data(), dy.data(), dx.data(), seeds, ws, true);
    } else {
      for (int s = 0; s < seeds; ++s) {
        MlpWorkspace<T> ws;
        const T* xs = x.data() + size_t(s) * batch * in;
        mlp.forward(b, p.data() + s * P, xs, batch, ws);
        copy_values(b, ws.act.back().data(), y.data() + size_t(s) * batch * out, int64_t(batch) * out);
        mlp.backward(b, p.data() + s * P, grads.data() + s * P, xs, dy.data() + size_t(s) * batch * out,
                     dx.data() + size_t(s) * batch * in, ws, true);
      }
    }
    std::vector<T> all = y.to_host(), g = grads.to_host(), d = dx.to_host();
    all.insert(all.end(), g.begin(), g.end());
    all.insert(all.end(), d.begin(), d.end());
    return all;
  };
  return {run(true), run(false)};
}

// Three Adam steps of S seeds' blobs of n parameters: one Adam over [S, n] against S Adams. Seed s's gradients
// (0.01 · N(0, 1)) are scaled by 4^s, so with max_grad_norm 1 and n = 1000 the first seed is not clipped and the
// others are, each by its own
// norm. Each result is the parameters after the steps followed by each seed's last gradient norm.
template <class T>
BatchedAndAlone<T> adam_seeds(dyn::Backend b, int seeds, size_t n) {
  using namespace dyn;
  AdamConfig cfg;
  cfg.lr = 0.01f;
  cfg.max_grad_norm = 1.0f;
  const std::vector<T> p0 = randn<T>(n * seeds, 31);
  std::vector<std::vector<T>> grads;  // per step, [S, n]
  for (int step = 0; step < 3; ++step) {
    std::vector<T> g = randn<T>(n * seeds, uint32_t(32 + step), 0.01);
    for (int s = 0; s < seeds; ++s)
      for (size_t i = 0; i < n; ++i) g[s * n + i] *= T(1 << (2 * s));
    grads.push_back(g);
  }
  Buffer<T> batched = Buffer<T>::copy_of(b, p0), alone = Buffer<T>::copy_of(b, p0);
  Adam<T> together(b, n, cfg, seeds);
  std::vector<Adam<T>> each;
  each.reserve(size_t(seeds));
  for (int s = 0; s < seeds; ++s) each.emplace_back(b, n, cfg);
  for (const std::vector<T>& g : grads) {
    Buffer<T> g_batched = Buffer<T>::copy_of(b, g), g_alone = Buffer<T>::copy_of(b, g);
    together.step(batched.data(), g_batched.data());
    for (int s = 0; s < seeds; ++s) each[s].step(alone.data() + s * n, g_alone.data() + s * n);
  }
  std::vector<T> out_batched = batched.to_host(), out_alone = alone.to_host();
  for (int s = 0; s < seeds; ++s) {
    out_batched.push_back(T(together.last_grad_norm(s)));
    out_alone.push_back(T(each[s].last_grad_norm()));
  }
  return {out_batched, out_alone};
}

// S copies of a GRU over seed-major sequences [S, T, N, ·] with episode resets, an injection, h0 and truncated
// backpropagation: forward_seeds / backward_seeds against forward / backward on each seed's block. Each result is
// the concatenation of h, the parameter gradients (accumulated onto a non-zero start), dx, dinject and dh0.
template <class T>
BatchedAndAlone<T> gru_seeds(dyn::Backend b, int input, int hidden, int seeds, int steps, int batch,
                             int truncate_every) {
  using namespace dyn;
  ParamLayout layout;
  const Gru gru(input, hidden, layout, "g");
  const size_t P = layout.total(), H = size_t(hidden), rows = size_t(steps) * batch;
  std::vector<T> params = randn<T>(P * seeds, 41, 0.3);  // every bias non-zero and different per seed
  const Buffer<T> p = Buffer<T>::copy_of(b, params);
  const Buffer<T> x = Buffer<T>::copy_of(b, randn<T>(seeds * rows * input, 42));
  const Buffer<T> inject = Buffer<T>::copy_of(b, randn<T>(seeds * rows * 3 * H, 43, 0.1));
  const Buffer<T> h0 = Buffer<T>::copy_of(b, randn<T>(seeds * batch * H, 44, 0.5));
  const Buffer<T> dh_out = Buffer<T>::copy_of(b, randn<T>(seeds * rows * H, 45));
  std::vector<uint8_t> resets(seeds * rows);
  for (size_t i = 0; i < resets.size(); ++i) resets[i] = (i * 7919 % 13) == 0;  // scattered episode starts
  const Buffer<uint8_t> reset = Buffer<uint8_t>::copy_of(b, resets);
  const std::vector<T> g0 = randn<T>(P * seeds, 46, 0.1);
  auto run = [&](bool batched) {
    Buffer<T> grads = Buffer<T>::copy_of(b, g0), h(b, seeds * rows * H), dx(b, seeds * rows * input),
              dinject(b, seeds * rows * 3 * H), dh0(b, seeds * batch * H);
    if (batched) {
      GruWorkspace<T> ws;
      gru.forward_seeds(b, p.data(), P, x.data(), reset.data(), inject.data(), h0.data(), seeds, steps, batch, ws);
      copy_values(b, static_cast<const T*>(ws.h.data()), h.data(), int64_t(seeds * rows * H));
      gru.backward_seeds(b, p.data(), grads.data(), P, x.data(), reset.data(), dh_out.data(), truncate_every, dx.data(),
                         dinject.data(), dh0.data(), ws);
    } else {
      for (int s = 0; s < seeds; ++s) {
        GruWorkspace<T> ws;
        const T* xs = x.data() + s * rows * input;
        const uint8_t* rs = reset.data() + s * rows;
        gru.forward(b, p.data() + s * P, xs, rs, inject.data() + s * rows * 3 * H, h0.data() + s * batch * H, steps,
                    batch, ws);
        copy_values(b, static_cast<const T*>(ws.h.data()), h.data() + s * rows * H, int64_t(rows * H));
        gru.backward(b, p.data() + s * P, grads.data() + s * P, xs, rs, dh_out.data() + s * rows * H, truncate_every,
                     dx.data() + s * rows * input, dinject.data() + s * rows * 3 * H, dh0.data() + s * batch * H, ws);
      }
    }
    std::vector<T> all = h.to_host();
    for (const Buffer<T>* part : {&grads, &dx, &dinject, &dh0}) {
      const std::vector<T> v = part->to_host();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  return {run(true), run(false)};
}

// S LayerNorms (gain and bias per seed, inside an [S, P] blob of width P > 2D) forward and backward, the parameter
// gradients accumulated onto a non-zero start: the seed ops against one call per seed. Each result is y, mean, rstd,
// dx and the whole gradient blob.
template <class T>
BatchedAndAlone<T> layer_norm_seeds(dyn::Backend b, int seeds, int64_t n, int d) {
  using namespace dyn;
  const size_t P = size_t(2 * d + 3), rows = size_t(n);  // gain at 0, bias at d, 3 other parameters after them
  const Buffer<T> p = Buffer<T>::copy_of(b, randn<T>(P * seeds, 51));
  const Buffer<T> x = Buffer<T>::copy_of(b, randn<T>(seeds * rows * d, 52, 2.0));
  const Buffer<T> dy = Buffer<T>::copy_of(b, randn<T>(seeds * rows * d, 53));
  const std::vector<T> g0 = randn<T>(P * seeds, 54, 0.1);
  auto run = [&](bool batched) {
    Buffer<T> y(b, seeds * rows * d), mean(b, seeds * rows), rstd(b, seeds * rows), dx(b, seeds * rows * d);
    Buffer<T> grads = Buffer<T>::copy_of(b, g0);
    if (batched) {
      layer_norm_forward_seeds(b, x.data(), p.data(), p.data() + d, P, y.data(), mean.data(), rstd.data(), seeds, n, d);
      layer_norm_backward_seeds(b, x.data(), p.data(), mean.data(), rstd.data(), dy.data(), dx.data(), grads.data(),
                                grads.data() + d, P, seeds, n, d);
    } else {
      for (int s = 0; s < seeds; ++s) {
        const size_t r0 = s * rows;
        layer_norm_forward(b, x.data() + r0 * d, p.data() + s * P, p.data() + s * P + d, y.data() + r0 * d,
                           mean.data() + r0, rstd.data() + r0, n, d);
        layer_norm_backward(b, x.data() + r0 * d, p.data() + s * P, mean.data() + r0, rstd.data() + r0,
                            dy.data() + r0 * d, dx.data() + r0 * d, grads.data() + s * P, grads.data() + s * P + d, n,
                            d);
      }
    }
    std::vector<T> all;
    for (const Buffer<T>* part : {&y, &mean, &rstd, &dx, &grads}) {
      const std::vector<T> v = part->to_host();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  return {run(true), run(false)};
}
