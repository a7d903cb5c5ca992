// MuJoCo's soft constraints for a planar body, DYN_HD: joint-limit rows and capsule–floor contact rows (two points
// per capsule, pyramidal friction cone), each with MuJoCo's impedance d(r) (solimp), reference acceleration
// a_ref = −b·v − k·d·r (solref) and regulariser R = 1/D, solved jointly for one env as MuJoCo's Newton solver does:
// the acceleration minimises  ½ (a − a₀)ᵀ M (a − a₀) + Σᵢ ½ Dᵢ min(0, Jᵢ a − a_refᵢ)²  (a₀ unconstrained), so
// fᵢ = Dᵢ max(0, a_refᵢ − Jᵢ a) ≥ 0 and rows on one body share the load instead of each overshooting. Each Newton
// iteration solves with H = M + Σ_active Dᵢ JᵢᵀJᵢ (ndof × ndof) and line-searches the piecewise quadratic exactly;
// a full step that keeps the active set is the exact optimum. Facts: reference/physics.md §5.2, checked against
// MuJoCo 2.2.2 in tests/test_physics_mujoco.cpp.
#pragma once

#include <cmath>

#include "sim/physics/planar_dynamics.h"

namespace dyn {

constexpr int kNewtonIterations = 30;  // at most; typically 1–4
constexpr int kLineSearchIterations = 30;

// MuJoCo's impedance from solimp at violation r: d0 and dmax clamped to [1e-4, 0.9999] first (the cheetah's
// d0 = 0 becomes 1e-4), then d rises from d0 at r = 0 to dmax at |r| ≥ width along a two-piece power curve.
template <class T>
DYN_HD T clamp_imp(T d) {
  return d < T(1e-4) ? T(1e-4) : (d > T(0.9999) ? T(0.9999) : d);
}
template <class T>
DYN_HD T soft_impedance(const SoftParams<T>& s, T r) {
  using std::fabs;
  using std::pow;
  const T d0 = clamp_imp(s.dmin), dmax = clamp_imp(s.dmax);
  if (d0 == dmax || !(s.width > T(1e-15))) return T(0.5) * (d0 + dmax);
  const T x = fabs(r) / s.width;
  T y;
  if (x >= T(1)) {
    y = T(1);
  } else if (s.power == T(1)) {
    y = x;
  } else if (x <= s.mid) {
    y = pow(x, s.power) / pow(s.mid, s.power - T(1));
  } else {
    y = T(1) - pow(T(1) - x, s.power) / pow(T(1) - s.mid, s.power - T(1));
  }
  return d0 + y * (dmax - d0);
}

// The constraint rows of one state, at most D::rows (the model's max_rows(), checked where D is chosen). A row's
// Jacobian is not stored but rebuilt when used (jacobian()): a limit row is ±1 on its dof, a contact row is
// J_n + c·J_t of its contact point (c = ±μ for the two in-plane pyramid edges, the normal alone for the merged
// out-of-plane pair), both cheap next to the memory a stored [rows × dofs] matrix takes per CUDA thread.
template <class T, class D = PlanarMaxDims>
struct ConstraintRows {
  static constexpr int kPoints = (D::rows + kRowsPerContact - 1) / kRowsPerContact;
  int n = 0, points = 0;
  int8_t ref[D::rows];  // a limit row: its dof; a contact row: −1 − its contact point
  bool edge[D::rows];   // a contact row: an in-plane edge J_n + coef·J_t (else the normal alone)
  T coef[D::rows];      // a limit row: ±1; an edge: ±μ
  T aref[D::rows];      // reference acceleration
  T D_reg[D::rows];     // D = 1/R, the row's stiffness in the cost
  int8_t point_body[kPoints];
  V2<T> point[kPoints];  // contact points in the world

  // Appends a row with MuJoCo's a_ref = −b·v − k·d·r (solref, with the refsafe floor) and R = r_scale·(1 − d)/d·diag.
  DYN_HD void add(int8_t row_ref, bool is_edge, T row_coef, T pos, T vel, T d, T diag, const SoftParams<T>& s,
                  T timestep, T r_scale) {
    using std::fmax;
    if (n == D::rows) return;                         // unreachable for a model that fits D
    const T tc = fmax(s.timeconst, T(2) * timestep);  // MuJoCo's refsafe floor
    const T dmax = clamp_imp(s.dmax);
    const T b = T(2) / (dmax * tc), k = T(1) / (dmax * dmax * tc * tc * s.dampratio * s.dampratio);
    ref[n] = row_ref;
    edge[n] = is_edge;
    coef[n] = row_coef;
    aref[n] = -b * vel - k * d * pos;
    D_reg[n] = T(1) / fmax(T(1e-15), r_scale * (T(1) - d) / d * diag);
    ++n;
  }

