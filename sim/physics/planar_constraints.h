// MuJoCo's soft constraints for a planar body, DYN_HD: joint-limit rows and capsule–floor contact rows (two points
// per capsule, pyramidal friction cone), each with MuJoCo's impedance d(r) (solimp), reference acceleration
// a_ref = −b·v − k·d·r (solref) and regulariser R, solved jointly for one env by projected Gauss–Seidel on the
// dual problem  min_f ½ fᵀ(A + R) f + fᵀ(J a₀ − a_ref), f ≥ 0,  A = J M⁻¹ Jᵀ  — the problem MuJoCo's solvers
// minimise, so rows on one body share the load instead of each overshooting.
#pragma once

#include <cmath>

#include "sim/physics/planar_dynamics.h"

namespace dyn {

constexpr int kMaxContactPoints = 2 * kMaxGeoms;
// A contact point gives three rows: the two in-plane pyramid edges n ± μ t, and the two out-of-plane edges
// n ± μ t₂, which are the same row in a planar model (t₂ moves nothing) and are merged into one with R/2.
constexpr int kRowsPerContact = 3;
constexpr int kMaxRows = 2 * kMaxDofs + kRowsPerContact * kMaxContactPoints;
constexpr int kPgsSweeps = 100;  // at most; stops when no force changes by more than 1e-10 (relative)

// MuJoCo's impedance from solimp: d rises from dmin at r = 0 to dmax at |r| ≥ width along a two-piece power curve,
// clamped to [1e-4, 0.9999].
template <class T>
DYN_HD T soft_impedance(const SoftParams<T>& s, T r) {
  using std::fabs;
  using std::pow;
  T x = fabs(r) / s.width;
  T y;
  if (!(s.width > T(0)) || x >= T(1)) {
    y = T(1);
  } else if (x <= s.mid) {
    y = pow(x, s.power) / pow(s.mid, s.power - T(1));
  } else {
    y = T(1) - pow(T(1) - x, s.power) / pow(T(1) - s.mid, s.power - T(1));
  }
  T d = s.dmin + y * (s.dmax - s.dmin);
  d = d < T(1e-4) ? T(1e-4) : (d > T(0.9999) ? T(0.9999) : d);
  return d;
}

// The constraint rows of one state.
template <class T>
struct ConstraintRows {
  int n = 0;
  T J[kMaxRows][kMaxDofs];
  T aref[kMaxRows], R[kMaxRows], f[kMaxRows];
  void add(const T* j, int ndof, T pos, T vel, T d, T diag, const SoftParams<T>& s, T timestep, T r_scale) {
    using std::fmax;
    for (int c = 0; c < ndof; ++c) J[n][c] = j[c];
    const T tc = fmax(s.timeconst, T(2) * timestep);  // MuJoCo's refsafe floor
    const T b = T(2) / (s.dmax * tc), k = T(1) / (s.dmax * s.dmax * tc * tc * s.dampratio * s.dampratio);
    aref[n] = -b * vel - k * d * pos;
    R[n] = fmax(T(1e-15), r_scale * (T(1) - d) / d * diag);
    f[n] = T(0);
    ++n;
  }
};

// The rows at kinematics k: violated joint limits, and capsule end spheres below the floor (v = 0).
template <class T>
DYN_HD void build_constraint_rows(const PlanarModel<T>& m, const PlanarKinematics<T>& k, const T* q, const T* qd,
                                  ConstraintRows<T>& rows) {
  const int n = m.ndof;
  rows.n = 0;
  T jrow[kMaxDofs];
  for (int j = 0; j < n; ++j) {
    if (!m.limited[j]) continue;
    for (int side = 0; side < 2; ++side) {
      const T sign = side == 0 ? T(1) : T(-1);  // lower: q − lo ≥ 0; upper: hi − q ≥ 0
      const T dist = side == 0 ? q[j] - m.range[j][0] : m.range[j][1] - q[j];
      if (!(dist < T(0))) continue;
      for (int c = 0; c < n; ++c) jrow[c] = c == j ? sign : T(0);
      const T d = soft_impedance(m.limit, dist);
      rows.add(jrow, n, dist, sign * qd[j], d, m.dof_invweight[j], m.limit, m.timestep, T(1));
    }
  }
  const V2<T> normal{T(0), T(1)}, tangent{T(1), T(0)};
  for (int g = 0; g < m.ngeom; ++g) {
    const int b = m.geom_body[g];
    for (int e = 0; e < 2; ++e) {
      const V2<T> local = e == 0 ? V2<T>{m.geom_a[g][0], m.geom_a[g][1]} : V2<T>{m.geom_b[g][0], m.geom_b[g][1]};
      const V2<T> centre = body_point(k, b, local);
      const T dist = centre.v - m.geom_radius[g];
      if (!(dist < T(0))) continue;
      // the contact point: midway between the sphere's lowest point and the floor
      const V2<T> p{centre.u, centre.v - m.geom_radius[g] - T(0.5) * dist};
      T jn[kMaxDofs], jt[kMaxDofs];
      T vn = 0, vt = 0;
      for (int c = 0; c < n; ++c) {
        const V2<T> jp = (m.moved_by[b] >> c & 1u) ? point_jacobian(m, k, c, p) : V2<T>{T(0), T(0)};
        jn[c] = dot(normal, jp);
        jt[c] = dot(tangent, jp);
        vn += jn[c] * qd[c];
        vt += jt[c] * qd[c];
      }
      const T mu = m.friction, d = soft_impedance(m.contact, dist);
      // MuJoCo's pyramid edges share one regulariser: R = 2 μ² (1 − d)/d · diag / impratio, diag from the body's
      // translational weight (1 + μ²) w
      const T diag = (T(1) + mu * mu) * m.body_invweight[b];
      const T scale = T(2) * mu * mu / m.impratio;
      for (int s = 0; s < 2; ++s) {
        const T sign = s == 0 ? T(1) : T(-1);
        for (int c = 0; c < n; ++c) jrow[c] = jn[c] + sign * mu * jt[c];
        rows.add(jrow, n, dist, vn + sign * mu * vt, d, diag, m.contact, m.timestep, scale);
      }
      rows.add(jn, n, dist, vn, d, diag, m.contact, m.timestep, T(0.5) * scale);  // n ± μ t₂, merged
    }
  }
}

// Jᵀλ [ndof]: the constraint forces at state (q, q̇) given the kinematics k, the Cholesky factor L of M and the
// unconstrained acceleration a0.
template <class T>
DYN_HD void constraint_forces(const PlanarModel<T>& m, const PlanarKinematics<T>& k, const T* L, const T* q,
                              const T* qd, const T* a0, T* out) {
  using std::fabs;
  const int n = m.ndof;
  for (int c = 0; c < n; ++c) out[c] = T(0);
  ConstraintRows<T> rows;
  build_constraint_rows(m, k, q, qd, rows);
  if (rows.n == 0) return;
  // M⁻¹Jᵀ column per row, A's diagonal, and the constrained acceleration a = a0 + M⁻¹Jᵀ f maintained as f changes
  T minv_jt[kMaxRows][kMaxDofs], a[kMaxDofs], diag[kMaxRows];
  for (int c = 0; c < n; ++c) a[c] = a0[c];
  for (int i = 0; i < rows.n; ++i) {
    for (int c = 0; c < n; ++c) minv_jt[i][c] = rows.J[i][c];
    cholesky_solve(L, minv_jt[i], n);
    T s = 0;
    for (int c = 0; c < n; ++c) s += rows.J[i][c] * minv_jt[i][c];
    diag[i] = s + rows.R[i];
  }
  for (int sweep = 0; sweep < kPgsSweeps; ++sweep) {
    T change = 0, scale = 0;
    for (int i = 0; i < rows.n; ++i) {
      T ja = 0;
      for (int c = 0; c < n; ++c) ja += rows.J[i][c] * a[c];
      const T residual = ja - rows.aref[i] + rows.R[i] * rows.f[i];
      T fi = rows.f[i] - residual / diag[i];
      fi = fi > T(0) ? fi : T(0);
      const T df = fi - rows.f[i];
      if (df != T(0))
        for (int c = 0; c < n; ++c) a[c] += minv_jt[i][c] * df;
      rows.f[i] = fi;
      change = fabs(df) > change ? fabs(df) : change;
      scale = fi > scale ? fi : scale;
    }
    if (change <= T(1e-10) * (scale + T(1e-10))) break;
  }
  for (int i = 0; i < rows.n; ++i)
    for (int c = 0; c < n; ++c) out[c] += rows.J[i][c] * rows.f[i];
}

}  // namespace dyn
