// The DynaMITE-RL / VariBAD belief model (SPEC §3): the encoder q(m | τ) — s/a/r embeddings (+ the previous
// session's final belief when conditioning) → MLP 2×64 → GRU → heads [μ, log σ², termination logit] —, the latent
// transition prior p_θ(m' | m) and the reward decoder, with the session-ELBO, consistency and termination losses
// and their backward pass. Templated on the scalar so the whole loss is gradient-checked in double.
//
// One encoder serves both directions: encode() over `steps` × `batch` rows is the online step during rollouts
// (steps = 1, batch = envs, carrying h) and the offline pass over stored episodes for training (steps = T + 1,
// batch = episodes, h0 = 0), so the two give the same beliefs by construction (tested).
#pragma once

#include <cstdint>
#include <vector>

#include "algo/encoder_inputs.h"
#include "kernels/buffer.h"
#include "nn/belief_terms.h"
#include "nn/gru.h"
#include "nn/mlp.h"

namespace dyn {

struct BeliefShape {
  int obs = 6, actions = 5;      // env sizes (gridworld); actions: the number (discrete) or the vector's width
  bool discrete_actions = true;  // one-hot actions (discrete), or the action vector (continuous)
  int embed = 8;                 // each of the s / a / r embeddings
  int trunk = 64, hidden = 64;   // MLP 2×trunk, GRU hidden
  int latent = 5;                // d
  int prior_hidden = 32;         // p_θ: 2d → 32 → 2d
  int decoder_hidden = 32;       // reward decoder: (m, s, a, s') → 32 → 32 → r̂
  bool conditioning = true;      // the encoder sees the previous session's final (μ, log σ²)
  bool state_decoder = false;  // also decode s_{t+1} from (m, s_t, a_t), 2×decoder_hidden → obs (SPEC §3: where the
                               // latent changes the dynamics, halfcheetah_wind_vel)
  int cond_dim() const { return conditioning ? 2 * latent : 0; }
  int trunk_in() const { return 3 * embed + cond_dim(); }
  int head_out() const { return 2 * latent + 1; }
  int decoder_in() const { return latent + 2 * obs + actions; }
};

// What one encode() keeps for its backward; sized on use.
template <class T>
struct EncoderWorkspace {
  Buffer<T> xs, xa, xr;        // [R, obs], [R, A] action features, [R, 1]: inputs (a, r zero where an episode starts)
  Buffer<T> trunk_in;          // [R, 3·embed + 2d]
  Buffer<T> d_trunk_in;        // [R, 3·embed + 2d]
  Buffer<T> d_es, d_ea, d_er;  // [R, embed] each
  Buffer<T> dh;                // [R, H]
  Buffer<T> d_gru_in;          // [R, trunk]
  Buffer<uint8_t> reset;       // [steps, batch]
  Buffer<T> carried;           // [S, batch, 2d] encode_sessions: the conditioning input carried between steps
  MlpWorkspace<T> es, ea, er, trunk, heads;
  GruWorkspace<T> gru;
  int rows = 0;             // every seed's
  int seeds = 1;            // the last encode's seed batch, which encode_backward runs
  size_t param_stride = 0;  // and its parameter stride
};

// Which loss terms, and their weights (SPEC §3; flags of `--algo dynamite|varibad` and the ablations).
struct BeliefLossConfig {
  bool session_recon = true;  // decode only the ELBO index's session (eq. 5); false: every transition (VariBAD)
  bool session_kl = true;     // session starts get their own prior; false: VariBAD's q_{t−1} chain
  bool conditioning = true;   // that prior is p_θ(·|previous final belief); false: N(0, I)
  double kl_weight = 0.01;    // on Σ_t KL summed over trajectories (VariBAD's reduction)
  double beta = 0.5;          // consistency weight (0: off), on the mean over valid (t, t+1) pairs
  double termination = 1.0;   // termination BCE weight (0: off), on the mean over latents t ≥ 1
  double state_weight = 1.0;  // the state decoder's reconstruction (when the shape has one), as the reward's
  // Subsampling for long horizons (SPEC §3, VariBAD's vae_subsample_elbos / _decodes; 0: all): per trajectory,
  // elbo_samples distinct ELBO indices (latents whose reconstruction and KL terms count) and, for each, decode_samples
  // transitions of its reconstruction range drawn with replacement.
  int elbo_samples = 0, decode_samples = 0;
  static BeliefLossConfig varibad() {
    BeliefLossConfig c;
    c.session_recon = c.session_kl = c.conditioning = false;
    c.beta = c.termination = 0;
    return c;
  }
};

// Loss values of one batch (unweighted sums as named, and the weighted total).
struct BeliefLossStats {
  double recon = 0;        // Σ_t Σ_j (r̂ − r)², mean over trajectories
  double state_recon = 0;  // Σ_t Σ_j ‖ŝ − s'‖², mean over trajectories (state decoder)
  double kl = 0;           // Σ_t KL, mean over trajectories
  double consistency = 0;  // mean hinge over valid pairs
  double bce = 0;          // mean termination BCE
  double total = 0;        // recon + state_weight·state_recon + kl_weight·B·kl + β·consistency + w·bce
  int64_t pairs = 0;       // decoded (t, j) pairs
};

template <class T>
class BeliefModel {
 public:
  BeliefModel() = default;
  // Registers the encoder ("belief.enc.*"), prior ("belief.prior.*") and decoder ("belief.dec.*") views.
  BeliefModel(Backend b, const BeliefShape& shape, ParamLayout& layout);
  const BeliefShape& shape() const { return s_; }
  Backend backend() const { return b_; }

