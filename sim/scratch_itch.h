// scratch_itch (SPEC §2, paper D.3; Assistive Gym's ScratchItchJaco simplified, reference/physics.md §4): a
// kinematic 7-DOF Kinova Jaco with a scratcher must find an itch on a person's static right arm that moves along the
// arm from session to session, without seeing it. One env per CUDA thread or host loop iteration; the per-env math
// is DYN_HD, as the stages of env_step (sim/env.h): joint-position deltas → forward kinematics → tool–arm contact
// (a penalty spring on the tip sphere's penetration) → reward with the scratch bonus → session process → observe.
// Everything is in the robot base frame. N envs on a backend are a ScratchBatchEnv (declared at the bottom).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/buffer.h"
#include "kernels/hd.h"
#include "kernels/philox.h"
#include "kernels/step_ref.h"
#include "sim/arm/capsule_contact.h"
#include "sim/arm/chain_kinematics.h"
#include "sim/env.h"
#include "sim/session.h"

namespace dyn {

constexpr int kScratchObsDim = 30, kScratchActions = 7, kScratchLatentDim = 3;
constexpr int kScratchLatentPhases = 32;  // latent_phase = "random": i offset by U{0..31} per episode

// The person's static right arm in the robot frame: the upper arm and forearm capsules (shoulder → elbow, elbow →
// the forearm's end), the keypoints the observation shows, and the side of the arm the itch lies on.
struct ScratchScene {
  Capsule<float> upper_arm, forearm;
  V3<float> shoulder, elbow, wrist;
  V3<float> itch_side;  // unit, orthogonal to both limbs: the itch is on the surface facing this way (the robot)
  V3<float> ee_start;   // the end effector's reset goal (Assistive Gym's initial EE goal, before its noise)
};

// The task's rules and the arm: small enough for kernels to take by value.
struct ScratchParams {
  SessionParams session{200, 4, SessionModel::poisson, 0.0f, false};  // H 200, K 4, the arm keeps its pose
  bool random_phase = false;                                          // latent_phase = "random"
  uint32_t seed = 0;
  ChainModel<float> arm;
  ScratchScene scene;
  float q_start[kArmJoints] = {};  // the reset pose: the end effector at scene.ee_start (jaco_start_pose)
  float step_rad = 0.25f;          // joint-position delta per unit action (0.05 × frame_skip 5)
  float dt = 0.1f;                 // seconds per env step (10 Hz control)
  float tool_radius = 0.01f;       // the scratcher's tip sphere
  float stiffness = 1000.0f;       // N/m of penetration: 10 N at 1 cm
  float scratch_reach = 0.025f;    // a contact within this of the itch is at the itch
  float scratch_move = 0.01f;      // a valid scratch moved more than this since the last
  float force_limit = 10.0f;       // N: a valid scratch presses less
  float reset_noise = 0.05f;       // the end effector's reset goal ± this per axis
};

struct ScratchState {
  float q[kArmJoints];     // joint angles (continuous joints wrapped to [−π, π))
  V3<float> ee_vel;        // the end effector's linear velocity over the last step
  float force;             // total contact force on the tool after the last step (N)
  V3<float> last_scratch;  // where the last valid scratch touched the arm
  SessionState ss;
  uint8_t phase = 0;       // latent_phase offset of this episode
  uint8_t unused[3] = {};  // explicit padding: a checkpoint's bytes are the state's alone
};
static_assert(sizeof(ScratchState) == 4 * (kArmJoints + 3 + 1 + 3) + sizeof(SessionState) + 4,
              "ScratchState has no hidden padding");

// ---- the session latent: where the itch is (SPEC §2) ----

DYN_HD float itch_fraction(int i) {  // x(i) along the arm, shoulder 0 → forearm end 1, clamped
  const float x = 0.5f + sinf(0.2f * float(i));
  return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}
DYN_HD int scratch_session_index(const ScratchState& s) { return int(s.ss.session) + int(s.phase); }

// The point at fraction x of the arm's length (the two capsules' axes end to end), that limb's axis and radius.
struct ArmPoint {
  V3<float> point, axis;
  float radius;
};
DYN_HD ArmPoint arm_axis_point(const ScratchScene& sc, float x) {
  const V3<float> upper = sc.upper_arm.b - sc.upper_arm.a, fore = sc.forearm.b - sc.forearm.a;
  const float lu = norm(upper), lf = norm(fore);
  const float along = x * (lu + lf);
  if (along <= lu) return {sc.upper_arm.a + along * ((1.0f / lu) * upper), (1.0f / lu) * upper, sc.upper_arm.radius};
  return {sc.forearm.a + (along - lu) * ((1.0f / lf) * fore), (1.0f / lf) * fore, sc.forearm.radius};
}

// The itch of the current session: on the arm's surface, facing the robot, at x(i) along the arm.
DYN_HD V3<float> itch_point(const ScratchParams& p, const ScratchState& s, V3<float>* axis = nullptr) {
  const ArmPoint a = arm_axis_point(p.scene, itch_fraction(scratch_session_index(s)));
  if (axis) *axis = a.axis;
  return a.point + a.radius * p.scene.itch_side;
}

DYN_HD float wrap_angle(float a) {  // to [−π, π)
  const float two_pi = 6.283185307f;
  return a - two_pi * floorf((a + 3.141592654f) / two_pi);
}

// ---- tool–arm contact (a penalty spring on the tip sphere's penetration of each capsule) ----

struct ToolContact {
  float force;          // total over both capsules (N)
  float force_at_itch;  // from contacts within scratch_reach of the itch (N)
  V3<float> point;      // the contact point nearest the itch (on the arm's surface), where there is contact
  bool at_itch;         // some contact lies within scratch_reach of the itch
};

DYN_HD ToolContact tool_contact(const ScratchParams& p, V3<float> tip, V3<float> itch) {
  ToolContact t{0.0f, 0.0f, {0.0f, 0.0f, 0.0f}, false};
  float nearest = 1e30f;
  const Capsule<float>* limbs[2] = {&p.scene.upper_arm, &p.scene.forearm};
  for (const Capsule<float>* limb : limbs) {
    const SphereContact<float> c = sphere_capsule_contact(tip, p.tool_radius, *limb);
    if (c.depth <= 0.0f) continue;
    const float f = p.stiffness * c.depth;
    t.force += f;
    const float to_itch = norm(c.on_capsule - itch);
    if (to_itch <= p.scratch_reach) {
      t.force_at_itch += f;
      t.at_itch = true;
    }
    if (to_itch < nearest) {
      nearest = to_itch;
      t.point = c.on_capsule;
    }
  }
  return t;
}

// ---- the env's stages ----

// The arm drawn from nu_0, at rest with no scratch yet. Assistive Gym: the end effector's goal (−0.6, 0, 0.8) +
// U(−0.05, 0.05)³ in the world, reached by IK; here the tool tip is moved by the same offset from the start pose by
// damped least squares.
DYN_HD void scratch_draw_arm(const ScratchParams& p, ScratchState& s, Philox& rng) {
  for (int j = 0; j < kArmJoints; ++j) s.q[j] = p.q_start[j];
  ChainPose<float> pose;
  chain_forward(p.arm, s.q, pose);
  V3<float> noise;
  noise.x = p.reset_noise * (2.0f * rng.uniform() - 1.0f);
  noise.y = p.reset_noise * (2.0f * rng.uniform() - 1.0f);
  noise.z = p.reset_noise * (2.0f * rng.uniform() - 1.0f);
  chain_reach(p.arm, s.q, pose.tip + noise, 10, 0.05f, 0.25f);
  for (int j = 0; j < kArmJoints; ++j)
    if (!p.arm.limited[j]) s.q[j] = wrap_angle(s.q[j]);
  s.ee_vel = {0.0f, 0.0f, 0.0f};
  s.last_scratch = {1e3f, 1e3f, 1e3f};  // far from any contact: the first touch at the itch counts
}

// The tool's contact force where the arm stands, against the current session's itch.
DYN_HD void scratch_settle_force(const ScratchParams& p, ScratchState& s) {
  ChainPose<float> pose;
  chain_forward(p.arm, s.q, pose);
  s.force = tool_contact(p, pose.tip, itch_point(p, s)).force;
}

DYN_HD void scratch_reset(const ScratchParams& p, ScratchState& s, EnvKey key, uint32_t episode_step) {
  Philox rng(key.seed, kStreamEpisodeReset, key.env, episode_step);
  scratch_draw_arm(p, s, rng);
  s.phase = p.random_phase ? uint8_t(rng.uniform_int(kScratchLatentPhases)) : uint8_t(0);
  session_begin_episode(p.session, s.ss, key.seed, key.env, episode_step);
  scratch_settle_force(p, s);
}

// Apply action a (7 values, clipped to [−1, 1], NaN as 0): every joint moves by step_rad·a, clamped to its limits;
// the reward per Assistive Gym (physics.md §4.3):
//   −‖tip − itch‖ − 0.01‖a‖₂ + 5·[valid scratch] − 0.25‖EE velocity‖ − 0.01·(force away from the itch)
//   − 0.05·(force at the itch, where it is ≥ 10 N)
DYN_HD float scratch_act(const ScratchParams& p, ScratchState& s, const float* action) {
  ChainPose<float> pose;
  chain_forward(p.arm, s.q, pose);
  const V3<float> ee_before = pose.origin[kArmFrames - 1];
  float a_sq = 0;
  for (int j = 0; j < kArmJoints; ++j) {
    const float x = action[j];
    const float a = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f));
    a_sq += a * a;
    const float qj = p.arm.clamp(j, s.q[j] + p.step_rad * a);
    s.q[j] = p.arm.limited[j] ? qj : wrap_angle(qj);
  }
  chain_forward(p.arm, s.q, pose);
  s.ee_vel = (1.0f / p.dt) * (pose.origin[kArmFrames - 1] - ee_before);
  const V3<float> itch = itch_point(p, s);
  const ToolContact c = tool_contact(p, pose.tip, itch);
  s.force = c.force;
  const bool scratch = c.at_itch && norm(c.point - s.last_scratch) > p.scratch_move && c.force_at_itch < p.force_limit;
  if (scratch) s.last_scratch = c.point;
  return -norm(pose.tip - itch) - 0.01f * sqrtf(a_sq) + (scratch ? 5.0f : 0.0f) - 0.25f * norm(s.ee_vel) -
         0.01f * (c.force - c.force_at_itch) - 0.05f * (c.force_at_itch >= p.force_limit ? c.force_at_itch : 0.0f);
}

