// A data-parallel rank's share of the envs: a batch of envs [8, 16) (EnvConfig::first_env = 8) steps exactly as rows
// 8..15 of a 16-env batch — resets, session processes, time limits and the scripted random actions, for every env
// of the registry — and the policy head's samples for rows [8, 16) are those of the full batch. A seed batch's envs:
// run r's rows of one batch of S runs step exactly as that run's envs alone, and its checkpoint slice is theirs; the
// policy samples of a seed batch's rows in one call are each run's alone.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "algo/policy_head.h"
#include "nn/distributions_batch.h"
#include "sim/env.h"

using namespace dyn;

namespace {

constexpr int64_t kAll = 16, kFirst = 8, kShare = 8;

// The outputs of every step of a scripted random rollout of n envs, flattened step by step.
struct Trace {
  std::vector<float> obs, reward, latent, actions;
  std::vector<uint8_t> flags;
  std::vector<int32_t> session_id;
};

// Appends rows [first, first + rows) of x [n, width] to out.
template <class T>
void append_rows(std::vector<T>& out, const T* x, int64_t first, int64_t rows, int width) {
  out.insert(out.end(), x + first * width, x + (first + rows) * width);
}

// The bytes of every array a visit_state names.
class StateBytes : public StateVisitor {
 public:
  std::map<std::string, std::vector<uint8_t>> arrays;

 protected:
  void visit_text(const std::string& name, std::string& s) override { arrays[name].assign(s.begin(), s.end()); }
  void visit(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* data, Backend) override {
    int64_t bytes = dtype == DType::u8                                                    ? 1
                    : (dtype == DType::f64 || dtype == DType::i64 || dtype == DType::u64) ? 8
                                                                                          : 4;
    for (int64_t d : shape) bytes *= d;
    const auto* p = static_cast<const uint8_t*>(data);
    arrays[name].assign(p, p + bytes);
  }
};

// Steps n envs per run of `name` (first_env as given; seeds: a seed batch of those runs, else seed 7) for `steps`
// global steps with the env's random actions, recording rows [keep_first, keep_first + keep) of every output; with
// a state, run `state_run`'s checkpoint arrays at the end.
Trace rollout(const std::string& name, int64_t n, uint32_t first_env, int steps, int64_t keep_first, int64_t keep,
              const std::vector<uint32_t>& seeds = {}, StateBytes* state = nullptr, int state_run = 0) {
  EnvConfig cfg = default_env_config(name, seeds.empty() ? 7 : seeds[0]);
  cfg.first_env = first_env;
  const std::unique_ptr<BatchEnv> env = make_batch_env(Backend::cpu, cfg, n, seeds);
  n = env->size();
  const EnvSpec& s = env->spec();
  const int A = s.discrete() ? 1 : s.action_dim;
  const size_t rows = static_cast<size_t>(n);
  std::vector<float> obs(rows * s.obs_dim), latent(rows * s.latent_dim), final_obs(obs.size()), reward(rows),
      value(rows * A);
  std::vector<int32_t> index(rows), sid(rows);
  std::vector<uint8_t> term(rows), trunc(rows), send(rows);
  Trace t;
  env->reset(obs.data(), latent.data());
  append_rows(t.obs, obs.data(), keep_first, keep, s.obs_dim);
  append_rows(t.latent, latent.data(), keep_first, keep, s.latent_dim);
  const ActionBuffers act{s.discrete() ? index.data() : nullptr, s.discrete() ? nullptr : value.data()};
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), term.data(), trunc.data(), send.data(), sid.data(),
                                      final_obs.data(), latent.data());
  for (int step = 0; step < steps; ++step) {
    env->scripted(false, act, uint32_t(step));
    env->step(act.batch(), out, uint32_t(step));
    if (s.discrete())
      for (int64_t i = keep_first; i < keep_first + keep; ++i) t.actions.push_back(float(index[size_t(i)]));
    else
      append_rows(t.actions, value.data(), keep_first, keep, A);
    append_rows(t.obs, obs.data(), keep_first, keep, s.obs_dim);
    append_rows(t.obs, final_obs.data(), keep_first, keep, s.obs_dim);
    append_rows(t.latent, latent.data(), keep_first, keep, s.latent_dim);
    append_rows(t.reward, reward.data(), keep_first, keep, 1);
    append_rows(t.session_id, sid.data(), keep_first, keep, 1);
    for (const std::vector<uint8_t>* f : {&term, &trunc, &send}) append_rows(t.flags, f->data(), keep_first, keep, 1);
  }
  if (state) env->visit_state(*state, state_run);
  return t;
}

