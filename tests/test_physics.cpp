// The planar engine's invariants (issue 6), in double on the CPU: model mass properties against
// reference/physics.md, the mass matrix symmetric positive definite and equal to the Hessian of the kinetic energy,
// inverse dynamics reproducing the torques of the forward dynamics, energy conservation without damping, springs,
// gravity and contacts, and the analytic free fall.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "sim/physics/models.h"
#include "sim/physics/planar_step.h"
#include "tests/random_vectors.h"

using namespace dyn;

namespace {

PlanarKinematics<double> kinematics(const PlanarModel<double>& m, const std::vector<double>& q,
                                    const std::vector<double>& qd) {
  PlanarKinematics<double> k;
  planar_kinematics(m, q.data(), qd.data(), static_cast<const double*>(nullptr), k);
  return k;
}

// A model with the named terms switched off.
PlanarModel<double> without(PlanarModel<double> m, bool gravity, bool damping, bool springs, bool contacts) {
  if (gravity) m.gravity[0] = m.gravity[1] = 0;
  for (int j = 0; j < m.ndof; ++j) {
    if (damping) m.damping[j] = 0;
    if (springs) m.stiffness[j] = 0;
  }
  if (contacts) m.ngeom = 0;
  return m;
}

}  // namespace

TEST(PlanarModel, CheetahMassesMatchReference) {
  const PlanarModel<double> m = halfcheetah_model();
  ASSERT_EQ(m.nbody, 7);
  ASSERT_EQ(m.ndof, 9);
  // reference/physics.md §1.4, the NEW (MuJoCo ≥ 2.1.2) column
  const double mass[7] = {6.250209, 1.543515, 1.587448, 1.095397, 1.438075, 1.200837, 0.884519};
  const double inertia[7] = {0.8971177, 0.01684434, 0.01826742, 0.006352423, 0.01373964, 0.008222109, 0.003529109};
  double total = 0;
  for (int b = 0; b < 7; ++b) {
    EXPECT_NEAR(m.mass[b], mass[b], 2e-6) << "body " << b;
    EXPECT_NEAR(m.inertia[b], inertia[b], 2e-6 * inertia[b] + 1e-9) << "body " << b;
    total += m.mass[b];
  }
  EXPECT_NEAR(total, 14.0, 1e-12);
  EXPECT_NEAR(m.com[0][0], 0.15239, 1e-5);
  EXPECT_NEAR(m.com[0][1], 0.02540, 1e-5);
}

TEST(PlanarModel, ReacherMassesMatchReference) {
  const PlanarModel<double> m = reacher_model();
  EXPECT_NEAR(m.mass[0], 0.035605, 1e-6);
  EXPECT_NEAR(m.inertia[0], 3.918e-5, 1e-8);
  EXPECT_NEAR(m.mass[2], 0.0041888, 1e-7);
}

TEST(PlanarDynamics, MassMatrixIsSpdAndTheKineticEnergyHessian) {
  std::mt19937 rng(1);
  for (const PlanarModel<double>& m : {halfcheetah_model(), reacher_model()}) {
    const int n = m.ndof;
    for (int trial = 0; trial < 5; ++trial) {
      const std::vector<double> q = uniform_vector(n, 1.0, rng), qd = uniform_vector(n, 2.0, rng);
      const PlanarKinematics<double> k = kinematics(m, q, qd);
      std::vector<double> M(static_cast<size_t>(n * n)), L;
      mass_matrix(m, k, M.data());
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) EXPECT_EQ(M[size_t(i) * n + j], M[size_t(j) * n + i]);
      L = M;
      EXPECT_TRUE(cholesky_factor(L.data(), n));
      // ∂²KE/∂q̇ᵢ∂q̇ⱼ by central differences (KE is quadratic in q̇: exact up to rounding)
      const double h = 1e-3;
      auto ke = [&](std::vector<double> v) { return kinetic_energy(m, kinematics(m, q, v), v.data()); };
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
          std::vector<double> pp = qd, pm = qd, mp = qd, mm = qd;
          pp[size_t(i)] += h, pp[size_t(j)] += h;
          pm[size_t(i)] += h, pm[size_t(j)] -= h;
          mp[size_t(i)] -= h, mp[size_t(j)] += h;
          mm[size_t(i)] -= h, mm[size_t(j)] -= h;
          const double hess = (ke(pp) - ke(pm) - ke(mp) + ke(mm)) / (4 * h * h);
          EXPECT_NEAR(hess, M[size_t(i) * n + j], 1e-7 * (1 + std::fabs(M[size_t(i) * n + j])))
              << "M(" << i << ", " << j << ")";
        }
    }
  }
}

