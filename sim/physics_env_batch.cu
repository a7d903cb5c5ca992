// reacher and halfcheetah_* over N environments on either backend: each call is one parallel_for over the DYN_HD
// env math of sim/physics_env.h, with the model read from backend memory and the step instantiated for the task's
// array capacities and integrator (the per-thread arrays of the constraint solver are what a CUDA thread keeps in
// local memory: bench/results/ has the resource table).
#include <stdexcept>
#include <string>

#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/env_rows.h"
#include "sim/physics/models.h"
#include "sim/physics_env.h"

namespace dyn {

namespace {

// A physics env step costs microseconds: the host loop splits over the OpenMP threads from this many envs on.
constexpr int64_t kPhysicsMinCpuItems = 64;

// Array capacities of each task's model (checked against the model in PhysicsBatchEnv's constructor): the Reacher
// has 3 bodies, 2 dofs and one limited joint; the HalfCheetah 7 bodies, 9 dofs, 6 limited joints and 8 capsules
// (16 end spheres × 3 rows).
using ReacherDims = PlanarDims<3, 2, 1>;
using CheetahDims = PlanarDims<7, 9, 54>;

// The rows of the reset and step kernels for a task's engine (launch_for_task picks it).
template <class Engine>
using ResetEnvs = ResetRows<PhysicsEnv<Engine>>;
template <class Engine>
using StepEnvs = StepRows<PhysicsEnv<Engine>>;

struct OracleActions {
  const PhysicsEnvState* state;
  float* actions;
  int ad;
  DYN_HD void operator()(int64_t i) const { reacher_oracle_action(state[i], actions + i * ad); }
};

// Runs Rows<engine> over n envs for the task's engine: its capacities and its model's integrator, each a kernel of
// its own with the block size that maximises its occupancy.
template <template <class> class Rows, class... Args>
void launch_for_task(Backend b, const PhysicsTaskParams& p, const PlanarModel<float>& host_model,
                     const PlanarModel<float>* model, int64_t n, Args... args) {
  const bool euler = host_model.integrator == Integrator::euler;
  constexpr int kEuler = int(Integrator::euler), kRk4 = int(Integrator::rk4);
  if (p.task == PhysicsTask::reacher) {
    if (euler)
      parallel_for_heavy(b, n, Rows<PhysicsEngine<ReacherDims, kEuler>>{{p, model}, args...}, kPhysicsMinCpuItems);
    else
      parallel_for_heavy(b, n, Rows<PhysicsEngine<ReacherDims, kRk4>>{{p, model}, args...}, kPhysicsMinCpuItems);
  } else {
    if (euler)
      parallel_for_heavy(b, n, Rows<PhysicsEngine<CheetahDims, kEuler>>{{p, model}, args...}, kPhysicsMinCpuItems);
    else
      parallel_for_heavy(b, n, Rows<PhysicsEngine<CheetahDims, kRk4>>{{p, model}, args...}, kPhysicsMinCpuItems);
  }
}

}  // namespace

PhysicsEnvParams physics_env_params(PhysicsTask task) {
  PhysicsEnvParams p;
  p.task = task;
  p.model = (task == PhysicsTask::reacher ? reacher_model() : halfcheetah_model()).cast<float>();
  return p;
}

PhysicsEnvParams physics_env_params(const EnvConfig& cfg) {
  const PhysicsTask task =
      cfg.name == "reacher"           ? PhysicsTask::reacher
      : cfg.name == "halfcheetah_vel" ? PhysicsTask::cheetah_vel
      : cfg.name == "halfcheetah_dir" ? PhysicsTask::cheetah_dir
      : cfg.name == "halfcheetah_wind_vel"
          ? PhysicsTask::cheetah_wind_vel
          : throw std::invalid_argument("physics_env_params: not a physics env: '" + cfg.name + "'");
  PhysicsEnvParams p = physics_env_params(task);
  p.session = cfg.session;
  p.seed = cfg.seed;
  p.random_phase = cfg.option("latent_phase", "zero") == "random";
  p.dir_stay_prob = float(cfg.option("dir_stay_prob", double(p.dir_stay_prob)));
  p.wind_drift = cfg.option("wind_mode", "force") == "drift";
  return p;
}

EnvSpec physics_spec(const PhysicsEnvParams& p) {
  static const char* names[] = {"reacher", "halfcheetah_vel", "halfcheetah_dir", "halfcheetah_wind_vel"};
  EnvSpec s;
  s.name = names[int(p.task)];
  s.obs_dim = physics_obs_dim(p.task);
  s.action_kind = ActionKind::continuous;
  s.action_dim = physics_action_dim(p.task);
  s.latent_dim = physics_latent_dim(p.task);
  s.horizon = p.session.horizon;
  s.has_oracle = p.task == PhysicsTask::reacher;
  return s;
}

PhysicsBatchEnv::PhysicsBatchEnv(Backend b, const PhysicsEnvParams& p, int64_t n)
    : BatchEnv(b, physics_spec(p), n, p.seed), p_(p), model_(b, 1), state_(b, size_t(n)) {
  const bool fits = p.task == PhysicsTask::reacher ? p.model.fits<ReacherDims>() : p.model.fits<CheetahDims>();
  if (!fits)
    throw std::invalid_argument("PhysicsBatchEnv: the model (" + std::to_string(p.model.nbody) + " bodies, " +
                                std::to_string(p.model.ndof) + " dofs, " + std::to_string(p.model.max_rows()) +
                                " constraint rows) exceeds its task's capacities in sim/physics_env_batch.cu");
  model_.from_host({p.model});
}

void PhysicsBatchEnv::reset(float* obs, float* latent) {
  DYN_NVTX_RANGE("physics_env_reset");
  launch_for_task<ResetEnvs>(b_, p_, p_.model, model_.data(), n_, state_.data(), obs, latent, spec_.obs_dim,
                             spec_.latent_dim, rows());
}

void PhysicsBatchEnv::step(const ActionBatch& actions, const StepBatch& out, StepRef step) {
  DYN_NVTX_RANGE("physics_env_step");
  if (!actions.value) throw std::invalid_argument(spec_.name + ": actions are vectors (ActionBatch::value)");
  launch_for_task<StepEnvs>(b_, p_, p_.model, model_.data(), n_, state_.data(), ActionBatch{nullptr, actions.value},
                            out, spec_.obs_dim, spec_.action_dim, spec_.latent_dim, step, rows());
}

void PhysicsBatchEnv::scripted(bool oracle, const ActionBuffers& out, uint32_t step) {
  DYN_NVTX_RANGE("physics_env_policy");
  if (oracle && !spec_.has_oracle) throw std::invalid_argument(spec_.name + " has no scripted oracle");
  if (oracle)
    parallel_for(b_, n_, OracleActions{state_.data(), out.value, spec_.action_dim});
  else
    parallel_for(b_, n_, UniformRandomActions{out.value, spec_.action_dim, step, rows()});
}

}  // namespace dyn
