// CUDA vs CPU parity of the belief learners (label gpu): the belief loss and its gradient on the same batch
// (DynaMITE with the conditioning inputs built in the encoder's pass, and VariBAD), the first DynaMITE iterations
// with belief steps, and CUDA Graph replay of the belief learner's collect against the eager path. Float results
// agree to a stated relative tolerance (cuBLAS and OpenBLAS sum in different orders).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/belief_learner.h"
#include "algo/belief_model.h"
#include "tests/belief_episodes.h"
#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"

using namespace dyn;

namespace {

struct LossRun {
  BeliefLossStats st;
  std::vector<float> grad;
};

LossRun run_loss(Backend b, const HostEpisodes& e, const BeliefConfig& bc) {
  ParamLayout layout;
  const BeliefModel<float> model(b, bc.shape, layout);
  ParamBlob<float> params(b, layout, 7);
  const std::vector<float> obs_f(e.obs.begin(), e.obs.end()), rew_f(e.rew.begin(), e.rew.end());
  Buffer<float> obs = Buffer<float>::copy_of(b, obs_f), rew = Buffer<float>::copy_of(b, rew_f);
  Buffer<int32_t> act = Buffer<int32_t>::copy_of(b, e.act), sid = Buffer<int32_t>::copy_of(b, e.sid);
  Buffer<uint8_t> send = Buffer<uint8_t>::copy_of(b, e.send);
  const EpisodeBatchView<float> view{e.steps, e.batch, obs.data(), act.data(), rew.data(), sid.data(), send.data()};
  BeliefLossWorkspace<float> ws;
  const int64_t n = int64_t(e.steps + 1) * e.batch * bc.shape.latent;
  ws.eps = Buffer<float>(b, size_t(n));
  draw_belief_noise(b, 11u, 0u, n, ws.eps.data());
  const DecodePlan plan = plan_decodes(e.sid, e.steps, e.batch, bc.loss.session_recon);
  params.grad.zero();
  const BeliefLossStats st =
      belief_loss<float>(model, params.value.data(), params.grad.data(), view, plan, bc.loss, nullptr, ws);
  return LossRun{st, params.grad.to_host()};
}

}  // namespace

TEST(BeliefParity, LossAndGradientMatchCpu) {
  DYN_REQUIRE_CUDA();
  const HostEpisodes e = random_episodes(60, 25, 4, 21);  // the learner's batch: 25 episodes of the 60-step horizon
  for (bool varibad : {false, true}) {
    const BeliefConfig bc = varibad ? BeliefConfig::varibad() : BeliefConfig::dynamite();
    const LossRun c = run_loss(Backend::cpu, e, bc), g = run_loss(Backend::cuda, e, bc);
    const char* name = varibad ? "varibad" : "dynamite";
    EXPECT_EQ(g.st.pairs, c.st.pairs) << name;
    EXPECT_NEAR(g.st.total, c.st.total, 1e-4 * std::fabs(c.st.total)) << name;
    EXPECT_NEAR(g.st.recon, c.st.recon, 1e-4 * std::fabs(c.st.recon)) << name;
    EXPECT_NEAR(g.st.kl, c.st.kl, 1e-4 * std::fabs(c.st.kl) + 1e-6) << name;
    EXPECT_NEAR(g.st.consistency, c.st.consistency, 1e-4 * std::fabs(c.st.consistency) + 1e-6) << name;
    EXPECT_NEAR(g.st.bce, c.st.bce, 1e-4 * std::fabs(c.st.bce) + 1e-6) << name;
    EXPECT_LT(rel_l2(g.grad, c.grad), 1e-4) << name;
  }
}

// Two DynaMITE iterations on each backend from the same seed (32 envs: the second iteration's replay holds a belief
// batch, so it runs the belief steps): same frames, and statistics within float tolerance — a sampled action can
// in rare cases differ at a CDF tie, so the returns get a loose bound.
TEST(BeliefParity, FirstIterationsMatchCpu) {
  DYN_REQUIRE_CUDA();
  GridParams env;
  env.seed = 12;
  GridBelief cpu(Backend::cpu, env, 32, PpoConfig{}, BeliefConfig::dynamite()),
      gpu(Backend::cuda, env, 32, PpoConfig{}, BeliefConfig::dynamite());
  for (int it = 0; it < 2; ++it) {
    const IterationStats c = cpu.iterate(), g = gpu.iterate();
    EXPECT_EQ(g.frames, c.frames);
    EXPECT_NEAR(g.train_return, c.train_return, 0.05 * std::fabs(c.train_return) + 0.05) << "iteration " << it;
    EXPECT_NEAR(g.value_loss, c.value_loss, 1e-2 * std::fabs(c.value_loss) + 1e-4) << "iteration " << it;
    EXPECT_NEAR(g.entropy, c.entropy, 1e-3 * c.entropy) << "iteration " << it;
    if (it == 1) {
      for (const char* k : {"belief_loss", "belief_recon", "belief_kl"})
        EXPECT_NEAR(g.metric(k), c.metric(k), 1e-2 * std::fabs(c.metric(k)) + 1e-4) << k;
    }
  }
}

// The belief learner's collect (online encoder, session closing, episode assembly, replay push with a device head)
// is captured once and replayed: four iterations with and without graphs give the same statistics.
TEST(GraphReplay, DynamiteMatchesEager) {
  DYN_REQUIRE_CUDA();
  GridParams env;
  env.seed = 9;
  PpoConfig eager_cfg;
  eager_cfg.cuda_graphs = false;
  GridBelief graphed(Backend::cuda, env, 32, PpoConfig{}, BeliefConfig::dynamite()),
      eager(Backend::cuda, env, 32, eager_cfg, BeliefConfig::dynamite());
  const int iterations = 4;
  for (int it = 0; it < iterations; ++it) {
    const IterationStats g = graphed.iterate(), e = eager.iterate();
    EXPECT_EQ(g.episodes, e.episodes) << "iteration " << it;
    EXPECT_NEAR(g.train_return, e.train_return, 1e-9 + 1e-6 * std::fabs(e.train_return)) << "iteration " << it;
    EXPECT_NEAR(g.value_loss, e.value_loss, 1e-6 * std::fabs(e.value_loss) + 1e-7) << "iteration " << it;
    EXPECT_NEAR(g.metric("term_recall"), e.metric("term_recall"), 1e-9) << "iteration " << it;
    if (it >= 1) {
      EXPECT_NEAR(g.metric("belief_loss"), e.metric("belief_loss"), 1e-5 * std::fabs(e.metric("belief_loss")));
    }
  }
  EXPECT_GE(graphed.graph_replays(), 3 * (iterations - 1));
  EXPECT_EQ(eager.graph_replays(), 0);
}
