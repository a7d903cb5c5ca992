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

// Run s's assembly (time-major [H(+1), N, ·] in its block) → its ring's slot (head[s] + i) mod C (episode-major
// [S, C, ·]); one item per (run, step, env).
struct PushRows {
  RowCopy rc;
  int64_t n, C;
  const int32_t* head;  // [S]
  DYN_HD void operator()(int64_t g) const {
    const int64_t H = rc.H, per_run = (H + 1) * n;
    const int64_t s = g / per_run, k = g % per_run, t = k / n, i = k % n;
    const int64_t slot = s * C + (head[s] + i) % C;
    rc.copy(t, s * per_run + k, slot * (H + 1) + t, s * H * n + k, slot * H + t);
  }
};

struct AdvanceHeads {
  int32_t* head;
  int64_t n, C;
  DYN_HD void operator()(int64_t s) const { head[s] = int32_t((head[s] + n) % C); }
};

// Run s's ring slots pick[s, e] → its block of the batch, time-major [T(+1), B, ·]; one item per (run, step, episode).
struct GatherRows {
  RowCopy rc;
  int64_t B, C;
  const int32_t* pick;  // [S, B]
  DYN_HD void operator()(int64_t g) const {
    const int64_t H = rc.H, per_run = (H + 1) * B;
    const int64_t s = g / per_run, i = g % per_run, t = i / B, e = i % B;
    const int64_t slot = s * C + pick[s * B + e];
    rc.copy(t, slot * (H + 1) + t, s * per_run + i, slot * H + t, s * H * B + i);
  }
};

// The observations of step k of rows [S·N, obs] into each run's assembly block.
struct RecordObs {
  int O;
  int64_t n, k, H;
  const float* obs;
  float* dst;  // [S, H + 1, N, obs]
  DYN_HD void operator()(int64_t i) const {
    const int64_t s = i / n, row = (s * (H + 1) + k) * n + i % n;
    for (int c = 0; c < O; ++c) dst[row * O + c] = obs[i * O + c];
  }
};

RowCopy row_copy(int O, int A, int H, bool discrete, const float* so, const float* sl, const float* sr, const float* sv,
                 const int32_t* sa, const int32_t* ss, const uint8_t* sd, float* dobs, float* dl, float* dr, float* dv,
                 int32_t* da, int32_t* ds, uint8_t* dd) {
  return RowCopy{O, A, H, discrete, so, sl, sr, sv, sa, ss, sd, dobs, dl, dr, dv, da, ds, dd};
}

// The transition of step k into the assembled episodes: the action, reward, session, its end, and (where an env
// can reset within an episode) where the action led.
// (rows [S·N, ·]; row i of run s = i / N goes to transition row (s·H + k)·N + i mod N of the assembly).
struct AssembleTransition {
  int O, A;
  bool discrete;
  int64_t n, k, H;
  const int32_t* a_index;
  const float *a_value, *r, *final_obs;
  const int32_t* sid;
  const uint8_t* send;
  int32_t* e_index;
  float *e_value, *e_r, *e_land;
  int32_t* e_sid;
  uint8_t* e_send;
  DYN_HD void operator()(int64_t i) const {
    const int64_t j = (i / n * H + k) * n + i % n;
    if (discrete)
      e_index[j] = a_index[i];
    else
      for (int c = 0; c < A; ++c) e_value[j * A + c] = a_value[i * A + c];
    e_r[j] = r[i];
    e_sid[j] = sid[i];
    e_send[j] = send[i];
    if (e_land)
      for (int c = 0; c < O; ++c) e_land[j * O + c] = final_obs[i * O + c];
  }
};

}  // namespace

void EpisodeReplay::visit_state(StateVisitor& v, int run) {
  const int64_t H = H_, C = capacity_, r = run;
  v.value("count", count_[size_t(run)]);
  v.share("head", head_, run, runs_);
  // the assembly: time-major [H(+1), N, ·], whole
  v.share("assembly.obs", as_.obs, run, runs_);
  v.share("assembly.landing", as_.land, run, runs_);
  v.share("assembly.reward", as_.rew, run, runs_);
  v.share("assembly.action", as_.act, run, runs_);
  v.share("assembly.action_value", as_.act_value, run, runs_);
  v.share("assembly.session_id", as_.sid, run, runs_);
  v.share("assembly.session_end", as_.send, run, runs_);
  // the ring: episode-major [C, ·]; its first `count` slots are the filled ones
  const int64_t c = count_[size_t(run)];
  if (c == 0) return;
  v.array("ring.obs", DType::f32, {c, H + 1, O_}, rp_.obs.data() + r * C * (H + 1) * O_, b_);
  if (landing_) v.array("ring.landing", DType::f32, {c, H, O_}, rp_.land.data() + r * C * H * O_, b_);
  v.array("ring.reward", DType::f32, {c, H}, rp_.rew.data() + r * C * H, b_);
  if (discrete_)
    v.array("ring.action", DType::i32, {c, H}, rp_.act.data() + r * C * H, b_);
  else
    v.array("ring.action_value", DType::f32, {c, H, A_}, rp_.act_value.data() + r * C * H * A_, b_);
  v.array("ring.session_id", DType::i32, {c, H}, rp_.sid.data() + r * C * H, b_);
  v.array("ring.session_end", DType::u8, {c, H}, rp_.send.data() + r * C * H, b_);
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
                             bool landing, int runs)
    : b_(b),
      H_(spec.horizon),
      O_(spec.obs_dim),
      A_(spec.action_dim),
      discrete_(spec.discrete()),
      landing_(landing),
      n_(n_envs),
      capacity_(capacity),
      runs_(runs),
      count_(size_t(runs > 0 ? runs : 0), 0),
      max_batch_(max_batch),
      head_(b, size_t(runs > 0 ? runs : 0)),
      pick_(b, size_t(runs > 0 ? runs : 0) * max_batch) {
  if (max_batch > capacity)
    throw std::invalid_argument("EpisodeReplay: a batch of " + std::to_string(max_batch) + " exceeds the capacity " +
                                std::to_string(capacity));
  if (runs < 1) throw std::invalid_argument("EpisodeReplay: runs must be >= 1, got " + std::to_string(runs));
  as_.allocate(b, runs * n_envs, H_, O_, discrete_, A_, landing);
  rp_.allocate(b, runs * capacity, H_, O_, discrete_, A_, landing);
  bt_.allocate(b, int64_t(runs) * max_batch, H_, O_, discrete_, A_, landing);
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
  parallel_for(b_, int64_t(runs_) * (H_ + 1) * n_, PushRows{rc, n_, capacity_, head_.data()});
  parallel_for(b_, runs_, AdvanceHeads{head_.data(), n_, capacity_});
}

