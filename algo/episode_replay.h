// The replay of whole episodes the belief learners train on (SPEC §3): the N envs' current episodes assembled
// time-major during the collect, pushed into a ring of the most recent `capacity` episodes at a head kept in backend
// memory (so a captured collect pushes on replay), sampled uniformly without replacement on the host, and gathered
// time-major into a batch. Per episode of H steps: observations s_0..s_H, actions, raw rewards, ground-truth session
// ids and ends, and — only where an env can reset within an episode (reset_on_switch) — where each action led.
// Size per episode: 4·obs·(H + 1) (+ 4·obs·H landing) + 4·A·H (discrete: 4·H) + 9·H bytes; a halfcheetah episode
// (H = 400, obs 17, A = 6, no landing) is 40.5 kB, so the paper's 10,000-episode replay takes 405 MB.
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
  struct Arrays {  // E episodes; the order of the first two axes is the owner's
    Buffer<float> obs, land, rew, act_value;
    Buffer<int32_t> act, sid;
    Buffer<uint8_t> send;
    void allocate(Backend b, int64_t episodes, int horizon, int obs_dim, bool discrete, int action_dim, bool landing);
  };

  EpisodeReplay() = default;
  EpisodeReplay(Backend b, const EnvSpec& spec, int64_t capacity, int64_t n_envs, int max_batch, bool landing);

  // The episodes being assembled, time-major: step k (0..H) of env i at row k·N + i.
  float* obs(int k) { return as_.obs.data() + int64_t(k) * n_ * O_; }                            // [N, obs], k ≤ H
  float* landing(int k) { return landing_ ? as_.land.data() + int64_t(k) * n_ * O_ : nullptr; }  // [N, obs]
  ActionBuffers action(int k);                                                                   // [N] or [N, A]
  float* reward(int k) { return as_.rew.data() + int64_t(k) * n_; }                              // [N]
  int32_t* session_id(int k) { return as_.sid.data() + int64_t(k) * n_; }                        // [N]
  uint8_t* session_end(int k) { return as_.send.data() + int64_t(k) * n_; }                      // [N]

  // After env step k of the episodes being assembled: the observation it started from (obs [N, obs]) was recorded
  // with record_obs; this records the action, the raw reward, the session id and end, and where the action led
  // (final_obs [N, obs], kept only with landings).
  void record_obs(int k, const float* obs);
  void record_step(int k, const ActionBatch& a, const float* reward, const float* final_obs, const int32_t* session_id,
                   const uint8_t* session_end);

  // Queues the copy of the N assembled episodes into the ring at the head (capturable), and advances the head.
  void push();
  // The host's count of filled slots, after a push was queued (or replayed).
  void note_push() { count_ = count_ + n_ < capacity_ ? count_ + n_ : capacity_; }
  int64_t count() const { return count_; }
  int64_t capacity() const { return capacity_; }
  // B distinct filled slots, uniformly (a partial Fisher–Yates with rng).
  std::vector<int32_t> sample(int batch, std::mt19937_64& rng) const;
  // The slots gathered time-major [T(+1), B, ·]; the view stays valid until the next gather.
  EpisodeBatchView<float> gather(const std::vector<int32_t>& slots);
  // The same into block `block` of a seed batch's arrays (allocated for S·B episodes, [S, T(+1), B, ·]); returns the
  // view of that block.
  EpisodeBatchView<float> gather_into(const std::vector<int32_t>& slots, Arrays& batch, int block);
  // The gathered batch's session ids [T, B] (one read, for the decode plan).
  std::vector<int32_t> batch_session_ids() const { return bt_.sid.to_host(); }
  // The gathered batch's observations [(T+1)·B, obs] and landings (nullptr without), for in-place normalisation.
  float* batch_obs() { return bt_.obs.data(); }
  float* batch_landing() { return landing_ ? bt_.land.data() : nullptr; }
  // The assembly, the head, and the ring's filled slots only (a ring of 10,000 physics episodes is ~0.1 GB per 1,000
  // stored: obs 401 × 17, rewards, actions 400 × 6, ids and ends, as float32 / int32 / u8).
  void visit_state(StateVisitor& v);

 private:
  Backend b_ = Backend::cpu;
  int H_ = 0, O_ = 0, A_ = 0;
  bool discrete_ = true, landing_ = false;
  int64_t n_ = 0, capacity_ = 0, count_ = 0;
  int max_batch_ = 0;
  Arrays as_;             // the assembly, time-major [·, N]
  Arrays rp_;             // the ring, episode-major [C, ·]
  Buffer<int32_t> head_;  // [1] next slot
  Buffer<int32_t> pick_;  // [B] slots of the gathered batch
  Arrays bt_;             // one batch, time-major [·, B]
};

// A seed batch's replays, one EpisodeReplay per run over the batch's rows [S·N, ·] (run r's envs at rows
// [r·N, (r+1)·N)): each call is that of every run's replay on its rows, as the run alone makes it.
class RunReplays {
 public:
  RunReplays() = default;
  RunReplays(Backend b, const EnvSpec& spec, int runs, int64_t capacity, int64_t n_envs, int max_batch, bool landing);
  void record_obs(int k, const float* obs);  // obs [S·N, obs]
  void record_step(int k, const ActionBuffers& a, const float* reward, const float* final_obs,
                   const int32_t* session_id, const uint8_t* session_end);
  void push();
  void note_push();
  // every run's replay holds as many episodes
  int64_t count() const { return replays_[0].count(); }
  EpisodeReplay& operator[](int run) { return replays_[size_t(run)]; }
  // Each run's slots (slots[s], B each) gathered into one seed-major batch [S, T(+1), B, ·] (one gather per run: the
  // rings are the runs' own); the view (runs = S) stays valid until the next gather.
  EpisodeBatchView<float> gather(const std::vector<std::vector<int32_t>>& slots);
  // The gathered batch's session ids [S, T, B] (one read, for the decode plans), and its observations
  // [S·(T+1)·B, obs] and landings (nullptr without) for in-place normalisation.
  std::vector<int32_t> batch_session_ids() const;
  float* batch_obs() { return batch_.obs.data(); }
  float* batch_landing() { return batch_.land.size() ? batch_.land.data() : nullptr; }

 private:
  int64_t n_ = 0;
  int obs_dim_ = 0, action_dim_ = 0, horizon_ = 0, batch_episodes_ = 0;
  std::vector<EpisodeReplay> replays_;  // [S]
  EpisodeReplay::Arrays batch_;         // [S, T(+1), B, ·]
};

}  // namespace dyn
