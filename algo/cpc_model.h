// ContraBAR's context encoder and CPC loss (SPEC §3, prior-art §3; `--algo contrabar`). The encoder embeds s_t,
// a_{t−1} and r_{t−1} with Linear + ELU each, concatenates them, applies LayerNorm (x_t) and runs one GRU whose
// hidden state h_t is the context the policy sees beside s_t (no μ/σ head; the RL loss does not reach it). The CPC
// loss trains it: for k = 1..K, h_t must pick x_{t+k} — the embedding of the transition k steps ahead, which h_t has
// not read — out of it and N negatives x_τ drawn from other trajectories of the batch, through a classifier
// f_k(z, h) = MLP(LayerNorm → Linear(D, D/2) → ELU → Linear(1)) on [z, h] per k and a cross-entropy over the N + 1
// logits (InfoNCE). Latent rows are time-major as the belief model's: latent t of trajectory b is row t·B + b, has
// read transitions 0..t−1, and x_t (t ≥ 1) embeds transition t − 1.
#pragma once

#include <cstdint>
#include <vector>

#include "algo/encoder_inputs.h"
#include "kernels/buffer.h"
#include "nn/gru.h"
#include "nn/mlp.h"
#include "nn/params.h"

namespace dyn {

struct CpcShape {
  int obs = 6, actions = 5;      // env sizes; actions: the number (discrete, one-hot) or the vector's width
  bool discrete_actions = true;  //
  int embed_s = 8, embed_a = 8, embed_r = 8;  // Linear + ELU embeddings (reference: grid 8/8/8, cheetah 32/16/16)
  int hidden = 256;                           // GRU width = the context's (reference: grid 256, MuJoCo 50)
  int lookahead = 10;                         // K
  int negatives = 15;                         // N per anchor and k
  int embed() const { return embed_s + embed_a + embed_r; }
  int pair_in() const { return embed() + hidden; }
  int classifier_hidden() const { return pair_in() / 2; }
  int logits() const { return negatives + 1; }
};

// What one encode() keeps for its backward; sized on use.
template <class T>
struct CpcEncoderWorkspace {
  int rows = 0;                // every seed's
  int seeds = 1;               // the last encode's seed batch, which encode_backward runs
  size_t param_stride = 0;     // and its parameter stride
  Buffer<T> xs, xa, xr;        // [R, obs], [R, A], [R, 1] raw inputs (a, r zero where an episode starts)
  Buffer<uint8_t> reset;       // [R]
  Buffer<T> e;                 // [R, E] the three embeddings side by side
  Buffer<T> x, mean, rstd;     // [R, E] LN(e): the GRU's input and CPC's z rows; [R] the LN statistics
  Buffer<T> dx, de;            // [R, E] backward
  Buffer<T> d_es, d_ea, d_er;  // [R, E·] backward
  MlpWorkspace<T> es, ea, er;
  GruWorkspace<T> gru;
};

// Host plan of one batch's CPC pairs (T transitions, B trajectories, A = T·B anchors: latents t = 0..T−1). For each
// k and anchor, pair 0 is the positive (z row (t+k)·B + b, valid when t + k ≤ T) and pairs 1..N are negatives: a
// trajectory b' ≠ b uniform over the other B − 1 and a time τ uniform in 1..T, from Philox(seed, kStreamCpcNegatives,
// anchor, step, k). The valid pairs grouped by z row (z_offset / z_pair) fold the z side's gradients back without
// atomics.
struct CpcPlan {
  int steps = 0, batch = 0, lookahead = 0, per_anchor = 0;  // T, B, K, N + 1 (per run)
  int runs = 1;  // S: a seed batch's plans one after another (concat_cpc_plans), every index over all runs' rows
  std::vector<int32_t> z_row;     // [K, S·A, N+1] (run s's z rows at s·R + ·)
  std::vector<uint8_t> valid;     // [K, S·A]
  std::vector<int32_t> z_offset;  // [K, S·R + 1] R = (T+1)·B: z_pair[z_offset[k, r] .. z_offset[k, r + 1]) are the
                                  // pairs of z row r under classifier k
  std::vector<int32_t> z_pair;    // the valid pairs' indices a·(N+1) + j (within k), grouped by k, then z row
  int64_t valid_anchors = 0;      // Σ valid (every run has as many: validity depends on t + k only)
  int64_t anchors() const { return int64_t(steps) * batch; }
  int64_t rows() const { return int64_t(steps + 1) * batch; }
};
CpcPlan plan_cpc(int steps, int batch, int lookahead, int negatives, uint32_t seed, uint32_t step);
// The plans of a seed batch's runs (one run's each, of one shape) as one plan over the seed-major rows [S, R]: run s's
// anchors at s·A + ·, its z rows at s·R + ·, its pairs at s·A·(N+1) + · within each k.
CpcPlan concat_cpc_plans(const std::vector<CpcPlan>& plans);

// Everything one CPC loss evaluation allocates, sized on use.
template <class T>
struct CpcLossWorkspace {
  CpcEncoderWorkspace<T> enc;
  Buffer<int32_t> prev_a;                   // [R]
  Buffer<T> prev_a_value, prev_r;           // [R, A], [R]
  Buffer<uint8_t> start;                    // [R]
  Buffer<int32_t> z_row, z_offset, z_pair;  // the plan on the backend
  Buffer<uint8_t> valid;                    // [K, A]
  Buffer<T> weight;                         // [K, A] 1 / (valid anchors) or 0
  Buffer<T> sz, sh;                         // [R, 2], [A, 2] row Σ and Σ²
  Buffer<T> wz, wh;                         // [K, D1, E], [K, D1, H] W1's column blocks times γ
  Buffer<T> c, d;                           // [K, D1] W1 γ, W1 β + b1
  Buffer<T> pz, ph;                         // [K, R, D1], [K, A, D1]
  Buffer<T> logits, dlogits, loss;          // [K, A, N+1], [K, A, N+1], [K, A] (A: every run's anchors)
  Buffer<T> run_loss, run_loss_sum;         // [S, K, A] the losses run-major, [S] their sums
  Buffer<uint8_t> hit;                      // [K, A]
  Buffer<T> act;                            // [A·(N+1), D1] one k's pair activations, then r · d/d pre
  Buffer<T> pair_mu, pair_r;                // [A·(N+1)] one k's pair statistics
  Buffer<T> pair_ds;                        // [A·(N+1), 2] their d Σ, d Σ²
  Buffer<T> dpz, dph;                       // [R, D1], [A, D1] (one k at a time)
  Buffer<T> dsz, dsh;                       // [R, 2], [A, 2]
  Buffer<T> part, part_sum;                 // [A, 3·D1 + 1] per-anchor sums of dw2, dd, dc and db2; their column sums
  Buffer<T> dwz, dwh;                       // [D1, E], [D1, H]
  Buffer<T> dx, dh;                         // [R, E], [R, H] the encoder's gradients from the pairs
};

struct CpcLossStats {
  double loss = 0;                 // mean InfoNCE over the valid (k, anchor) rows
  double accuracy = 0;             // how often the positive has the highest logit, over all valid rows
  std::vector<double> accuracy_k;  // [K] the same per k
};

template <class T>
class CpcModel {
 public:
  CpcModel() = default;
  // Registers "cpc.emb_s/a/r.*", "cpc.ln.gain/bias", "cpc.gru.*", "cpc.cls<k>.{ln_gain, ln_bias, w1, b1, w2, b2}".
  CpcModel(Backend b, const CpcShape& shape, ParamLayout& layout);
  const CpcShape& shape() const { return s_; }

