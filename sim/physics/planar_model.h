// The immutable model of a planar articulated body (MuJoCo's mjModel for a planar tree): bodies with their
// parents, masses and inertias, one-dof joints (hinge or slide) with armature, springs, dampers, limits and
// motors, capsule geoms that collide with the floor, and the soft-constraint parameters of contacts and limits.
// Separate from the per-env state (planar_state.h). Templated on the scalar: float for the simulator, double for
// the side-by-side checks against MuJoCo.
//
// Everything lives in one plane with coordinates (u, v): (x, z) for the HalfCheetah (z up, the floor is v = 0),
// (x, y) for the Reacher. A hinge angle q turns a body by axis_sign·q counter-clockwise in (u, v): MuJoCo's +y
// hinge seen in the (x, z) plane turns clockwise (axis_sign = −1), a +z hinge in (x, y) counter-clockwise (+1).
#pragma once

#include <cstdint>

#include "kernels/hd.h"

namespace dyn {

constexpr int kMaxBodies = 8;     // moving bodies (the world is not one)
constexpr int kMaxDofs = 9;       // one per joint
constexpr int kMaxGeoms = 8;      // capsules
constexpr int kMaxActuators = 6;  // motors

// A contact point gives three rows: the two in-plane pyramid edges n ± μ t, and the two out-of-plane edges
// n ± μ t₂, which are the same row in a planar model (t₂ moves nothing) and are merged into one with R/2.
constexpr int kRowsPerContact = 3;
constexpr int kMaxContactPoints = 2 * kMaxGeoms;                          // each capsule's two end spheres
constexpr int kMaxRows = kMaxDofs + kRowsPerContact * kMaxContactPoints;  // a dof violates at most one limit

// Compile-time capacities of the per-step arrays (kinematics, mass matrix, constraint rows). Every function of the
// engine takes them as a template parameter, PlanarMaxDims by default (any model); the batched env kernels use a
// task's own (sim/physics_env_batch.cu), so a small model keeps small per-thread arrays.
template <int Bodies, int Dofs, int Rows>
struct PlanarDims {
  static constexpr int bodies = Bodies, dofs = Dofs, rows = Rows;
  static_assert(Bodies >= 1 && Bodies <= kMaxBodies && Dofs >= 1 && Dofs <= kMaxDofs && Rows >= 1 && Rows <= kMaxRows,
                "capacities within the model's limits");
};
using PlanarMaxDims = PlanarDims<kMaxBodies, kMaxDofs, kMaxRows>;

enum class JointType : uint8_t { slide = 0, hinge = 1 };
enum class Integrator : uint8_t { euler = 0, rk4 = 1 };

// MuJoCo's solref (time constant, damping ratio) and solimp (d0, dwidth, width, midpoint, power) of one
// constraint class.
template <class T>
struct SoftParams {
  T timeconst = T(0.02), dampratio = T(1);
  T dmin = T(0.9), dmax = T(0.95), width = T(0.001), mid = T(0.5), power = T(2);
};

template <class T>
struct PlanarModel {
  int nbody = 0, ndof = 0, ngeom = 0, nu = 0;
  T axis_sign = T(1);
  T gravity[2] = {T(0), T(0)};  // in the plane
  T timestep = T(0.01);
  int substeps = 1;  // physics steps per env step
  Integrator integrator = Integrator::euler;
  bool eulerdamp = true;  // Euler treats joint damping implicitly (MuJoCo's default)

  // bodies, parents before children
  int parent[kMaxBodies] = {};     // −1: the world
  T body_pos[kMaxBodies][2] = {};  // body origin in the parent's frame at q = 0
  T mass[kMaxBodies] = {};         // kg
  T inertia[kMaxBodies] = {};      // about the centre of mass, normal to the plane (kg m²)
  T com[kMaxBodies][2] = {};       // centre of mass in the body frame
  int dof_begin[kMaxBodies] = {};  // the body's joints [dof_begin, dof_end), applied in order
  int dof_end[kMaxBodies] = {};
  uint32_t moved_by[kMaxBodies] = {};  // bit j: dof j moves this body (its own joints and its ancestors')
  T body_invweight[kMaxBodies] = {};   // MuJoCo's body_invweight0 (translation) at q = 0: constraint scaling

