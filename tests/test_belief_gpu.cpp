// CUDA vs CPU parity of the belief learners (label gpu): the belief loss and its gradient on the same batch
// (DynaMITE with the conditioning inputs built in the encoder's pass, and VariBAD), four iterations of each learner
// with belief steps, and CUDA Graph replay of their collect (two horizon phases) against the eager path. Each bound
// is stated with its reason and reported beside its measured value (tests/bounds.h).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "algo/belief_learner.h"
#include "algo/belief_model.h"
#include "tests/belief_episodes.h"
#include "tests/belief_runs.h"
#include "tests/gpu_guard.h"
#include "tests/gradcheck.h"
#include "tests/learner_parity.h"

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
    // float GEMMs and sums over 25 × 61 latents and their decoded pairs
    const std::string at = std::string(name) + "/";
    DYN_EXPECT_WITHIN(at + "total_abs_diff", std::fabs(g.st.total - c.st.total), 1e-4 * std::fabs(c.st.total));
    DYN_EXPECT_WITHIN(at + "recon_abs_diff", std::fabs(g.st.recon - c.st.recon), 1e-4 * std::fabs(c.st.recon));
    DYN_EXPECT_WITHIN(at + "kl_abs_diff", std::fabs(g.st.kl - c.st.kl), 1e-4 * std::fabs(c.st.kl) + 1e-6);
    DYN_EXPECT_WITHIN(at + "consistency_abs_diff", std::fabs(g.st.consistency - c.st.consistency),
                      1e-4 * std::fabs(c.st.consistency) + 1e-6);
    DYN_EXPECT_WITHIN(at + "bce_abs_diff", std::fabs(g.st.bce - c.st.bce), 1e-4 * std::fabs(c.st.bce) + 1e-6);
    DYN_EXPECT_WITHIN(at + "grad_rel_l2", rel_l2(g.grad, c.grad), 1e-4);
  }
}

// A seed batch's belief losses in one call on CUDA (strided-batched GEMMs over the runs, one product per run for the
// decoders' ragged layers, segmented CUB sums) against each run alone on the CPU, for every case of
// tests/belief_runs.h.
TEST(BeliefParity, SeedBatchLossMatchesEachRunAloneOnCpu) {
  DYN_REQUIRE_CUDA();
  for (const auto& [name, c] : dyn_test::belief_runs_cases()) {
    const dyn_test::BeliefRunsData data(c);
    const dyn_test::BeliefRunsResult cpu = dyn_test::belief_losses_alone(Backend::cpu, data);
    const dyn_test::BeliefRunsResult gpu = dyn_test::belief_losses_batch(Backend::cuda, data);
    for (int s = 0; s < c.runs; ++s) {
      const BeliefLossStats &a = cpu.stats[size_t(s)], &g = gpu.stats[size_t(s)];
      const std::string at = std::string(name) + "/run" + std::to_string(s) + "/";
      EXPECT_EQ(g.pairs, a.pairs) << at;
      // float GEMMs and sums over a few hundred latents and their pairs, in another order
      DYN_EXPECT_WITHIN(at + "total_abs_diff", std::fabs(g.total - a.total), 1e-4 * std::fabs(a.total));
      DYN_EXPECT_WITHIN(at + "recon_abs_diff", std::fabs(g.recon - a.recon), 1e-4 * std::fabs(a.recon) + 1e-6);
      DYN_EXPECT_WITHIN(at + "state_recon_abs_diff", std::fabs(g.state_recon - a.state_recon),
                        1e-4 * std::fabs(a.state_recon) + 1e-6);
      DYN_EXPECT_WITHIN(at + "kl_abs_diff", std::fabs(g.kl - a.kl), 1e-4 * std::fabs(a.kl) + 1e-6);
    }
    DYN_EXPECT_WITHIN(std::string(name) + "/grad_rel_l2", rel_l2(gpu.grad, cpu.grad), 1e-4);
  }
}

// Four iterations of DynaMITE and of VariBAD on each backend from the same seed (32 envs: from the second iteration
// the replay holds a belief batch, so the belief steps run; replay sampling is on the host, identical on both).
TEST(BeliefParity, IterationsMatchCpu) {
  DYN_REQUIRE_CUDA();
  for (bool varibad : {false, true}) {
    EnvConfig env = default_env_config("gridworld", 12);
    const BeliefConfig bc = varibad ? BeliefConfig::varibad() : BeliefConfig::dynamite();
    BeliefLearner cpu(Backend::cpu, env, 32, PpoConfig{}, bc), gpu(Backend::cuda, env, 32, PpoConfig{}, bc);
    SCOPED_TRACE(varibad ? "varibad" : "dynamite");
    dyn_test::expect_iterations_match_cpu(cpu, gpu, 4, 60, 32, env.session.horizon, 1.1,
                                          {"belief_loss", "belief_recon", "belief_kl", "term_precision"});
  }
}

// The belief learner's collect (online encoder, session closing, episode assembly, replay push with a device head)
// is captured and replayed, for DynaMITE and VariBAD, with a rollout of half the horizon (two collect graphs): six
// iterations with and without graphs give the same statistics.
TEST(GraphReplay, BeliefLearnersMatchEager) {
  DYN_REQUIRE_CUDA();
  for (bool varibad : {false, true}) {
    EnvConfig env = default_env_config("gridworld", 9);
    const BeliefConfig bc = varibad ? BeliefConfig::varibad() : BeliefConfig::dynamite();
    PpoConfig graphed_cfg, eager_cfg;
    graphed_cfg.rollout_steps = eager_cfg.rollout_steps = 30;
    eager_cfg.cuda_graphs = false;
    BeliefLearner graphed(Backend::cuda, env, 32, graphed_cfg, bc), eager(Backend::cuda, env, 32, eager_cfg, bc);
    SCOPED_TRACE(varibad ? "varibad" : "dynamite");
    dyn_test::expect_graphs_match_eager(graphed, eager, 6, 2 + 2,
                                        {"term_recall", "belief_loss", "belief_recon", "belief_kl"});
  }
}
