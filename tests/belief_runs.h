// A seed batch of belief losses for the tests: S runs, each with its own random episodes (its own session
// boundaries, so the runs' decode plans are ragged), its own parameters in one [S, P] blob, its own noise seed; the
// losses of each run alone (belief_loss, S calls) and of the whole batch (belief_loss_runs, one call) on a backend.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "algo/belief_model.h"
#include "kernels/buffer.h"
#include "nn/params.h"
#include "tests/belief_episodes.h"

namespace dyn_test {

using namespace dyn;

// What a case varies: the model's shape (conditioning, state decoder, continuous actions), the loss terms and
// subsampling, and whether the episodes carry landings (an env that resets within an episode).
struct BeliefRunsCase {
  BeliefShape shape;
  BeliefLossConfig loss;
  bool landing = false;
  int steps = 14, batch = 5, runs = 3;
  uint32_t step = 4;  // the belief step (the subsampling and noise counter)
};

struct BeliefRunsResult {
  std::vector<BeliefLossStats> stats;  // [S]
  std::vector<float> grad;             // [S, P]
};

// The runs' host data, seed-major [S, ·] (each run's block as random_episodes lays out one batch).
struct BeliefRunsData {
  BeliefRunsCase c;
  std::vector<HostEpisodes> eps;                 // [S]
  std::vector<float> obs, rew, act_value, land;  // [S, T+1, B, obs], [S, T, B], [S, T, B, A], [S, T, B, obs]
  std::vector<int32_t> act, sid;                 // [S, T, B]
  std::vector<uint8_t> send;                     // [S, T, B]
  std::vector<uint32_t> seeds;                   // [S]

  explicit BeliefRunsData(const BeliefRunsCase& cs) : c(cs) {
    c.shape.obs = 6;  // random_episodes' observation width
    if (c.shape.discrete_actions) c.shape.actions = 5;
    std::mt19937 rng(91);
    std::normal_distribution<float> normal;
    for (int s = 0; s < c.runs; ++s) {
      eps.push_back(random_episodes(c.steps, c.batch, 4, 100u + uint32_t(s)));
      const HostEpisodes& e = eps.back();
      obs.insert(obs.end(), e.obs.begin(), e.obs.end());
      rew.insert(rew.end(), e.rew.begin(), e.rew.end());
      sid.insert(sid.end(), e.sid.begin(), e.sid.end());
      send.insert(send.end(), e.send.begin(), e.send.end());
      if (c.shape.discrete_actions) {
        act.insert(act.end(), e.act.begin(), e.act.end());
      } else {
        for (size_t i = 0; i < e.act.size() * size_t(c.shape.actions); ++i) act_value.push_back(normal(rng));
      }
      if (c.landing)
        for (size_t i = 0; i < e.rew.size() * size_t(c.shape.obs); ++i) land.push_back(normal(rng));
      seeds.push_back(1000u + 17u * uint32_t(s));
    }
  }
  int64_t latents() const { return int64_t(c.steps + 1) * c.batch; }
  int64_t transitions() const { return int64_t(c.steps) * c.batch; }
};

// The model's [S, P] parameters with every bias randomised (zero biases would hide a run reading another's bias).
inline ParamBlob<float> runs_params(Backend b, const ParamLayout& layout, int runs) {
  std::vector<uint32_t> seeds;
  for (int s = 0; s < runs; ++s) seeds.push_back(7u + uint32_t(s));
  ParamBlob<float> p(b, layout, seeds);
  std::vector<float> v = p.value.to_host();
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 0.1f);
  for (int s = 0; s < runs; ++s)
    for (const ParamView& pv : layout.views())
      if (pv.init == Init::zeros)
        for (size_t i = 0; i < pv.size; ++i) v[size_t(s) * layout.total() + pv.offset + i] = n(rng);
  p.value.from_host(v);
  return p;
}

// The view of `runs` runs' episodes in backend buffers (the case's action kind and landings).
inline EpisodeBatchView<float> runs_view(const BeliefRunsCase& c, int runs, Buffer<float>& obs, Buffer<int32_t>& act,
                                         Buffer<float>& act_value, Buffer<float>& rew, Buffer<int32_t>& sid,
                                         Buffer<uint8_t>& send, Buffer<float>& land) {
  EpisodeBatchView<float> view;
  view.steps = c.steps;
  view.batch = c.batch;
  view.runs = runs;
  view.obs = obs.data();
  view.act = c.shape.discrete_actions ? act.data() : nullptr;
  view.act_value = c.shape.discrete_actions ? nullptr : act_value.data();
  view.rew = rew.data();
  view.sid = sid.data();
  view.send = send.data();
  view.next_obs = c.landing ? land.data() : nullptr;
  return view;
}