  // dofs (one per joint), anchored at their body's origin
  JointType dof_type[kMaxDofs] = {};
  int dof_body[kMaxDofs] = {};
  T slide_axis[kMaxDofs][2] = {};  // slide direction in the body frame (before the body's later joints)
  T armature[kMaxDofs] = {}, damping[kMaxDofs] = {}, stiffness[kMaxDofs] = {}, spring_ref[kMaxDofs] = {};
  bool limited[kMaxDofs] = {};
  T range[kMaxDofs][2] = {};
  T dof_invweight[kMaxDofs] = {};  // MuJoCo's dof_invweight0 at q = 0: limit rows' scaling
  SoftParams<T> limit;

  // motors: torque gear·clamp(ctrl) on one dof
  int act_dof[kMaxActuators] = {};
  T gear[kMaxActuators] = {};
  T ctrl_lo = T(-1), ctrl_hi = T(1);

  // capsules (segment a–b in the body frame, radius) against the floor v = 0
  int geom_body[kMaxGeoms] = {};
  T geom_a[kMaxGeoms][2] = {}, geom_b[kMaxGeoms][2] = {};
  T geom_radius[kMaxGeoms] = {};
  T friction = T(1);  // sliding friction coefficient
  SoftParams<T> contact;
  T impratio = T(1);

  // The same model in another scalar type.
  template <class U>
  PlanarModel<U> cast() const;

  // The most constraint rows a state can have: one per limited dof (lo < hi: one side at a time) and three per
  // capsule end sphere.
  int max_rows() const {
    int n = kRowsPerContact * 2 * ngeom;
    for (int j = 0; j < ndof; ++j) n += limited[j] ? 1 : 0;
    return n;
  }
  // Whether the arrays of D hold this model.
  template <class D>
  bool fits() const {
    return nbody <= D::bodies && ndof <= D::dofs && max_rows() <= D::rows;
  }
};

template <class T>
template <class U>
PlanarModel<U> PlanarModel<T>::cast() const {
  PlanarModel<U> m;
  m.nbody = nbody;
  m.ndof = ndof;
  m.ngeom = ngeom;
  m.nu = nu;
  m.axis_sign = U(axis_sign);
  for (int k = 0; k < 2; ++k) m.gravity[k] = U(gravity[k]);
  m.timestep = U(timestep);
  m.substeps = substeps;
  m.integrator = integrator;
  m.eulerdamp = eulerdamp;
  for (int b = 0; b < kMaxBodies; ++b) {
    m.parent[b] = parent[b];
    m.mass[b] = U(mass[b]);
    m.inertia[b] = U(inertia[b]);
    m.dof_begin[b] = dof_begin[b];
    m.dof_end[b] = dof_end[b];
    m.moved_by[b] = moved_by[b];
    m.body_invweight[b] = U(body_invweight[b]);
    for (int k = 0; k < 2; ++k) {
      m.body_pos[b][k] = U(body_pos[b][k]);
      m.com[b][k] = U(com[b][k]);
    }
  }
  for (int j = 0; j < kMaxDofs; ++j) {
    m.dof_type[j] = dof_type[j];
    m.dof_body[j] = dof_body[j];
    m.armature[j] = U(armature[j]);
    m.damping[j] = U(damping[j]);
    m.stiffness[j] = U(stiffness[j]);
    m.spring_ref[j] = U(spring_ref[j]);
    m.limited[j] = limited[j];
    m.dof_invweight[j] = U(dof_invweight[j]);
    for (int k = 0; k < 2; ++k) {
      m.slide_axis[j][k] = U(slide_axis[j][k]);
      m.range[j][k] = U(range[j][k]);
    }
  }
  auto soft = [](const SoftParams<T>& s) {
    return SoftParams<U>{U(s.timeconst), U(s.dampratio), U(s.dmin), U(s.dmax), U(s.width), U(s.mid), U(s.power)};
  };
  m.limit = soft(limit);
  m.contact = soft(contact);
  for (int a = 0; a < kMaxActuators; ++a) {
    m.act_dof[a] = act_dof[a];
    m.gear[a] = U(gear[a]);
  }
  m.ctrl_lo = U(ctrl_lo);
  m.ctrl_hi = U(ctrl_hi);
  for (int g = 0; g < kMaxGeoms; ++g) {
    m.geom_body[g] = geom_body[g];
    m.geom_radius[g] = U(geom_radius[g]);
    for (int k = 0; k < 2; ++k) {
      m.geom_a[g][k] = U(geom_a[g][k]);
      m.geom_b[g][k] = U(geom_b[g][k]);
    }
  }
  m.friction = U(friction);
  m.impratio = U(impratio);
  return m;
}

}  // namespace dyn