TEST(PlanarDynamics, InverseDynamicsReproducesTheForwardTorques) {
  std::mt19937 rng(2);
  for (const PlanarModel<double>& m : {halfcheetah_model(), reacher_model()}) {
    const int n = m.ndof;
    for (int trial = 0; trial < 5; ++trial) {
      const std::vector<double> q = uniform_vector(n, 1.0, rng), qd = uniform_vector(n, 3.0, rng),
                                tau = uniform_vector(n, 50.0, rng);
      PlanarKinematics<double> k = kinematics(m, q, qd);
      const size_t un = static_cast<size_t>(n);
      std::vector<double> M(un * un), bias(un), qdd(un), back(un);
      mass_matrix(m, k, M.data());
      inverse_dynamics(m, k, static_cast<const double*>(nullptr), bias.data());
      cholesky_factor(M.data(), n);
      for (int j = 0; j < n; ++j) qdd[size_t(j)] = tau[size_t(j)] - bias[size_t(j)];
      cholesky_solve(M.data(), qdd.data(), n);  // q̈ = M⁻¹(τ − b)
      planar_kinematics(m, q.data(), qd.data(), qdd.data(), k);
      inverse_dynamics(m, k, qdd.data(), back.data());
      for (int j = 0; j < n; ++j) EXPECT_NEAR(back[size_t(j)], tau[size_t(j)], 1e-9 * 50) << "dof " << j;
    }
  }
}

// Without damping, springs, gravity and contacts nothing does work: the kinetic energy of a tumbling cheetah in
// the air (and of a spinning Reacher) stays put. Largest relative change of the energy over `steps` steps.
double energy_drift(PlanarModel<double> m, Integrator integrator, double timestep, int steps, uint32_t seed) {
  m = without(m, true, true, true, true);
  for (int j = 0; j < m.ndof; ++j) m.limited[j] = false;
  m.integrator = integrator;
  m.timestep = timestep;
  std::mt19937 rng(seed);
  PlanarState<double> s{};
  const std::vector<double> qd = uniform_vector(m.ndof, 2.0, rng);
  for (int j = 0; j < m.ndof; ++j) s.qd[j] = qd[size_t(j)];
  auto energy = [&] {
    PlanarKinematics<double> k;
    planar_kinematics(m, s.q, s.qd, static_cast<const double*>(nullptr), k);
    return kinetic_energy(m, k, s.qd);
  };
  const double e0 = energy();
  double worst = 0;
  const PlanarControl<double> c;
  for (int step = 0; step < steps; ++step) {
    planar_physics_step(m, s, c);
    worst = std::fmax(worst, std::fabs(energy() - e0) / e0);
  }
  return worst;
}

TEST(PlanarDynamics, EnergyIsConservedWithoutDissipation) {
  // RK4 (the Reacher's integrator; the cheetah's dynamics too): the dynamics conserve energy to integration error
  // measured: cheetah 7.25e-9, reacher 2.41e-15 (gcc 12, -O3); bounds 1e-7 and 1e-13 (14x, and a floor ~40x above
  // rounding). Mutation: RK4's end weights 1/6 ± 1e-4 give 2.3e-6 and 7.8e-11, which both bounds catch (the former
  // bound of 1e-6 let the reacher's through)
  const struct {
    PlanarModel<double> model;
    double bound;
  } cases[] = {{halfcheetah_model(), 1e-7}, {reacher_model(), 1e-13}};
  for (const auto& c : cases) {
    const double drift = energy_drift(c.model, Integrator::rk4, 0.01, 1000, 3);
    std::printf("energy drift over 1000 RK4 steps of 0.01 s (%d dofs): %.3g\n", c.model.ndof, drift);
    EXPECT_LT(drift, c.bound) << c.model.ndof << " dofs";
  }
  // semi-implicit Euler (the cheetah's): a bounded first-order oscillation, halving with the step
  const double e1 = energy_drift(halfcheetah_model(), Integrator::euler, 0.01, 1000, 3);
  const double e2 = energy_drift(halfcheetah_model(), Integrator::euler, 0.005, 2000, 3);
  std::printf("energy drift over 10 s of Euler: h = 0.01: %.3g, h = 0.005: %.3g\n", e1, e2);
  EXPECT_LT(e1, 0.06);       // measured 0.0514
  EXPECT_LT(e2, 0.6 * e1);   // measured 0.0243 = 0.47 e1: first order
  EXPECT_GT(e2, 0.35 * e1);  // and not better than first order (a second-order scheme would give ~0.25 e1)
}

