// sim/arm side by side with MuJoCo 2.2.2 (label cpu; built with DYN_WITH_MUJOCO): the Jaco chain written as MJCF from
// reference/physics.md §4.7 (tests/data/jaco_scratch.xml, with the person's arm of §4.4), and our forward kinematics
// of every link frame and the tool tip compared with MuJoCo's at random joint angles, in double and in float; the
// person's arm capsules where scratch_scene puts them; and the tip sphere's penetration of the arm (depth, contact
// point, normal) against MuJoCo's collision at configurations near contact.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "sim/arm/capsule_contact.h"
#include "sim/arm/chain_kinematics.h"
#include "sim/scratch_itch.h"
#include "tests/bounds.h"
#include "tests/mujoco_reference.h"

using namespace dyn;

namespace {

const char* kLinkBodies[kArmFrames] = {"link1", "link2", "link3", "link4", "link5", "link6", "link7", "end_effector"};

// The robot base in the world (physics.md §4.4): (−0.35, −0.30, 0.36), yaw −π/2.
const V3<double> kBasePos{-0.35, -0.30, 0.36};
Mat3<double> base_rotation() { return rpy_matrix(0.0, 0.0, -M_PI / 2); }
V3<double> to_world(V3<double> robot) { return kBasePos + base_rotation() * robot; }
V3<double> to_robot(V3<double> world) { return transpose_times(base_rotation(), world - kBasePos); }

template <class T>
V3<double> as_double(V3<T> v) {
  return {double(v.x), double(v.y), double(v.z)};
}

double max_diff(V3<double> a, const mjtNum* b) {
  return std::fmax(std::fabs(a.x - b[0]), std::fmax(std::fabs(a.y - b[1]), std::fabs(a.z - b[2])));
}
double max_diff(const Mat3<double>& a, const mjtNum* b) {  // MuJoCo's xmat is row-major too
  double d = 0;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) d = std::fmax(d, std::fabs(a.r[i][k] - b[3 * i + k]));
  return d;
}
template <class T>
Mat3<double> as_double(const Mat3<T>& m) {
  Mat3<double> d;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 3; ++k) d.r[i][k] = double(m.r[i][k]);
  return d;
}

// Random joint angles: limited joints uniform in their range, continuous ones in [−π, π).
std::vector<double> random_angles(const ChainModel<double>& arm, std::mt19937_64& rng) {
  std::vector<double> q(kArmJoints);
  for (int j = 0; j < kArmJoints; ++j) {
    const double lo = arm.limited[j] ? arm.lower[j] : -M_PI, hi = arm.limited[j] ? arm.upper[j] : M_PI;
    q[size_t(j)] = std::uniform_real_distribution<double>(lo, hi)(rng);
  }
  return q;
}

// The largest difference between our pose (robot frame, scalar T) and MuJoCo's (world) over every link frame's
// origin and axes and the tool tip's position and axes.
template <class T>
double pose_diff(const MujocoReference& mj, const ChainModel<T>& arm, const std::vector<double>& q) {
  T qt[kArmJoints];
  for (int j = 0; j < kArmJoints; ++j) qt[j] = T(q[size_t(j)]);
  ChainPose<T> pose;
  chain_forward(arm, qt, pose);
  double d = 0;
  for (int f = 0; f < kArmFrames; ++f) {
    const int b = mj_name2id(mj.m(), mjOBJ_BODY, kLinkBodies[f]);
    d = std::fmax(d, max_diff(to_world(as_double(pose.origin[f])), mj.d()->xpos + 3 * b));
    d = std::fmax(d, max_diff(base_rotation() * as_double(pose.rotation[f]), mj.d()->xmat + 9 * b));
  }
  const int site = mj_name2id(mj.m(), mjOBJ_SITE, "tool_tip");
  d = std::fmax(d, max_diff(to_world(as_double(pose.tip)), mj.d()->site_xpos + 3 * site));
  d = std::fmax(d, max_diff(base_rotation() * as_double(pose.tip_rotation), mj.d()->site_xmat + 9 * site));
  return d;
}

}  // namespace

