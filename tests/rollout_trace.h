// Records every output of a scripted gridworld rollout on a backend, for determinism and parity tests.
#pragma once

#include <cstring>
#include <vector>

#include "kernels/buffer.h"
#include "sim/gridworld.h"

struct RolloutTrace {
  std::vector<float> obs, reward;               // [T, N, 6], [T, N]
  std::vector<uint8_t> session_end, truncated;  // [T, N]
  std::vector<int32_t> session_id, actions;     // [T, N]
  bool operator==(const RolloutTrace& o) const {
    auto same = [](const auto& a, const auto& b) {
      return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
    };
    return same(obs, o.obs) && same(reward, o.reward) && same(session_end, o.session_end) &&
           same(truncated, o.truncated) && same(session_id, o.session_id) && same(actions, o.actions);
  }
};

inline RolloutTrace record_rollout(dyn::Backend b, const dyn::GridParams& p, dyn::ScriptedPolicy policy, int64_t n,
                                   int steps) {
  using namespace dyn;
  GridBatchEnv env(b, p, n);
  Buffer<int32_t> actions(b, n);
  Buffer<float> obs(b, n * kGridObsDim), reward(b, n);
  Buffer<uint8_t> session_end(b, n), truncated(b, n), terminated(b, n);
  Buffer<int32_t> session_id(b, n);
  const StepBatch out = StepBatch::of(obs.data(), reward.data(), terminated.data(), truncated.data(),
                                      session_end.data(), session_id.data());
  RolloutTrace tr;
  auto append = [](auto& dst, const auto& buf) {
    const auto h = buf.to_host();
    dst.insert(dst.end(), h.begin(), h.end());
  };
  env.reset(obs.data(), nullptr);
  append(tr.obs, obs);
  for (int t = 0; t < steps; ++t) {
    env.scripted(policy == ScriptedPolicy::oracle, ActionBuffers{actions.data(), nullptr}, uint32_t(t));
    env.step(ActionBatch{actions.data(), nullptr}, out, uint32_t(t));
    append(tr.actions, actions);
    append(tr.obs, obs);
    append(tr.reward, reward);
    append(tr.session_end, session_end);
    append(tr.truncated, truncated);
    append(tr.session_id, session_id);
  }
  return tr;
}
