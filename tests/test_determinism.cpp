// Determinism (EnvPool-style): the same seed gives a bit-identical 1000-step rollout, a different seed a
// different one, and the number of CPU threads does not change anything.
#include <gtest/gtest.h>
#include <omp.h>

#include "tests/rollout_trace.h"

using namespace dyn;

namespace {
GridParams with_seed(uint32_t seed, SessionModel model = SessionModel::poisson) {
  GridParams p;
  p.seed = seed;
  p.session.model = model;
  p.session.switch_prob = 0.05f;
  return p;
}
}  // namespace

TEST(Determinism, SameSeedSameRollout) {
  for (SessionModel m : {SessionModel::poisson, SessionModel::bernoulli}) {
    const RolloutTrace a = record_rollout(Backend::cpu, with_seed(0, m), ScriptedPolicy::random, 256, 1000);
    const RolloutTrace b = record_rollout(Backend::cpu, with_seed(0, m), ScriptedPolicy::random, 256, 1000);
    EXPECT_TRUE(a == b);
  }
}

TEST(Determinism, DifferentSeedDifferentRollout) {
  const RolloutTrace a = record_rollout(Backend::cpu, with_seed(0), ScriptedPolicy::random, 256, 1000);
  const RolloutTrace b = record_rollout(Backend::cpu, with_seed(1), ScriptedPolicy::random, 256, 1000);
  EXPECT_FALSE(a == b);
  EXPECT_NE(a.actions, b.actions);
  EXPECT_NE(a.session_end, b.session_end) << "session lengths depend on the seed";
  // and the oracle, whose actions are deterministic given the state, still sees different goals
  const RolloutTrace c = record_rollout(Backend::cpu, with_seed(0), ScriptedPolicy::oracle, 256, 1000);
  const RolloutTrace d = record_rollout(Backend::cpu, with_seed(1), ScriptedPolicy::oracle, 256, 1000);
  EXPECT_NE(c.obs, d.obs);
}

TEST(Determinism, ThreadCountDoesNotMatter) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  // enough envs that the CPU loop really runs on several threads (kParallelForMinCpu)
  const RolloutTrace one = record_rollout(Backend::cpu, with_seed(7), ScriptedPolicy::random, 20000, 100);
  omp_set_num_threads(threads > 1 ? threads : 2);
  const RolloutTrace many = record_rollout(Backend::cpu, with_seed(7), ScriptedPolicy::random, 20000, 100);
  omp_set_num_threads(threads);
  EXPECT_TRUE(one == many);
}

TEST(Determinism, EnvsAreIndependentOfBatchSize) {
  // env i's stream depends on (seed, i, step) only: the first 100 envs of a 1000-env batch equal a 100-env batch
  const RolloutTrace small = record_rollout(Backend::cpu, with_seed(3), ScriptedPolicy::random, 100, 120);
  const RolloutTrace big = record_rollout(Backend::cpu, with_seed(3), ScriptedPolicy::random, 1000, 120);
  for (int t = 0; t < 120; ++t)
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(small.reward[t * 100 + i], big.reward[t * 1000 + i]);
      ASSERT_EQ(small.session_end[t * 100 + i], big.session_end[t * 1000 + i]);
    }
}
