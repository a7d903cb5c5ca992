// Smooth dynamics of a planar articulated body, all DYN_HD (one env per CUDA thread, or per host loop
// iteration): forward kinematics with body velocities and accelerations, point Jacobians, the joint-space mass
// matrix (the Jacobian-sum form of CRBA, with armature), inverse dynamics (Newton–Euler: the bias forces are its
// value at q̈ = 0, gravity included), passive and motor forces, and a dense Cholesky factorisation and solve.
#pragma once

#include <cmath>

#include "sim/physics/planar_model.h"

namespace dyn {

// A vector in the plane (u, v).
template <class T>
struct V2 {
  T u, v;
};
template <class T>
DYN_HD V2<T> operator+(V2<T> a, V2<T> b) {
  return {a.u + b.u, a.v + b.v};
}
template <class T>
DYN_HD V2<T> operator-(V2<T> a, V2<T> b) {
  return {a.u - b.u, a.v - b.v};
}
template <class T>
DYN_HD V2<T> operator*(T s, V2<T> a) {
  return {s * a.u, s * a.v};
}
template <class T>
DYN_HD T dot(V2<T> a, V2<T> b) {
  return a.u * b.u + a.v * b.v;
}
template <class T>
DYN_HD T cross(V2<T> a, V2<T> b) {  // the normal component of a × b
  return a.u * b.v - a.v * b.u;
}
template <class T>
DYN_HD V2<T> perp(V2<T> a) {  // ω × a for a unit angular velocity normal to the plane
  return {-a.v, a.u};
}
template <class T>
DYN_HD V2<T> rotate(T angle, V2<T> a) {
  using std::cos;
  using std::sin;
  const T c = cos(angle), s = sin(angle);
  return {c * a.u - s * a.v, s * a.u + c * a.v};
}

// Where every body is, and how it moves, for one (q, q̇, q̈). D: the array capacities (planar_model.h).
template <class T, class D = PlanarMaxDims>
struct PlanarKinematics {
  static constexpr int B = D::bodies, J = D::dofs;
  V2<T> origin[B], origin_vel[B], origin_acc[B];  // body frame origin (after slides)
  T angle[B], omega[B], alpha[B];                 // body frame angle and its rates
  V2<T> com[B], com_vel[B], com_acc[B];           // centre of mass
  V2<T> dof_anchor[J];                            // hinge: the point it turns about
  V2<T> dof_dir[J];                               // slide: its direction in the plane
};

// Forward kinematics root to leaves. qd and qdd may be nullptr (zero): positions only, or velocities too.
template <class T, class D>
DYN_HD void planar_kinematics(const PlanarModel<T>& m, const T* q, const T* qd, const T* qdd,
                              PlanarKinematics<T, D>& k) {
  for (int b = 0; b < m.nbody; ++b) {
    const int p = m.parent[b];
    const V2<T> zero{T(0), T(0)};
    const V2<T> po = p < 0 ? zero : k.origin[p], pv = p < 0 ? zero : k.origin_vel[p],
                pa = p < 0 ? zero : k.origin_acc[p];
    T th = p < 0 ? T(0) : k.angle[p], w = p < 0 ? T(0) : k.omega[p], al = p < 0 ? T(0) : k.alpha[p];
    // the body's origin as a point of the parent frame
    const V2<T> r = rotate(th, V2<T>{m.body_pos[b][0], m.body_pos[b][1]});
    V2<T> o = po + r, v = pv + w * perp(r), a = pa + al * perp(r) - (w * w) * r;
    for (int j = m.dof_begin[b]; j < m.dof_end[b]; ++j) {
      const T qj = q[j], vj = qd ? qd[j] : T(0), aj = qdd ? qdd[j] : T(0);
      if (m.dof_type[j] == JointType::slide) {
        // a slide along an axis fixed in the (possibly turning) current frame
        const V2<T> u = rotate(th, V2<T>{m.slide_axis[j][0], m.slide_axis[j][1]});
        k.dof_dir[j] = u;
        k.dof_anchor[j] = o;
        a = a + aj * u + (T(2) * w * vj) * perp(u) + (al * qj) * perp(u) - (w * w * qj) * u;
        v = v + vj * u + (w * qj) * perp(u);
        o = o + qj * u;
      } else {
        k.dof_anchor[j] = o;
        k.dof_dir[j] = zero;
        th += m.axis_sign * qj;
        w += m.axis_sign * vj;
        al += m.axis_sign * aj;
      }
    }
    k.origin[b] = o;
    k.origin_vel[b] = v;
    k.origin_acc[b] = a;
    k.angle[b] = th;
    k.omega[b] = w;
    k.alpha[b] = al;
    const V2<T> rc = rotate(th, V2<T>{m.com[b][0], m.com[b][1]});
    k.com[b] = o + rc;
    k.com_vel[b] = v + w * perp(rc);
    k.com_acc[b] = a + al * perp(rc) - (w * w) * rc;
  }
}

// d(velocity of point x)/d q̇_j for a point x on a body that dof j moves.
template <class T, class D>
DYN_HD V2<T> point_jacobian(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, int j, V2<T> x) {
  if (m.dof_type[j] == JointType::slide) return k.dof_dir[j];
  return m.axis_sign * perp(x - k.dof_anchor[j]);
}

// d(angular velocity)/d q̇_j of a body that dof j moves.
template <class T>
DYN_HD T angular_jacobian(const PlanarModel<T>& m, int j) {
  return m.dof_type[j] == JointType::hinge ? m.axis_sign : T(0);
}

// The world point x of body b as the body moves: x0 + R(angle) p (p in the body frame).
template <class T, class D>
DYN_HD V2<T> body_point(const PlanarKinematics<T, D>& k, int b, V2<T> p) {
  return k.origin[b] + rotate(k.angle[b], p);
}

// Joint-space inertia M [ndof, ndof] (row-major) = Σ_k m_k Jv_kᵀ Jv_k + I_k Jw_kᵀ Jw_k over the bodies' centres of
// mass, plus the armature on the diagonal (the Jacobian-sum form of the composite-rigid-body algorithm).
template <class T, class D>
DYN_HD void mass_matrix(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, T* M) {
  const int n = m.ndof;
  for (int i = 0; i < n * n; ++i) M[i] = T(0);
  for (int b = 0; b < m.nbody; ++b) {
    V2<T> jv[D::dofs];
    for (int j = 0; j < n; ++j)
      if (m.moved_by[b] >> j & 1u) jv[j] = point_jacobian(m, k, j, k.com[b]);
    for (int i = 0; i < n; ++i) {
      if (!(m.moved_by[b] >> i & 1u)) continue;
      for (int j = 0; j <= i; ++j) {
        if (!(m.moved_by[b] >> j & 1u)) continue;
        M[i * n + j] += m.mass[b] * dot(jv[i], jv[j]) + m.inertia[b] * angular_jacobian(m, i) * angular_jacobian(m, j);
      }
    }
  }
  for (int i = 0; i < n; ++i) {
    M[i * n + i] += m.armature[i];
    for (int j = 0; j < i; ++j) M[j * n + i] = M[i * n + j];
  }
}

// Generalised forces τ [ndof] that produce the accelerations of k (planar_kinematics with q̇ and q̈):
// τ_j = Σ_{bodies b moved by j} Jv_bjᵀ m_b (a_b − g) + Jw_bj I_b α_b, plus armature·q̈ (Newton–Euler; with q̈ = 0
// it is the bias force C(q, q̇) q̇ − gravity's generalised force).
template <class T, class D>
DYN_HD void inverse_dynamics(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, const T* qdd, T* tau) {
  const V2<T> g{m.gravity[0], m.gravity[1]};
  for (int j = 0; j < m.ndof; ++j) tau[j] = qdd ? m.armature[j] * qdd[j] : T(0);
  for (int b = 0; b < m.nbody; ++b) {
    const V2<T> f = m.mass[b] * (k.com_acc[b] - g);  // the force the body needs
    const T torque = m.inertia[b] * k.alpha[b];      // about its centre of mass
    for (int j = 0; j < m.ndof; ++j)
      if (m.moved_by[b] >> j & 1u)
        tau[j] += dot(point_jacobian(m, k, j, k.com[b]), f) + angular_jacobian(m, j) * torque;
  }
}

// Springs and dampers: −stiffness (q − q_ref) − damping q̇ (the damping part separately, for the implicit step).
template <class T>
DYN_HD void passive_forces(const PlanarModel<T>& m, const T* q, const T* qd, T* spring, T* damper) {
  for (int j = 0; j < m.ndof; ++j) {
    spring[j] = -m.stiffness[j] * (q[j] - m.spring_ref[j]);
    damper[j] = -m.damping[j] * qd[j];
  }
}

// Motor torques gear·clamp(ctrl, ctrl range) added into tau.
template <class T>
DYN_HD void add_actuator_forces(const PlanarModel<T>& m, const T* ctrl, T* tau) {
  for (int a = 0; a < m.nu; ++a) {
    T c = ctrl[a];
    c = c < m.ctrl_lo ? m.ctrl_lo : (c > m.ctrl_hi ? m.ctrl_hi : c);
    tau[m.act_dof[a]] += m.gear[a] * c;
  }
}

// A world force f on body b's centre of mass, as generalised forces added into tau (Jacobian transpose).
template <class T, class D>
DYN_HD void add_body_force(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, int b, V2<T> f, T* tau) {
  for (int j = 0; j < m.ndof; ++j)
    if (m.moved_by[b] >> j & 1u) tau[j] += dot(point_jacobian(m, k, j, k.com[b]), f);
}

// In-place Cholesky A = L Lᵀ of a symmetric positive definite [n, n] (row-major; L in the lower triangle).
// Returns false when a pivot is not positive.
template <class T>
DYN_HD bool cholesky_factor(T* A, int n) {
  using std::sqrt;
  for (int j = 0; j < n; ++j) {
    T d = A[j * n + j];
    for (int p = 0; p < j; ++p) d -= A[j * n + p] * A[j * n + p];
    if (!(d > T(0))) return false;
    d = sqrt(d);
    A[j * n + j] = d;
    for (int i = j + 1; i < n; ++i) {
      T s = A[i * n + j];
      for (int p = 0; p < j; ++p) s -= A[i * n + p] * A[j * n + p];
      A[i * n + j] = s / d;
    }
  }
  return true;
}

// x ← (L Lᵀ)⁻¹ x for the factor of cholesky_factor.
template <class T>
DYN_HD void cholesky_solve(const T* L, T* x, int n) {
  for (int i = 0; i < n; ++i) {
    T s = x[i];
    for (int p = 0; p < i; ++p) s -= L[i * n + p] * x[p];
    x[i] = s / L[i * n + i];
  }
  for (int i = n - 1; i >= 0; --i) {
    T s = x[i];
    for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * x[p];
    x[i] = s / L[i * n + i];
  }
}

// Kinetic energy ½ q̇ᵀ M q̇ from the bodies' motion (for tests: its Hessian in q̇ is M).
template <class T, class D>
DYN_HD T kinetic_energy(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, const T* qd) {
  T e = 0;
  for (int b = 0; b < m.nbody; ++b)
    e += T(0.5) * (m.mass[b] * dot(k.com_vel[b], k.com_vel[b]) + m.inertia[b] * k.omega[b] * k.omega[b]);
  for (int j = 0; j < m.ndof; ++j) e += T(0.5) * m.armature[j] * qd[j] * qd[j];
  return e;
}

// Gravitational potential energy −Σ m g·c plus the springs' ½ k (q − q_ref)².
template <class T, class D>
DYN_HD T potential_energy(const PlanarModel<T>& m, const PlanarKinematics<T, D>& k, const T* q) {
  const V2<T> g{m.gravity[0], m.gravity[1]};
  T e = 0;
  for (int b = 0; b < m.nbody; ++b) e -= m.mass[b] * dot(g, k.com[b]);
  for (int j = 0; j < m.ndof; ++j) e += T(0.5) * m.stiffness[j] * (q[j] - m.spring_ref[j]) * (q[j] - m.spring_ref[j]);
  return e;
}

}  // namespace dyn