// With contacts off the cheetah falls freely: semi-implicit Euler gives z_n = z_0 − g h² n(n+1)/2 exactly, and
// nothing turns or moves sideways.
TEST(PlanarDynamics, FreeFallMatchesTheAnalyticDrop) {
  PlanarModel<double> m = without(halfcheetah_model(), false, false, false, true);
  PlanarState<double> s{};
  PlanarControl<double> c;
  const int steps = 50;
  for (int i = 0; i < steps; ++i) planar_physics_step(m, s, c);
  const double h = m.timestep, g = 9.81;
  EXPECT_NEAR(s.q[1], -g * h * h * steps * (steps + 1) / 2.0, 1e-9);
  EXPECT_NEAR(s.qd[1], -g * h * steps, 1e-9);
  EXPECT_NEAR(s.q[0], 0.0, 1e-12);
  for (int j = 2; j < m.ndof; ++j) EXPECT_NEAR(s.q[j], 0.0, 1e-12) << "dof " << j;
}

// A joint driven into its limit by a full motor torque stops there: the soft limit lets it in by a bounded amount
// (MuJoCo's law: solreflimit 0.02 s, impedance 0.8 at 0.03 rad) and holds it still.
TEST(PlanarDynamics, JointLimitsHold) {
  PlanarModel<double> m = without(halfcheetah_model(), true, false, false, true);  // in the air, no gravity
  PlanarState<double> s{};
  std::vector<double> ctrl = {1, -1, 1, -1, 1, -1};  // each joint pushed to one end of its range
  PlanarControl<double> c;
  c.ctrl = ctrl.data();
  double worst = 0;
  for (int step = 0; step < 1000; ++step) {
    planar_physics_step(m, s, c);
    for (int a = 0; a < 6; ++a) {
      const int j = m.act_dof[a];
      worst = std::fmax(worst, std::fmax(m.range[j][0] - s.q[j], s.q[j] - m.range[j][1]));
    }
  }
  std::printf("largest limit violation under full torque: %.4f rad\n", worst);
  EXPECT_GT(worst, 0.0);   // the motors do reach the limits
  EXPECT_LT(worst, 0.05);  // and the limits hold them (0.030 rad measured)
  for (int a = 0; a < 6; ++a) EXPECT_LT(std::fabs(s.qd[m.act_dof[a]]), 1e-3) << "joint " << a << " still moving";
}

// SPEC §2: the Reacher runs RK4 (MuJoCo's) or semi-implicit Euler; the two agree closely. Under random actions
// (joint speeds up to tens of rad/s, 0.01 s steps) the joint-angle difference random-walks, so the fingertip paths
// are compared over Gymnasium's 50-step episode; closed-loop returns over whole episodes are compared in
// tests/test_physics_env.cpp.
TEST(PlanarDynamics, ReacherEulerAndRk4AgreeClosely) {
  PlanarModel<double> rk4 = reacher_model(), euler = reacher_model();
  euler.integrator = Integrator::euler;
  PlanarState<double> a{}, b{};
  std::mt19937 rng(21);
  double worst = 0;
  for (int t = 0; t < 50; ++t) {
    const std::vector<double> u = uniform_vector(2, 1.0, rng);
    PlanarControl<double> c;
    c.ctrl = u.data();
    for (int k = 0; k < 2; ++k) {
      planar_physics_step(rk4, a, c);
      planar_physics_step(euler, b, c);
    }
    PlanarKinematics<double> ka, kb;
    planar_kinematics(rk4, a.q, a.qd, static_cast<const double*>(nullptr), ka);
    planar_kinematics(euler, b.q, b.qd, static_cast<const double*>(nullptr), kb);
    const V2<double> d = ka.origin[2] - kb.origin[2];  // the fingertip
    worst = std::fmax(worst, std::sqrt(dot(d, d)));
  }
  std::printf("reacher fingertip, Euler vs RK4 over 50 env steps of random actions: max distance %.3g m\n", worst);
  EXPECT_LT(worst, 0.02);  // against a reach of 0.21 m (1.15 cm measured)
}
