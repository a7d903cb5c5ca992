// The CPU-vs-GPU learner comparison of tests/learner_parity.h, checked on the CPU: two CPU learners from the same
// seed agree exactly under it (no flipped action, every difference 0), and learners from different seeds fail it,
// so the GPU tests built on it can fail.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <string>

#include "algo/ppo.h"
#include "tests/learner_parity.h"

using namespace dyn;

namespace {

void compare_cpu_learners(uint32_t seed_a, uint32_t seed_b) {
  const EnvConfig a = default_env_config("gridworld", seed_a), b = default_env_config("gridworld", seed_b);
  PpoLearner first(Backend::cpu, a, 64, PpoConfig{}), second(Backend::cpu, b, 64, PpoConfig{});
  dyn_test::expect_iterations_match_cpu(first, second, 2, 60, 64, a.session.horizon, 1.1);
}

}  // namespace

TEST(LearnerParity, SameSeedOnOneBackendAgreesExactly) { compare_cpu_learners(3, 3); }

TEST(LearnerParity, OtherSeedFails) {
  ::testing::TestPartResultArray failures;
  {
    const ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    compare_cpu_learners(3, 4);
  }
  std::string seen;
  for (int i = 0; i < failures.size(); ++i) seen += failures.GetTestPartResult(i).message();
  for (const char* figure : {"flipped_action_fraction", "value_loss_abs_diff", "grad_norm_abs_diff"})
    EXPECT_NE(seen.find(figure), std::string::npos) << figure << " should have failed; failures: " << seen;
}
