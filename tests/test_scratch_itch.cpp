// Task rules of scratch_itch (SPEC §2, physics.md §4) on the CPU: the start pose, the action rule and the joint
// limits, the itch schedule over sessions, the arm drawn again at a switch with env.reset_on_switch, each reward
// term in a constructed state, the observation's layout and that it holds nothing of the itch, determinism per
// seed, and the oracle's scratching.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "algo/scripted_rollout.h"
#include "kernels/buffer.h"
#include "sim/scratch_itch.h"
#include "tests/bounds.h"
#include "tests/env_helpers.h"

using namespace dyn;

namespace {

// One env stepped by hand through the DYN_HD stages.
struct OneArm {
  ScratchParams p;
  ScratchState s;
  std::vector<float> obs = std::vector<float>(kScratchObsDim), latent = std::vector<float>(kScratchLatentDim);
  float reward = 0;
  uint8_t session_end = 0, truncated = 0, terminated = 0;
  int32_t session_id = 0;
  uint32_t step_index = 0;
  explicit OneArm(uint32_t seed = 1, ScratchParams params = scratch_params()) : p(params) {
    p.seed = seed;
    scratch_reset(p, s, {p.seed, 0}, 0);
    scratch_observe(p, s, obs.data());
  }
  void step(const std::vector<float>& a) {
    const StepRow o{obs.data(), &reward, &terminated, &truncated, &session_end, &session_id, nullptr, latent.data()};
    env_step(ScratchEnv{p}, s, 0, a.data(), {p.seed, 0}, step_index++, o);
  }
  ChainPose<float> pose() const {
    ChainPose<float> pose;
    chain_forward(p.arm, s.q, pose);
    return pose;
  }
};

const std::vector<float> kStill(kScratchActions, 0.0f);

// Puts the arm where the tool tip is at `target` (damped least squares from the start pose), at rest, with no
// scratch yet.
void place_tip(OneArm& e, V3<float> target) {
  for (int j = 0; j < kArmJoints; ++j) e.s.q[j] = e.p.q_start[j];
  const float miss = chain_reach(e.p.arm, e.s.q, target, 300, 0.005f, 0.1f);
  ASSERT_LT(miss, 2e-4f) << "the tip cannot reach the constructed point";
  e.s.last_scratch = {1e3f, 1e3f, 1e3f};
  e.s.ee_vel = {0, 0, 0};
}

}  // namespace

// The start pose puts the end effector at Assistive Gym's goal, the tool pointing at the person (robot +y), and
// every reset lies within the goal's ±5 cm noise of it, touching nothing.
TEST(ScratchItch, StartPoseReachesTheGoal) {
  const ScratchParams p = scratch_params();
  ChainPose<float> pose;
  chain_forward(p.arm, p.q_start, pose);
  EXPECT_LT(norm(pose.origin[kArmFrames - 1] - p.scene.ee_start), 1e-3f);
  EXPECT_GT(pose.rotation[kArmFrames - 1].column(2).y, 0.999f);  // the end effector's z: the tool's direction
  for (uint32_t env = 0; env < 64; ++env) {
    OneArm e(3);
    scratch_reset(e.p, e.s, {e.p.seed, env}, 0);
    const V3<float> d = e.pose().tip - pose.tip;
    EXPECT_LT(std::fmax(std::fabs(d.x), std::fmax(std::fabs(d.y), std::fabs(d.z))), 0.05f + 1e-3f) << env;
    EXPECT_EQ(e.s.force, 0.0f);
  }
}

// Joint-position deltas of 0.25·clip(a) rad; the limited joints 2/4/6 stop at their limits, the continuous ones wrap.
TEST(ScratchItch, ActionRuleAndLimits) {
  OneArm e;
  const std::vector<float> q0(e.s.q, e.s.q + kArmJoints);
  e.step({0.5f, -0.5f, 2.0f, -3.0f, NAN, 0.1f, -1.0f});
  const float expected_delta[kArmJoints] = {0.125f, -0.125f, 0.25f, -0.25f, 0.0f, 0.025f, -0.25f};
  for (int j = 0; j < kArmJoints; ++j)
    EXPECT_NEAR(e.s.q[j], q0[size_t(j)] + expected_delta[j], 1e-5f) << "joint " << j + 1;
  // push joint 2 (limited) and joint 1 (continuous) for 40 steps: 10 rad
  for (int t = 0; t < 40; ++t) e.step({1, 1, 0, 0, 0, 0, 0});
  EXPECT_EQ(e.s.q[1], e.p.arm.upper[1]);
  EXPECT_GE(e.s.q[0], -3.1416f);
  EXPECT_LT(e.s.q[0], 3.1416f);
  EXPECT_NEAR(std::remainder(e.s.q[0] - (q0[0] + 0.125f + 40 * 0.25f), 2 * M_PI), 0.0, 1e-4);
  for (int t = 0; t < 40; ++t) e.step({0, 0, 0, -1, 0, -1, 0});
  EXPECT_EQ(e.s.q[3], e.p.arm.lower[3]);
  EXPECT_EQ(e.s.q[5], e.p.arm.lower[5]);
}

