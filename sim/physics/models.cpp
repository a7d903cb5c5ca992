// HalfCheetah and Reacher planar models (reference/physics.md §1 and §2), built body by body.
#include "sim/physics/models.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/physics/planar_dynamics.h"

namespace dyn {

namespace {

constexpr double kPi = 3.14159265358979323846;

// One capsule of a body while the model is assembled: its segment and mass properties.
struct Part {
  int body;
  double ax, av, bx, bv, radius;
  bool collides;
};

class Builder {
 public:
  explicit Builder(double axis_sign) { m_.axis_sign = axis_sign; }
  int body(int parent, double pu, double pv) {
    const int b = m_.nbody++;
    if (b >= kMaxBodies) throw std::logic_error("planar model: more than kMaxBodies bodies");
    m_.parent[b] = parent;
    m_.body_pos[b][0] = pu;
    m_.body_pos[b][1] = pv;
    m_.dof_begin[b] = m_.dof_end[b] = m_.ndof;
    return b;
  }
  int joint(int b, JointType type, double au = 0, double av = 0) {
    if (b != m_.nbody - 1) throw std::logic_error("planar model: joints must follow their body");
    const int j = m_.ndof++;
    if (j >= kMaxDofs) throw std::logic_error("planar model: more than kMaxDofs dofs");
    m_.dof_type[j] = type;
    m_.dof_body[j] = b;
    m_.slide_axis[j][0] = au;
    m_.slide_axis[j][1] = av;
    m_.dof_end[b] = m_.ndof;
    return j;
  }
  void capsule(int b, double ax, double av, double bx, double bv, double radius) {
    parts_.push_back({b, ax, av, bx, bv, radius, true});
  }
  // A capsule given MuJoCo-style: centre, half-length of the cylinder, and the angle that turns its axis from the
  // plane's second axis (axisangle 0 1 0 a: the axis becomes (sin a, cos a) in (x, z)).
  void capsule_at(int b, double cu, double cv, double half, double angle, double radius) {
    const double du = half * std::sin(angle), dv = half * std::cos(angle);
    capsule(b, cu - du, cv - dv, cu + du, cv + dv, radius);
  }
  void motor(int dof, double gear) {
    const int a = m_.nu++;
    m_.act_dof[a] = dof;
    m_.gear[a] = gear;
  }
  PlanarModel<double>& model() { return m_; }

  // Masses, centres of mass and inertias from the capsules (optionally scaled to a total mass, as MuJoCo's
  // settotalmass scales every mass and inertia by one factor), the geoms, moved_by and the invweights.
  PlanarModel<double> finish(double total_mass) {
    double sum = 0;
    for (int b = 0; b < m_.nbody; ++b) {
      double mass = 0, cu = 0, cv = 0;
      for (const Part& p : parts_)
        if (p.body == b) {
          const CapsuleMass cm = capsule_mass(p.radius, half_length(p));
          mass += cm.mass;
          cu += cm.mass * 0.5 * (p.ax + p.bx);
          cv += cm.mass * 0.5 * (p.av + p.bv);
        }
      if (mass <= 0) throw std::logic_error("planar model: body " + std::to_string(b) + " has no mass");
      cu /= mass;
      cv /= mass;
      double inertia = 0;
      for (const Part& p : parts_)
        if (p.body == b) {
          const CapsuleMass cm = capsule_mass(p.radius, half_length(p));
          const double du = 0.5 * (p.ax + p.bx) - cu, dv = 0.5 * (p.av + p.bv) - cv;
          inertia += cm.inertia_perp + cm.mass * (du * du + dv * dv);
        }
      m_.mass[b] = mass;
      m_.inertia[b] = inertia;
      m_.com[b][0] = cu;
      m_.com[b][1] = cv;
      sum += mass;
    }
    const double scale = total_mass > 0 ? total_mass / sum : 1.0;
    for (int b = 0; b < m_.nbody; ++b) {
      m_.mass[b] *= scale;
      m_.inertia[b] *= scale;
    }
    m_.ngeom = 0;
    for (const Part& p : parts_) {
      if (!p.collides) continue;
      const int g = m_.ngeom++;
      if (g >= kMaxGeoms) throw std::logic_error("planar model: more than kMaxGeoms geoms");
      m_.geom_body[g] = p.body;
      m_.geom_a[g][0] = p.ax;
      m_.geom_a[g][1] = p.av;
      m_.geom_b[g][0] = p.bx;
      m_.geom_b[g][1] = p.bv;
      m_.geom_radius[g] = p.radius;
    }
    for (int b = 0; b < m_.nbody; ++b) {
      uint32_t mask = 0;
      for (int a = b; a >= 0; a = m_.parent[a])
        for (int j = m_.dof_begin[a]; j < m_.dof_end[a]; ++j) mask |= 1u << j;
      m_.moved_by[b] = mask;
    }
    set_invweights(m_);
    return m_;
  }