void EpisodeReplay::note_push() {
  for (int64_t& c : count_) c = c + n_ < capacity_ ? c + n_ : capacity_;
}

std::vector<int32_t> EpisodeReplay::sample(int batch, std::mt19937_64& rng, int run) const {
  const int64_t count = count_[size_t(run)];
  if (batch > count)
    throw std::invalid_argument("EpisodeReplay::sample: " + std::to_string(batch) + " episodes asked, " +
                                std::to_string(count) + " stored");
  std::vector<int32_t> slots(static_cast<size_t>(count));
  std::iota(slots.begin(), slots.end(), 0);
  for (size_t i = 0; i < size_t(batch); ++i) {  // partial Fisher–Yates
    std::uniform_int_distribution<size_t> pick(i, slots.size() - 1);
    std::swap(slots[i], slots[pick(rng)]);
  }
  slots.resize(size_t(batch));
  return slots;
}

std::vector<std::vector<int32_t>> EpisodeReplay::sample(int batch, std::vector<std::mt19937_64>& rngs) const {
  if (rngs.size() != size_t(runs_))
    throw std::invalid_argument("EpisodeReplay::sample: " + std::to_string(rngs.size()) + " streams for " +
                                std::to_string(runs_) + " runs");
  std::vector<std::vector<int32_t>> slots;
  for (int r = 0; r < runs_; ++r) slots.push_back(sample(batch, rngs[size_t(r)], r));
  return slots;
}

EpisodeBatchView<float> EpisodeReplay::gather(const std::vector<std::vector<int32_t>>& slots) {
  if (slots.size() != size_t(runs_))
    throw std::invalid_argument("EpisodeReplay::gather: " + std::to_string(slots.size()) + " runs' slots for " +
                                std::to_string(runs_) + " runs");
  const int B = int(slots[0].size());
  if (B > max_batch_) throw std::invalid_argument("EpisodeReplay::gather: more slots than the batch holds");
  std::vector<int32_t> picks;  // [S, B]
  for (const std::vector<int32_t>& run_slots : slots) {
    if (int(run_slots.size()) != B) throw std::invalid_argument("EpisodeReplay::gather: every run gathers B slots");
    picks.insert(picks.end(), run_slots.begin(), run_slots.end());
  }
  pick_.assign(b_, picks);
  const RowCopy rc =
      row_copy(O_, A_, H_, discrete_, rp_.obs.data(), rp_.land.data(), rp_.rew.data(), rp_.act_value.data(),
               rp_.act.data(), rp_.sid.data(), rp_.send.data(), bt_.obs.data(), bt_.land.data(), bt_.rew.data(),
               bt_.act_value.data(), bt_.act.data(), bt_.sid.data(), bt_.send.data());
  parallel_for(b_, int64_t(runs_) * (H_ + 1) * B, GatherRows{rc, B, capacity_, pick_.data()});
  batch_ = B;
  EpisodeBatchView<float> v;
  v.steps = H_;
  v.batch = B;
  v.runs = runs_;
  v.obs = bt_.obs.data();
  v.act = discrete_ ? bt_.act.data() : nullptr;
  v.act_value = discrete_ ? nullptr : bt_.act_value.data();
  v.rew = bt_.rew.data();
  v.sid = bt_.sid.data();
  v.send = bt_.send.data();
  v.next_obs = landing_ ? bt_.land.data() : nullptr;
  return v;
}

std::vector<int32_t> EpisodeReplay::batch_session_ids() const {
  std::vector<int32_t> all = bt_.sid.to_host();
  all.resize(size_t(runs_) * size_t(H_) * size_t(batch_));
  return all;
}

void EpisodeReplay::record_obs(int k, const float* obs) {
  parallel_for(b_, int64_t(runs_) * n_, RecordObs{O_, n_, k, H_, obs, as_.obs.data()});
}

void EpisodeReplay::record_step(int k, const ActionBatch& a, const float* reward, const float* final_obs,
                                const int32_t* session_id, const uint8_t* session_end) {
  parallel_for(b_, int64_t(runs_) * n_,
               AssembleTransition{O_, A_, discrete_, n_, k, H_, a.index, a.value, reward, final_obs, session_id,
                                  session_end, as_.act.data(), as_.act_value.data(), as_.rew.data(),
                                  landing_ ? as_.land.data() : nullptr, as_.sid.data(), as_.send.data()});
}

}  // namespace dyn
