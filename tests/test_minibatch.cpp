// The PPO update's minibatch plan on the CPU, through the very shuffles and gathers PpoCore runs: every sample
// exactly once per epoch (also when the minibatches do not divide T·N), every field of a gathered row from the same
// rollout row, and a recurrent policy's minibatches whole env sequences in time order with their starting states.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "algo/minibatch.h"
#include "algo/ppo_config.h"
#include "kernels/buffer.h"
#include "kernels/shuffle.h"

using namespace dyn;

namespace {

constexpr int kIn = 3, kAct = 2;

// A rollout of `rows` rows whose every field encodes its row number j, and a minibatch buffer of `m` rows.
struct Rollout {
  std::vector<float> in, logp, adv, ret, val, act_value;
  std::vector<int32_t> act_index;
  std::vector<uint8_t> reset;
  std::vector<float> m_in, m_logp, m_adv, m_ret, m_v, m_act_value;
  std::vector<int32_t> m_act_index;
  std::vector<uint8_t> m_reset;

  Rollout(int64_t rows, int64_t m)
      : in(size_t(rows) * kIn),
        logp(rows),
        adv(rows),
        ret(rows),
        val(rows),
        act_value(size_t(rows) * kAct),
        act_index(rows),
        reset(rows),
        m_in(size_t(m) * kIn, -1),
        m_logp(m, -1),
        m_adv(m, -1),
        m_ret(m, -1),
        m_v(m, -1),
        m_act_value(size_t(m) * kAct, -1),
        m_act_index(m, -1),
        m_reset(m, 7) {
    for (int64_t j = 0; j < rows; ++j) {
      for (int k = 0; k < kIn; ++k) in[size_t(j * kIn + k)] = float(j * 10 + k);
      for (int k = 0; k < kAct; ++k) act_value[size_t(j * kAct + k)] = float(j) + 0.25f * float(k + 1);
      logp[size_t(j)] = float(j) + 0.1f;
      adv[size_t(j)] = float(j) + 0.2f;
      ret[size_t(j)] = float(j) + 0.3f;
      val[size_t(j)] = float(j) + 0.4f;
      act_index[size_t(j)] = int32_t(j % 5);
      reset[size_t(j)] = uint8_t(j % 3 == 0);
    }
  }
  SampleRows rows(bool recurrent) {
    return {kIn,
            kAct,
            in.data(),
            logp.data(),
            adv.data(),
            ret.data(),
            val.data(),
            act_value.data(),
            act_index.data(),
            recurrent ? reset.data() : nullptr,
            m_in.data(),
            m_logp.data(),
            m_adv.data(),
            m_ret.data(),
            m_v.data(),
            m_act_value.data(),
            m_act_index.data(),
            m_reset.data()};
  }
  // The rollout row that minibatch row i came from, after checking that every field of row i came from it.
  int64_t source(int64_t i, bool recurrent) const {
    const int64_t j = int64_t(m_in[size_t(i * kIn)]) / 10;
    for (int k = 0; k < kIn; ++k) EXPECT_EQ(m_in[size_t(i * kIn + k)], in[size_t(j * kIn + k)]) << i;
    for (int k = 0; k < kAct; ++k) EXPECT_EQ(m_act_value[size_t(i * kAct + k)], act_value[size_t(j * kAct + k)]) << i;
    EXPECT_EQ(m_logp[size_t(i)], logp[size_t(j)]) << i;
    EXPECT_EQ(m_adv[size_t(i)], adv[size_t(j)]) << i;
    EXPECT_EQ(m_ret[size_t(i)], ret[size_t(j)]) << i;
    EXPECT_EQ(m_v[size_t(i)], val[size_t(j)]) << i;
    EXPECT_EQ(m_act_index[size_t(i)], act_index[size_t(j)]) << i;
    if (recurrent) {
      EXPECT_EQ(m_reset[size_t(i)], reset[size_t(j)]) << i;
    }
    return j;
  }
};

// Every epoch's shuffle, drawn as PpoCore draws them.
std::vector<int32_t> shuffles(int64_t items, int epochs, uint32_t seed) {
  PermutationSampler sampler(Backend::cpu, items, epochs);
  Buffer<uint32_t> draws(Backend::cpu, 1);
  draws.zero();
  const auto seeds = Buffer<uint32_t>::copy_of(Backend::cpu, std::vector<uint32_t>{seed});
  Buffer<int32_t> perm(Backend::cpu, size_t(epochs) * size_t(items));
  sampler.draw_runs(RunDraws{seeds.data(), draws.data(), 1, epochs}, perm.data());
  return perm.to_host();
}

}  // namespace

