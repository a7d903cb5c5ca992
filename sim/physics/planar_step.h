// One physics step of a planar articulated body, DYN_HD: smooth forces (springs, dampers, motors, an applied body
// force, bias forces), the constraint forces of limits and floor contacts (planar_constraints.h), and MuJoCo's
// integrators — semi-implicit Euler with implicit joint damping (eulerdamp), or classic RK4.
#pragma once

#include "sim/physics/planar_constraints.h"
#include "sim/physics/planar_dynamics.h"

namespace dyn {

// Per-env state (MuJoCo's qpos, qvel).
template <class T>
struct PlanarState {
  T q[kMaxDofs];
  T qd[kMaxDofs];
};

// What drives one step: motor controls [nu] and a world force on one body's centre of mass (the wind).
template <class T>
struct PlanarControl {
  const T* ctrl = nullptr;
  int force_body = -1;  // −1: none
  V2<T> force{T(0), T(0)};
  bool constraints = true;  // limits and contacts (off: smooth dynamics only, for tests)
};

// Acceleration at (q, q̇): solves M q̈ = f_smooth + Jᵀλ. Leaves the total generalised force in f [ndof] (= M q̈)
// and the mass matrix with armature in M [ndof²] (not factored). D: the array capacities (planar_model.h).
template <class T, class D = PlanarMaxDims>
DYN_HD void planar_acceleration(const PlanarModel<T>& m, const T* q, const T* qd, const PlanarControl<T>& c, T* qdd,
                                T* f, T* M) {
  const int n = m.ndof;
  PlanarKinematics<T, D> k;
  planar_kinematics(m, q, qd, static_cast<const T*>(nullptr), k);
  mass_matrix(m, k, M);
  T bias[D::dofs], spring[D::dofs], damper[D::dofs];
  inverse_dynamics(m, k, static_cast<const T*>(nullptr), bias);
  passive_forces(m, q, qd, spring, damper);
  for (int j = 0; j < n; ++j) f[j] = spring[j] + damper[j] - bias[j];
  if (c.ctrl) add_actuator_forces(m, c.ctrl, f);
  if (c.force_body >= 0) add_body_force(m, k, c.force_body, c.force, f);
  T L[D::dofs * D::dofs];
  for (int i = 0; i < n * n; ++i) L[i] = M[i];
  cholesky_factor(L, n);
  for (int j = 0; j < n; ++j) qdd[j] = f[j];
  cholesky_solve(L, qdd, n);  // the unconstrained acceleration
  if (c.constraints) {
    T a0[D::dofs] = {}, jtf[D::dofs] = {};
    for (int j = 0; j < n; ++j) a0[j] = qdd[j];
    constraint_solve(m, k, M, q, qd, a0, qdd, jtf, L);  // limits and contacts: q̈ and Jᵀf (L: its scratch)
    for (int j = 0; j < n; ++j) f[j] += jtf[j];
  }
}

// One semi-implicit Euler step of length m.timestep, joint damping implicit when m.eulerdamp (MuJoCo's default).
template <class T, class D = PlanarMaxDims>
DYN_HD void planar_euler_step(const PlanarModel<T>& m, PlanarState<T>& s, const PlanarControl<T>& c) {
  const int n = m.ndof;
  const T h = m.timestep;
  T qdd[D::dofs], f[D::dofs], M[D::dofs * D::dofs] = {};
  planar_acceleration<T, D>(m, s.q, s.qd, c, qdd, f, M);
  bool damped = false;
  for (int j = 0; j < n; ++j) damped = damped || m.damping[j] > T(0);
  if (m.eulerdamp && damped) {
    // implicit damping: (M + h·diag(damping)) q̈' = M q̈ = f
    for (int j = 0; j < n; ++j) M[j * n + j] += h * m.damping[j];
    cholesky_factor(M, n);
    for (int j = 0; j < n; ++j) qdd[j] = f[j];
    cholesky_solve(M, qdd, n);
  }
  for (int j = 0; j < n; ++j) {
    s.qd[j] += h * qdd[j];
    s.q[j] += h * s.qd[j];  // semi-implicit: the new velocity
  }
}

// One classic RK4 step of length m.timestep on (q, q̇), constraints re-solved at every stage (as MuJoCo 2.2.2).
template <class T, class D = PlanarMaxDims>
DYN_HD void planar_rk4_step(const PlanarModel<T>& m, PlanarState<T>& s, const PlanarControl<T>& c) {
  const int n = m.ndof;
  const T h = m.timestep;
  T qdd[D::dofs], f[D::dofs], M[D::dofs * D::dofs] = {};
  T q0[D::dofs], v0[D::dofs], qs[D::dofs], vs[D::dofs], dq[D::dofs], dv[D::dofs];
  for (int j = 0; j < n; ++j) {
    q0[j] = qs[j] = s.q[j];
    v0[j] = vs[j] = s.qd[j];
    dq[j] = dv[j] = T(0);
  }
  const T stage_step[3] = {T(0.5) * h, T(0.5) * h, h};
  const T weight[4] = {T(1) / T(6), T(1) / T(3), T(1) / T(3), T(1) / T(6)};
  for (int i = 0; i < 4; ++i) {
    planar_acceleration<T, D>(m, qs, vs, c, qdd, f, M);
    for (int j = 0; j < n; ++j) {
      dq[j] += weight[i] * vs[j];
      dv[j] += weight[i] * qdd[j];
    }
    if (i == 3) break;
    for (int j = 0; j < n; ++j) {
      const T vj = vs[j];
      qs[j] = q0[j] + stage_step[i] * vj;
      vs[j] = v0[j] + stage_step[i] * qdd[j];
    }
  }
  for (int j = 0; j < n; ++j) {
    s.q[j] = q0[j] + h * dq[j];
    s.qd[j] = v0[j] + h * dv[j];
  }
}

// One physics step of length m.timestep with the model's integrator.
template <class T, class D = PlanarMaxDims>
DYN_HD void planar_physics_step(const PlanarModel<T>& m, PlanarState<T>& s, const PlanarControl<T>& c) {
  if (m.integrator == Integrator::euler)
    planar_euler_step<T, D>(m, s, c);
  else
    planar_rk4_step<T, D>(m, s, c);
}

}  // namespace dyn
