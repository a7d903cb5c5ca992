// reacher and halfcheetah_* over N environments on either backend: each call is one parallel_for over the DYN_HD
// env math of sim/physics_env.h.
#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/physics/models.h"
#include "sim/physics_env.h"

namespace dyn {

// A physics env step costs microseconds: the host loop splits over the OpenMP threads from this many envs on.
constexpr int64_t kPhysicsMinCpuItems = 64;

PhysicsEnvParams physics_env_params(PhysicsTask task) {
  PhysicsEnvParams p;
  p.task = task;
  p.model = (task == PhysicsTask::reacher ? reacher_model() : halfcheetah_model()).cast<float>();
  return p;
}

void physics_env_reset(Backend b, const PhysicsEnvParams& p, PhysicsEnvState* state, float* obs, int64_t n,
                       uint32_t episode_step) {
  DYN_NVTX_RANGE("physics_env_reset");
  const int od = physics_obs_dim(p.task);
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    PhysicsEnvState s;
    physics_reset(p, s, uint32_t(i), episode_step);
    physics_observe(p, s, obs + i * od);
    state[i] = s;
  });
}

void physics_env_step(Backend b, const PhysicsEnvParams& p, PhysicsEnvState* state, const float* actions,
                      const PhysicsBatchOut& out, int64_t n, StepRef step) {
  DYN_NVTX_RANGE("physics_env_step");
  const int od = physics_obs_dim(p.task), ad = physics_action_dim(p.task);
  parallel_for(
      b, n,
      [=] DYN_LAMBDA(int64_t i) {
        PhysicsEnvState s = state[i];
        const PhysicsOut o{out.obs + i * od,
                           out.reward + i,
                           out.session_end + i,
                           out.truncated + i,
                           out.terminated + i,
                           out.session_id + i,
                           out.final_obs ? out.final_obs + i * od : nullptr};
        physics_step(p, s, actions + i * ad, uint32_t(i), step.get(), o);
        state[i] = s;
      },
      kPhysicsMinCpuItems);
}

void physics_env_policy(Backend b, bool oracle, const PhysicsEnvParams& p, const PhysicsEnvState* state, float* actions,
                        int64_t n, uint32_t step) {
  DYN_NVTX_RANGE("physics_env_policy");
  const int ad = physics_action_dim(p.task);
  if (oracle && p.task == PhysicsTask::reacher)
    parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { reacher_oracle_action(state[i], actions + i * ad); });
  else
    parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { physics_random_action(p, uint32_t(i), step, actions + i * ad); });
}

}  // namespace dyn