TEST(MinibatchPlan, SizesDifferByAtMostOneAndCoverEveryItem) {
  for (auto [items, k] : std::vector<std::pair<int64_t, int>>{{35, 4}, {40960, 8}, {7, 7}, {10, 1}, {1001, 32}}) {
    const MinibatchPlan plan(items, k);
    int64_t covered = 0, lo = items, hi = 0;
    for (int mb = 0; mb < k; ++mb) {
      EXPECT_EQ(plan.begin(mb), covered) << items << "/" << k << ": minibatches are consecutive runs of the shuffle";
      covered += plan.count(mb);
      lo = std::min(lo, plan.count(mb));
      hi = std::max(hi, plan.count(mb));
    }
    EXPECT_EQ(covered, items) << items << "/" << k;
    EXPECT_LE(hi - lo, 1) << items << "/" << k;
    EXPECT_EQ(plan.largest(), hi) << items << "/" << k;
    EXPECT_EQ(plan.even(), items % k == 0);
  }
}

TEST(MinibatchPlan, RefusesMoreMinibatchesThanItemsNamingTheKey) {
  for (int k : {0, -1, 36}) {
    try {
      MinibatchPlan(35, k);
      ADD_FAILURE() << k << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("train.minibatches = " + std::to_string(k)), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("1 to 35"), std::string::npos) << e.what();
    }
  }
}

// Feed-forward: T·N = 35 samples in 4 minibatches (8, 9, 9, 9) over 3 epochs.
TEST(MinibatchPlan, FeedForwardUsesEverySampleOncePerEpoch) {
  const int T = 7, N = 5, epochs = 3, k = 4;
  const MinibatchPlan plan(int64_t(T) * N, k);
  const std::vector<int32_t> perm = shuffles(plan.items, epochs, 11);
  Rollout r(plan.items, plan.largest());
  std::vector<std::vector<int64_t>> order(epochs);
  for (int e = 0; e < epochs; ++e) {
    std::vector<int> used(size_t(plan.items), 0);
    for (int mb = 0; mb < k; ++mb) {
      const int32_t* idx = perm.data() + e * plan.items + plan.begin(mb);
      gather_samples(Backend::cpu, r.rows(false), idx, plan.count(mb));
      for (int64_t i = 0; i < plan.count(mb); ++i) {
        const int64_t j = r.source(i, false);
        ASSERT_GE(j, 0);
        ASSERT_LT(j, plan.items);
        EXPECT_EQ(j, idx[i]);
        ++used[size_t(j)];
        order[size_t(e)].push_back(j);
      }
    }
    for (int64_t j = 0; j < plan.items; ++j) EXPECT_EQ(used[size_t(j)], 1) << "epoch " << e << " sample " << j;
  }
  EXPECT_NE(order[0], order[1]) << "each epoch draws its own shuffle";
  EXPECT_NE(order[1], order[2]);
}