// The itch sits at x(i) = clamp(0.5 + sin(0.2 i), 0, 1) along the arm (shoulder → forearm end), on its surface facing
// the robot, and moves only when a session ends.
TEST(ScratchItch, ItchFollowsTheSessionSchedule) {
  EXPECT_FLOAT_EQ(itch_fraction(0), 0.5f);
  EXPECT_FLOAT_EQ(itch_fraction(1), 0.5f + std::sin(0.2f));
  EXPECT_FLOAT_EQ(itch_fraction(3), 1.0f);   // 0.5 + sin(0.6) = 1.06, clamped
  EXPECT_FLOAT_EQ(itch_fraction(20), 0.0f);  // 0.5 + sin(4) = −0.26, clamped
  const ScratchScene sc = scratch_scene();
  const float lu = norm(sc.upper_arm.b - sc.upper_arm.a), lf = norm(sc.forearm.b - sc.forearm.a);
  EXPECT_NEAR(lu, 0.279f, 1e-5f);
  EXPECT_NEAR(lf, 0.257f, 1e-5f);
  OneArm e(5);
  int switches = 0;
  std::vector<float> before = e.latent;
  scratch_latent(e.p, e.s, before.data());
  for (int t = 0; t < 200; ++t) {
    const int session = int(e.s.ss.session);
    e.step(kStill);
    if (e.truncated) break;
    const ArmPoint a = arm_axis_point(sc, itch_fraction(int(e.s.ss.session)));
    const V3<float> expected = a.point + a.radius * sc.itch_side;
    EXPECT_NEAR(e.latent[0], expected.x, 1e-6f);
    EXPECT_NEAR(e.latent[1], expected.y, 1e-6f);
    EXPECT_NEAR(e.latent[2], expected.z, 1e-6f);
    // on the surface: its distance to its limb's axis is the limb's radius
    const Capsule<float>& limb = a.radius == sc.upper_arm.radius ? sc.upper_arm : sc.forearm;
    const SphereContact<float> c = sphere_capsule_contact(expected, 0.0f, limb);
    EXPECT_NEAR(c.depth, 0.0f, 1e-5f);
    const bool moved = e.latent != before;
    EXPECT_EQ(moved, e.session_end == 1 && itch_fraction(session) != itch_fraction(session + 1)) << t;
    switches += e.session_end;
    before = e.latent;
  }
  EXPECT_GE(switches, 1);
}

// env.reset_on_switch = true (SPEC §1): the same env as the default until the first switch; there the arm is drawn
// again from nu_0 (within the goal's ±5 cm of the start tip, at rest, touching nothing) while the default arm stays
// where the actions took it.
TEST(ScratchItch, ResetOnSwitchDrawsTheArmFromNu0) {
  ScratchParams with_reset = scratch_params();
  with_reset.session.reset_on_switch = true;
  OneArm kept(9), reset(9, with_reset);
  ChainPose<float> start;
  chain_forward(kept.p.arm, kept.p.q_start, start);
  const std::vector<float> a(kScratchActions, 0.3f);
  bool switched = false;
  for (int t = 0; t < 200 && !switched; ++t) {
    kept.step(a);
    reset.step(a);
    ASSERT_EQ(kept.session_end, reset.session_end) << t;
    if (!kept.session_end || kept.truncated) {
      ASSERT_EQ(kept.obs, reset.obs) << "the same env before any switch, step " << t;
      continue;
    }
    switched = true;
    EXPECT_EQ(kept.latent, reset.latent) << "the itch follows the session either way";
    const V3<float> d = reset.pose().tip - start.tip;
    EXPECT_LT(std::fmax(std::fabs(d.x), std::fmax(std::fabs(d.y), std::fabs(d.z))), 0.05f + 1e-3f);
    EXPECT_GT(norm(kept.pose().tip - start.tip), 0.2f) << "the kept arm has moved away (the test tells them apart)";
    EXPECT_EQ(reset.s.ee_vel.x, 0.0f);
    EXPECT_EQ(reset.s.force, 0.0f);
    EXPECT_NE(kept.obs, reset.obs);
  }
  EXPECT_TRUE(switched);
}

