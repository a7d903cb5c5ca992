// Kinematics of a serial revolute chain (sim/arm/chain_model.h), all DYN_HD: forward kinematics of every link
// frame and the tool tip, the tool tip's position Jacobian, and damped-least-squares inverse kinematics of the tip
// position (the scratch_itch oracle and its reset pose). Frame f's pose is the product, from the base, of
// Trans(origin) · R(rpy) · Rz(q) per joint; the end effector adds its fixed origin.
#pragma once

#include <cmath>

#include "sim/arm/chain_model.h"

namespace dyn {

// Where every frame is, in the base frame, for one set of joint angles.
template <class T>
struct ChainPose {
  V3<T> origin[kArmFrames];      // joint j's frame origin (on its axis), then the end effector's
  Mat3<T> rotation[kArmFrames];  // the frames' axes: joint j turns about rotation[j].column(2)
  V3<T> tip;                     // the tool tip
  Mat3<T> tip_rotation;          // the tool tip frame's axes
};

template <class T>
DYN_HD void chain_forward(const ChainModel<T>& m, const T* q, ChainPose<T>& pose) {
  V3<T> p{T(0), T(0), T(0)};
  Mat3<T> R = Mat3<T>::identity();
  for (int f = 0; f < kArmFrames; ++f) {
    p = p + R * m.origin[f];
    R = R * m.rotation[f];
    if (f < kArmJoints) R = R * rot_z(q[f]);
    pose.origin[f] = p;
    pose.rotation[f] = R;
  }
  pose.tip = p + R * m.tool_tip;
  pose.tip_rotation = R * m.tool_rotation;
}

// The tool tip's position Jacobian J [3, 7] (row-major): column j is axis_j × (tip − origin_j).
template <class T>
DYN_HD void chain_tip_jacobian(const ChainPose<T>& pose, T* jac) {
  for (int j = 0; j < kArmJoints; ++j) {
    const V3<T> c = cross(pose.rotation[j].column(2), pose.tip - pose.origin[j]);
    jac[0 * kArmJoints + j] = c.x;
    jac[1 * kArmJoints + j] = c.y;
    jac[2 * kArmJoints + j] = c.z;
  }
}

// Damped least squares for the tip position: from q, `iterations` steps of Δq = Jᵀ (J Jᵀ + λ² I)⁻¹ e towards
// `target`, each step's ‖Δq‖∞ at most `max_step` and the result clamped to the joint limits. q is updated in place;
// returns the remaining distance.
template <class T>
DYN_HD T chain_reach(const ChainModel<T>& m, T* q, V3<T> target, int iterations, T damping, T max_step) {
  using std::fabs;
  ChainPose<T> pose;
  T jac[3 * kArmJoints];
  for (int it = 0; it < iterations; ++it) {
    chain_forward(m, q, pose);
    const V3<T> e = target - pose.tip;
    chain_tip_jacobian(pose, jac);
    // A = J Jᵀ + λ² I (3 × 3, symmetric), solved for y = A⁻¹ e by the adjugate
    T A[3][3];
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) {
        T s = r == c ? damping * damping : T(0);
        for (int j = 0; j < kArmJoints; ++j) s += jac[r * kArmJoints + j] * jac[c * kArmJoints + j];
        A[r][c] = s;
      }
    const T c00 = A[1][1] * A[2][2] - A[1][2] * A[2][1], c01 = A[1][2] * A[2][0] - A[1][0] * A[2][2],
            c02 = A[1][0] * A[2][1] - A[1][1] * A[2][0];
    const T det = A[0][0] * c00 + A[0][1] * c01 + A[0][2] * c02;
    const T inv[3][3] = {{c00, A[0][2] * A[2][1] - A[0][1] * A[2][2], A[0][1] * A[1][2] - A[0][2] * A[1][1]},
                         {c01, A[0][0] * A[2][2] - A[0][2] * A[2][0], A[0][2] * A[1][0] - A[0][0] * A[1][2]},
                         {c02, A[0][1] * A[2][0] - A[0][0] * A[2][1], A[0][0] * A[1][1] - A[0][1] * A[1][0]}};
    const T y[3] = {(inv[0][0] * e.x + inv[0][1] * e.y + inv[0][2] * e.z) / det,
                    (inv[1][0] * e.x + inv[1][1] * e.y + inv[1][2] * e.z) / det,
                    (inv[2][0] * e.x + inv[2][1] * e.y + inv[2][2] * e.z) / det};
    T dq[kArmJoints], largest = T(0);
    for (int j = 0; j < kArmJoints; ++j) {
      dq[j] = jac[0 * kArmJoints + j] * y[0] + jac[1 * kArmJoints + j] * y[1] + jac[2 * kArmJoints + j] * y[2];
      largest = fabs(dq[j]) > largest ? fabs(dq[j]) : largest;
    }
    const T scale = largest > max_step ? max_step / largest : T(1);
    for (int j = 0; j < kArmJoints; ++j) q[j] = m.clamp(j, q[j] + scale * dq[j]);
  }
  chain_forward(m, q, pose);
  return norm(target - pose.tip);
}

}  // namespace dyn
