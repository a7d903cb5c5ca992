// The Kinova Jaco j2s7s300 chain of reference/physics.md §4.7 (from Assistive Gym's j2s7s300_gym.urdf) with the
// scratcher of §4.6.
#include <cmath>

#include "sim/arm/chain_model.h"

namespace dyn {

ChainModel<double> jaco_model() {
  const double pi = M_PI;
  struct JointRow {
    double x, y, z, roll, pitch, yaw;
    bool limited;
    double lower, upper;
  };
  // joints 1..7, then the fixed end-effector joint
  const JointRow rows[kArmFrames] = {
      {0, 0, 0.15675, 0, pi, 0, false, 0, 0},
      {0, 0.0016, -0.11875, -pi / 2, 0, pi, true, 0.8203, 5.4629},
      {0, -0.205, 0, -pi / 2, 0, 0, false, 0, 0},
      {0, 0, -0.205, pi / 2, 0, pi, true, 0.5236, 5.7596},
      {0, 0.2073, -0.0114, -pi / 2, 0, pi, false, 0, 0},
      {0, 0, -0.10375, pi / 2, 0, pi, true, 1.1345, 5.1487},
      {0, 0.10375, 0, -pi / 2, 0, pi, false, 0, 0},
      {0, 0, -0.16, pi, 0, 0, false, 0, 0},
  };
  ChainModel<double> m;
  for (int f = 0; f < kArmFrames; ++f) {
    const JointRow& r = rows[f];
    m.origin[f] = {r.x, r.y, r.z};
    m.rotation[f] = rpy_matrix(r.roll, r.pitch, r.yaw);
    if (f < kArmJoints) {
      m.limited[f] = r.limited;
      m.lower[f] = r.lower;
      m.upper[f] = r.upper;
    }
  }
  // the tool: its base 0.02 m along the end effector's z, turned by rpy (0, −π/2, 0), so the tool's x-axis is the
  // end effector's z; the tip 0.075 m along the tool's x: 0.095 m along the end effector's z in all
  m.tool_tip = {0, 0, 0.095};
  m.tool_rotation = rpy_matrix(0.0, -pi / 2, 0.0);
  return m;
}

}  // namespace dyn