// Recurrent: N = 8 env sequences of T = 6 steps in 4 minibatches of 2 whole sequences, starting states [N, H = 3].
TEST(MinibatchPlan, RecurrentMinibatchesAreWholeSequencesWithTheirStartingStates) {
  const int T = 6, N = 8, H = 3, epochs = 2, k = 4;
  const MinibatchPlan plan(N, k);
  ASSERT_TRUE(plan.even());
  const std::vector<int32_t> perm = shuffles(N, epochs, 5);
  Rollout r(int64_t(T) * N, int64_t(T) * plan.largest());
  std::vector<float> h0(size_t(N) * H), m_h0(size_t(plan.largest()) * H, -1);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h) h0[size_t(n * H + h)] = float(100 * n + h);
  for (int e = 0; e < epochs; ++e) {
    std::vector<int> used(N, 0);
    for (int mb = 0; mb < k; ++mb) {
      const int32_t* envs = perm.data() + e * plan.items + plan.begin(mb);
      const int64_t Nm = plan.count(mb);
      gather_sequences(Backend::cpu, r.rows(true), envs, T, N, Nm, H, h0.data(), m_h0.data());
      for (int64_t j = 0; j < Nm; ++j) {
        const int64_t env = envs[j];
        ++used[size_t(env)];
        for (int t = 0; t < T; ++t)  // row (t, j) of the minibatch [T, Nm] is step t of env `env`
          EXPECT_EQ(r.source(t * Nm + j, true), int64_t(t) * N + env) << "epoch " << e << " mb " << mb << " t " << t;
        for (int h = 0; h < H; ++h) EXPECT_EQ(m_h0[size_t(j * H + h)], h0[size_t(env * H + h)]) << "env " << env;
      }
    }
    for (int n = 0; n < N; ++n) EXPECT_EQ(used[size_t(n)], 1) << "epoch " << e << " env " << n;
  }
}

// train.shuffle = per_env, feed-forward: T = 20 steps × N = 16 envs in M = 8 minibatches (T/M = 2.5, so the slices
// are 2 or 3 steps). Minibatch k holds the same number of steps of every env, every sample once per epoch; and a rank
// with envs [8, 16) alone draws exactly the global minibatches' part from those envs, in the same order.
TEST(MinibatchPlan, PerEnvStepsGiveEveryEnvTheSameShareAndSplitOverRanks) {
  const int T = 20, M = 8;
  const int64_t N = 16, half = 8;
  const MinibatchPlan plan = MinibatchPlan::per_env_steps(T, N, M), local = MinibatchPlan::per_env_steps(T, half, M);
  EXPECT_FALSE(plan.even());
  EXPECT_EQ(plan.largest(), 3 * N);
  std::vector<int32_t> whole(size_t(plan.items)), share(size_t(local.items)), other(size_t(plan.items));
  for (uint32_t draw : {0u, 1u, 7u}) {
    draw_per_env_steps(Backend::cpu, 5u, StepRef(draw), T, N, M, 0, whole.data());
    draw_per_env_steps(Backend::cpu, 5u, StepRef(draw), T, half, M, uint32_t(half), share.data());
    std::vector<int> used(size_t(plan.items), 0);
    for (int k = 0; k < M; ++k) {
      std::vector<int> per_env(size_t(N), 0);
      for (int64_t i = plan.begin(k); i < plan.begin(k + 1); ++i) {
        ASSERT_GE(whole[size_t(i)], 0);
        ASSERT_LT(whole[size_t(i)], plan.items);
        ++used[size_t(whole[size_t(i)])];
        ++per_env[size_t(whole[size_t(i)] % N)];
      }
      for (int64_t e = 0; e < N; ++e) EXPECT_EQ(per_env[size_t(e)], plan.count(k) / N) << "minibatch " << k;
      // the rank's minibatch k, as global sample indices (t·N + 8 + e), is the global minibatch's envs 8..15 part
      std::vector<int32_t> mine, theirs;
      for (int64_t i = local.begin(k); i < local.begin(k + 1); ++i) {
        const int32_t j = share[size_t(i)];
        mine.push_back(int32_t((j / half) * N + half + j % half));
      }
      for (int64_t i = plan.begin(k); i < plan.begin(k + 1); ++i)
        if (whole[size_t(i)] % N >= half) theirs.push_back(whole[size_t(i)]);
      EXPECT_EQ(mine, theirs) << "draw " << draw << " minibatch " << k;
    }
    for (int64_t j = 0; j < plan.items; ++j) EXPECT_EQ(used[size_t(j)], 1) << "sample " << j;
  }
  draw_per_env_steps(Backend::cpu, 5u, StepRef(1u), T, N, M, 0, other.data());
  draw_per_env_steps(Backend::cpu, 5u, StepRef(0u), T, N, M, 0, whole.data());
  EXPECT_NE(whole, other) << "each draw its own order";
  EXPECT_THROW(MinibatchPlan::per_env_steps(T, N, T + 1), std::invalid_argument);
}