  // J [ndof] ← row i's Jacobian at kinematics k.
  DYN_HD void jacobian(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, int i, T* J) const {
    const int nd = m.ndof;
    if (ref[i] >= 0) {
      for (int c = 0; c < nd; ++c) J[c] = c == ref[i] ? coef[i] : T(0);
      return;
    }
    const int p = -1 - ref[i], b = point_body[p];
    const V2<T> normal{T(0), T(1)}, tangent{T(1), T(0)};
    for (int c = 0; c < nd; ++c) {
      const V2<T> jp = (m.moved_by[b] >> c & 1u) ? point_jacobian(m, k, c, point[p]) : V2<T>{T(0), T(0)};
      const T jn = dot(normal, jp);
      J[c] = edge[i] ? jn + coef[i] * dot(tangent, jp) : jn;
    }
  }
};

// The rows at kinematics k: violated joint limits, and capsule end spheres below the floor (v = 0).
template <class T, class D>
DYN_HD void build_constraint_rows(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, const T* q, const T* qd,
                                  ConstraintRows<T, D>& rows) {
  const int n = m.ndof;
  rows.n = 0;
  rows.points = 0;
  for (int j = 0; j < n; ++j) {
    if (!m.limited[j]) continue;
    for (int side = 0; side < 2; ++side) {
      const T sign = side == 0 ? T(1) : T(-1);  // lower: q − lo ≥ 0; upper: hi − q ≥ 0
      const T dist = side == 0 ? q[j] - m.range[j][0] : m.range[j][1] - q[j];
      if (!(dist < T(0))) continue;
      const T d = soft_impedance(m.limit, dist);
      rows.add(int8_t(j), false, sign, dist, sign * qd[j], d, m.dof_invweight[j], m.limit, m.timestep, T(1));
    }
  }
  const V2<T> normal{T(0), T(1)}, tangent{T(1), T(0)};
  for (int g = 0; g < m.ngeom; ++g) {
    const int b = m.geom_body[g];
    for (int e = 0; e < 2; ++e) {
      const V2<T> local = e == 0 ? V2<T>{m.geom_a[g][0], m.geom_a[g][1]} : V2<T>{m.geom_b[g][0], m.geom_b[g][1]};
      const V2<T> centre = body_point(k, b, local);
      const T dist = centre.v - m.geom_radius[g];
      if (!(dist < T(0)) || rows.points == ConstraintRows<T, D>::kPoints) continue;
      // the contact point: midway between the sphere's lowest point and the floor
      const V2<T> p{centre.u, centre.v - m.geom_radius[g] - T(0.5) * dist};
      T vn = 0, vt = 0;  // the point's normal and tangential velocity
      for (int c = 0; c < n; ++c) {
        const V2<T> jp = (m.moved_by[b] >> c & 1u) ? point_jacobian(m, k, c, p) : V2<T>{T(0), T(0)};
        vn += dot(normal, jp) * qd[c];
        vt += dot(tangent, jp) * qd[c];
      }
      const int8_t point_ref = int8_t(-1 - rows.points);
      rows.point_body[rows.points] = int8_t(b);
      rows.point[rows.points++] = p;
      const T mu = m.friction, d = soft_impedance(m.contact, dist);
      // MuJoCo's pyramid edges share one regulariser: R = 2 μ² (1 − d)/d · diag / impratio, diag from the body's
      // translational weight (1 + μ²) w
      const T diag = (T(1) + mu * mu) * m.body_invweight[b];
      const T scale = T(2) * mu * mu / m.impratio;
      for (int s = 0; s < 2; ++s) {
        const T sign = s == 0 ? T(1) : T(-1);
        rows.add(point_ref, true, sign * mu, dist, vn + sign * mu * vt, d, diag, m.contact, m.timestep, scale);
      }
      rows.add(point_ref, false, T(0), dist, vn, d, diag, m.contact, m.timestep, T(0.5) * scale);  // n ± μ t₂
    }
  }
}

// Which rows are active (J a − a_ref < 0) for the residuals x [n]: a bit set over at most kMaxRows rows.
struct ActiveSet {
  uint64_t bits[2] = {0, 0};
  DYN_HD bool operator==(const ActiveSet& o) const { return bits[0] == o.bits[0] && bits[1] == o.bits[1]; }
  DYN_HD void set(int i) { bits[i >> 6] |= uint64_t(1) << (i & 63); }
};
static_assert(kMaxRows <= 128, "ActiveSet holds 128 rows");

// The constrained acceleration a [ndof] and the constraint forces Jᵀf [ndof] at state (q, q̇), given the kinematics
// k, the mass matrix M (with armature) and the unconstrained acceleration a0 = M⁻¹ f_smooth. Newton on the primal:
// for a fixed active set the cost is quadratic, so a step that keeps the active set it was built from is the
// exact optimum (that is the stopping rule; at most kNewtonIterations). H [ndof²]: the caller's scratch for the
// Newton Hessian (one array fewer per CUDA thread).
template <class T, class D>
DYN_HD void constraint_solve(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, const T* M, const T* q,
                             const T* qd, const T* a0, T* a, T* jtf, T* H) {
  const int n = m.ndof;
  for (int c = 0; c < n; ++c) {
    a[c] = a0[c];
    jtf[c] = T(0);
  }
  ConstraintRows<T, D> rows;
  build_constraint_rows(m, k, q, qd, rows);
  if (rows.n == 0) return;
  const T* Dreg = rows.D_reg;
  T J[D::dofs];  // one row's Jacobian at a time
  T da[D::dofs], g[D::dofs], Mda[D::dofs];
  T jar[D::rows] = {}, jd[D::rows] = {};  // J a − a_ref, and J δ along the search direction
  for (int it = 0; it < kNewtonIterations; ++it) {
    // gradient M (a − a0) + Σ_active D J (J a − a_ref) and Hessian M + Σ_active D JᵀJ
    for (int c = 0; c < n; ++c) da[c] = a[c] - a0[c];
    for (int r = 0; r < n; ++r) {
      T s = 0;
      for (int c = 0; c < n; ++c) s += M[r * n + c] * da[c];
      g[r] = s;
      Mda[r] = s;  // M (a − a0), for the line search
    }
    for (int i = 0; i < n * n; ++i) H[i] = M[i];
    ActiveSet built;
    for (int i = 0; i < rows.n; ++i) {
      rows.jacobian(m, k, i, J);
      T s = -rows.aref[i];
      for (int c = 0; c < n; ++c) s += J[c] * a[c];
      jar[i] = s;
      if (!(s < T(0))) continue;
      built.set(i);
      for (int r = 0; r < n; ++r) {
        const T jr = J[r];
        if (jr == T(0)) continue;
        g[r] += Dreg[i] * s * jr;
        for (int c = 0; c < n; ++c) H[r * n + c] += Dreg[i] * jr * J[c];
      }
    }
    if (!cholesky_factor(H, n)) break;
    for (int c = 0; c < n; ++c) da[c] = -g[c];
    cholesky_solve(H, da, n);  // the Newton direction δ
    // exact line search on the piecewise quadratic: φ'(α) = δᵀM(a − a0) + α δᵀMδ + Σ D (Jδ) min(0, jar + α Jδ),
    // Newton's method on φ' (piecewise linear): exact once the active set at α stops changing
    T gd = 0, dMd = 0;
    for (int r = 0; r < n; ++r) {
      T s = 0;
      for (int c = 0; c < n; ++c) s += M[r * n + c] * da[c];
      dMd += da[r] * s;
      gd += da[r] * Mda[r];
    }
    for (int i = 0; i < rows.n; ++i) {
      rows.jacobian(m, k, i, J);
      T s = 0;
      for (int c = 0; c < n; ++c) s += J[c] * da[c];
      jd[i] = s;
    }
    T alpha = T(1);
    ActiveSet at_alpha;
    for (int ls = 0; ls < kLineSearchIterations; ++ls) {
      T d1 = gd + alpha * dMd, d2 = dMd;
      ActiveSet cur;
      for (int i = 0; i < rows.n; ++i) {
        const T x = jar[i] + alpha * jd[i];
        if (x < T(0)) {
          cur.set(i);
          d1 += Dreg[i] * jd[i] * x;
          d2 += Dreg[i] * jd[i] * jd[i];
        }
      }
      if (ls > 0 && cur == at_alpha) break;  // φ' is linear on this piece: alpha is its root
      if (!(d2 > T(0))) break;               // δ = 0: nothing left to move
      at_alpha = cur;
      alpha = alpha - d1 / d2;
    }
    for (int c = 0; c < n; ++c) a[c] += alpha * da[c];
    ActiveSet after;
    for (int i = 0; i < rows.n; ++i)
      if (jar[i] + alpha * jd[i] < T(0)) after.set(i);
    if (after == built) break;  // the quadratic of this active set is minimised: the optimum
  }
  for (int i = 0; i < rows.n; ++i) {
    rows.jacobian(m, k, i, J);
    T s = -rows.aref[i];
    for (int c = 0; c < n; ++c) s += J[c] * a[c];
    const T f = s < T(0) ? -s * Dreg[i] : T(0);  // f = D max(0, a_ref − J a)
    for (int c = 0; c < n; ++c) jtf[c] += J[c] * f;
  }
}

}  // namespace dyn
