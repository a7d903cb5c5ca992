// EpisodeReplay: the push and the gather as one parallel_for over (step, episode) rows each; sampling on the host.
#include <numeric>
#include <stdexcept>
#include <string>

#include "algo/episode_replay.h"
#include "kernels/copy.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// The copy of one (step, episode) row between two episode layouts: src row → dst row.
struct RowCopy {
  int O, A, H;
  bool discrete;
  const float *so, *sl, *sr, *sv;
  const int32_t *sa, *ss;
  const uint8_t* sd;
  float *dobs, *dl, *dr, *dv;
  int32_t *da, *ds;
  uint8_t* dd;
  // obs rows (H + 1 per episode) and transition rows (H per episode) at their row indices
  DYN_HD void copy(int64_t t, int64_t src_obs, int64_t dst_obs, int64_t src_tr, int64_t dst_tr) const {
    for (int c = 0; c < O; ++c) dobs[dst_obs * O + c] = so[src_obs * O + c];
    if (t == H) return;  // the final observation has no transition
    if (sl)
      for (int c = 0; c < O; ++c) dl[dst_tr * O + c] = sl[src_tr * O + c];
    dr[dst_tr] = sr[src_tr];
    if (discrete)
      da[dst_tr] = sa[src_tr];
    else
      for (int c = 0; c < A; ++c) dv[dst_tr * A + c] = sv[src_tr * A + c];
    ds[dst_tr] = ss[src_tr];
    dd[dst_tr] = sd[src_tr];
  }
};

// Assembly (time-major [·, N]) → ring slot (head + i) mod C (episode-major [C, ·]); one item per (step, env).
struct PushRows {
  RowCopy rc;
  int64_t n, C;
  const int32_t* head;
  DYN_HD void operator()(int64_t k) const {
    const int64_t t = k / n, i = k % n, slot = (head[0] + i) % C, H = rc.H;
    rc.copy(t, k, slot * (H + 1) + t, k, slot * H + t);
  }
};

struct AdvanceHead {
  int32_t* head;
  int64_t n, C;
  DYN_HD void operator()(int64_t) const { head[0] = int32_t((head[0] + n) % C); }
};

// Ring slots pick[e] → the batch, time-major [·, B]; one item per (step, episode).
struct GatherRows {
  RowCopy rc;
  int64_t B;
  const int32_t* pick;
  DYN_HD void operator()(int64_t i) const {
    const int64_t t = i / B, e = i % B, slot = pick[e], H = rc.H;
    rc.copy(t, slot * (H + 1) + t, i, slot * H + t, i);
  }
};

RowCopy row_copy(int O, int A, int H, bool discrete, const float* so, const float* sl, const float* sr, const float* sv,
                 const int32_t* sa, const int32_t* ss, const uint8_t* sd, float* dobs, float* dl, float* dr, float* dv,
                 int32_t* da, int32_t* ds, uint8_t* dd) {
  return RowCopy{O, A, H, discrete, so, sl, sr, sv, sa, ss, sd, dobs, dl, dr, dv, da, ds, dd};
}

// The transition of step k into the assembled episodes: the action, reward, session, its end, and (where an env
// can reset within an episode) where the action led.
struct AssembleTransition {
  int O, A;
  bool discrete;
  const int32_t* a_index;
  const float *a_value, *r, *final_obs;
  const int32_t* sid;
  const uint8_t* send;
  int32_t* e_index;
  float *e_value, *e_r, *e_land;
  int32_t* e_sid;
  uint8_t* e_send;
  DYN_HD void operator()(int64_t i) const {
    if (discrete)
      e_index[i] = a_index[i];
    else
      for (int k = 0; k < A; ++k) e_value[i * A + k] = a_value[i * A + k];
    e_r[i] = r[i];
    e_sid[i] = sid[i];
    e_send[i] = send[i];
    if (e_land)
      for (int c = 0; c < O; ++c) e_land[i * O + c] = final_obs[i * O + c];
  }
};

}  // namespace

void EpisodeReplay::visit_state(StateVisitor& v) {
  const int64_t H = H_;
  v.value("count", count_);
  v.buffer("head", head_);
  // the assembly: time-major [H(+1), N, ·], whole
  v.buffer("assembly.obs", as_.obs);
  v.buffer("assembly.landing", as_.land);
  v.buffer("assembly.reward", as_.rew);
  v.buffer("assembly.action", as_.act);
  v.buffer("assembly.action_value", as_.act_value);
  v.buffer("assembly.session_id", as_.sid);
  v.buffer("assembly.session_end", as_.send);
  // the ring: episode-major [C, ·]; its first `count` slots are the filled ones
  const int64_t c = count_;
  if (c == 0) return;
  v.array("ring.obs", DType::f32, {c, H + 1, O_}, rp_.obs.data(), b_);
  if (landing_) v.array("ring.landing", DType::f32, {c, H, O_}, rp_.land.data(), b_);
  v.array("ring.reward", DType::f32, {c, H}, rp_.rew.data(), b_);
  if (discrete_)
    v.array("ring.action", DType::i32, {c, H}, rp_.act.data(), b_);
  else
    v.array("ring.action_value", DType::f32, {c, H, A_}, rp_.act_value.data(), b_);
  v.array("ring.session_id", DType::i32, {c, H}, rp_.sid.data(), b_);
  v.array("ring.session_end", DType::u8, {c, H}, rp_.send.data(), b_);
}