// train.shuffle = per_env, recurrent: N = 16 envs in M = 4 minibatches take one env of every block of 4; a rank with
// envs [8, 16) draws the global minibatches' part from its blocks.
TEST(MinibatchPlan, PerEnvBlocksTakeOneEnvOfEveryBlockAndSplitOverRanks) {
  const int M = 4;
  const int64_t N = 16, half = 8;
  std::vector<int32_t> whole(N), share(half);
  for (uint32_t draw : {0u, 3u}) {
    draw_per_env_blocks(Backend::cpu, 9u, StepRef(draw), N, M, 0, whole.data());
    draw_per_env_blocks(Backend::cpu, 9u, StepRef(draw), half, M, uint32_t(half), share.data());
    std::vector<int> used(N, 0);
    for (int k = 0; k < M; ++k)
      for (int64_t b = 0; b < N / M; ++b) {
        const int32_t e = whole[size_t(k * (N / M) + b)];
        EXPECT_EQ(e / M, b) << "minibatch " << k << " takes one env of block " << b;
        ++used[size_t(e)];
        if (b >= half / M) {
          EXPECT_EQ(share[size_t(k * (half / M) + b - half / M)] + half, e) << "minibatch " << k;
        }
      }
    for (int64_t e = 0; e < N; ++e) EXPECT_EQ(used[size_t(e)], 1);
  }
  EXPECT_THROW(draw_per_env_blocks(Backend::cpu, 9u, StepRef(0u), half, M, 2u, share.data()), std::invalid_argument);
}

