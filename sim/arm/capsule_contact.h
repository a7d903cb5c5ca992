// Sphere–capsule contact (the scratcher's tip sphere against the person's arm), DYN_HD: the penetration depth, the
// normal, and the contact points on both surfaces, as MuJoCo's sphere–capsule collision defines them (its contact
// position is the midpoint of the two surface points, its distance the negative depth).
#pragma once

#include "sim/arm/vec3.h"

namespace dyn {

template <class T>
struct Capsule {
  V3<T> a, b;  // the axis segment's ends
  T radius;
};

template <class T>
struct SphereContact {
  T depth;           // > 0: penetrating (radius sum − centre distance)
  V3<T> normal;      // unit, from the capsule's axis towards the sphere's centre
  V3<T> on_capsule;  // the contact point on the capsule's surface
  V3<T> on_sphere;   // and on the sphere's
  T along;           // where on the axis the closest point lies, 0 (a) … 1 (b)
};

// The closest point of segment a→b to p, as the fraction along it (clamped to [0, 1]).
template <class T>
DYN_HD T segment_fraction(V3<T> a, V3<T> b, V3<T> p) {
  const V3<T> ab = b - a;
  const T len_sq = dot(ab, ab);
  T t = len_sq > T(0) ? dot(p - a, ab) / len_sq : T(0);
  return t < T(0) ? T(0) : (t > T(1) ? T(1) : t);
}

template <class T>
DYN_HD SphereContact<T> sphere_capsule_contact(V3<T> centre, T sphere_radius, const Capsule<T>& cap) {
  SphereContact<T> c;
  c.along = segment_fraction(cap.a, cap.b, centre);
  const V3<T> axis_point = cap.a + c.along * (cap.b - cap.a);
  const V3<T> d = centre - axis_point;
  const T dist = norm(d);
  // a centre exactly on the axis has no direction of its own: +z then
  c.normal = dist > T(1e-12) ? (T(1) / dist) * d : V3<T>{T(0), T(0), T(1)};
  c.depth = cap.radius + sphere_radius - dist;
  c.on_capsule = axis_point + cap.radius * c.normal;
  c.on_sphere = centre - sphere_radius * c.normal;
  return c;
}

}  // namespace dyn
