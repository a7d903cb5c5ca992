// The immutable model of a serial arm of revolute joints (the kinematic half of MuJoCo's mjModel for a chain): each
// joint's origin in its parent link (xyz, and the URDF rpy as a matrix), rotation about the joint frame's local +z,
// optional limits, then a fixed end-effector frame and a tool tip at a fixed offset in it. Separate from the per-env
// joint angles (the state), as the planar engine's model/state split. Templated on the scalar: float for the
// simulator, double for the side-by-side checks against MuJoCo. The Jaco j2s7s300 of reference/physics.md §4.7 is
// jaco_model() (sim/arm/jaco_model.cpp).
#pragma once

#include <cstdint>

#include "sim/arm/vec3.h"

namespace dyn {

constexpr int kArmJoints = 7;
constexpr int kArmFrames = kArmJoints + 1;  // every joint's link, then the end effector

template <class T>
struct ChainModel {
  V3<T> origin[kArmFrames];      // joint j's (or the end effector's, j = 7) origin in its parent link
  Mat3<T> rotation[kArmFrames];  // its rpy as a matrix
  bool limited[kArmJoints] = {};
  T lower[kArmJoints] = {}, upper[kArmJoints] = {};  // radians, where limited
  V3<T> tool_tip{T(0), T(0), T(0)};                  // the tool tip in the end-effector frame
  Mat3<T> tool_rotation = Mat3<T>::identity();       // the tool tip frame in the end-effector frame

  // q clamped to the limits (continuous joints unchanged).
  DYN_HD T clamp(int j, T q) const {
    if (!limited[j]) return q;
    return q < lower[j] ? lower[j] : (q > upper[j] ? upper[j] : q);
  }
  template <class U>
  ChainModel<U> cast() const {
    ChainModel<U> m;
    for (int f = 0; f < kArmFrames; ++f) {
      m.origin[f] = {U(origin[f].x), U(origin[f].y), U(origin[f].z)};
      for (int i = 0; i < 3; ++i)
        for (int k = 0; k < 3; ++k) m.rotation[f].r[i][k] = U(rotation[f].r[i][k]);
    }
    for (int j = 0; j < kArmJoints; ++j) {
      m.limited[j] = limited[j];
      m.lower[j] = U(lower[j]);
      m.upper[j] = U(upper[j]);
    }
    m.tool_tip = {U(tool_tip.x), U(tool_tip.y), U(tool_tip.z)};
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 3; ++k) m.tool_rotation.r[i][k] = U(tool_rotation.r[i][k]);
    return m;
  }
};

// The Kinova Jaco j2s7s300 (reference/physics.md §4.7), in its base link's frame, with Assistive Gym's scratcher:
// the tool tip 0.095 m along the end effector's +z, its frame the tool's (rpy (0, −π/2, 0) in the end effector).
ChainModel<double> jaco_model();

}  // namespace dyn