// A seed batch's gathers, every run in one call: run r's minibatch rows come from its own rollout block (rows r·T·N
// on, values r·(T + 1)·N on) through its own indices, and a recurrent run's starting states from its own h0.
TEST(MinibatchPlan, SeedBatchGathersEveryRunFromItsOwnBlockInOneCall) {
  const int T = 4, runs = 3, H = 3;
  const int64_t N = 5, TN = T * N, stride = 10, m = 7, Nm = 2;
  const RunBlocks blocks{runs, stride, TN, TN + N};
  std::vector<int32_t> idx(size_t(runs * stride), -1);  // [runs, stride]: samples (or envs) per run
  for (int run = 0; run < runs; ++run)
    for (int64_t k = 0; k < m; ++k) idx[size_t(run * stride + k)] = int32_t((3 * k + run) % TN);
  auto expect_row = [&](const Rollout& r, int64_t i, int run, int64_t s, bool recurrent) {
    const int64_t j = run * TN + s, v = run * (TN + N) + s;
    for (int k = 0; k < kIn; ++k) EXPECT_EQ(r.m_in[size_t(i * kIn + k)], r.in[size_t(j * kIn + k)]) << i;
    for (int k = 0; k < kAct; ++k) EXPECT_EQ(r.m_act_value[size_t(i * kAct + k)], r.act_value[size_t(j * kAct + k)]);
    EXPECT_EQ(r.m_logp[size_t(i)], r.logp[size_t(j)]) << i;
    EXPECT_EQ(r.m_adv[size_t(i)], r.adv[size_t(j)]) << i;
    EXPECT_EQ(r.m_ret[size_t(i)], r.ret[size_t(j)]) << i;
    EXPECT_EQ(r.m_v[size_t(i)], r.val[size_t(v)]) << i << ": the run's values hold T + 1 steps";
    EXPECT_EQ(r.m_act_index[size_t(i)], r.act_index[size_t(j)]) << i;
    if (recurrent) {
      EXPECT_EQ(r.m_reset[size_t(i)], r.reset[size_t(j)]) << i;
    }
  };
  Rollout samples(runs * (TN + N), runs * m);
  gather_samples(Backend::cpu, samples.rows(false), idx.data(), m, blocks);
  for (int run = 0; run < runs; ++run)
    for (int64_t k = 0; k < m; ++k) expect_row(samples, run * m + k, run, idx[size_t(run * stride + k)], false);
  // recurrent: sequences j of [T, Nm] per run, envs idx[run, 0..Nm) (each < N)
  for (int run = 0; run < runs; ++run)
    for (int64_t j = 0; j < Nm; ++j) idx[size_t(run * stride + j)] = int32_t((2 * j + run + 1) % N);
  Rollout seqs(runs * (TN + N), runs * T * Nm);
  std::vector<float> h0(size_t(runs * N * H)), m_h0(size_t(runs * Nm * H), -1);
  for (size_t i = 0; i < h0.size(); ++i) h0[i] = float(i);
  gather_sequences(Backend::cpu, seqs.rows(true), idx.data(), T, N, Nm, H, h0.data(), m_h0.data(), blocks);
  for (int run = 0; run < runs; ++run)
    for (int64_t j = 0; j < Nm; ++j) {
      const int64_t env = idx[size_t(run * stride + j)];
      for (int t = 0; t < T; ++t) expect_row(seqs, (run * T + t) * Nm + j, run, t * N + env, true);
      for (int h = 0; h < H; ++h)
        EXPECT_EQ(m_h0[size_t((run * Nm + j) * H + h)], h0[size_t((run * N + env) * H + h)]) << run << " " << env;
    }
}

// The per-env orders of a seed batch in one call: run r's k-th order is the single call's at its seed and counter + k.
TEST(MinibatchPlan, PerEnvOrdersOfRunsAreEachRunsAlone) {
  const int T = 10, M = 4, runs = 2, per_run = 3;
  const int64_t N = 8;
  const std::vector<uint32_t> seeds = {3, 4}, counters = {1, 6};
  const auto seeds_b = Buffer<uint32_t>::copy_of(Backend::cpu, seeds);
  const auto counters_b = Buffer<uint32_t>::copy_of(Backend::cpu, counters);
  const RunDraws draws{seeds_b.data(), counters_b.data(), runs, per_run};
  std::vector<int32_t> steps(size_t(runs * per_run * T * N)), blocks(size_t(runs * per_run * N));
  draw_per_env_steps(Backend::cpu, 0, 0u, T, N, M, 8, steps.data(), draws);
  draw_per_env_blocks(Backend::cpu, 0, 0u, N, M, 8, blocks.data(), draws);
  std::vector<int32_t> one_steps(static_cast<size_t>(T * N)), one_blocks(static_cast<size_t>(N));
  for (int r = 0; r < runs; ++r)
    for (int k = 0; k < per_run; ++k) {
      const int64_t s = r * per_run + k;
      const StepRef draw(counters[size_t(r)] + uint32_t(k));
      draw_per_env_steps(Backend::cpu, seeds[size_t(r)], draw, T, N, M, 8, one_steps.data());
      draw_per_env_blocks(Backend::cpu, seeds[size_t(r)], draw, N, M, 8, one_blocks.data());
      EXPECT_TRUE(std::equal(one_steps.begin(), one_steps.end(), steps.begin() + s * T * N)) << r << " " << k;
      EXPECT_TRUE(std::equal(one_blocks.begin(), one_blocks.end(), blocks.begin() + s * N)) << r << " " << k;
    }
  EXPECT_FALSE(std::equal(steps.begin(), steps.begin() + T * N, steps.begin() + per_run * T * N));  // runs differ
}
