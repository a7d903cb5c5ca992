// The evaluation loop (algo/evaluate.h): per-episode summaries, the state carried across episodes (Fig. 6's five
// consecutive episodes) and the trace an observer writes (host/eval_trace.h, --trace).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "algo/evaluate.h"
#include "algo/scripted_rollout.h"
#include "host/config.h"
#include "host/eval_trace.h"
#include "host/train.h"

using namespace dyn;

namespace {

// The env's scripted oracle as an evaluation agent: memoryless, it ignores whatever the loop carries.
class ScriptedOracle : public EvalAgent {
 public:
  void begin(BatchEnv& env) override { env_ = &env; }
  void act(const float*, const float*, const ActionBuffers& out, uint32_t step) override {
    env_->scripted(true, out, step);
  }
  void after_step(const ActionBatch&, const StepBatch&) override {}

 private:
  BatchEnv* env_ = nullptr;
};

// A learner of run.algo on the gridworld (16 envs, seed 3) after `iterations` updates.
std::unique_ptr<Learner> trained(const std::string& algo, int iterations) {
  Config c = Config::builtin("gridworld");
  c.set_from_string("run.algo", algo, "test");
  c.set_from_string("run.envs", "16", "test");
  c.set_from_string("run.seed", "3", "test");
  c.validate();
  std::unique_ptr<Learner> l = make_learner(c, Backend::cpu);
  for (int i = 0; i < iterations; ++i) l->iterate();
  return l;
}

// |a − b| in standard errors of the difference (95% CIs are 1.96 standard errors).
double z_score(const EvalStats& a, const EvalStats& b) {
  const double se_a = a.ci95 / 1.96, se_b = b.ci95 / 1.96;
  return std::abs(a.mean_return - b.mean_return) / std::sqrt(se_a * se_a + se_b * se_b);
}

}  // namespace

TEST(Evaluate, ScriptedOracleEachEpisodeEqualsTheSingleEpisodeFigure) {
  // 1024 envs x 5 episodes of the memoryless scripted oracle: the loop is the scripted rollout's (same streams, same
  // sum), each episode's mean is the single-episode figure within its noise, and carrying changes nothing
  const EnvConfig cfg = default_env_config("gridworld", 11);
  constexpr int64_t kEnvs = 1024;
  constexpr int kEpisodes = 5;
  ScriptedOracle agent;
  const std::unique_ptr<BatchEnv> env = make_batch_env(Backend::cpu, cfg, kEnvs);
  const EvalStats single = run_evaluation(*env, kEpisodes, agent, EvalMode{false, nullptr});
  const EvalStats carried = run_evaluation(*env, kEpisodes, agent, EvalMode{true, nullptr});
  const RolloutSummary rollout = run_scripted_rollout(Backend::cpu, cfg, ScriptedPolicy::oracle, kEnvs, kEpisodes);
  EXPECT_EQ(single.episodes, kEnvs * kEpisodes);
  EXPECT_DOUBLE_EQ(single.mean_return, rollout.mean_return);
  ASSERT_EQ(single.per_episode.size(), size_t(kEpisodes));
  ASSERT_EQ(carried.per_episode.size(), size_t(kEpisodes));
  double sum = 0;
  for (int k = 0; k < kEpisodes; ++k) {
    const EvalStats& e = single.per_episode[size_t(k)];
    EXPECT_EQ(e.episodes, kEnvs) << k;
    EXPECT_EQ(e.mean_return, carried.per_episode[size_t(k)].mean_return) << k;
    std::printf("scripted oracle, episode %d: %.3f ± %.3f (all: %.3f), z %.2f\n", k + 1, e.mean_return, e.ci95,
                single.mean_return, z_score(e, single));
    EXPECT_LT(z_score(e, single), 4.0) << "episode " << k + 1 << ": " << e.mean_return << " vs " << single.mean_return;
    sum += e.mean_return;
  }
  EXPECT_NEAR(sum / kEpisodes, single.mean_return, 1e-9) << "the episodes partition the evaluation";
}

TEST(Evaluate, MemorylessPolicyEpisodesEqualInExpectation) {
  // PPO sees only the state: carrying its (empty) state changes nothing, and its five episodes are alike
  const std::unique_ptr<Learner> ppo = trained("ppo", 30);
  const EvalStats single = ppo->evaluate(1024, 5, 77, EvalMode{false, nullptr});
  const EvalStats carried = ppo->evaluate(1024, 5, 77, EvalMode{true, nullptr});
  ASSERT_EQ(carried.per_episode.size(), 5u);
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(single.per_episode[size_t(k)].mean_return, carried.per_episode[size_t(k)].mean_return) << k;
    std::printf("ppo, episode %d: %.3f ± %.3f (all: %.3f), z %.2f\n", k + 1, carried.per_episode[size_t(k)].mean_return,
                carried.per_episode[size_t(k)].ci95, carried.mean_return,
                z_score(carried.per_episode[size_t(k)], carried));
    EXPECT_LT(z_score(carried.per_episode[size_t(k)], carried), 4.0) << "episode " << k + 1;
  }
}

