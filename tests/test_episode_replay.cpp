// The belief learners' episode replay (algo/episode_replay.h): pushes of N assembled episodes into a ring whose
// capacity is not a multiple of N wrap around and overwrite the oldest slots; the gather returns each slot's episode
// whole (observations, action vectors or indices, rewards, sessions, landings) time-major; sampling gives distinct
// filled slots, uniformly; a seed batch's replay (runs > 1) holds and gathers what each run's alone does.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "algo/encoder_inputs.h"
#include "algo/episode_replay.h"

using namespace dyn;

namespace {

constexpr int kH = 3, kObs = 2, kAct = 2;

EnvSpec spec(bool discrete) {
  EnvSpec s;
  s.name = "test";
  s.obs_dim = kObs;
  s.action_kind = discrete ? ActionKind::discrete : ActionKind::continuous;
  s.action_dim = discrete ? 5 : kAct;
  s.horizon = kH;
  return s;
}

// Fills the assembly with episodes whose every value encodes (episode id e, step k, column c).
void assemble(EpisodeReplay& r, int64_t n, int first_episode, bool discrete) {
  for (int k = 0; k <= kH; ++k)
    for (int64_t i = 0; i < n; ++i) {
      const int e = first_episode + int(i);
      for (int c = 0; c < kObs; ++c) r.obs(k)[i * kObs + c] = float(1000 * e + 10 * k + c);
      if (k == kH) continue;
      if (float* land = r.landing(k))
        for (int c = 0; c < kObs; ++c) land[i * kObs + c] = float(-(1000 * e + 10 * k + c));
      const ActionBuffers a = r.action(k);
      if (discrete)
        a.index[i] = (e + k) % 5;
      else
        for (int c = 0; c < kAct; ++c) a.value[i * kAct + c] = float(e) + 0.25f * float(k) + 0.5f * float(c);
      r.reward(k)[i] = float(e) - float(k);
      r.session_id(k)[i] = (e + k) % 4;
      r.session_end(k)[i] = uint8_t((e + k) % 2);
    }
}

// The gathered episode in column b is episode e.
void expect_episode(const EpisodeBatchView<float>& v, int b, int e, bool discrete, bool landing) {
  const int B = v.batch;
  for (int k = 0; k <= kH; ++k) {
    for (int c = 0; c < kObs; ++c) EXPECT_EQ(v.obs[(k * B + b) * kObs + c], float(1000 * e + 10 * k + c));
    if (k == kH) continue;
    if (landing) {
      ASSERT_NE(v.next_obs, nullptr);
      for (int c = 0; c < kObs; ++c) EXPECT_EQ(v.next_obs[(k * B + b) * kObs + c], float(-(1000 * e + 10 * k + c)));
    }
    if (discrete)
      EXPECT_EQ(v.act[k * B + b], (e + k) % 5);
    else
      for (int c = 0; c < kAct; ++c)
        EXPECT_EQ(v.act_value[(k * B + b) * kAct + c], float(e) + 0.25f * float(k) + 0.5f * float(c));
    EXPECT_EQ(v.rew[k * B + b], float(e) - float(k));
    EXPECT_EQ(v.sid[k * B + b], (e + k) % 4);
    EXPECT_EQ(v.send[k * B + b], uint8_t((e + k) % 2));
  }
}

}  // namespace

TEST(EpisodeReplay, RingWrapsAroundAndGathersWholeEpisodes) {
  for (bool discrete : {true, false})
    for (bool landing : {false, true}) {
      SCOPED_TRACE(std::string(discrete ? "discrete" : "continuous") + (landing ? ", landing" : ""));
      const int64_t n = 4, capacity = 10;
      EpisodeReplay r(Backend::cpu, spec(discrete), capacity, n, 6, landing);
      EXPECT_EQ(landing, r.landing(0) != nullptr);
      // pushes of episodes 0–3, 4–7, 8–11: slots 0–9 then 0–1 again (the ring's head wraps at 10)
      for (int p = 0; p < 3; ++p) {
        assemble(r, n, 4 * p, discrete);
        r.push();
        r.note_push();
        EXPECT_EQ(r.count(), std::min<int64_t>(4 * (p + 1), capacity));
      }
      // slot s holds episode s, except slots 0 and 1: episodes 10 and 11
      const std::vector<int32_t> slots = {0, 1, 2, 9, 5, 3};
      const int expected[6] = {10, 11, 2, 9, 5, 3};
      const EpisodeBatchView<float> v = r.gather(slots);
      EXPECT_EQ(v.steps, kH);
      EXPECT_EQ(v.batch, 6);
      EXPECT_EQ(landing, v.next_obs != nullptr);
      for (int b = 0; b < 6; ++b) expect_episode(v, b, expected[b], discrete, landing);
      // a fourth push continues at slot 2
      assemble(r, n, 12, discrete);
      r.push();
      r.note_push();
      const EpisodeBatchView<float> w = r.gather({2, 5, 6});
      expect_episode(w, 0, 12, discrete, landing);
      expect_episode(w, 1, 15, discrete, landing);
      expect_episode(w, 2, 6, discrete, landing);
      EXPECT_THROW(r.gather({0, 1, 2, 3, 4, 5, 6}), std::invalid_argument) << "more than the batch holds";
    }
}

