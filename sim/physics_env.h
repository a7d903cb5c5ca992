// reacher, halfcheetah_vel, halfcheetah_dir and halfcheetah_wind_vel (SPEC §2, paper D.2): the planar engine
// (sim/physics) on the DLCMDP session process, one env per CUDA thread or host loop iteration. The per-env math is
// DYN_HD, as the stages of env_step (sim/env.h): clip the action → physics substeps (motors, wind) → reward of the
// session's latent → session process → (switch: next latent; the body keeps its state) → (truncation: new episode)
// → observe. N envs on a backend are a PhysicsBatchEnv (declared at the bottom).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/philox.h"
#include "kernels/step_ref.h"
#include "sim/env.h"
#include "sim/physics/planar_step.h"
#include "sim/session.h"

namespace dyn {

enum class PhysicsTask : uint8_t { reacher = 0, cheetah_vel = 1, cheetah_dir = 2, cheetah_wind_vel = 3 };

constexpr int kReacherObsDim = 10, kReacherActions = 2;
constexpr int kCheetahObsDim = 17, kCheetahActions = 6;
constexpr int kPhysicsMaxObs = 17, kPhysicsMaxActions = 6;
constexpr int kLatentPhases = 32;  // latent_phase = "random": i offset by U{0..31} per episode

DYN_HD int physics_obs_dim(PhysicsTask t) { return t == PhysicsTask::reacher ? kReacherObsDim : kCheetahObsDim; }
DYN_HD int physics_action_dim(PhysicsTask t) { return t == PhysicsTask::reacher ? kReacherActions : kCheetahActions; }

// The task's rules: everything an env step needs but the model. Small, so kernels take it by value.
struct PhysicsTaskParams {
  PhysicsTask task = PhysicsTask::cheetah_vel;
  SessionParams session{400, 4, SessionModel::poisson, 0.0f, false};  // H 400, K 4, the body keeps its state
  bool random_phase = false;                                          // latent_phase = "random"
  bool wind_drift = false;  // wind_mode = "drift": f_w·1e-3 m added to rootx after each substep
  float dir_stay_prob = 0.2f;
  uint32_t seed = 0;
};

// A task with its planar model (HalfCheetah or Reacher), on the host. The per-env functions below take the rules
// and the model apart; PhysicsBatchEnv keeps the model in backend memory.
struct PhysicsEnvParams : PhysicsTaskParams {
  PlanarModel<float> model;
};

// How an env's body is stepped: array capacities D (planar_model.h) and the integrator, the model's at run time
// (kIntegrator = -1: host code and tests) or one fixed at compile time (the batched kernels, so a kernel holds one
// copy of the solver's arrays, sized to the task's model).
template <class D = PlanarMaxDims, int kIntegrator = -1>
struct PhysicsEngine {
  using Dims = D;
  DYN_HD static void step(const PlanarModel<float>& m, PlanarState<float>& s, const PlanarControl<float>& c) {
    if constexpr (kIntegrator == int(Integrator::euler))
      planar_euler_step<float, D>(m, s, c);
    else if constexpr (kIntegrator == int(Integrator::rk4))
      planar_rk4_step<float, D>(m, s, c);
    else
      planar_physics_step<float, D>(m, s, c);
  }
};

struct PhysicsEnvState {
  PlanarState<float> body;  // q, q̇
  SessionState ss;
  float goal_angle = 0, goal_radius = 0;  // reacher: α and r of this episode
  int8_t dir = 1;                         // halfcheetah_dir: the current session's direction ±1
  uint8_t phase = 0;                      // latent_phase offset of this episode
  uint8_t unused[2] = {0, 0};             // explicit padding: a checkpoint's bytes are the state's alone
};
static_assert(sizeof(PhysicsEnvState) == sizeof(PlanarState<float>) + sizeof(SessionState) + 12,
              "PhysicsEnvState has no hidden padding");

// ---- the session latents (SPEC §2) ----

DYN_HD float cheetah_target_velocity(int i) { return 1.5f + 1.5f * sinf(0.2f * float(i)); }  // v_g(i)
DYN_HD float cheetah_wind_force(int i) { return 10.0f + 10.0f * sinf(0.3f * float(i)); }     // f_w(i), newtons
DYN_HD int session_index(const PhysicsEnvState& s) { return int(s.ss.session) + int(s.phase); }

// The reacher's goal of session i: (r cos(α i), r sin(α i)).
DYN_HD V2<float> reacher_goal(const PhysicsEnvState& s) {
  const float a = s.goal_angle * float(session_index(s));
  return {s.goal_radius * cosf(a), s.goal_radius * sinf(a)};
}

// Fingertip position and velocity in the (x, y) plane: the welded fingertip body's origin.
template <class D = PlanarMaxDims>
DYN_HD void reacher_fingertip(const PlanarModel<float>& m, const PlanarState<float>& b, V2<float>& pos,
                              V2<float>& vel) {
  PlanarKinematics<float, D> k;
  planar_kinematics(m, b.q, b.qd, static_cast<const float*>(nullptr), k);
  const int tip = m.nbody - 1;
  pos = k.origin[tip];
  vel = k.origin_vel[tip];
}

template <class E = PhysicsEngine<>>
DYN_HD void physics_observe(const PhysicsTaskParams& p, const PlanarModel<float>& m, const PhysicsEnvState& s,
                            float* obs) {
  const PlanarState<float>& b = s.body;
  if (p.task == PhysicsTask::reacher) {
    // cos q (2), sin q (2), q̇ (2), fingertip xy (2), fingertip velocity xy (2); the goal is latent
    V2<float> tip, tip_vel;
    reacher_fingertip<typename E::Dims>(m, b, tip, tip_vel);
    obs[0] = cosf(b.q[0]);
    obs[1] = cosf(b.q[1]);
    obs[2] = sinf(b.q[0]);
    obs[3] = sinf(b.q[1]);
    obs[4] = b.qd[0];
    obs[5] = b.qd[1];
    obs[6] = tip.u;
    obs[7] = tip.v;
    obs[8] = tip_vel.u;
    obs[9] = tip_vel.v;
    return;
  }
  for (int j = 1; j < 9; ++j) obs[j - 1] = b.q[j];   // qpos[1:]: rootz, rooty, six joint angles
  for (int j = 0; j < 9; ++j) obs[8 + j] = b.qd[j];  // qvel
}

// The body drawn from nu_0 (Gymnasium's reset noise): reacher q ~ U(−0.1, 0.1), q̇ ~ U(−0.005, 0.005); halfcheetah
// qpos = U(−0.1, 0.1) on all 9, qvel = 0.1·N(0, 1).
DYN_HD void physics_draw_body(const PhysicsTaskParams& p, const PlanarModel<float>& m, PlanarState<float>& b,
                              Philox& rng) {
  const int n = m.ndof;
  for (int j = 0; j < n; ++j) b.q[j] = 0.2f * rng.uniform() - 0.1f;
  if (p.task == PhysicsTask::reacher)
    for (int j = 0; j < n; ++j) b.qd[j] = 0.01f * rng.uniform() - 0.005f;
  else
    for (int j = 0; j < n; ++j) b.qd[j] = 0.1f * rng.normal();
}

// New episode starting at global step `episode_step`: the body's reset noise and the episode's latent draws.
DYN_HD void physics_reset(const PhysicsTaskParams& p, const PlanarModel<float>& m, PhysicsEnvState& s, EnvKey key,
                          uint32_t episode_step) {
  Philox rng(key.seed, kStreamEpisodeReset, key.env, episode_step);
  physics_draw_body(p, m, s.body, rng);
  if (p.task == PhysicsTask::reacher) {
    s.goal_angle = 6.283185307f * rng.uniform();  // α ~ U(0, 2π), r ~ U(0.1, 0.2) for the episode
    s.goal_radius = 0.1f + 0.1f * rng.uniform();
  } else {
    s.dir = rng.uniform() <= 0.5f ? int8_t(1) : int8_t(-1);  // halfcheetah_dir: the first direction is uniform
  }
  s.phase = p.random_phase ? uint8_t(rng.uniform_int(kLatentPhases)) : uint8_t(0);
  session_begin_episode(p.session, s.ss, key.seed, key.env, episode_step);
}

// The latent of the current session: the reacher's goal (x, y); halfcheetah_vel's target velocity v_g;
// halfcheetah_dir's direction ±1; halfcheetah_wind_vel's (v_g, f_w).
DYN_HD int physics_latent_dim(PhysicsTask t) {
  return t == PhysicsTask::reacher || t == PhysicsTask::cheetah_wind_vel ? 2 : 1;
}
DYN_HD void physics_latent(const PhysicsTaskParams& p, const PhysicsEnvState& s, float* out) {
  const int i = session_index(s);
  if (p.task == PhysicsTask::reacher) {
    const V2<float> g = reacher_goal(s);
    out[0] = g.u;
    out[1] = g.v;
  } else if (p.task == PhysicsTask::cheetah_dir) {
    out[0] = float(s.dir);
  } else {
    out[0] = cheetah_target_velocity(i);
    if (p.task == PhysicsTask::cheetah_wind_vel) out[1] = cheetah_wind_force(i);
  }
}

// The physics tasks' stages for env_step (sim/env.h), with the body stepped by engine E: clip the action →
// physics substeps (motors, wind) → reward of the session's latent; at a session end the direction of
// halfcheetah_dir moves by its switch matrix (the body keeps its state).
template <class E = PhysicsEngine<>>
struct PhysicsEnv {
  using State = PhysicsEnvState;
  PhysicsTaskParams p;
  const PlanarModel<float>* m;  // backend memory in kernels (PhysicsBatchEnv), host memory in host code
  DYN_HD const SessionParams& session() const { return p.session; }
  DYN_HD float act(PhysicsEnvState& s, int32_t, const float* action) const {
    const PlanarModel<float>& model = *m;
    const int na = physics_action_dim(p.task);
    float a[kPhysicsMaxActions], a_sq = 0;
    for (int k = 0; k < na; ++k) {
      const float x = action[k];
      a[k] = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f));  // NaN acts as 0
      a_sq += a[k] * a[k];
    }
    const int i = session_index(s);
    PlanarControl<float> c;
    c.ctrl = a;
    const bool wind = p.task == PhysicsTask::cheetah_wind_vel;
    const float f_w = wind ? cheetah_wind_force(i) : 0.0f;
    if (wind && !p.wind_drift) {
      c.force_body = 0;  // the torso, at its centre of mass, along world x
      c.force = V2<float>{f_w, 0.0f};
    }
    const float x_before = s.body.q[0];
    for (int k = 0; k < model.substeps; ++k) {
      E::step(model, s.body, c);
      if (wind && p.wind_drift) s.body.q[0] += f_w * 1e-3f;
    }
    if (p.task == PhysicsTask::reacher) {
      V2<float> tip, tip_vel;
      reacher_fingertip<typename E::Dims>(model, s.body, tip, tip_vel);
      const V2<float> g = reacher_goal(s);
      return -sqrtf((tip.u - g.u) * (tip.u - g.u) + (tip.v - g.v) * (tip.v - g.v)) - 0.05f * sqrtf(a_sq);
    }
    const float v = (s.body.q[0] - x_before) / (model.timestep * float(model.substeps));  // Δ(torso x) / 0.05
    if (p.task == PhysicsTask::cheetah_dir) return float(s.dir) * v - 0.5f * sqrtf(a_sq);
    return -fabsf(v - cheetah_target_velocity(i)) - 0.05f * a_sq;
  }
  DYN_HD void reset(PhysicsEnvState& s, EnvKey key, uint32_t episode_step) const {
    physics_reset(p, *m, s, key, episode_step);
  }
  DYN_HD void switch_session(PhysicsEnvState& s, EnvKey key, uint32_t step) const {
    if (p.task != PhysicsTask::cheetah_dir) return;  // the other latents follow the session index
    const float u = Philox(key.seed, kStreamLatent, key.env, step).uniform();
    s.dir = two_state_transition(s.dir > 0 ? 1 : 0, p.dir_stay_prob, u) == 1 ? int8_t(1) : int8_t(-1);
  }
  DYN_HD void restart_session(PhysicsEnvState& s, Philox& rng) const { physics_draw_body(p, *m, s.body, rng); }
  DYN_HD void observe(const PhysicsEnvState& s, float* obs) const { physics_observe<E>(p, *m, s, obs); }
  DYN_HD void latent(const PhysicsEnvState& s, float* out) const { physics_latent(p, s, out); }
};