// Each reward term in a constructed state: a valid scratch (+5), the same contact again (moved too little), a
// press too hard (no bonus, −0.05·force), a touch away from the itch (−0.01·force), and the action and velocity
// costs of a move in free space.
TEST(ScratchItch, RewardTerms) {
  OneArm e;
  V3<float> axis;
  const V3<float> itch = itch_point(e.p, e.s, &axis);
  const V3<float> side = e.p.scene.itch_side;
  // 4 mm into the arm at the itch: 4 N
  place_tip(e, itch + (e.p.tool_radius - 0.004f) * side);
  float tip_dist = norm(e.pose().tip - itch);
  e.step(kStill);
  EXPECT_NEAR(e.s.force, 4.0f, 0.05f);
  EXPECT_NEAR(e.reward, 5.0f - tip_dist, 1e-4f) << "a valid scratch";
  e.step(kStill);
  EXPECT_NEAR(e.reward, -tip_dist, 1e-4f) << "the contact did not move: no bonus";
  // 8 mm along the limb: still within 25 mm of the itch but less than 10 mm from the last scratch
  place_tip(e, itch + (e.p.tool_radius - 0.004f) * side + 0.008f * axis);
  e.s.last_scratch = itch;
  tip_dist = norm(e.pose().tip - itch);
  e.step(kStill);
  EXPECT_NEAR(e.reward, -tip_dist, 1e-4f) << "a move too short to count";
  // 15 mm deep, 20 mm up the limb (the itch is 11 mm from the elbow: clear of the forearm there): 15 N, no bonus
  // and −0.05 · 15
  place_tip(e, itch + (e.p.tool_radius - 0.015f) * side - 0.02f * axis);
  tip_dist = norm(e.pose().tip - itch);
  e.step(kStill);
  EXPECT_NEAR(e.s.force, 15.0f, 0.1f);
  EXPECT_NEAR(e.reward, -tip_dist - 0.05f * e.s.force, 1e-3f) << "a press too hard";
  // 4 mm deep, 6 cm along the limb: away from the itch, −0.01 · 4
  place_tip(e, itch + (e.p.tool_radius - 0.004f) * side - 0.06f * axis);
  tip_dist = norm(e.pose().tip - itch);
  e.step(kStill);
  EXPECT_NEAR(e.s.force, 4.0f, 0.05f);
  EXPECT_NEAR(e.reward, -tip_dist - 0.01f * e.s.force, 1e-4f) << "force away from the itch";
  // free space: −‖tip − itch‖ − 0.01‖a‖₂ − 0.25‖EE velocity‖, the velocity over the 0.1 s step
  OneArm f;
  const V3<float> ee_before = f.pose().origin[kArmFrames - 1];
  const std::vector<float> a = {0.2f, -0.1f, 0.1f, 0.2f, 0.0f, 0.1f, 0.3f};
  f.step(a);
  const ChainPose<float> after = f.pose();
  const V3<float> v = 10.0f * (after.origin[kArmFrames - 1] - ee_before);
  float a_norm = 0;
  for (float x : a) a_norm += x * x;
  ASSERT_EQ(f.s.force, 0.0f);
  EXPECT_NEAR(f.reward, -norm(after.tip - itch) - 0.01f * std::sqrt(a_norm) - 0.25f * norm(v), 1e-5f);
  EXPECT_NEAR(f.obs[27], v.x, 1e-5f);
  EXPECT_NEAR(f.obs[28], v.y, 1e-5f);
  EXPECT_NEAR(f.obs[29], v.z, 1e-5f);
}

