// The replay of whole episodes the belief learners train on (SPEC §3): the N envs' current episodes assembled
// time-major during the collect, pushed into a ring of the most recent `capacity` episodes at a head kept in backend
// memory (so a captured collect pushes on replay), sampled uniformly without replacement on the host, and gathered
// time-major into a batch. Per episode of H steps: observations s_0..s_H, actions, raw rewards, ground-truth session
// ids and ends, and — only where an env can reset within an episode (reset_on_switch) — where each action led.
// Size per episode: 4·obs·(H + 1) (+ 4·obs·H landing) + 4·A·H (discrete: 4·H) + 9·H bytes; a halfcheetah episode
// (H = 400, obs 17, A = 6, no landing) is 40.5 kB, so the paper's 10,000-episode replay takes 405 MB. A seed batch's
// runs share one EpisodeReplay (runs = S), each with its own ring, head and count, so every record, push and gather is
// one launch over all runs' rows.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "algo/belief_model.h"
#include "kernels/buffer.h"
#include "kernels/state_io.h"
#include "sim/env.h"

namespace dyn {

class EpisodeReplay {
 public:
  struct Arrays {  // E episodes; the order of the axes is the owner's
    Buffer<float> obs, land, rew, act_value;
    Buffer<int32_t> act, sid;
    Buffer<uint8_t> send;
    void allocate(Backend b, int64_t episodes, int horizon, int obs_dim, bool discrete, int action_dim, bool landing);
  };

  EpisodeReplay() = default;
  // runs > 1: a seed batch's replays in one, one ring per run over the batch's rows [S·N, ·] (run r's envs at rows
  // [r·N, (r+1)·N)); every call is each run's as the run alone makes it, in one launch over all runs. Each run's
  // arrays are a contiguous block (assembly [S, H(+1), N, ·], ring [S, C, ·]), its checkpoint that of the run alone.
  EpisodeReplay(Backend b, const EnvSpec& spec, int64_t capacity, int64_t n_envs, int max_batch, bool landing,
                int runs = 1);

  // Run 0's episodes being assembled (the tests fill them directly), time-major: step k (0..H) of env i at row
  // k·N + i.
  float* obs(int k) { return as_.obs.data() + int64_t(k) * n_ * O_; }                            // [N, obs], k ≤ H
  float* landing(int k) { return landing_ ? as_.land.data() + int64_t(k) * n_ * O_ : nullptr; }  // [N, obs]
  ActionBuffers action(int k);                                                                   // [N] or [N, A]
  float* reward(int k) { return as_.rew.data() + int64_t(k) * n_; }                              // [N]
  int32_t* session_id(int k) { return as_.sid.data() + int64_t(k) * n_; }                        // [N]
  uint8_t* session_end(int k) { return as_.send.data() + int64_t(k) * n_; }                      // [N]

  // After env step k of the episodes being assembled (rows [S·N, ·]): the observation it started from was recorded
  // with record_obs; this records the action, the raw reward, the session id and end, and where the action led
  // (final_obs [S·N, obs], kept only with landings). One launch each.
  void record_obs(int k, const float* obs);
  void record_step(int k, const ActionBatch& a, const float* reward, const float* final_obs, const int32_t* session_id,
                   const uint8_t* session_end);

  // Queues the copy of every run's N assembled episodes into its ring at its head (capturable, one launch), and
  // advances the heads.
  void push();
  // The host's count of filled slots, after a push was queued (or replayed).
  void note_push();
  int64_t count(int run = 0) const { return count_[size_t(run)]; }
  int64_t capacity() const { return capacity_; }
  int runs() const { return runs_; }
  // B distinct filled slots of run `run`'s ring, uniformly (a partial Fisher–Yates with rng).
  std::vector<int32_t> sample(int batch, std::mt19937_64& rng, int run = 0) const;
  // Every run's B slots, run r's from its own stream rngs[r] (for gather).
  std::vector<std::vector<int32_t>> sample(int batch, std::vector<std::mt19937_64>& rngs) const;
  // Each run's slots (slots[r], B each) gathered into one seed-major batch [S, T(+1), B, ·] in one launch; the view
  // (runs = S) stays valid until the next gather. gather(slots): one run's.
  EpisodeBatchView<float> gather(const std::vector<std::vector<int32_t>>& slots);
  EpisodeBatchView<float> gather(const std::vector<int32_t>& slots) {
    return gather(std::vector<std::vector<int32_t>>{slots});
  }
  // The gathered batch's session ids [S, T, B] (one read, for the decode plans), and its observations
  // [S·(T+1)·B, obs] and landings (nullptr without) for in-place normalisation.
  std::vector<int32_t> batch_session_ids() const;
  float* batch_obs() { return bt_.obs.data(); }
  float* batch_landing() { return landing_ ? bt_.land.data() : nullptr; }
  // Run `run`'s assembly, head and its ring's filled slots only (a ring of 10,000 physics episodes is ~0.1 GB per
  // 1,000 stored: obs 401 × 17, rewards, actions 400 × 6, ids and ends, as float32 / int32 / u8): the arrays of the
  // run alone.
  void visit_state(StateVisitor& v, int run = 0);

 private:
  Backend b_ = Backend::cpu;
  int H_ = 0, O_ = 0, A_ = 0;
  bool discrete_ = true, landing_ = false;
  int64_t n_ = 0, capacity_ = 0;
  int runs_ = 1;
  std::vector<int64_t> count_;  // [S]
  int max_batch_ = 0, batch_ = 0;
  Arrays as_;             // the assembly, [S, H(+1), N, ·]
  Arrays rp_;             // the rings, episode-major [S, C, ·]
  Buffer<int32_t> head_;  // [S] each ring's next slot
  Buffer<int32_t> pick_;  // [S, B] slots of the gathered batch
  Arrays bt_;             // one batch, [S, T(+1), B, ·]
};

}  // namespace dyn
