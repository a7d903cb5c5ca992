// scratch_itch over N environments on either backend (each call one parallel_for over the DYN_HD env math of
// sim/scratch_itch.h), and the host-side set-up: the person's arm and the robot's base from reference/physics.md
// §4.4, and the Jaco's start pose.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/nvtx.h"
#include "kernels/parallel_for.cuh"
#include "sim/env_rows.h"
#include "sim/physics/planar_dynamics.h"
#include "sim/scratch_itch.h"

namespace dyn {

namespace {

// An arm env step costs a microsecond or so: the host loop splits over the OpenMP threads from this many envs on.
constexpr int64_t kScratchMinCpuItems = 64;

struct OracleArms {
  ScratchParams p;
  const ScratchState* state;
  float* actions;
  uint32_t step;
  DYN_HD void operator()(int64_t i) const { scratch_oracle_action(p, state[i], step, actions + i * kScratchActions); }
};

// The robot base (physics.md §4.4): world (−0.35, −0.30, 0.36), yaw −π/2, so robot x = world −y, robot y = world x.
V3<double> world_to_robot(V3<double> w) {
  const V3<double> d = w - V3<double>{-0.35, -0.30, 0.36};
  return {-d.y, d.x, d.z};
}

V3<float> to_float(V3<double> v) { return {float(v.x), float(v.y), float(v.z)}; }

// The pose error of the end effector: position (3) and orientation ½ Σᵢ cur_i × goal_i (3).
void ee_error(const ChainPose<double>& pose, V3<double> ee, const Mat3<double>& goal, double* e) {
  const V3<double> dp = ee - pose.origin[kArmFrames - 1];
  V3<double> w{0, 0, 0};
  for (int i = 0; i < 3; ++i) w = w + cross(pose.rotation[kArmFrames - 1].column(i), goal.column(i));
  const double err[6] = {dp.x, dp.y, dp.z, 0.5 * w.x, 0.5 * w.y, 0.5 * w.z};
  for (int k = 0; k < 6; ++k) e[k] = err[k];
}

}  // namespace

ScratchScene scratch_scene() {
  const double deg = M_PI / 180.0;
  // the male person (Assistive Gym draws male or female 50/50; one body here, README decisions)
  const V3<double> chest{0.0, 0.03, 0.89};
  const V3<double> shoulder = chest + V3<double>{-(0.106 + 0.073), 0.0, 0.0708};
  // right shoulder_x 30°: the upper arm hangs 30° back from straight down (the person faces −y); elbow −90°: the
  // forearm at right angles to it, forwards and down
  const V3<double> upper_dir{0.0, std::sin(30 * deg), -std::cos(30 * deg)};
  const V3<double> fore_dir{0.0, -std::cos(30 * deg), -std::sin(30 * deg)};
  const V3<double> elbow = shoulder + 0.279 * upper_dir;
  const V3<double> forearm_end = elbow + 0.257 * fore_dir;
  const V3<double> wrist = elbow + 0.290 * fore_dir;  // the hand joint
  ScratchScene sc;
  sc.shoulder = to_float(world_to_robot(shoulder));
  sc.elbow = to_float(world_to_robot(elbow));
  sc.wrist = to_float(world_to_robot(wrist));
  sc.upper_arm = {sc.shoulder, sc.elbow, 0.043f};
  sc.forearm = {sc.elbow, to_float(world_to_robot(forearm_end)), 0.033f};
  // both limbs lie in the world plane x = −0.179; the robot is on the person's right (world −x): the itch is on
  // the arm's outer side, world −x, which is the robot's −y
  sc.itch_side = {0.0f, -1.0f, 0.0f};
  sc.ee_start = to_float(world_to_robot({-0.6, 0.0, 0.8}));
  return sc;
}

void jaco_start_pose(const ChainModel<double>& arm, V3<double> ee, double* q) {
  // Assistive Gym's start orientation: rpy (0, π/2, 0) in the world, seen from the robot base (yaw −π/2)
  const Mat3<double> base = rpy_matrix(0.0, 0.0, -M_PI / 2);
  const Mat3<double> ee_goal = transpose(base) * rpy_matrix(0.0, M_PI / 2, 0.0);
  // damped least squares from a few bent-elbow guesses (joints 2/4/6 are centred on π); the closest solution wins
  const double guesses[4][kArmJoints] = {{0, M_PI - 0.8, 0, M_PI - 1.5, 0, M_PI - 0.8, 0},
                                         {0, M_PI + 0.8, 0, M_PI + 1.5, 0, M_PI + 0.8, 0},
                                         {M_PI / 2, M_PI - 0.8, 0, M_PI - 1.5, 0, M_PI - 0.8, 0},
                                         {-M_PI / 2, M_PI + 0.8, 0, M_PI + 1.5, 0, M_PI + 0.8, 0}};
  double best = 1e30;
  for (const auto& guess : guesses) {
    double x[kArmJoints];
    for (int j = 0; j < kArmJoints; ++j) x[j] = guess[j];
    ChainPose<double> pose;
    double e[6];
    for (int it = 0; it < 500; ++it) {
      chain_forward(arm, x, pose);
      ee_error(pose, ee, ee_goal, e);
      double J[6][kArmJoints];
      for (int j = 0; j < kArmJoints; ++j) {
        const V3<double> axis = pose.rotation[j].column(2);
        const V3<double> lin = cross(axis, pose.origin[kArmFrames - 1] - pose.origin[j]);
        const double col[6] = {lin.x, lin.y, lin.z, axis.x, axis.y, axis.z};
        for (int r = 0; r < 6; ++r) J[r][j] = col[r];
      }
      double A[36], y[6];
      for (int r = 0; r < 6; ++r) {
        y[r] = e[r];
        for (int c = 0; c < 6; ++c) {
          double s = r == c ? 1e-4 : 0.0;
          for (int j = 0; j < kArmJoints; ++j) s += J[r][j] * J[c][j];
          A[r * 6 + c] = s;
        }
      }
      cholesky_factor(A, 6);  // J Jᵀ + λ² I is symmetric positive definite
      cholesky_solve(A, y, 6);
      for (int j = 0; j < kArmJoints; ++j) {
        double dq = 0;
        for (int r = 0; r < 6; ++r) dq += J[r][j] * y[r];
        x[j] = arm.clamp(j, x[j] + (dq > 0.2 ? 0.2 : (dq < -0.2 ? -0.2 : dq)));
      }
    }
    chain_forward(arm, x, pose);
    ee_error(pose, ee, ee_goal, e);
    double err = 0;
    for (double v : e) err += v * v;
    if (err < best) {
      best = err;
      for (int j = 0; j < kArmJoints; ++j) q[j] = x[j];
    }
  }
}

ScratchParams scratch_params() {
  ScratchParams p;
  const ChainModel<double> arm = jaco_model();
  p.arm = arm.cast<float>();
  p.scene = scratch_scene();
  double q[kArmJoints];
  jaco_start_pose(arm, {p.scene.ee_start.x, p.scene.ee_start.y, p.scene.ee_start.z}, q);
  for (int j = 0; j < kArmJoints; ++j) p.q_start[j] = float(arm.limited[j] ? q[j] : std::remainder(q[j], 2 * M_PI));
  return p;
}

ScratchParams scratch_params(const EnvConfig& cfg) {
  if (cfg.name != "scratch_itch") throw std::invalid_argument("scratch_params: not scratch_itch: '" + cfg.name + "'");
  ScratchParams p = scratch_params();
  p.session = cfg.session;
  p.seed = cfg.seed;
  p.random_phase = cfg.option("latent_phase", "zero") == "random";
  return p;
}

EnvSpec scratch_spec(const ScratchParams& p) {
  EnvSpec s;
  s.name = "scratch_itch";
  s.obs_dim = kScratchObsDim;
  s.action_kind = ActionKind::continuous;
  s.action_dim = kScratchActions;
  s.latent_dim = kScratchLatentDim;
  s.horizon = p.session.horizon;
  s.has_oracle = true;
  return s;
}

ScratchBatchEnv::ScratchBatchEnv(Backend b, const ScratchParams& p, int64_t n)
    : BatchEnv(b, scratch_spec(p), n, p.seed), p_(p), state_(b, size_t(n)) {}

void ScratchBatchEnv::reset(float* obs, float* latent) {
  DYN_NVTX_RANGE("scratch_env_reset");
  parallel_for_heavy(b_, n_,
                     ResetRows<ScratchEnv>{{p_}, state_.data(), obs, latent, kScratchObsDim, kScratchLatentDim, rows()},
                     kScratchMinCpuItems);
}

void ScratchBatchEnv::step(const ActionBatch& actions, const StepBatch& out, StepRef step) {
  DYN_NVTX_RANGE("scratch_env_step");
  if (!actions.value) throw std::invalid_argument("scratch_itch: actions are vectors (ActionBatch::value)");
  parallel_for_heavy(b_, n_,
                     StepRows<ScratchEnv>{{p_},
                                          state_.data(),
                                          {nullptr, actions.value},
                                          out,
                                          kScratchObsDim,
                                          kScratchActions,
                                          kScratchLatentDim,
                                          step,
                                          rows()},
                     kScratchMinCpuItems);
}

void ScratchBatchEnv::scripted(bool oracle, const ActionBuffers& out, uint32_t step) {
  DYN_NVTX_RANGE("scratch_env_policy");
  if (oracle)
    parallel_for_heavy(b_, n_, OracleArms{p_, state_.data(), out.value, step}, kScratchMinCpuItems);
  else
    parallel_for(b_, n_, UniformRandomActions{out.value, kScratchActions, step, rows()});
}

}  // namespace dyn