// Reacher oracle: inverse kinematics to the session's goal (the elbow on the side it is on), then a PD law in
// joint space. The other tasks have no simple oracle.
DYN_HD void reacher_oracle_action(const PhysicsEnvState& s, float* action) {
  const V2<float> g = reacher_goal(s);
  const float l0 = 0.1f, l1 = 0.11f;
  float d2 = g.u * g.u + g.v * g.v;
  const float lo = (l1 - l0) * (l1 - l0) + 1e-6f, hi = (l0 + l1) * (l0 + l1) - 1e-6f;
  d2 = d2 < lo ? lo : (d2 > hi ? hi : d2);
  float c1 = (d2 - l0 * l0 - l1 * l1) / (2.0f * l0 * l1);
  c1 = c1 < -1.0f ? -1.0f : (c1 > 1.0f ? 1.0f : c1);
  const float q1 = (s.body.q[1] >= 0.0f ? 1.0f : -1.0f) * acosf(c1);
  const float q0 = atan2f(g.v, g.u) - atan2f(l1 * sinf(q1), l0 + l1 * cosf(q1));
  float e0 = q0 - s.body.q[0];
  e0 = atan2f(sinf(e0), cosf(e0));  // joint 0 is unlimited: the short way round
  const float e1 = q1 - s.body.q[1];
  const float kp = 2.0f, kd = 0.12f;
  action[0] = kp * e0 - kd * s.body.qd[0];
  action[1] = kp * e1 - kd * s.body.qd[1];
}