void EpisodeReplay::Arrays::allocate(Backend b, int64_t episodes, int horizon, int obs_dim, bool discrete,
                                     int action_dim, bool landing) {
  const int64_t H = horizon;
  obs = Buffer<float>(b, size_t(episodes * (H + 1) * obs_dim));
  land = Buffer<float>(b, landing ? size_t(episodes * H * obs_dim) : 0);
  rew = Buffer<float>(b, size_t(episodes * H));
  act = Buffer<int32_t>(b, discrete ? size_t(episodes * H) : 0);
  act_value = Buffer<float>(b, discrete ? 0 : size_t(episodes * H * action_dim));
  sid = Buffer<int32_t>(b, size_t(episodes * H));
  send = Buffer<uint8_t>(b, size_t(episodes * H));
}

EpisodeReplay::EpisodeReplay(Backend b, const EnvSpec& spec, int64_t capacity, int64_t n_envs, int max_batch,
                             bool landing)
    : b_(b),
      H_(spec.horizon),
      O_(spec.obs_dim),
      A_(spec.action_dim),
      discrete_(spec.discrete()),
      landing_(landing),
      n_(n_envs),
      capacity_(capacity),
      max_batch_(max_batch),
      head_(b, 1),
      pick_(b, size_t(max_batch)) {
  if (max_batch > capacity)
    throw std::invalid_argument("EpisodeReplay: a batch of " + std::to_string(max_batch) + " exceeds the capacity " +
                                std::to_string(capacity));
  as_.allocate(b, n_envs, H_, O_, discrete_, A_, landing);
  rp_.allocate(b, capacity, H_, O_, discrete_, A_, landing);
  bt_.allocate(b, max_batch, H_, O_, discrete_, A_, landing);
  head_.zero();
}

ActionBuffers EpisodeReplay::action(int k) {
  const int64_t o = int64_t(k) * n_;
  return discrete_ ? ActionBuffers{as_.act.data() + o, nullptr} : ActionBuffers{nullptr, as_.act_value.data() + o * A_};
}

void EpisodeReplay::push() {
  const RowCopy rc =
      row_copy(O_, A_, H_, discrete_, as_.obs.data(), as_.land.data(), as_.rew.data(), as_.act_value.data(),
               as_.act.data(), as_.sid.data(), as_.send.data(), rp_.obs.data(), rp_.land.data(), rp_.rew.data(),
               rp_.act_value.data(), rp_.act.data(), rp_.sid.data(), rp_.send.data());
  parallel_for(b_, int64_t(H_ + 1) * n_, PushRows{rc, n_, capacity_, head_.data()});
  parallel_for(b_, 1, AdvanceHead{head_.data(), n_, capacity_});
}

std::vector<int32_t> EpisodeReplay::sample(int batch, std::mt19937_64& rng) const {
  if (batch > count_)
    throw std::invalid_argument("EpisodeReplay::sample: " + std::to_string(batch) + " episodes asked, " +
                                std::to_string(count_) + " stored");
  std::vector<int32_t> slots(static_cast<size_t>(count_));
  std::iota(slots.begin(), slots.end(), 0);
  for (size_t i = 0; i < size_t(batch); ++i) {  // partial Fisher–Yates
    std::uniform_int_distribution<size_t> pick(i, slots.size() - 1);
    std::swap(slots[i], slots[pick(rng)]);
  }
  slots.resize(size_t(batch));
  return slots;
}

EpisodeBatchView<float> EpisodeReplay::gather(const std::vector<int32_t>& slots) { return gather_into(slots, bt_, 0); }