 private:
  static double half_length(const Part& p) { return 0.5 * std::hypot(p.bx - p.ax, p.bv - p.av); }
  PlanarModel<double> m_;
  std::vector<Part> parts_;
};

}  // namespace

CapsuleMass capsule_mass(double r, double half, double density) {
  const double h = 2 * half;
  const double volume = kPi * r * r * (h + 4.0 * r / 3.0);
  const double mass = density * volume;
  const double m_sphere = mass * 4.0 * r / (4.0 * r + 3.0 * h);  // both hemispheres together
  const double m_cyl = mass - m_sphere;
  const double inertia =
      m_cyl * (3 * r * r + h * h) / 12.0 + 2.0 * m_sphere * r * r / 5.0 + m_sphere * h * (3 * r + 2 * h) / 8.0;
  return {mass, inertia};
}

void set_invweights(PlanarModel<double>& m) {
  // MuJoCo (mj_setConst at qpos0): with M⁻¹ at q = 0, a body's translational weight is the mean over the three
  // world axes of Jₚ M⁻¹ Jₚᵀ at its centre of mass (the out-of-plane axis contributes 0 for a planar body), and a
  // dof's weight is (M⁻¹)_jj; the MuJoCo side-by-side test checks both to 1e-9. They scale the regulariser R of
  // the constraint rows (planar_constraints.h).
  const int n = m.ndof;
  std::vector<double> q(size_t(n), 0.0), M(size_t(n) * n), Minv(size_t(n) * n, 0.0);
  PlanarKinematics<double> k;
  planar_kinematics(m, q.data(), static_cast<const double*>(nullptr), static_cast<const double*>(nullptr), k);
  mass_matrix(m, k, M.data());
  if (!cholesky_factor(M.data(), n)) throw std::logic_error("planar model: mass matrix not positive definite");
  for (int c = 0; c < n; ++c) {
    std::vector<double> e(size_t(n), 0.0);
    e[size_t(c)] = 1;
    cholesky_solve(M.data(), e.data(), n);
    for (int r = 0; r < n; ++r) Minv[size_t(r) * n + c] = e[size_t(r)];
  }
  for (int j = 0; j < n; ++j) m.dof_invweight[j] = Minv[size_t(j) * n + j];
  for (int b = 0; b < m.nbody; ++b) {
    double w = 0;  // trace of Jₚ M⁻¹ Jₚᵀ over the two in-plane axes
    V2<double> jac[kMaxDofs];
    for (int j = 0; j < n; ++j)
      jac[j] = (m.moved_by[b] >> j & 1u) ? point_jacobian(m, k, j, k.com[b]) : V2<double>{0, 0};
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) w += dot(jac[i], jac[j]) * Minv[size_t(i) * n + j];
    m.body_invweight[b] = w / 3.0;
  }
}

