// The two planar models of SPEC §2, built from the facts in reference/physics.md: the MuJoCo HalfCheetah (x–z
// plane; 7 bodies, root slide x, slide z, hinge y and six leg hinges; 8 capsules; "NEW" exact-capsule masses
// scaled to 14 kg) and the MuJoCo Reacher (x–y plane; two links and the welded fingertip; RK4). Masses, centres
// of mass and inertias are computed here from the capsules (density 1000) as MuJoCo's compiler does.
#pragma once

#include "sim/physics/planar_model.h"

namespace dyn {

PlanarModel<double> halfcheetah_model();
PlanarModel<double> reacher_model();

// Mass properties of a capsule (MuJoCo ≥ 2.1.2 rule: a cylinder of length 2·half plus two hemispheres), density
// 1000: mass, and the inertia about its centre for an axis perpendicular to the capsule's.
struct CapsuleMass {
  double mass, inertia_perp;
};
CapsuleMass capsule_mass(double radius, double half_length, double density = 1000.0);

// MuJoCo's constraint-scaling weights at q = 0 (mj_setConst): fills body_invweight and dof_invweight.
void set_invweights(PlanarModel<double>& m);

}  // namespace dyn
