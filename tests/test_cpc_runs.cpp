// A seed batch's CPC losses in one call (CpcModel::loss_runs) against each run's alone (CpcModel::loss): every run's
// loss, accuracies and gradients bit for bit on the CPU, with discrete and continuous actions; and the concatenated
// plan's bookkeeping (each run's pairs, z rows and groups shifted to its block).
#include <gtest/gtest.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "tests/cpc_runs.h"

using namespace dyn;
using namespace dyn_test;

namespace {

CpcShape small_cpc(bool discrete) {
  CpcShape s;
  s.actions = discrete ? 5 : 2;
  s.discrete_actions = discrete;
  s.embed_s = 4;
  s.embed_a = 3;
  s.embed_r = 2;
  s.hidden = 8;
  s.lookahead = 3;
  s.negatives = 4;
  return s;
}

}  // namespace

TEST(CpcLossRuns, SeedBatchEqualsEachRunAlone) {
  for (bool discrete : {true, false}) {
    SCOPED_TRACE(discrete ? "discrete" : "continuous");
    const CpcRunsData data(small_cpc(discrete), 9, 4, 3);
    const CpcRunsResult alone = cpc_losses_alone(Backend::cpu, data);
    const CpcRunsResult batch = cpc_losses_batch(Backend::cpu, data);
    ASSERT_EQ(batch.stats.size(), size_t(data.runs));
    for (int s = 0; s < data.runs; ++s) {
      const CpcLossStats &a = alone.stats[size_t(s)], &b = batch.stats[size_t(s)];
      EXPECT_EQ(b.loss, a.loss) << "run " << s;
      EXPECT_EQ(b.accuracy, a.accuracy) << "run " << s;
      EXPECT_EQ(b.accuracy_k, a.accuracy_k) << "run " << s;
      EXPECT_GT(a.loss, 0.0) << "run " << s;
    }
    ASSERT_EQ(batch.grad.size(), alone.grad.size());
    EXPECT_EQ(std::memcmp(batch.grad.data(), alone.grad.data(), alone.grad.size() * sizeof(float)), 0)
        << "the batch's gradients differ from the runs' alone";
    const size_t P = alone.grad.size() / size_t(data.runs);  // the runs are different problems
    EXPECT_NE(std::memcmp(alone.grad.data(), alone.grad.data() + P, P * sizeof(float)), 0);
    EXPECT_NE(alone.stats[0].loss, alone.stats[1].loss);
  }
}

TEST(CpcLossRuns, ConcatenatedPlanShiftsEachRunsPairsAndGroups) {
  const int T = 7, B = 3, K = 3, N = 4, J = N + 1;
  std::vector<CpcPlan> plans;
  for (uint32_t s = 0; s < 3; ++s) plans.push_back(plan_cpc(T, B, K, N, 60 + s, 1));
  const CpcPlan all = concat_cpc_plans(plans);
  const int S = 3;
  const int64_t A = plans[0].anchors(), R = plans[0].rows();
  ASSERT_EQ(all.runs, S);
  ASSERT_EQ(all.z_row.size(), size_t(K * S * A * J));
  ASSERT_EQ(all.z_offset.size(), size_t(K * (S * R + 1)));
  EXPECT_EQ(all.valid_anchors, 3 * plans[0].valid_anchors);
  for (int k = 0; k < K; ++k)
    for (int s = 0; s < S; ++s)
      for (int64_t a = 0; a < A; ++a) {
        const size_t at = size_t((int64_t(k) * S + s) * A + a), own = size_t(int64_t(k) * A + a);
        EXPECT_EQ(all.valid[at], plans[size_t(s)].valid[own]);
        for (int j = 0; j < J; ++j)
          EXPECT_EQ(all.z_row[at * J + size_t(j)], int32_t(s * R) + plans[size_t(s)].z_row[own * J + size_t(j)]);
      }
  // every valid pair of k is grouped under its (shifted) z row exactly once
  for (int k = 0; k < K; ++k) {
    const int32_t* off = all.z_offset.data() + int64_t(k) * (S * R + 1);
    std::vector<int> seen(size_t(S * A * J), 0);
    for (int64_t r = 0; r < S * R; ++r)
      for (int32_t q = off[r]; q < off[r + 1]; ++q) {
        const int32_t p = all.z_pair[size_t(q)];
        EXPECT_EQ(all.z_row[size_t(int64_t(k) * S * A * J + p)], r);
        ++seen[size_t(p)];
      }
    for (int64_t p = 0; p < S * A * J; ++p) EXPECT_EQ(seen[size_t(p)], all.valid[size_t(int64_t(k) * S * A + p / J)]);
  }
  // plans of another shape, or already concatenated, are refused
  EXPECT_THROW(concat_cpc_plans({plans[0], plan_cpc(T + 1, B, K, N, 1, 1)}), std::invalid_argument);
  EXPECT_THROW(concat_cpc_plans({all}), std::invalid_argument);
}