PlanarModel<double> halfcheetah_model() {
  Builder B(-1.0);  // +y hinges seen in the (x, z) plane
  PlanarModel<double>& m = B.model();
  m.gravity[0] = 0;
  m.gravity[1] = -9.81;
  m.timestep = 0.01;
  m.substeps = 5;
  m.integrator = Integrator::euler;
  const double r = 0.046;
  const int torso = B.body(-1, 0.0, 0.7);
  B.joint(torso, JointType::slide, 1, 0);  // rootx
  B.joint(torso, JointType::slide, 0, 1);  // rootz
  B.joint(torso, JointType::hinge);        // rooty
  B.capsule(torso, -0.5, 0, 0.5, 0, r);
  B.capsule_at(torso, 0.6, 0.1, 0.15, 0.87, r);  // head
  struct Leg {
    int parent;
    double pu, pv, cu, cv, half, angle;
    double lo, hi, stiffness, damping, gear;
  };
  // parents refer to the order below (0 = torso); reference/physics.md tables 1.2, 1.3, 1.5
  const Leg legs[6] = {
      {0, -0.5, 0.0, 0.1, -0.13, 0.145, -3.8, -0.52, 1.05, 240, 6.0, 120},       // bthigh
      {1, 0.16, -0.25, -0.14, -0.07, 0.15, -2.03, -0.785, 0.785, 180, 4.5, 90},  // bshin
      {2, -0.28, -0.14, 0.03, -0.097, 0.094, -0.27, -0.4, 0.785, 120, 3.0, 60},  // bfoot
      {0, 0.5, 0.0, -0.07, -0.12, 0.133, 0.52, -1.0, 0.7, 180, 4.5, 120},        // fthigh
      {4, -0.14, -0.24, 0.065, -0.09, 0.106, -0.6, -1.2, 0.87, 120, 3.0, 60},    // fshin
      {5, 0.13, -0.18, 0.045, -0.07, 0.07, -0.6, -0.5, 0.5, 60, 1.5, 30},        // ffoot
  };
  for (const Leg& l : legs) {
    const int b = B.body(l.parent, l.pu, l.pv);
    const int j = B.joint(b, JointType::hinge);
    m.armature[j] = 0.1;
    m.damping[j] = l.damping;
    m.stiffness[j] = l.stiffness;
    m.limited[j] = true;
    m.range[j][0] = l.lo;
    m.range[j][1] = l.hi;
    B.capsule_at(b, l.cu, l.cv, l.half, l.angle, r);
    B.motor(j, l.gear);
  }
  m.limit = SoftParams<double>{0.02, 1.0, 0.0, 0.8, 0.03, 0.5, 2.0};
  m.contact = SoftParams<double>{0.02, 1.0, 0.0, 0.8, 0.01, 0.5, 2.0};
  m.friction = 0.4;
  m.impratio = 1.0;
  return B.finish(14.0);
}

PlanarModel<double> reacher_model() {
  Builder B(1.0);  // +z hinges in the (x, y) plane
  PlanarModel<double>& m = B.model();
  m.timestep = 0.01;
  m.substeps = 2;
  m.integrator = Integrator::rk4;
  const int link0 = B.body(-1, 0.0, 0.0);
  const int j0 = B.joint(link0, JointType::hinge);
  B.capsule(link0, 0, 0, 0.1, 0, 0.01);
  const int link1 = B.body(link0, 0.1, 0.0);
  const int j1 = B.joint(link1, JointType::hinge);
  B.capsule(link1, 0, 0, 0.1, 0, 0.01);
  const int tip = B.body(link1, 0.11, 0.0);  // welded fingertip: a sphere of radius 0.01
  B.capsule(tip, 0, 0, 0, 0, 0.01);
  for (int j : {j0, j1}) {
    m.armature[j] = 1.0;
    m.damping[j] = 1.0;
    B.motor(j, 200.0);
  }
  m.limited[j1] = true;
  m.range[j1][0] = -3.0;
  m.range[j1][1] = 3.0;
  m.limit = SoftParams<double>{0.02, 1.0, 0.9, 0.95, 0.001, 0.5, 2.0};
  PlanarModel<double> out = B.finish(0.0);
  out.ngeom = 0;  // nothing collides in the Reacher
  return out;
}

}  // namespace dyn