  // Encoder over steps × batch rows (R = steps·batch, time-major): obs [R, obs], the previous action prev_a [R]
  // (discrete) or prev_a_value [R, A] (continuous), prev_r [R], start [R] (an episode starts: the GRU state restarts
  // and a, r read as zero), cond [R, 2d] (the previous session's final belief; ignored without conditioning), h0
  // [batch, H]. Leaves q [R, 2d+1] in q(ws) and the hidden states [R, H] in ws.gru.h.
  // seeds > 1: a seed batch's S encoders at once (run s's parameters at params + s · param_stride), every input,
  // h0 and output seed-major [S, steps, batch, ·] (the online step: [S·N, ·]); run s's rows are those of its own
  // encode() — bit for bit on the CPU, within rounding on CUDA (the GEMM path).
  void encode(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value, const T* prev_r,
              const uint8_t* start, const T* cond, const T* h0, int steps, int batch, EncoderWorkspace<T>& ws,
              int seeds = 1, size_t param_stride = 0) const;
  // The offline encoder over whole episodes with the conditioning inputs built in the same pass from ground-truth
  // session ends send [steps − 1, batch] (latent t closes its session where transition t − 1 ends one): the
  // embeddings run over all rows at once, the trunk, GRU and heads one time step at a time, each session's final
  // belief carried into the next's conditioning input (as data). Fills ws as encode() with those inputs would, so
  // encode_backward applies; cond_out [R, 2d] receives the inputs unless nullptr. Without conditioning: encode().
  // seeds > 1: a seed batch's, seed-major as encode()'s (send [S, steps − 1, batch]), each time step one
  // strided-batched pass over every seed's rows of that step.
  void encode_sessions(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value, const T* prev_r,
                       const uint8_t* start, const uint8_t* send, int steps, int batch, EncoderWorkspace<T>& ws,
                       T* cond_out, int seeds = 1, size_t param_stride = 0) const;
  static const T* q(const EncoderWorkspace<T>& ws) { return ws.heads.act.back().data(); }
  // Given dq [R, 2d+1] for the last encode(ws) or encode_sessions(ws): adds the encoder's parameter gradients into
  // grads (the conditioning input is treated as data: no gradient flows into the belief it came from); a seed batch's
  // into each seed's part of grads ([S, P] at the encode's param_stride).
  void encode_backward(const T* params, T* grads, const T* dq, EncoderWorkspace<T>& ws) const;

  Mlp emb_s, emb_a, emb_r, trunk, heads, prior, decoder, state_decoder;
  Gru gru;