// The 30 values of SPEC §2: tool tip position (3), its orientation quaternion x, y, z, w (4), tool − itch (3) set
// to 0 (the itch is latent), the joint angles (7: continuous joints wrapped to [−π, π), the limited joints 2/4/6 as
// q − π, centred on their ranges, so no value jumps inside a range), the shoulder, elbow and wrist (9), the tool's
// contact force (1) and the end effector's linear velocity (3).
DYN_HD void scratch_observe(const ScratchParams& p, const ScratchState& s, float* obs) {
  ChainPose<float> pose;
  chain_forward(p.arm, s.q, pose);
  obs[0] = pose.tip.x;
  obs[1] = pose.tip.y;
  obs[2] = pose.tip.z;
  quaternion_of(pose.tip_rotation, obs + 3);
  obs[7] = obs[8] = obs[9] = 0.0f;
  for (int j = 0; j < kArmJoints; ++j) obs[10 + j] = p.arm.limited[j] ? s.q[j] - 3.141592654f : s.q[j];
  const V3<float> keys[3] = {p.scene.shoulder, p.scene.elbow, p.scene.wrist};
  for (int k = 0; k < 3; ++k) {
    obs[17 + 3 * k] = keys[k].x;
    obs[18 + 3 * k] = keys[k].y;
    obs[19 + 3 * k] = keys[k].z;
  }
  obs[26] = s.force;
  obs[27] = s.ee_vel.x;
  obs[28] = s.ee_vel.y;
  obs[29] = s.ee_vel.z;
}

