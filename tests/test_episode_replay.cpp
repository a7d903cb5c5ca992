// The belief learners' episode replay (algo/episode_replay.h): pushes of N assembled episodes into a ring whose
// capacity is not a multiple of N wrap around and overwrite the oldest slots; the gather returns each slot's episode
// whole (observations, action vectors or indices, rewards, sessions, landings) time-major; sampling gives distinct
// filled slots, uniformly.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <vector>

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