// 200 random configurations; MuJoCo composes the same URDF origins from the MJCF's pos and fixed-axis euler.
TEST(ArmMujoco, ForwardKinematicsMatches) {
  MujocoReference mj("jaco_scratch.xml");
  ASSERT_EQ(mj.m()->nq, kArmJoints);
  const ChainModel<double> arm = jaco_model();
  const ChainModel<float> arm_f = arm.cast<float>();
  std::mt19937_64 rng(7);
  double worst_double = 0, worst_float = 0;
  for (int c = 0; c < 200; ++c) {
    const std::vector<double> q = random_angles(arm, rng);
    mj.set_state(q, std::vector<double>(kArmJoints, 0.0));
    mj.forward();
    worst_double = std::fmax(worst_double, pose_diff(mj, arm, q));
    worst_float = std::fmax(worst_float, pose_diff(mj, arm_f, q));
  }
  DYN_EXPECT_WITHIN("double_max_abs_diff", worst_double, 1e-10);
  DYN_EXPECT_WITHIN("float_max_abs_diff", worst_float, 1e-5);
}

// The person's arm: scratch_scene's capsules (robot frame) are MuJoCo's (world) ends and radii.
TEST(ArmMujoco, PersonArmMatches) {
  MujocoReference mj("jaco_scratch.xml");
  mj.set_state(std::vector<double>(kArmJoints, M_PI), std::vector<double>(kArmJoints, 0.0));
  mj.forward();
  const ScratchScene sc = scratch_scene();
  const std::pair<const char*, Capsule<float>> limbs[2] = {{"upper_arm", sc.upper_arm}, {"forearm", sc.forearm}};
  for (const auto& [name, cap] : limbs) {
    const int g = mj_name2id(mj.m(), mjOBJ_GEOM, name);
    const mjtNum* c = mj.d()->geom_xpos + 3 * g;
    const mjtNum* R = mj.d()->geom_xmat + 9 * g;
    const double half = mj.m()->geom_size[3 * g + 1];
    // MuJoCo's capsule from fromto: centred, its z-axis pointing from `to` back to `from` (its compiler's convention);
    // ours runs a → b, the fromto's from → to
    const V3<double> axis{R[2], R[5], R[8]};
    const V3<double> mid{c[0], c[1], c[2]};
    const V3<double> a_w = to_world(as_double(cap.a)), b_w = to_world(as_double(cap.b));
    const double end_diff = std::fmax(norm(a_w - (mid + half * axis)), norm(b_w - (mid - half * axis)));
    DYN_EXPECT_WITHIN(std::string(name) + "_end_diff_m", end_diff, 1e-6);  // float scene
    EXPECT_NEAR(cap.radius, mj.m()->geom_size[3 * g], 1e-7) << name;
  }
}