void expect_equal(const Trace& a, const Trace& b, const std::string& what) {
  EXPECT_EQ(a.obs, b.obs) << what;
  EXPECT_EQ(a.latent, b.latent) << what;
  EXPECT_EQ(a.actions, b.actions) << what;
  EXPECT_EQ(a.reward, b.reward) << what;
  EXPECT_EQ(a.flags, b.flags) << what;
  EXPECT_EQ(a.session_id, b.session_id) << what;
}

}  // namespace

// Past the first time limit of every env (gridworld H 60, physics H 400, scratch_itch H 200), so resets after a
// truncation and the session ends within an episode are covered.
TEST(EnvShare, EnvsFromAnOffsetStepAsTheSameRowsOfTheWholeBatch) {
  for (const auto& [name, make] : env_registry()) {
    const int steps = default_env_config(name).session.horizon + 10;
    const Trace whole = rollout(name, kAll, 0, steps, kFirst, kShare);
    const Trace share = rollout(name, kShare, uint32_t(kFirst), steps, 0, kShare);
    expect_equal(share, whole, name + ": envs [8, 16) alone against rows 8..15 of 16");
    int ends = 0;
    for (size_t k = 2; k < share.flags.size(); k += 3) ends += share.flags[k];
    EXPECT_GT(ends, 0) << name << ": the rollout should cross session ends";
    // the offset matters: envs [0, 8) are other envs
    const Trace first = rollout(name, kShare, 0, 3, 0, kShare);
    const Trace share3 = rollout(name, kShare, uint32_t(kFirst), 3, 0, kShare);
    EXPECT_NE(first.obs, share3.obs) << name;
  }
}

TEST(EnvShare, PolicySamplesFromAnOffsetAreTheSameRowsOfTheWholeBatch) {
  const int A = 5, D = 3;
  std::vector<float> logits(size_t(kAll * A)), mu(size_t(kAll * D)), log_std{-0.3f, 0.1f, 0.4f};
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(int(i * 37 % 11)) * 0.2f - 1.0f;
  for (size_t i = 0; i < mu.size(); ++i) mu[i] = float(int(i * 13 % 7)) * 0.3f - 1.0f;
  std::vector<int32_t> whole_idx(kAll), share_idx(kShare);
  std::vector<float> whole_x(size_t(kAll * D)), share_x(size_t(kShare * D));
  for (uint32_t step : {0u, 5u, 99u}) {
    categorical_act(Backend::cpu, logits.data(), false, 3u, StepRef(step), whole_idx.data(), kAll, A);
    categorical_act(Backend::cpu, logits.data() + kFirst * A, false, 3u, StepRef(step), share_idx.data(), kShare, A,
                    uint32_t(kFirst));
    EXPECT_EQ(share_idx, std::vector<int32_t>(whole_idx.begin() + kFirst, whole_idx.end())) << "step " << step;
    gaussian_act(Backend::cpu, mu.data(), log_std.data(), false, 3u, StepRef(step), whole_x.data(), kAll, D);
    gaussian_act(Backend::cpu, mu.data() + kFirst * D, log_std.data(), false, 3u, StepRef(step), share_x.data(), kShare,
                 D, uint32_t(kFirst));
    EXPECT_EQ(share_x, std::vector<float>(whole_x.begin() + kFirst * D, whole_x.end())) << "step " << step;
  }
}

