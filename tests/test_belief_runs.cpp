// A seed batch's belief losses in one call (belief_loss_runs) against each run's alone (belief_loss): every run's
// loss terms and gradients bit for bit on the CPU, for DynaMITE, VariBAD, subsampled ELBOs and a continuous-action
// model with the state decoder and landings; and the concatenated decode plan's bookkeeping.
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "algo/belief_model.h"
#include "tests/belief_runs.h"

using namespace dyn;
using namespace dyn_test;

TEST(BeliefLossRuns, SeedBatchEqualsEachRunAlone) {
  for (const auto& [name, c] : belief_runs_cases()) {
    SCOPED_TRACE(name);
    const BeliefRunsData data(c);
    const BeliefRunsResult alone = belief_losses_alone(Backend::cpu, data);
    const BeliefRunsResult batch = belief_losses_batch(Backend::cpu, data);
    ASSERT_EQ(batch.stats.size(), size_t(c.runs));
    for (int s = 0; s < c.runs; ++s) {
      const BeliefLossStats &a = alone.stats[size_t(s)], &b = batch.stats[size_t(s)];
      EXPECT_EQ(b.pairs, a.pairs) << "run " << s;
      EXPECT_EQ(b.total, a.total) << "run " << s;
      EXPECT_EQ(b.recon, a.recon) << "run " << s;
      EXPECT_EQ(b.state_recon, a.state_recon) << "run " << s;
      EXPECT_EQ(b.kl, a.kl) << "run " << s;
      EXPECT_EQ(b.consistency, a.consistency) << "run " << s;
      EXPECT_EQ(b.bce, a.bce) << "run " << s;
      EXPECT_GT(a.total, 0.0) << "run " << s;
    }
    if (c.shape.state_decoder) {
      EXPECT_GT(alone.stats[0].state_recon, 0.0);
    }
    ASSERT_EQ(batch.grad.size(), alone.grad.size());
    EXPECT_EQ(std::memcmp(batch.grad.data(), alone.grad.data(), alone.grad.size() * sizeof(float)), 0)
        << "the batch's gradients differ from the runs' alone";
    // the runs are different problems: their plans are ragged and their gradients differ
    const size_t P = alone.grad.size() / size_t(c.runs);
    EXPECT_NE(std::memcmp(alone.grad.data(), alone.grad.data() + P, P * sizeof(float)), 0);
    if (c.loss.session_recon && c.loss.decode_samples == 0) {
      EXPECT_NE(alone.stats[0].pairs, alone.stats[1].pairs) << "the test wants ragged plans";
    }
  }
}

TEST(BeliefLossRuns, ConcatenatedPlanShiftsEachRunsRowsAndPairs) {
  const int T = 6, B = 3;
  std::vector<DecodePlan> plans;
  for (uint32_t s = 0; s < 3; ++s) {
    const HostEpisodes e = random_episodes(T, B, 3, 40 + s);
    plans.push_back(plan_decodes(e.sid, T, B, true));
  }
  const DecodePlan all = concat_plans(plans, T, B);
  ASSERT_EQ(all.runs(), 3);
  ASSERT_EQ(all.offset.size(), size_t(3 * (T + 1) * B + 1));
  ASSERT_EQ(all.tr_offset.size(), size_t(3 * T * B + 1));
  int64_t pairs = 0, consistency = 0;
  for (size_t s = 0; s < plans.size(); ++s) {
    const DecodePlan& p = plans[s];
    EXPECT_EQ(all.run_pairs[s], pairs);
    EXPECT_EQ(all.run_consistency_pairs[s], p.consistency_pairs);
    // run s's pairs decode its own transitions, shifted to its block
    for (int64_t q = 0; q < p.pairs; ++q)
      EXPECT_EQ(all.pair_tr[size_t(pairs + q)], p.pair_tr[size_t(q)] + int32_t(s) * T * B);
    for (size_t i = 0; i + 1 < p.offset.size(); ++i) EXPECT_EQ(all.offset[s * (T + 1) * B + i], p.offset[i] + pairs);
    for (size_t i = 0; i + 1 < p.tr_offset.size(); ++i) EXPECT_EQ(all.tr_offset[s * T * B + i], p.tr_offset[i] + pairs);
    pairs += p.pairs;
    consistency += p.consistency_pairs;
  }
  EXPECT_EQ(all.pairs, pairs);
  EXPECT_EQ(all.run_pairs.back(), pairs);
  EXPECT_EQ(all.consistency_pairs, consistency);
  EXPECT_EQ(all.offset.back(), pairs);
  // a plan of another shape, or one already concatenated, is refused
  EXPECT_THROW(concat_plans({plans[0], plan_decodes(random_episodes(T + 1, B, 3, 9).sid, T + 1, B, true)}, T, B),
               std::invalid_argument);
  EXPECT_THROW(concat_plans({all}, T, B), std::invalid_argument);
}