EpisodeBatchView<float> EpisodeReplay::gather_into(const std::vector<int32_t>& slots, Arrays& batch, int block) {
  const int B = int(slots.size());
  if (B > max_batch_) throw std::invalid_argument("EpisodeReplay::gather: more slots than the batch holds");
  const int64_t H = H_, at = int64_t(block) * B;  // the block's first episode
  if (block < 0 || size_t((at + B) * H) > batch.rew.size())
    throw std::invalid_argument("EpisodeReplay::gather_into: block " + std::to_string(block) + " of " +
                                std::to_string(B) + " episodes is outside the batch's arrays");
  if (pick_.size() != slots.size()) pick_ = Buffer<int32_t>(b_, slots.size());
  pick_.from_host(slots);
  // the block's arrays: observations [(T+1)·B, ·] and transitions [T·B, ·] from its first episode on
  float* obs = batch.obs.data() + at * (H + 1) * O_;
  float* land = landing_ ? batch.land.data() + at * H * O_ : nullptr;
  float* rew = batch.rew.data() + at * H;
  float* act_value = discrete_ ? nullptr : batch.act_value.data() + at * H * A_;
  int32_t* act = discrete_ ? batch.act.data() + at * H : nullptr;
  int32_t* sid = batch.sid.data() + at * H;
  uint8_t* send = batch.send.data() + at * H;
  const RowCopy rc =
      row_copy(O_, A_, H_, discrete_, rp_.obs.data(), rp_.land.data(), rp_.rew.data(), rp_.act_value.data(),
               rp_.act.data(), rp_.sid.data(), rp_.send.data(), obs, land, rew, act_value, act, sid, send);
  parallel_for(b_, int64_t(H_ + 1) * B, GatherRows{rc, B, pick_.data()});
  EpisodeBatchView<float> v;
  v.steps = H_;
  v.batch = B;
  v.obs = obs;
  v.act = act;
  v.act_value = act_value;
  v.rew = rew;
  v.sid = sid;
  v.send = send;
  v.next_obs = land;
  return v;
}

void EpisodeReplay::record_obs(int k, const float* obs) { copy_values(b_, obs, this->obs(k), n_ * O_); }

void EpisodeReplay::record_step(int k, const ActionBatch& a, const float* reward, const float* final_obs,
                                const int32_t* session_id, const uint8_t* session_end) {
  const ActionBuffers ea = action(k);
  parallel_for(
      b_, n_,
      AssembleTransition{O_, A_, discrete_, a.index, a.value, reward, final_obs, session_id, session_end, ea.index,
                         ea.value, this->reward(k), landing(k), this->session_id(k), this->session_end(k)});
}

RunReplays::RunReplays(Backend b, const EnvSpec& spec, int runs, int64_t capacity, int64_t n_envs, int max_batch,
                       bool landing)
    : n_(n_envs),
      obs_dim_(spec.obs_dim),
      action_dim_(spec.action_dim),
      horizon_(spec.horizon),
      batch_episodes_(max_batch) {
  for (int r = 0; r < runs; ++r) replays_.emplace_back(b, spec, capacity, n_envs, max_batch, landing);
  batch_.allocate(b, int64_t(runs) * max_batch, spec.horizon, spec.obs_dim, spec.discrete(), spec.action_dim, landing);
}

EpisodeBatchView<float> RunReplays::gather(const std::vector<std::vector<int32_t>>& slots) {
  if (slots.size() != replays_.size())
    throw std::invalid_argument("RunReplays::gather: " + std::to_string(slots.size()) + " runs' slots for " +
                                std::to_string(replays_.size()) + " runs");
  EpisodeBatchView<float> all;
  for (size_t r = 0; r < replays_.size(); ++r) {
    if (slots[r].size() != slots[0].size())
      throw std::invalid_argument("RunReplays::gather: every run gathers as many episodes");
    const EpisodeBatchView<float> v = replays_[r].gather_into(slots[r], batch_, int(r));
    if (r == 0) all = v;  // block 0 starts every array
  }
  all.runs = int(replays_.size());
  batch_episodes_ = all.batch;
  return all;
}

std::vector<int32_t> RunReplays::batch_session_ids() const {
  std::vector<int32_t> all = batch_.sid.to_host();
  all.resize(replays_.size() * size_t(horizon_) * size_t(batch_episodes_));
  return all;
}

void RunReplays::record_obs(int k, const float* obs) {
  for (size_t r = 0; r < replays_.size(); ++r) replays_[r].record_obs(k, obs + int64_t(r) * n_ * obs_dim_);
}

void RunReplays::record_step(int k, const ActionBuffers& a, const float* reward, const float* final_obs,
                             const int32_t* session_id, const uint8_t* session_end) {
  for (size_t r = 0; r < replays_.size(); ++r) {
    const int64_t o = int64_t(r) * n_;
    replays_[r].record_step(k, a.rows(o, action_dim_).batch(), reward + o, final_obs + o * obs_dim_, session_id + o,
                            session_end + o);
  }
}

void RunReplays::push() {
  for (EpisodeReplay& replay : replays_) replay.push();
}

void RunReplays::note_push() {
  for (EpisodeReplay& replay : replays_) replay.note_push();
}

}  // namespace dyn