TEST(Evaluate, RecurrentAgentsCarryTheirStateAcrossEpisodes) {
  // RL²'s recurrent state, DynaMITE-RL's belief, ContraBAR's context, as traced: the first episode is the same either
  // way (nothing has been carried yet); at the second episode's first step the carried state differs from a fresh
  // start in every traced env
  const std::map<std::string, std::string> state_column = {
      {"rl2", "hidden"}, {"dynamite", "belief_mean"}, {"contrabar", "context"}};
  for (const auto& [algo, column] : state_column) {
    SCOPED_TRACE(algo);
    const std::unique_ptr<Learner> l = trained(algo, 0);
    EvalTrace fresh(Backend::cpu, 4), carried(Backend::cpu, 4);
    l->evaluate(16, 2, 77, EvalMode{false, &fresh});
    l->evaluate(16, 2, 77, EvalMode{true, &carried});
    std::istringstream a(fresh.jsonl()), b(carried.jsonl());
    std::string la, lb;
    int first_episode = 0, second_start = 0;
    while (std::getline(a, la) && std::getline(b, lb)) {
      const nlohmann::json ra = nlohmann::json::parse(la), rb = nlohmann::json::parse(lb);
      ASSERT_TRUE(ra.contains(column)) << la;
      if (ra["episode"] == 0) {
        EXPECT_EQ(la, lb);
        ++first_episode;
      } else if (ra["t"] == 0) {
        EXPECT_EQ(ra["obs"], rb["obs"]) << "the env starts its episode from the prior either way";
        EXPECT_NE(ra[column], rb[column]) << la;
        ++second_start;
      }
    }
    EXPECT_EQ(first_episode, 4 * 60);
    EXPECT_EQ(second_start, 4);
  }
}

TEST(EvalTrace, RecordsWhatHappenedAndWhatTheBeliefSaw) {
  const std::unique_ptr<Learner> l = trained("dynamite", 5);
  constexpr int kEpisodes = 2, kH = 60;
  EvalTrace trace(Backend::cpu, 4);
  const EvalStats traced = l->evaluate(64, kEpisodes, 91, EvalMode{false, &trace});
  const EvalStats plain = l->evaluate(64, kEpisodes, 91, EvalMode{false, nullptr});
  EXPECT_EQ(traced.mean_return, plain.mean_return) << "watching changes nothing";
  ASSERT_EQ(trace.records(), 4 * kEpisodes * kH);
  // per (env, episode): the rewards' sum; the records in step order per env
  std::map<std::pair<int, int>, double> returns;
  std::map<int, nlohmann::json> previous;
  std::istringstream lines(trace.jsonl());
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const nlohmann::json r = nlohmann::json::parse(line);
    ++n;
    for (const char* key : {"env", "episode", "t", "obs", "latent", "action", "reward", "session_id", "session_end",
                            "belief_mean", "belief_logvar", "termination_logit", "goal_reward"})
      ASSERT_TRUE(r.contains(key)) << key << " in " << line;
    EXPECT_EQ(r["obs"].size(), 6u);
    EXPECT_EQ(r["latent"].size(), 2u);
    EXPECT_EQ(r["belief_mean"].size(), r["belief_logvar"].size());
    EXPECT_EQ(r["goal_reward"].size(), 2u);
    const int env = r["env"], episode = r["episode"], t = r["t"];
    returns[{env, episode}] += double(r["reward"]);
    if (previous.count(env) && t > 0) {
      const nlohmann::json& p = previous[env];
      EXPECT_EQ(int(p["t"]) + 1, t);
      // a session id moves on exactly after a session end, and the latent changes only there
      const int id_step = int(r["session_id"]) - int(p["session_id"]);
      EXPECT_EQ(id_step, int(p["session_end"])) << line;
      if (!int(p["session_end"])) {
        EXPECT_EQ(r["latent"], p["latent"]) << line;
      }
    }
    if (t == 0) {
      EXPECT_EQ(int(r["session_id"]), 0) << line;
    }
    previous[env] = r;
  }
  EXPECT_EQ(n, 4 * kEpisodes * kH);
  // the traced envs are the first 4 of any evaluation with this seed: their mean return is a 4-env evaluation's
  double sum = 0;
  for (const auto& [key, ret] : returns) sum += ret;
  const EvalStats four = l->evaluate(4, kEpisodes, 91, EvalMode{false, nullptr});
  EXPECT_NEAR(sum / double(returns.size()), four.mean_return, 1e-4);
}
