// 3-D vectors, rotation matrices and unit quaternions for the kinematic arm (sim/arm), all DYN_HD and templated on
// the scalar (float in the simulator, double in the side-by-side checks against MuJoCo).
#pragma once

#include <cmath>

#include "kernels/hd.h"

namespace dyn {

template <class T>
struct V3 {
  T x, y, z;
};
template <class T>
DYN_HD V3<T> operator+(V3<T> a, V3<T> b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z};
}
template <class T>
DYN_HD V3<T> operator-(V3<T> a, V3<T> b) {
  return {a.x - b.x, a.y - b.y, a.z - b.z};
}
template <class T>
DYN_HD V3<T> operator*(T s, V3<T> a) {
  return {s * a.x, s * a.y, s * a.z};
}
template <class T>
DYN_HD T dot(V3<T> a, V3<T> b) {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}
template <class T>
DYN_HD V3<T> cross(V3<T> a, V3<T> b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}
template <class T>
DYN_HD T norm(V3<T> a) {
  using std::sqrt;
  return sqrt(dot(a, a));
}

// A rotation matrix, row-major: r[i][j] is row i, column j; the columns are the rotated frame's axes.
template <class T>
struct Mat3 {
  T r[3][3];
  DYN_HD static Mat3 identity() { return {{{T(1), T(0), T(0)}, {T(0), T(1), T(0)}, {T(0), T(0), T(1)}}}; }
  DYN_HD V3<T> column(int j) const { return {r[0][j], r[1][j], r[2][j]}; }
};
template <class T>
DYN_HD Mat3<T> operator*(const Mat3<T>& a, const Mat3<T>& b) {
  Mat3<T> c;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) c.r[i][j] = a.r[i][0] * b.r[0][j] + a.r[i][1] * b.r[1][j] + a.r[i][2] * b.r[2][j];
  return c;
}
template <class T>
DYN_HD V3<T> operator*(const Mat3<T>& a, V3<T> v) {
  return {a.r[0][0] * v.x + a.r[0][1] * v.y + a.r[0][2] * v.z, a.r[1][0] * v.x + a.r[1][1] * v.y + a.r[1][2] * v.z,
          a.r[2][0] * v.x + a.r[2][1] * v.y + a.r[2][2] * v.z};
}
template <class T>
DYN_HD Mat3<T> transpose(const Mat3<T>& a) {
  return {{{a.r[0][0], a.r[1][0], a.r[2][0]}, {a.r[0][1], a.r[1][1], a.r[2][1]}, {a.r[0][2], a.r[1][2], a.r[2][2]}}};
}
template <class T>
DYN_HD V3<T> transpose_times(const Mat3<T>& a, V3<T> v) {  // aᵀ v
  return {a.r[0][0] * v.x + a.r[1][0] * v.y + a.r[2][0] * v.z, a.r[0][1] * v.x + a.r[1][1] * v.y + a.r[2][1] * v.z,
          a.r[0][2] * v.x + a.r[1][2] * v.y + a.r[2][2] * v.z};
}

// Rotation by `angle` about the frame's own +z (a revolute joint of the chain).
template <class T>
DYN_HD Mat3<T> rot_z(T angle) {
  using std::cos;
  using std::sin;
  const T c = cos(angle), s = sin(angle);
  return {{{c, -s, T(0)}, {s, c, T(0)}, {T(0), T(0), T(1)}}};
}

// A URDF origin's rpy: R = Rz(yaw) · Ry(pitch) · Rx(roll) (fixed axes x, then y, then z).
template <class T>
DYN_HD Mat3<T> rpy_matrix(T roll, T pitch, T yaw) {
  using std::cos;
  using std::sin;
  const T cr = cos(roll), sr = sin(roll), cp = cos(pitch), sp = sin(pitch), cy = cos(yaw), sy = sin(yaw);
  return {{{cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr},
           {sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr},
           {-sp, cp * sr, cp * cr}}};
}

// A unit quaternion (x, y, z, w) of rotation matrix m, with w ≥ 0 (of ±q, the one with the non-negative scalar).
template <class T>
DYN_HD void quaternion_of(const Mat3<T>& m, T* xyzw) {
  using std::sqrt;
  const T trace = m.r[0][0] + m.r[1][1] + m.r[2][2];
  T x, y, z, w;
  if (trace > T(0)) {
    const T s = T(2) * sqrt(trace + T(1));
    w = T(0.25) * s;
    x = (m.r[2][1] - m.r[1][2]) / s;
    y = (m.r[0][2] - m.r[2][0]) / s;
    z = (m.r[1][0] - m.r[0][1]) / s;
  } else if (m.r[0][0] > m.r[1][1] && m.r[0][0] > m.r[2][2]) {
    const T s = T(2) * sqrt(T(1) + m.r[0][0] - m.r[1][1] - m.r[2][2]);
    w = (m.r[2][1] - m.r[1][2]) / s;
    x = T(0.25) * s;
    y = (m.r[0][1] + m.r[1][0]) / s;
    z = (m.r[0][2] + m.r[2][0]) / s;
  } else if (m.r[1][1] > m.r[2][2]) {
    const T s = T(2) * sqrt(T(1) + m.r[1][1] - m.r[0][0] - m.r[2][2]);
    w = (m.r[0][2] - m.r[2][0]) / s;
    x = (m.r[0][1] + m.r[1][0]) / s;
    y = T(0.25) * s;
    z = (m.r[1][2] + m.r[2][1]) / s;
  } else {
    const T s = T(2) * sqrt(T(1) + m.r[2][2] - m.r[0][0] - m.r[1][1]);
    w = (m.r[1][0] - m.r[0][1]) / s;
    x = (m.r[0][2] + m.r[2][0]) / s;
    y = (m.r[1][2] + m.r[2][1]) / s;
    z = T(0.25) * s;
  }
  const T sign = w < T(0) ? T(-1) : T(1);
  xyzw[0] = sign * x;
  xyzw[1] = sign * y;
  xyzw[2] = sign * z;
  xyzw[3] = sign * w;
}

}  // namespace dyn