// The 30 values in SPEC's order, and nothing of the itch: two arms whose itches differ (latent_phase random vs zero,
// the same seed and actions) observe the same 200 steps while their latents differ.
TEST(ScratchItch, ObservationLayoutHoldsNoItch) {
  OneArm e(9);
  const ChainPose<float> pose = e.pose();
  EXPECT_EQ(e.obs[0], pose.tip.x);
  EXPECT_EQ(e.obs[1], pose.tip.y);
  EXPECT_EQ(e.obs[2], pose.tip.z);
  float quat_norm = 0;
  for (int k = 3; k < 7; ++k) quat_norm += e.obs[size_t(k)] * e.obs[size_t(k)];
  EXPECT_NEAR(quat_norm, 1.0f, 1e-5f);
  EXPECT_GE(e.obs[6], 0.0f);  // w ≥ 0
  // the tool's x-axis (the scratcher's length) is the end effector's z: rotating x by the quaternion gives it
  const float x = e.obs[3], y = e.obs[4], z = e.obs[5], w = e.obs[6];
  const V3<float> tool_x{1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)};
  EXPECT_LT(norm(tool_x - pose.rotation[kArmFrames - 1].column(2)), 1e-5f);
  for (int k = 7; k < 10; ++k) EXPECT_EQ(e.obs[size_t(k)], 0.0f) << "tool − itch is zeroed";
  for (int j = 0; j < kArmJoints; ++j)
    EXPECT_EQ(e.obs[size_t(10 + j)], e.p.arm.limited[j] ? e.s.q[j] - 3.141592654f : e.s.q[j]);
  const ScratchScene& sc = e.p.scene;
  const V3<float> keys[3] = {sc.shoulder, sc.elbow, sc.wrist};
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(e.obs[size_t(17 + 3 * k)], keys[k].x);
    EXPECT_EQ(e.obs[size_t(18 + 3 * k)], keys[k].y);
    EXPECT_EQ(e.obs[size_t(19 + 3 * k)], keys[k].z);
  }
  EXPECT_EQ(e.obs[26], e.s.force);

  ScratchParams shifted = scratch_params();
  shifted.random_phase = true;
  OneArm zero(21), random(21, shifted);
  ASSERT_NE(random.s.phase, 0) << "pick a seed whose phase draw is not 0";
  int latent_differs = 0;
  for (uint32_t t = 0; t < 200; ++t) {
    std::vector<float> a(kScratchActions);
    uniform_random_action({zero.p.seed, 0}, t, kScratchActions, a.data());
    zero.step(a);
    random.step(a);
    ASSERT_EQ(zero.obs, random.obs) << "step " << t;
    latent_differs += zero.latent != random.latent;
  }
  EXPECT_GT(latent_differs, 100);
}

// The same seed gives the same rollout, bit for bit; another seed another.
TEST(ScratchItch, DeterministicPerSeed) {
  auto trace = [](uint32_t seed) {
    ScratchParams p = scratch_params();
    p.seed = seed;
    ScratchBatchEnv env(Backend::cpu, p, 64);
    StepBuffers io(Backend::cpu, env.spec(), 64);
    io.reset(env);
    std::vector<float> all = io.obs.to_host();
    for (uint32_t t = 0; t < 250; ++t) {
      io.scripted_step(env, t % 2 == 0, t);
      for (float v : io.obs.to_host()) all.push_back(v);
      for (float v : io.reward.to_host()) all.push_back(v);
    }
    return all;
  };
  EXPECT_EQ(trace(4), trace(4));
  EXPECT_NE(trace(4), trace(5));
}

// The oracle scratches: per episode, most steps are valid scratches, and its return is far above the random
// policy's.
TEST(ScratchItch, OracleScratches) {
  ScratchParams p = scratch_params();
  p.seed = 2;
  const int64_t n = 128;
  ScratchBatchEnv env(Backend::cpu, p, n);
  StepBuffers io(Backend::cpu, env.spec(), n);
  io.reset(env);
  std::vector<int> scratches(size_t(n), 0);
  for (uint32_t t = 0; t < 200; ++t) {
    io.scripted_step(env, true, t);
    const std::vector<float> r = io.reward.to_host();
    // a step's reward is at most 0 without the bonus and above 5 − 1 with it (distance ≤ 2.5 cm, small costs)
    for (int64_t i = 0; i < n; ++i) scratches[size_t(i)] += r[size_t(i)] > 2.5f;
  }
  int fewest = 200;
  for (int s : scratches) fewest = std::min(fewest, s);
  EXPECT_GE(fewest, 150) << "valid scratches in the oracle's worst episode";
  const RolloutSummary oracle =
      run_scripted_rollout(Backend::cpu, default_env_config("scratch_itch", 3), ScriptedPolicy::oracle, 128, 2);
  const RolloutSummary random =
      run_scripted_rollout(Backend::cpu, default_env_config("scratch_itch", 3), ScriptedPolicy::random, 128, 2);
  EXPECT_GT(oracle.mean_return, 700.0);
  EXPECT_LT(random.mean_return, 0.0);
  EXPECT_GT(oracle.mean_return - random.mean_return, 700.0);
}