  // Encoder over steps × batch rows (time-major): obs [R, obs], prev_a [R] or prev_a_value [R, A], prev_r [R],
  // start [R] (the GRU restarts, a and r read as zero), h0 [batch, H] (nullptr: zeros). Leaves x [R, E] in ws.x and
  // the contexts h [R, H] in ws.gru.h.
  // seeds > 1: a seed batch's S encoders at once (run s's parameters at params + s · param_stride), every input,
  // h0 and output seed-major [S, steps, batch, ·] (the online step: [S·N, ·]); run s's rows are those of its own
  // encode() — bit for bit on the CPU, within rounding on CUDA (the GEMM path).
  void encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value, const T* prev_r,
              const uint8_t* start, const T* h0, int steps, int batch, CpcEncoderWorkspace<T>& ws, int seeds = 1,
              size_t param_stride = 0) const;
  // Given dh [R, H] and dx_extra [R, E] (the z rows' gradient; may be nullptr) for the last encode: adds the
  // encoder's parameter gradients into grads (a seed batch's into each seed's part, at the encode's param_stride).
  void encode_backward(const T* params, T* grads, const T* dh, const T* dx_extra, CpcEncoderWorkspace<T>& ws) const;

  // The CPC loss over whole episodes and its gradient (added into grads), pairs from the plan.
  CpcLossStats loss(const T* params, T* grads, const EpisodeBatchView<T>& ep, const CpcPlan& plan,
                    CpcLossWorkspace<T>& ws) const;
  // A seed batch's CPC losses at once, S = ep.runs: run s's parameters and gradients at s · param_stride ([S, P]),
  // its episodes block s of ep, its pairs those of plan = concat_cpc_plans(each run's). Per classifier, every
  // run's first-layer parts and gradients are one strided-batched product each and every pass over pairs, anchors or
  // z rows one launch over all runs. Each run's stats and gradients are those of loss() on its own (bit for bit on
  // the CPU, within rounding on CUDA).
  std::vector<CpcLossStats> loss_runs(const T* params, T* grads, size_t param_stride, const EpisodeBatchView<T>& ep,
                                      const CpcPlan& plan, CpcLossWorkspace<T>& ws) const;

  Mlp emb_s, emb_a, emb_r;
  Gru gru;
  size_t ln_gain = 0, ln_bias = 0;
  struct Classifier {
    size_t ln_gain, ln_bias, w1, b1, w2, b2;
  };
  std::vector<Classifier> cls;  // [K]

 private:
  Backend b_ = Backend::cpu;
  CpcShape s_;
};

}  // namespace dyn