DYN_HD void scratch_latent(const ScratchParams& p, const ScratchState& s, float* out) {
  const V3<float> itch = itch_point(p, s);
  out[0] = itch.x;
  out[1] = itch.y;
  out[2] = itch.z;
}

// scratch_itch's stages for env_step (sim/env.h); the itch follows the session index, the arm keeps its pose.
struct ScratchEnv {
  using State = ScratchState;
  ScratchParams p;
  DYN_HD const SessionParams& session() const { return p.session; }
  DYN_HD float act(ScratchState& s, int32_t, const float* action) const { return scratch_act(p, s, action); }
  DYN_HD void reset(ScratchState& s, EnvKey key, uint32_t episode_step) const {
    scratch_reset(p, s, key, episode_step);
  }
  DYN_HD void switch_session(ScratchState&, EnvKey, uint32_t) const {}  // the itch follows the session index
  DYN_HD void restart_session(ScratchState& s, Philox& rng) const {
    scratch_draw_arm(p, s, rng);
    scratch_settle_force(p, s);  // against the new session's itch
  }
  DYN_HD void observe(const ScratchState& s, float* obs) const { scratch_observe(p, s, obs); }
  DYN_HD void latent(const ScratchState& s, float* out) const { scratch_latent(p, s, out); }
};