 private:
  // The raw inputs of R rows (per seed, of `seeds` seeds) and their three embeddings, placed into ws.trunk_in's
  // first 3·embed columns.
  void embed_inputs(const T* params, const T* obs, const int32_t* prev_a, const T* prev_a_value, const T* prev_r,
                    const uint8_t* start, int64_t R, EncoderWorkspace<T>& ws, int seeds = 1,
                    size_t param_stride = 0) const;
  // mlp over R rows per seed of x into w: forward(), or forward_seeds() for a seed batch.
  void mlp_forward(const Mlp& mlp, const T* params, const T* x, int64_t R, MlpWorkspace<T>& w, int seeds,
                   size_t param_stride) const;

  Backend b_ = Backend::cpu;
  BeliefShape s_;
};

// eps [n] ~ N(0, 1) from Philox(seed, kStreamBelief, i, step): the reparameterisation noise of one belief step.
template <class T>
void draw_belief_noise(Backend b, uint32_t seed, uint32_t step, int64_t n, T* eps);
// The same for a seed batch in one launch: eps [S, n], run s's from its seed seeds[s] (backend memory [S]).
template <class T>
void draw_belief_noise_runs(Backend b, const uint32_t* seeds, int runs, uint32_t step, int64_t n, T* eps);

// After latent rows q [n, 2d+1]: where close[i], the belief (μ, log σ²) becomes row i's conditioning input cond
// [n, 2d] for what follows (the session it ends is over).
template <class T>
void carry_final_belief(Backend b, const T* q, const uint8_t* close, int64_t n, int latent, T* cond);

// Host plan of a batch's decoded (latent, transition) pairs. Latent t of trajectory b is row t·B + b; transition j
// is row j·B + b. The pairs are listed by latent row (offset), each latent's transitions in increasing j; the same
// pairs by transition row (tr_offset, tr_pair: indices into the list, by increasing latent) fold the gradients back
// without atomics. Without subsampling, latent t decodes its own session's transitions (session_recon) or all of
// them; with it (BeliefLossConfig::elbo_samples / decode_samples), elbo_samples latents per trajectory each decode
// decode_samples transitions of that range drawn with replacement, from Philox(seed, kStreamSubsample, b, step).
struct DecodePlan {
  std::vector<int32_t> offset;     // [(T+1)·B + 1] each latent's first pair
  std::vector<int32_t> pair_tr;    // [P] each pair's transition row
  std::vector<int32_t> tr_offset;  // [T·B + 1]
  std::vector<int32_t> tr_pair;    // [P] pair indices grouped by transition row
  std::vector<uint8_t> elbo;       // [(T+1)·B] the latent is an ELBO index: its KL term counts
  int64_t pairs = 0;
  int64_t consistency_pairs = 0;  // (t, t+1) in one session, over the batch
  // A seed batch's runs' plans one after another (concat_plans): run s's pairs are [run_pairs[s], run_pairs[s+1]),
  // its rows those of its block; one run: {0, pairs} and {consistency_pairs}.
  std::vector<int64_t> run_pairs;              // [S + 1]
  std::vector<int64_t> run_consistency_pairs;  // [S]
  int runs() const { return int(run_consistency_pairs.size()); }
};
DecodePlan plan_decodes(const std::vector<int32_t>& sid, int steps, int batch, bool session_recon, int elbo_samples = 0,
                        int decode_samples = 0, uint32_t seed = 0, uint32_t step = 0);
// The plans of a seed batch's runs (each of `steps` transitions × `batch` episodes) as one plan over the seed-major
// rows: run s's latent rows shifted by s·(T+1)·B, its transition rows by s·T·B and its pairs by the pairs before it.
DecodePlan concat_plans(const std::vector<DecodePlan>& plans, int steps, int batch);

// One decoder's buffers over the decoded pairs.
template <class T>
struct PairDecoderWorkspace {
  Buffer<T> u, du;             // [R, Hd] first-layer pre-activation part of each latent, its gradient
  Buffer<T> v, dv;             // [T·B, Hd] and of each transition (with the bias)
  std::vector<Buffer<T>> act;  // [P, ·] each layer's output over the pairs
  Buffer<T> ga, gb;            // [P, Hd] backward scratch
  Buffer<T> dy;                // [P, out] residuals, then d loss / d output
};

// Everything one loss evaluation allocates, sized on use.
template <class T>
struct BeliefLossWorkspace {
  EncoderWorkspace<T> enc;
  Buffer<T> cond;                     // [R, 2d] conditioning inputs (filled by the caller or the online replay)
  Buffer<int32_t> prev_a;             // [R]
  Buffer<T> prev_a_value;             // [R, A] continuous
  Buffer<T> prev_r;                   // [R]
  Buffer<uint8_t> start;              // [R]
  Buffer<T> prior_in, dprior_in;      // [R, 2d]
  Buffer<T> dprior;                   // [R, 2d]
  Buffer<T> z, eps, dz;               // [R, d]
  Buffer<T> dq;                       // [R, 2d+1]
  Buffer<int32_t> offset, tr_offset;  // decode plan on the backend
  Buffer<int32_t> pair_row, pair_tr;  // [P] each pair's latent row t·B + b and transition row j·B + b
  Buffer<int32_t> tr_pair;            // [P]
  Buffer<uint8_t> elbo;               // [R]
  Buffer<T> dec_x;                    // [T·B, 2·obs + A] transition features [s_j, a_j features, s_{j+1}]
  PairDecoderWorkspace<T> reward_dec, state_dec;
  Buffer<T> sums;                    // [S, B, 3] per-trajectory KL, hinge, BCE
  Buffer<T> scalars;                 // [2, S] reductions: each run's reward and state reconstruction sums
  Buffer<int64_t> run_pairs;         // [S + 1] the plan's runs' first pairs
  Buffer<int64_t> run_state_values;  // [S + 1] and their first state residuals (pairs · obs)
  Buffer<T> run_consistency;         // [S] each run's consistency weight β / its valid pairs
  MlpWorkspace<T> prior;
  EncoderWorkspace<T> gt_enc;  // ground_truth_conditioning's encoder pass
};

// Offline conditioning inputs from ground-truth sessions into ws.cond [T+1, B, 2d] (encode_sessions; no gradient),
// for callers that hold them fixed (gradient checks, tests).
template <class T>
void ground_truth_conditioning(const BeliefModel<T>& m, const T* params, const EpisodeBatchView<T>& ep,
                               BeliefLossWorkspace<T>& ws);

// The belief loss of one batch and its gradient (added into grads): session-ELBO (reconstruction over the
// planned pairs with one reparameterised sample per latent from eps [R, d], and the KL chain), consistency and
// termination BCE. When the model conditions, cond [T+1, B, 2d] holds the conditioning inputs (held fixed), or is
// nullptr: built in the encoder's pass from the ground-truth sessions (encode_sessions; the learner's path, one
// encoder pass instead of two). Reads nothing back but a few scalars.
template <class T>
BeliefLossStats belief_loss(const BeliefModel<T>& m, const T* params, T* grads, const EpisodeBatchView<T>& ep,
                            const DecodePlan& plan, const BeliefLossConfig& cfg, const T* cond,
                            BeliefLossWorkspace<T>& ws);

// A seed batch's belief losses at once, S = ep.runs: run s's parameters and gradients at s · param_stride of params
// and grads ([S, P]), its episodes block s of ep, its noise block s of ws.eps [S, T+1, B, d], its pairs those of
// plan = concat_plans(each run's); conditioning inputs from the ground-truth sessions. The encoder, prior and the
// decoders' first layers run as strided-batched products over the seeds; the decoders' later layers, whose pairs
// are ragged across runs, as one product per run. Each run's stats and gradients are those of belief_loss on its
// own — bit for bit on the CPU, within rounding on CUDA.
template <class T>
std::vector<BeliefLossStats> belief_loss_runs(const BeliefModel<T>& m, const T* params, T* grads, size_t param_stride,
                                              const EpisodeBatchView<T>& ep, const DecodePlan& plan,
                                              const BeliefLossConfig& cfg, BeliefLossWorkspace<T>& ws);

}  // namespace dyn