// Three runs of 5 envs in one batch from env 8 on (a data-parallel share of a seed batch): run r's rows step as the
// 5 envs of seed r alone, past the first time limit, for every env of the registry; the checkpoint slice of run r is
// the alone batch's state; the runs differ.
TEST(EnvShare, SeedBatchRunsStepAsEachRunAlone) {
  const std::vector<uint32_t> seeds{7, 3, 11};
  const int64_t per_run = 5;
  for (const auto& [name, make] : env_registry()) {
    const int steps = default_env_config(name).session.horizon + 10;
    std::vector<Trace> alone;
    for (size_t r = 0; r < seeds.size(); ++r) {
      StateBytes batch_state, alone_state;
      const Trace batch =
          rollout(name, per_run, uint32_t(kFirst), steps, int64_t(r) * per_run, per_run, seeds, &batch_state, int(r));
      alone.push_back(rollout(name, per_run, uint32_t(kFirst), steps, 0, per_run, {seeds[r]}, &alone_state));
      expect_equal(batch, alone.back(), name + ": run " + std::to_string(r) + " of the seed batch");
      EXPECT_EQ(batch_state.arrays, alone_state.arrays) << name << ": run " << r << "'s checkpoint slice";
      ASSERT_EQ(batch_state.arrays.count("state"), 1u) << name;
      EXPECT_EQ(batch_state.arrays["state"].size() % size_t(per_run), 0u) << name;
    }
    EXPECT_NE(alone[0].obs, alone[1].obs) << name << ": seeds 7 and 3 should give other envs";
    EXPECT_NE(alone[1].actions, alone[2].actions) << name << ": seeds 3 and 11 should draw other random actions";
  }
}

TEST(EnvShare, SeedBatchRefusesRowsThatDoNotSplit) {
  const std::unique_ptr<BatchEnv> env = make_batch_env(Backend::cpu, default_env_config("gridworld", 1), 6);
  EXPECT_THROW(env->set_runs({1, 2, 3, 4}), std::invalid_argument);  // 6 rows in 4 runs
  EXPECT_THROW(env->set_runs({2, 1, 3}), std::invalid_argument);     // run 0 is not the env's own seed
  EXPECT_NO_THROW(env->set_runs({1, 2, 3}));
  EXPECT_EQ(env->runs(), 3);
  EXPECT_EQ(env->run_size(), 2);
}

// A seed batch's samples in one call: runs of 8 rows from env 8 on, each keyed by its run's seed and (Gaussian) with
// its own log-std a stride apart, equal each run's rows sampled alone.
TEST(EnvShare, SeedBatchPolicySamplesAreEachRunsAlone) {
  const int A = 5, D = 3, runs = 2;
  const std::vector<uint32_t> seeds{3, 9};
  Buffer<uint32_t> seeds_dev = Buffer<uint32_t>::copy_of(Backend::cpu, seeds);
  std::vector<float> logits(size_t(runs * kShare * A)), mu(size_t(runs * kShare * D));
  std::vector<float> log_std{-0.3f, 0.1f, 0.4f, 0.0f, 0.2f, -0.5f, 0.7f};  // run 0's at 0, run 1's at 4 (stride 4)
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(int(i * 37 % 11)) * 0.2f - 1.0f;
  for (size_t i = 0; i < mu.size(); ++i) mu[i] = float(int(i * 13 % 7)) * 0.3f - 1.0f;
  const BatchRows rows{0, uint32_t(kFirst), seeds_dev.data(), kShare};
  std::vector<int32_t> batch_idx(size_t(runs * kShare)), alone_idx(static_cast<size_t>(kShare));
  std::vector<float> batch_x(static_cast<size_t>(runs * kShare * D)), alone_x(static_cast<size_t>(kShare * D));
  for (uint32_t step : {0u, 5u}) {
    categorical_act(Backend::cpu, logits.data(), false, rows, StepRef(step), batch_idx.data(), runs * kShare, A);
    gaussian_act(Backend::cpu, mu.data(), log_std.data(), 4, false, rows, StepRef(step), batch_x.data(), runs * kShare,
                 D);
    for (int r = 0; r < runs; ++r) {
      categorical_act(Backend::cpu, logits.data() + r * kShare * A, false, seeds[size_t(r)], StepRef(step),
                      alone_idx.data(), kShare, A, uint32_t(kFirst));
      EXPECT_EQ(alone_idx, std::vector<int32_t>(batch_idx.begin() + r * kShare, batch_idx.begin() + (r + 1) * kShare))
          << "run " << r << " step " << step;
      gaussian_act(Backend::cpu, mu.data() + r * kShare * D, log_std.data() + 4 * r, false, seeds[size_t(r)],
                   StepRef(step), alone_x.data(), kShare, D, uint32_t(kFirst));
      EXPECT_EQ(alone_x, std::vector<float>(batch_x.begin() + r * kShare * D, batch_x.begin() + (r + 1) * kShare * D))
          << "run " << r << " step " << step;
    }
    EXPECT_NE(std::vector<float>(batch_x.begin(), batch_x.begin() + kShare * D),
              std::vector<float>(batch_x.begin() + kShare * D, batch_x.end()));
  }
}