// The oracle (knows the itch): away from it (> 5 cm), it moves the tool tip to 4 cm off the itch on its side; near
// it, it presses the tip 4 mm into the arm (4 N) at ±12 mm along the limb from the itch, alternating each step, so
// every step's contact is within 25 mm of the itch and 24 mm from the last. Each step's joint targets come from
// damped least squares on the tip position; the action is the joint change over step_rad, clipped.
DYN_HD void scratch_oracle_action(const ScratchParams& p, const ScratchState& s, uint32_t step, float* action) {
  V3<float> axis;
  const V3<float> itch = itch_point(p, s, &axis);
  ChainPose<float> pose;
  chain_forward(p.arm, s.q, pose);
  const V3<float> hover = itch + 0.04f * p.scene.itch_side;
  V3<float> target = hover;
  if (norm(pose.tip - itch) <= 0.05f) {
    const float side = (step & 1u) ? 0.012f : -0.012f;
    target = itch + (p.tool_radius - 0.004f) * p.scene.itch_side + side * axis;
  }
  float q[kArmJoints];
  for (int j = 0; j < kArmJoints; ++j) q[j] = s.q[j];
  chain_reach(p.arm, q, target, 6, 0.02f, 0.1f);
  for (int j = 0; j < kArmJoints; ++j) {
    const float dq = p.arm.limited[j] ? q[j] - s.q[j] : wrap_angle(q[j] - s.q[j]);
    const float a = dq / p.step_rad;
    action[j] = a < -1.0f ? -1.0f : (a > 1.0f ? 1.0f : a);
  }
}

// ---- the scene and N envs on a backend (sim/scratch_itch_batch.cu) ----

// The male arm of Assistive Gym's ScratchItch (physics.md §4.4: chest (0, 0.03, 0.89), right shoulder 30°, elbow
// −90°) and the Jaco's base pose, in the robot base frame.
ScratchScene scratch_scene();
// Joint angles that put the Jaco's end effector at `ee` with Assistive Gym's start orientation (the tool pointing
// along the robot's +y, towards the person), by damped least squares on position and orientation (host, double).
void jaco_start_pose(const ChainModel<double>& arm, V3<double> ee, double* q);
// The task with its arm, scene and start pose; from an env config: session, seed and latent_phase.
ScratchParams scratch_params();
ScratchParams scratch_params(const EnvConfig& cfg);
EnvSpec scratch_spec(const ScratchParams& p);

class ScratchBatchEnv : public BatchEnv {
 public:
  ScratchBatchEnv(Backend b, const ScratchParams& p, int64_t n);
  const ScratchParams& params() const { return p_; }
  void reset(float* obs, float* latent) override;
  void step(const ActionBatch& actions, const StepBatch& out, StepRef step) override;
  void scripted(bool oracle, const ActionBuffers& out, uint32_t step) override;
  void visit_state(StateVisitor& v, int run) override { v.bytes("state", state_, run, runs_); }
  const ScratchState* states() const { return state_.data(); }  // [N] (tests)

 private:
  ScratchParams p_;
  Buffer<ScratchState> state_;  // [N]
};

}  // namespace dyn