// Configurations near contact: the tip sent by damped least squares to points 1–20 mm inside the arm's surface at
// random places along both limbs; where our depth is positive MuJoCo reports the same contact (depth, the midpoint
// of the two surface points, the normal up to its sign), and where it is not MuJoCo reports none.
TEST(ArmMujoco, TipContactMatches) {
  MujocoReference mj("jaco_scratch.xml");
  const ChainModel<double> arm = jaco_model();
  const ScratchParams p = scratch_params();
  // the arm's capsules as MuJoCo has them (in the robot frame, double): this test is about the collision alone
  // (PersonArmMatches checks where scratch_scene puts them)
  mj.set_state(std::vector<double>(kArmJoints, M_PI), std::vector<double>(kArmJoints, 0.0));
  mj.forward();
  const int limb_geoms[2] = {mj_name2id(mj.m(), mjOBJ_GEOM, "upper_arm"), mj_name2id(mj.m(), mjOBJ_GEOM, "forearm")};
  Capsule<double> limbs[2];
  for (int l = 0; l < 2; ++l) {
    const int g = limb_geoms[l];
    const mjtNum *c = mj.d()->geom_xpos + 3 * g, *R = mj.d()->geom_xmat + 9 * g;
    const double half = mj.m()->geom_size[3 * g + 1];
    const V3<double> mid{c[0], c[1], c[2]}, axis{R[2], R[5], R[8]};
    limbs[l] = {to_robot(mid + half * axis), to_robot(mid - half * axis), mj.m()->geom_size[3 * g]};
  }
  const int tip_geom = mj_name2id(mj.m(), mjOBJ_GEOM, "tip");
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  int touching = 0, apart = 0;
  double depth_diff = 0, point_diff = 0, normal_diff = 0;
  for (int c = 0; c < 150; ++c) {
    const Capsule<double>& limb = limbs[c % 2];
    const V3<double> ab = limb.b - limb.a;
    const V3<double> axis = (1.0 / norm(ab)) * ab;
    // a unit vector orthogonal to the axis at a random angle, facing the robot's side (y < 0) of the arm
    const V3<double> e1 = {0.0, -1.0, 0.0}, e2 = cross(axis, e1);
    const double angle = (u01(rng) - 0.5) * M_PI;
    const V3<double> normal = std::cos(angle) * e1 + std::sin(angle) * e2;
    const V3<double> target = limb.a + u01(rng) * ab + (limb.radius + 0.01 - (0.001 + 0.019 * u01(rng))) * normal;
    double q[kArmJoints];
    for (int j = 0; j < kArmJoints; ++j) q[j] = p.q_start[j];
    chain_reach(arm, q, target, 200, 0.01, 0.1);
    ChainPose<double> pose;
    chain_forward(arm, q, pose);
    mj.set_state(std::vector<double>(q, q + kArmJoints), std::vector<double>(kArmJoints, 0.0));
    mj.forward();
    for (int l = 0; l < 2; ++l) {
      const SphereContact<double> ours = sphere_capsule_contact(pose.tip, 0.01, limbs[l]);
      const mjContact* theirs = nullptr;
      for (int k = 0; k < mj.d()->ncon; ++k) {
        const mjContact& con = mj.d()->contact[k];
        if ((con.geom1 == limb_geoms[l] && con.geom2 == tip_geom) ||
            (con.geom2 == limb_geoms[l] && con.geom1 == tip_geom))
          theirs = &con;
      }
      if (ours.depth <= 0) {
        EXPECT_EQ(theirs, nullptr) << "MuJoCo reports a contact we do not (config " << c << ", limb " << l << ")";
        ++apart;
        continue;
      }
      ASSERT_NE(theirs, nullptr) << "no MuJoCo contact at our depth " << ours.depth << " (config " << c << ")";
      ++touching;
      depth_diff = std::fmax(depth_diff, std::fabs(ours.depth + theirs->dist));
      point_diff = std::fmax(point_diff, max_diff(to_world(0.5 * (ours.on_capsule + ours.on_sphere)), theirs->pos));
      const V3<double> n_world = base_rotation() * ours.normal;
      const double cosine = n_world.x * theirs->frame[0] + n_world.y * theirs->frame[1] + n_world.z * theirs->frame[2];
      normal_diff = std::fmax(normal_diff, 1.0 - std::fabs(cosine));
    }
  }
  EXPECT_GE(touching, 100) << "too few configurations in contact to compare";
  EXPECT_GE(apart, 50) << "every configuration touched both limbs";
  DYN_EXPECT_WITHIN("depth_abs_diff_m", depth_diff, 1e-10);
  DYN_EXPECT_WITHIN("contact_point_max_abs_diff_m", point_diff, 1e-10);
  DYN_EXPECT_WITHIN("normal_one_minus_cos", normal_diff, 1e-10);
}
