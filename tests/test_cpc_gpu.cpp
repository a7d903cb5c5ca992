// ContraBAR's CPC on CUDA against the CPU (label gpu): the same plan (its negatives are drawn from Philox on the
// host, so both backends pair the same rows by construction) gives the same logits, loss, contrastive accuracy and
// gradient at the reference's gridworld sizes (25 trajectories of 60 steps, GRU 256, K = 10, 15 negatives), float.
// Each bound is stated with its reason and reported beside its measured value (tests/bounds.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/cpc_model.h"
#include "tests/belief_episodes.h"
#include "tests/bounds.h"
#include "tests/cpc_runs.h"
#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"

using namespace dyn;

namespace {

struct CpcRun {
  CpcLossStats st;
  std::vector<float> logits, grad;
};

CpcRun run_cpc(Backend b, const HostEpisodes& e, const CpcShape& shape, const CpcPlan& plan) {
  ParamLayout layout;
  const CpcModel<float> model(b, shape, layout);
  ParamBlob<float> params(b, layout, 7);
  const std::vector<float> obs_f(e.obs.begin(), e.obs.end()), rew_f(e.rew.begin(), e.rew.end());
  Buffer<float> obs = Buffer<float>::copy_of(b, obs_f), rew = Buffer<float>::copy_of(b, rew_f);
  Buffer<int32_t> act = Buffer<int32_t>::copy_of(b, e.act);
  EpisodeBatchView<float> view;
  view.steps = e.steps;
  view.batch = e.batch;
  view.obs = obs.data();
  view.act = act.data();
  view.rew = rew.data();
  CpcLossWorkspace<float> ws;
  params.grad.zero();
  const CpcLossStats st = model.loss(params.value.data(), params.grad.data(), view, plan, ws);
  return CpcRun{st, ws.logits.to_host(), params.grad.to_host()};
}

}  // namespace

TEST(CpcParity, LossAccuracyAndGradientMatchCpu) {
  DYN_REQUIRE_CUDA();
  const HostEpisodes e = random_episodes(60, 25, 4, 21);
  CpcShape shape;  // the reference's gridworld sizes
  const CpcPlan plan = plan_cpc(60, 25, shape.lookahead, shape.negatives, 3, 0);
  const CpcRun c = run_cpc(Backend::cpu, e, shape, plan), g = run_cpc(Backend::cuda, e, shape, plan);
  // float GEMMs over 1,525 rows (cuBLAS and OpenBLAS sum in other orders) through LayerNorms and a GRU of 256
  DYN_EXPECT_WITHIN("logits_rel_l2", rel_l2(g.logits, c.logits), 1e-4);
  DYN_EXPECT_WITHIN("loss_abs_diff", std::fabs(g.st.loss - c.st.loss), 1e-4 * std::fabs(c.st.loss));
  // a hit flips only where the positive and the best negative tie to within the rounding
  DYN_EXPECT_WITHIN("accuracy_abs_diff", std::fabs(g.st.accuracy - c.st.accuracy), 2e-3);
  DYN_EXPECT_WITHIN("grad_rel_l2", rel_l2(g.grad, c.grad), 1e-3);
}

// A seed batch's CPC losses in one call on CUDA (strided-batched GEMMs over the runs, every pass over pairs, anchors
// and z rows one launch) against each run alone on the CPU: 4 runs of 25 trajectories of 60 steps at the reference's
// gridworld CPC sizes.
TEST(CpcParity, SeedBatchMatchesEachRunAloneOnCpu) {
  DYN_REQUIRE_CUDA();
  const dyn_test::CpcRunsData data(CpcShape{}, 60, 25, 4);
  const dyn_test::CpcRunsResult cpu = dyn_test::cpc_losses_alone(Backend::cpu, data);
  const dyn_test::CpcRunsResult gpu = dyn_test::cpc_losses_batch(Backend::cuda, data);
  for (int s = 0; s < data.runs; ++s) {
    const std::string at = "run" + std::to_string(s) + "/";
    const CpcLossStats &c = cpu.stats[size_t(s)], &g = gpu.stats[size_t(s)];
    // as LossAccuracyAndGradientMatchCpu: float GEMMs in another order through LayerNorms and a GRU of 256
    DYN_EXPECT_WITHIN(at + "loss_abs_diff", std::fabs(g.loss - c.loss), 1e-4 * std::fabs(c.loss));
    DYN_EXPECT_WITHIN(at + "accuracy_abs_diff", std::fabs(g.accuracy - c.accuracy), 2e-3);
  }
  DYN_EXPECT_WITHIN("grad_rel_l2", rel_l2(gpu.grad, cpu.grad), 1e-3);
}
