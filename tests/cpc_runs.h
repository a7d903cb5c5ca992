// A seed batch of CPC losses for the tests: S runs, each with its own random episodes, its own parameters in one
// [S, P] blob and its own negatives (plan_cpc with its seed); the losses of each run alone (CpcModel::loss, S calls)
// and of the whole batch (CpcModel::loss_runs, one call) on a backend.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "algo/cpc_model.h"
#include "kernels/buffer.h"
#include "nn/params.h"
#include "tests/belief_episodes.h"

namespace dyn_test {

using namespace dyn;

struct CpcRunsResult {
  std::vector<CpcLossStats> stats;  // [S]
  std::vector<float> grad;          // [S, P]
};

// The runs' host data, seed-major [S, ·].
struct CpcRunsData {
  CpcShape shape;
  int steps, batch, runs;
  uint32_t step = 2;
  std::vector<float> obs, rew, act_value;  // [S, T+1, B, obs], [S, T, B], [S, T, B, A]
  std::vector<int32_t> act;                // [S, T, B]
  std::vector<CpcPlan> plans;              // [S] each run's (its seed's negatives)

  CpcRunsData(const CpcShape& s, int T, int B, int S) : shape(s), steps(T), batch(B), runs(S) {
    shape.obs = 6;  // random_episodes' observation width
    std::mt19937 rng(31);
    std::normal_distribution<float> normal;
    for (int r = 0; r < S; ++r) {
      const HostEpisodes e = random_episodes(T, B, 3, 200u + uint32_t(r));
      obs.insert(obs.end(), e.obs.begin(), e.obs.end());
      rew.insert(rew.end(), e.rew.begin(), e.rew.end());
      if (shape.discrete_actions)
        act.insert(act.end(), e.act.begin(), e.act.end());
      else
        for (size_t i = 0; i < e.act.size() * size_t(shape.actions); ++i) act_value.push_back(normal(rng));
      plans.push_back(plan_cpc(T, B, shape.lookahead, shape.negatives, 500u + 13u * uint32_t(r), step));
    }
  }
  size_t latents() const { return size_t(steps + 1) * batch; }
  size_t transitions() const { return size_t(steps) * batch; }
};

// The model's [S, P] parameters, every one moved off its initial value (no run may read another's unnoticed).
inline ParamBlob<float> cpc_runs_params(Backend b, const ParamLayout& layout, int runs) {
  std::vector<uint32_t> seeds;
  for (int s = 0; s < runs; ++s) seeds.push_back(3u + uint32_t(s));
  ParamBlob<float> p(b, layout, seeds);
  std::vector<float> v = p.value.to_host();
  std::mt19937 rng(8);
  std::normal_distribution<float> n(0.0f, 0.2f);
  for (float& x : v) x += n(rng);
  p.value.from_host(v);
  return p;
}

inline EpisodeBatchView<float> cpc_runs_view(const CpcRunsData& d, int runs, Buffer<float>& obs, Buffer<float>& rew,
                                             Buffer<int32_t>& act, Buffer<float>& act_value) {
  EpisodeBatchView<float> view;
  view.steps = d.steps;
  view.batch = d.batch;
  view.runs = runs;
  view.obs = obs.data();
  view.rew = rew.data();
  view.act = d.shape.discrete_actions ? act.data() : nullptr;
  view.act_value = d.shape.discrete_actions ? nullptr : act_value.data();
  return view;
}

// Each run alone: its block of the data, its parameters and its plan, one loss each.
inline CpcRunsResult cpc_losses_alone(Backend b, const CpcRunsData& d) {
  ParamLayout layout;
  const CpcModel<float> model(b, d.shape, layout);
  ParamBlob<float> params = cpc_runs_params(b, layout, d.runs);
  params.grad.zero();
  const size_t P = layout.total(), L = d.latents(), TB = d.transitions(), A = size_t(d.shape.actions);
  CpcRunsResult out;
  for (int s = 0; s < d.runs; ++s) {
    const size_t r = size_t(s);
    auto block = [&](const auto& v, size_t per) {
      using V = typename std::decay_t<decltype(v)>::value_type;
      return v.empty() ? std::vector<V>{} : std::vector<V>(v.begin() + long(r * per), v.begin() + long((r + 1) * per));
    };
    Buffer<float> obs = Buffer<float>::copy_of(b, block(d.obs, L * 6)),
                  rew = Buffer<float>::copy_of(b, block(d.rew, TB));
    Buffer<int32_t> act = Buffer<int32_t>::copy_of(b, block(d.act, TB));
    Buffer<float> act_value = Buffer<float>::copy_of(b, block(d.act_value, TB * A));
    const EpisodeBatchView<float> view = cpc_runs_view(d, 1, obs, rew, act, act_value);
    CpcLossWorkspace<float> ws;
    out.stats.push_back(model.loss(params.value.data() + r * P, params.grad.data() + r * P, view, d.plans[r], ws));
  }
  out.grad = params.grad.to_host();
  return out;
}

// The batch: every run's block seed-major in one view, one plan over the runs, one call.
inline CpcRunsResult cpc_losses_batch(Backend b, const CpcRunsData& d) {
  ParamLayout layout;
  const CpcModel<float> model(b, d.shape, layout);
  ParamBlob<float> params = cpc_runs_params(b, layout, d.runs);
  params.grad.zero();
  Buffer<float> obs = Buffer<float>::copy_of(b, d.obs), rew = Buffer<float>::copy_of(b, d.rew);
  Buffer<int32_t> act = Buffer<int32_t>::copy_of(b, d.act);
  Buffer<float> act_value = Buffer<float>::copy_of(b, d.act_value);
  const EpisodeBatchView<float> view = cpc_runs_view(d, d.runs, obs, rew, act, act_value);
  CpcLossWorkspace<float> ws;
  CpcRunsResult out;
  out.stats =
      model.loss_runs(params.value.data(), params.grad.data(), layout.total(), view, concat_cpc_plans(d.plans), ws);
  out.grad = params.grad.to_host();
  return out;
}

}  // namespace dyn_test
