// The planar engine side by side with MuJoCo 2.2.2 (issue 6), both in double from the same states: the compiled
// mass properties, the mass matrix, bias and passive forces, the constraint-scaling weights, and trajectories.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "sim/physics/models.h"
#include "sim/physics/planar_step.h"
#include "tests/mujoco_reference.h"

using namespace dyn;

namespace {

struct Case {
  const char* xml;
  PlanarModel<double> (*model)();
  int plane_axis;   // MuJoCo's axis normal to the plane: 1 (y) for the cheetah, 2 (z) for the Reacher
  int second_axis;  // MuJoCo's axis of our v coordinate: 2 (z), 1 (y)
};
const Case kCases[2] = {{"halfcheetah.xml", &halfcheetah_model, 1, 2}, {"reacher.xml", &reacher_model, 2, 1}};

std::vector<double> random_vector(int n, double scale, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-scale, scale);
  std::vector<double> v(static_cast<size_t>(n));
  for (double& x : v) x = u(rng);
  return v;
}

double max_abs(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s = std::fmax(s, std::fabs(x));
  return s;
}

}  // namespace

TEST(MujocoSideBySide, ModelMassPropertiesMatch) {
  for (const Case& c : kCases) {
    MujocoReference ref(c.xml);
    const PlanarModel<double> m = c.model();
    ASSERT_EQ(ref.m()->nbody - 1, m.nbody) << c.xml;
    ASSERT_EQ(ref.nv(), m.ndof) << c.xml;
    for (int b = 0; b < m.nbody; ++b) {
      const int mb = b + 1;  // MuJoCo's body 0 is the world
      EXPECT_NEAR(m.mass[b], ref.m()->body_mass[mb], 1e-9 * m.mass[b]) << c.xml << " body " << b;
      EXPECT_NEAR(m.com[b][0], ref.m()->body_ipos[3 * mb], 1e-9) << c.xml << " body " << b;
      EXPECT_NEAR(m.com[b][1], ref.m()->body_ipos[3 * mb + c.second_axis], 1e-9) << c.xml << " body " << b;
      EXPECT_NEAR(m.inertia[b], ref.body_inertia_about(mb, c.plane_axis), 1e-9 * m.inertia[b])
          << c.xml << " body " << b;
    }
  }
}

TEST(MujocoSideBySide, MassMatrixBiasAndPassiveForcesMatch) {
  std::mt19937 rng(5);
  for (const Case& c : kCases) {
    MujocoReference ref(c.xml);
    const PlanarModel<double> m = c.model();
    const int n = m.ndof;
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<double> q = random_vector(n, 1.0, rng), qd = random_vector(n, 3.0, rng);
      if (n == 9) q[1] += 0.5;  // keep the cheetah above the floor: contacts do not enter these terms anyway
      ref.set_state(q, qd);
      ref.forward();
      PlanarKinematics<double> k;
      planar_kinematics(m, q.data(), qd.data(), static_cast<const double*>(nullptr), k);
      std::vector<double> M(static_cast<size_t>(n * n)), bias(static_cast<size_t>(n)), spring(bias), damper(bias);
      mass_matrix(m, k, M.data());
      inverse_dynamics(m, k, static_cast<const double*>(nullptr), bias.data());
      passive_forces(m, q.data(), qd.data(), spring.data(), damper.data());
      const std::vector<double> M_ref = ref.full_mass_matrix();
      const std::vector<double> bias_ref = ref.vec(ref.d()->qfrc_bias, n),
                                passive_ref = ref.vec(ref.d()->qfrc_passive, n);
      const double m_scale = max_abs(M_ref), b_scale = max_abs(bias_ref) + 1e-12;
      for (int i = 0; i < n * n; ++i) EXPECT_NEAR(M[size_t(i)], M_ref[size_t(i)], 1e-10 * m_scale) << c.xml;
      for (int j = 0; j < n; ++j) {
        EXPECT_NEAR(bias[size_t(j)], bias_ref[size_t(j)], 1e-10 * b_scale) << c.xml << " dof " << j;
        EXPECT_NEAR(spring[size_t(j)] + damper[size_t(j)], passive_ref[size_t(j)], 1e-10 * (1 + max_abs(passive_ref)))
            << c.xml << " dof " << j;
      }
    }
  }
}

TEST(MujocoSideBySide, ConstraintWeightsMatch) {
  for (const Case& c : kCases) {
    MujocoReference ref(c.xml);
    const PlanarModel<double> m = c.model();
    for (int b = 0; b < m.nbody; ++b)
      EXPECT_NEAR(m.body_invweight[b], ref.m()->body_invweight0[2 * (b + 1)], 1e-9 * m.body_invweight[b])
          << c.xml << " body " << b;
    for (int j = 0; j < m.ndof; ++j)
      EXPECT_NEAR(m.dof_invweight[j], ref.m()->dof_invweight0[j], 1e-9 * m.dof_invweight[j]) << c.xml << " dof " << j;
  }
}

// Constrained accelerations: states where the cheetah's capsules sink into the floor and joints pass their
// limits; MuJoCo's qacc after mj_forward against ours (the same problem, both by Newton).
TEST(MujocoSideBySide, ConstrainedAccelerationsMatch) {
  std::mt19937 rng(7);
  MujocoReference ref("halfcheetah.xml");
  const PlanarModel<double> m = halfcheetah_model();
  const int n = m.ndof;
  double worst = 0;
  int rows = 0;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> q = random_vector(n, 0.6, rng), qd = random_vector(n, 1.0, rng),
                        ctrl = random_vector(6, 1, rng);
    q[1] = -0.12 - 0.1 * std::fabs(q[1]);  // low enough that feet and shins touch
    q[2] *= 0.3;
    ref.set_state(q, qd, ctrl);
    ref.forward();
    const std::vector<double> acc_ref = ref.vec(ref.d()->qacc, n);
    std::vector<double> qdd(static_cast<size_t>(n)), f(qdd), M(static_cast<size_t>(n * n));
    PlanarControl<double> c;
    c.ctrl = ctrl.data();
    planar_acceleration(m, q.data(), qd.data(), c, qdd.data(), f.data(), M.data());
    double err = 0;
    for (int j = 0; j < n; ++j) err = std::fmax(err, std::fabs(qdd[size_t(j)] - acc_ref[size_t(j)]));
    const double rel = err / (max_abs(acc_ref) + 1e-9);
    EXPECT_LT(rel, 1e-9) << "trial " << trial << ": " << ref.d()->ncon << " contacts, " << ref.d()->nefc << " rows";
    worst = std::fmax(worst, rel);
    rows += ref.d()->nefc;
  }
  std::printf("constrained accelerations vs MuJoCo, 20 states, %d constraint rows: worst relative error %.3g\n", rows,
              worst);
}