TEST(EpisodeReplay, SamplesDistinctFilledSlotsUniformly) {
  const int64_t n = 3, capacity = 12;
  EpisodeReplay r(Backend::cpu, spec(false), capacity, n, 5, false);
  std::mt19937_64 rng(7);
  assemble(r, n, 0, false);
  r.push();
  r.note_push();
  EXPECT_THROW(r.sample(4, rng), std::invalid_argument) << "3 stored";
  for (int p = 1; p < 3; ++p) {
    r.push();
    r.note_push();
  }
  ASSERT_EQ(r.count(), 9);
  std::vector<int> hits(capacity, 0);
  const int draws = 20000, B = 5;
  for (int d = 0; d < draws; ++d) {
    const std::vector<int32_t> s = r.sample(B, rng);
    ASSERT_EQ(s.size(), size_t(B));
    EXPECT_EQ(std::set<int32_t>(s.begin(), s.end()).size(), size_t(B)) << "distinct";
    for (int32_t slot : s) {
      ASSERT_GE(slot, 0);
      ASSERT_LT(slot, 9) << "only filled slots";
      ++hits[size_t(slot)];
    }
  }
  const double p = double(B) / 9, expected = draws * p, sd = std::sqrt(draws * p * (1 - p));
  for (int slot = 0; slot < 9; ++slot) EXPECT_NEAR(hits[size_t(slot)], expected, 5 * sd) << "slot " << slot;
}

// A seed batch's replay (runs = 3, one launch per record, push and gather over every run's rows) holds and gathers
// exactly what each run's replay alone does, through pushes that wrap the rings.
TEST(EpisodeReplay, SeedBatchRunsEqualEachRunAlone) {
  for (bool discrete : {true, false})
    for (bool landing : {false, true}) {
      SCOPED_TRACE(std::string(discrete ? "discrete" : "continuous") + (landing ? ", landing" : ""));
      const int S = 3, A = discrete ? 1 : kAct;
      const int64_t n = 4, capacity = 10, rows = S * n;
      EpisodeReplay batch(Backend::cpu, spec(discrete), capacity, n, 5, landing, S);
      std::vector<EpisodeReplay> alone;
      for (int r = 0; r < S; ++r) alone.emplace_back(Backend::cpu, spec(discrete), capacity, n, 5, landing);
      std::mt19937 rng(3);
      std::normal_distribution<float> normal;
      auto fill = [&](size_t size) {
        std::vector<float> v(size);
        for (float& x : v) x = normal(rng);
        return v;
      };
      for (int p = 0; p < 3; ++p) {  // 12 episodes per run into rings of 10
        for (int k = 0; k <= kH; ++k) {
          std::vector<float> obs = fill(size_t(rows) * kObs);
          batch.record_obs(k, obs.data());
          for (int r = 0; r < S; ++r) alone[size_t(r)].record_obs(k, obs.data() + r * n * kObs);
          if (k == kH) break;
          std::vector<float> value = fill(size_t(rows) * A), rew = fill(size_t(rows)), fin = fill(size_t(rows) * kObs);
          std::vector<int32_t> index(static_cast<size_t>(rows)), sid(static_cast<size_t>(rows));
          std::vector<uint8_t> send(static_cast<size_t>(rows));
          for (int64_t i = 0; i < rows; ++i) {
            index[size_t(i)] = int32_t((i * 7 + k + p) % 5);
            sid[size_t(i)] = int32_t((i + k) % 4);
            send[size_t(i)] = uint8_t((i + k + p) % 2);
          }
          const ActionBatch a{discrete ? index.data() : nullptr, discrete ? nullptr : value.data()};
          batch.record_step(k, a, rew.data(), fin.data(), sid.data(), send.data());
          for (int r = 0; r < S; ++r) {
            const int64_t o = r * n;
            const ActionBatch ar{discrete ? index.data() + o : nullptr, discrete ? nullptr : value.data() + o * A};
            alone[size_t(r)].record_step(k, ar, rew.data() + o, fin.data() + o * kObs, sid.data() + o, send.data() + o);
          }
        }
        batch.push();
        batch.note_push();
        for (EpisodeReplay& r : alone) {
          r.push();
          r.note_push();
        }
      }
      const std::vector<std::vector<int32_t>> slots = {{0, 9, 3}, {5, 1, 2}, {8, 7, 4}};
      const EpisodeBatchView<float> all = batch.gather(slots);
      ASSERT_EQ(all.runs, S);
      for (int r = 0; r < S; ++r) {
        EXPECT_EQ(batch.count(r), alone[size_t(r)].count());
        const EpisodeBatchView<float> mine = episodes_of_run(all, r, kObs, A);
        const EpisodeBatchView<float> own = alone[size_t(r)].gather(slots[size_t(r)]);
        const int64_t L = (kH + 1) * 3, TB = kH * 3;
        EXPECT_EQ(std::vector<float>(mine.obs, mine.obs + L * kObs), std::vector<float>(own.obs, own.obs + L * kObs));
        EXPECT_EQ(std::vector<float>(mine.rew, mine.rew + TB), std::vector<float>(own.rew, own.rew + TB));
        EXPECT_EQ(std::vector<int32_t>(mine.sid, mine.sid + TB), std::vector<int32_t>(own.sid, own.sid + TB));
        EXPECT_EQ(std::vector<uint8_t>(mine.send, mine.send + TB), std::vector<uint8_t>(own.send, own.send + TB));
        if (discrete) {
          EXPECT_EQ(std::vector<int32_t>(mine.act, mine.act + TB), std::vector<int32_t>(own.act, own.act + TB));
        } else {
          EXPECT_EQ(std::vector<float>(mine.act_value, mine.act_value + TB * A),
                    std::vector<float>(own.act_value, own.act_value + TB * A));
        }
        if (landing) {
          EXPECT_EQ(std::vector<float>(mine.next_obs, mine.next_obs + TB * kObs),
                    std::vector<float>(own.next_obs, own.next_obs + TB * kObs));
        }
      }
      EXPECT_THROW(batch.gather({{0, 1}, {2, 3}}), std::invalid_argument) << "two runs' slots for three";
    }
}