// ---- N envs of a physics task on a backend (sim/physics_env_batch.cu) ----

// The params of a task with its model (float).
PhysicsEnvParams physics_env_params(PhysicsTask task);
// The task named by an env config (reacher, halfcheetah_*), with its session, seed and options (latent_phase,
// dir_stay_prob, wind_mode); nullopt-like: throws std::invalid_argument for another name.
PhysicsEnvParams physics_env_params(const EnvConfig& cfg);
EnvSpec physics_spec(const PhysicsEnvParams& p);

// N envs of one task: the rules by value, the model in backend memory (uploaded once; every env reads it there
// rather than copying it), and kernels instantiated for the task's own array capacities and its model's integrator.
// Throws at construction when the model does not fit its task's capacities.
class PhysicsBatchEnv : public BatchEnv {
 public:
  PhysicsBatchEnv(Backend b, const PhysicsEnvParams& p, int64_t n);
  const PhysicsEnvParams& params() const { return p_; }
  void reset(float* obs, float* latent) override;
  void step(const ActionBatch& actions, const StepBatch& out, StepRef step) override;
  void scripted(bool oracle, const ActionBuffers& out, uint32_t step) override;
  void visit_state(StateVisitor& v, int run) override { v.bytes("state", state_, run, runs_); }
  const PhysicsEnvState* states() const { return state_.data(); }  // [N] (tests)

 private:
  PhysicsEnvParams p_;
  Buffer<PlanarModel<float>> model_;  // [1] on the backend
  Buffer<PhysicsEnvState> state_;     // [N]
};

}  // namespace dyn
