// reacher and halfcheetah_* over N environments on either backend: each call is one parallel_for over the DYN_HD
// env math of sim/physics_env.h, with the model read from backend memory and the step instantiated for the task's
// array capacities and integrator (the per-thread arrays of the constraint solver are what a CUDA thread keeps in
// local memory: bench/results/ has the resource table).
#include <stdexcept>
#include <string>

#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/physics/models.h"
#include "sim/physics_env.h"

namespace dyn {

namespace {

// A physics env step costs microseconds: the host loop splits over the OpenMP threads from this many envs on.
constexpr int64_t kPhysicsMinCpuItems = 64;

// Array capacities of each task's model (checked against the model in PhysicsEnvBatch's constructor): the Reacher
// has 3 bodies, 2 dofs and one limited joint; the HalfCheetah 7 bodies, 9 dofs, 6 limited joints and 8 capsules
// (16 end spheres × 3 rows).
using ReacherDims = PlanarDims<3, 2, 1>;
using CheetahDims = PlanarDims<7, 9, 54>;

template <class E>
struct ResetEnvs {
  PhysicsTaskParams p;
  const PlanarModel<float>* model;
  PhysicsEnvState* state;
  float* obs;
  int od;
  uint32_t episode_step;
  DYN_HD void operator()(int64_t i) const {
    PhysicsEnvState s;
    physics_reset(p, *model, s, uint32_t(i), episode_step);
    physics_observe<E>(p, *model, s, obs + i * od);
    state[i] = s;
  }
};

template <class E>
struct StepEnvs {
  PhysicsTaskParams p;
  const PlanarModel<float>* model;
  PhysicsEnvState* state;
  const float* actions;
  PhysicsBatchOut out;
  int od, ad;
  StepRef step;
  DYN_HD void operator()(int64_t i) const {
    PhysicsEnvState s = state[i];
    const PhysicsOut o{out.obs + i * od,
                       out.reward + i,
                       out.session_end + i,
                       out.truncated + i,
                       out.terminated + i,
                       out.session_id + i,
                       out.final_obs ? out.final_obs + i * od : nullptr};
    physics_step<E>(p, *model, s, actions + i * ad, uint32_t(i), step.get(), o);
    state[i] = s;
  }
};

struct OracleActions {
  const PhysicsEnvState* state;
  float* actions;
  int ad;
  DYN_HD void operator()(int64_t i) const { reacher_oracle_action(state[i], actions + i * ad); }
};

struct RandomActions {
  PhysicsTaskParams p;
  float* actions;
  int ad;
  uint32_t step;
  DYN_HD void operator()(int64_t i) const { physics_random_action(p, uint32_t(i), step, actions + i * ad); }
};

// Runs Rows<engine> over n envs for the task's engine: its capacities and its model's integrator, each a kernel of
// its own with the block size that maximises its occupancy.
template <template <class> class Rows, class... Args>
void launch_for_task(Backend b, const PhysicsEnvParams& p, int64_t n, Args... args) {
  const bool euler = p.model.integrator == Integrator::euler;
  constexpr int kEuler = int(Integrator::euler), kRk4 = int(Integrator::rk4);
  if (p.task == PhysicsTask::reacher) {
    if (euler)
      parallel_for_heavy(b, n, Rows<PhysicsEngine<ReacherDims, kEuler>>{args...}, kPhysicsMinCpuItems);
    else
      parallel_for_heavy(b, n, Rows<PhysicsEngine<ReacherDims, kRk4>>{args...}, kPhysicsMinCpuItems);
  } else {
    if (euler)
      parallel_for_heavy(b, n, Rows<PhysicsEngine<CheetahDims, kEuler>>{args...}, kPhysicsMinCpuItems);
    else
      parallel_for_heavy(b, n, Rows<PhysicsEngine<CheetahDims, kRk4>>{args...}, kPhysicsMinCpuItems);
  }
}

}  // namespace

PhysicsEnvParams physics_env_params(PhysicsTask task) {
  PhysicsEnvParams p;
  p.task = task;
  p.model = (task == PhysicsTask::reacher ? reacher_model() : halfcheetah_model()).cast<float>();
  return p;
}

PhysicsEnvBatch::PhysicsEnvBatch(Backend b, const PhysicsEnvParams& p) : b_(b), p_(p), model_(b, 1) {
  const bool fits = p.task == PhysicsTask::reacher ? p.model.fits<ReacherDims>() : p.model.fits<CheetahDims>();
  if (!fits)
    throw std::invalid_argument("PhysicsEnvBatch: the model (" + std::to_string(p.model.nbody) + " bodies, " +
                                std::to_string(p.model.ndof) + " dofs, " + std::to_string(p.model.max_rows()) +
                                " constraint rows) exceeds its task's capacities in sim/physics_env_batch.cu");
  model_.from_host({p.model});
}

void PhysicsEnvBatch::reset(PhysicsEnvState* state, float* obs, int64_t n, uint32_t episode_step) const {
  DYN_NVTX_RANGE("physics_env_reset");
  launch_for_task<ResetEnvs>(b_, p_, n, PhysicsTaskParams(p_), model_.data(), state, obs, physics_obs_dim(p_.task),
                             episode_step);
}

void PhysicsEnvBatch::step(PhysicsEnvState* state, const float* actions, const PhysicsBatchOut& out, int64_t n,
                           StepRef step) const {
  DYN_NVTX_RANGE("physics_env_step");
  launch_for_task<StepEnvs>(b_, p_, n, PhysicsTaskParams(p_), model_.data(), state, actions, out,
                            physics_obs_dim(p_.task), physics_action_dim(p_.task), step);
}

void PhysicsEnvBatch::policy(bool oracle, const PhysicsEnvState* state, float* actions, int64_t n,
                             uint32_t step) const {
  DYN_NVTX_RANGE("physics_env_policy");
  const int ad = physics_action_dim(p_.task);
  if (oracle && p_.task == PhysicsTask::reacher)
    parallel_for(b_, n, OracleActions{state, actions, ad});
  else
    parallel_for(b_, n, RandomActions{PhysicsTaskParams(p_), actions, ad, step});
}

}  // namespace dyn