// Each run alone: its block of the data, its parameters, its plan and noise, one belief_loss each.
inline BeliefRunsResult belief_losses_alone(Backend b, const BeliefRunsData& d) {
  const BeliefRunsCase& c = d.c;
  ParamLayout layout;
  const BeliefModel<float> model(b, c.shape, layout);
  ParamBlob<float> params = runs_params(b, layout, c.runs);
  params.grad.zero();
  const size_t P = layout.total(), L = size_t(d.latents()), TB = size_t(d.transitions());
  const int O = c.shape.obs, A = c.shape.actions;
  BeliefRunsResult out;
  for (int s = 0; s < c.runs; ++s) {
    const size_t r = size_t(s);
    auto block = [&](const auto& v, size_t per) {
      using V = typename std::decay_t<decltype(v)>::value_type;
      return std::vector<V>(v.begin() + long(r * per), v.begin() + long((r + 1) * per));
    };
    Buffer<float> obs = Buffer<float>::copy_of(b, block(d.obs, L * O)),
                  rew = Buffer<float>::copy_of(b, block(d.rew, TB));
    Buffer<int32_t> sid = Buffer<int32_t>::copy_of(b, block(d.sid, TB));
    Buffer<uint8_t> send = Buffer<uint8_t>::copy_of(b, block(d.send, TB));
    Buffer<int32_t> act = Buffer<int32_t>::copy_of(b, d.act.empty() ? std::vector<int32_t>{} : block(d.act, TB));
    Buffer<float> act_value =
        Buffer<float>::copy_of(b, d.act_value.empty() ? std::vector<float>{} : block(d.act_value, TB * A));
    Buffer<float> land = Buffer<float>::copy_of(b, d.land.empty() ? std::vector<float>{} : block(d.land, TB * O));
    const EpisodeBatchView<float> view = runs_view(c, 1, obs, act, act_value, rew, sid, send, land);
    const DecodePlan plan = plan_decodes(block(d.sid, TB), c.steps, c.batch, c.loss.session_recon, c.loss.elbo_samples,
                                         c.loss.decode_samples, d.seeds[r], c.step);
    BeliefLossWorkspace<float> ws;
    ws.eps = Buffer<float>(b, L * size_t(c.shape.latent));
    draw_belief_noise(b, d.seeds[r], c.step, int64_t(L) * c.shape.latent, ws.eps.data());
    out.stats.push_back(belief_loss<float>(model, params.value.data() + r * P, params.grad.data() + r * P, view, plan,
                                           c.loss, nullptr, ws));
  }
  out.grad = params.grad.to_host();
  return out;
}

// The batch: every run's block seed-major in one view, one plan over the runs, one noise draw, one call.
inline BeliefRunsResult belief_losses_batch(Backend b, const BeliefRunsData& d) {
  const BeliefRunsCase& c = d.c;
  ParamLayout layout;
  const BeliefModel<float> model(b, c.shape, layout);
  ParamBlob<float> params = runs_params(b, layout, c.runs);
  params.grad.zero();
  const size_t L = size_t(d.latents()), TB = size_t(d.transitions());
  Buffer<float> obs = Buffer<float>::copy_of(b, d.obs), rew = Buffer<float>::copy_of(b, d.rew);
  Buffer<int32_t> sid = Buffer<int32_t>::copy_of(b, d.sid), act = Buffer<int32_t>::copy_of(b, d.act);
  Buffer<uint8_t> send = Buffer<uint8_t>::copy_of(b, d.send);
  Buffer<float> act_value = Buffer<float>::copy_of(b, d.act_value), land = Buffer<float>::copy_of(b, d.land);
  Buffer<uint32_t> seeds = Buffer<uint32_t>::copy_of(b, d.seeds);
  const EpisodeBatchView<float> view = runs_view(c, c.runs, obs, act, act_value, rew, sid, send, land);
  std::vector<DecodePlan> plans;
  for (int s = 0; s < c.runs; ++s) {
    const std::vector<int32_t> run_sid(d.sid.begin() + long(size_t(s) * TB), d.sid.begin() + long(size_t(s + 1) * TB));
    plans.push_back(plan_decodes(run_sid, c.steps, c.batch, c.loss.session_recon, c.loss.elbo_samples,
                                 c.loss.decode_samples, d.seeds[size_t(s)], c.step));
  }
  const DecodePlan plan = concat_plans(plans, c.steps, c.batch);
  BeliefLossWorkspace<float> ws;
  ws.eps = Buffer<float>(b, size_t(c.runs) * L * size_t(c.shape.latent));
  draw_belief_noise_runs(b, seeds.data(), c.runs, c.step, int64_t(L) * c.shape.latent, ws.eps.data());
  BeliefRunsResult out;
  out.stats =
      belief_loss_runs<float>(model, params.value.data(), params.grad.data(), layout.total(), view, plan, c.loss, ws);
  out.grad = params.grad.to_host();
  return out;
}

// The cases every seed-batch belief test runs: DynaMITE (conditioning in the encoder's pass), VariBAD, DynaMITE with
// ELBO and decode subsampling, and a continuous-action model with the state decoder and landings.
inline std::vector<std::pair<const char*, BeliefRunsCase>> belief_runs_cases() {
  std::vector<std::pair<const char*, BeliefRunsCase>> cases;
  BeliefRunsCase dynamite;
  dynamite.shape.trunk = dynamite.shape.hidden = 16;
  cases.push_back({"dynamite", dynamite});
  BeliefRunsCase varibad = dynamite;
  varibad.shape.conditioning = false;
  varibad.loss = BeliefLossConfig::varibad();
  cases.push_back({"varibad", varibad});
  BeliefRunsCase sub = dynamite;
  sub.loss.elbo_samples = 4;
  sub.loss.decode_samples = 3;
  cases.push_back({"dynamite-subsampled", sub});
  BeliefRunsCase cont = dynamite;
  cont.shape.discrete_actions = false;
  cont.shape.actions = 3;
  cont.shape.state_decoder = true;
  cont.landing = true;
  cases.push_back({"continuous-state-decoder-landing", cont});
  return cases;
}

}  // namespace dyn_test
