// Counter-based randomness: Philox4x32-10 (Salmon et al. 2011, the generator behind cuRAND's
// CURAND_RNG_PSEUDO_PHILOX4_32_10) keyed by (seed, stream) with counter (block, step, env, sub), and the
// uniform / normal / Poisson / categorical draws built on it. DYN_HD, so CPU and GPU draw identical numbers.
//
// Key words (seed, stream) equal cuRAND's 64-bit seed (uint64(stream) << 32) | seed; with step = env = sub = 0
// the draws are cuRAND's sequence from offset 0 (tests/test_philox.cpp checks this against cuRAND's host
// generator).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/hd.h"

namespace dyn {

// Streams: independent purposes never share a key.
enum RngStream : uint32_t {
  kStreamEpisodeReset = 1,   // initial state and per-episode latent draws
  kStreamSessionLength = 2,  // Poisson session lengths
  kStreamSessionSwitch = 3,  // Bernoulli session switches
  kStreamLatent = 4,         // latent transitions at a new session
  kStreamPolicy = 5,         // scripted / sampled actions
  kStreamInit = 6,           // parameter initialisation
  kStreamBelief = 7,         // reparameterised belief samples in the belief loss
  kStreamShuffle = 8,        // sort keys of minibatch shuffles (kernels/shuffle.h)
  kStreamSubsample = 9,      // the belief loss's ELBO and decode subsampling (plan_decodes)
  kStreamCpcNegatives = 10,  // ContraBAR: the negatives of each CPC anchor (plan_cpc)
  kStreamSessionReset = 11,  // the state drawn again from nu_0 at a new session (env.reset_on_switch)
};

struct Philox4 {
  uint32_t v[4];
};

DYN_HD uint32_t mulhi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return uint32_t((uint64_t(a) * b) >> 32);
#endif
}

// One Philox4x32 block: 10 rounds of the multiply-xor round with the Weyl key schedule.
DYN_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // key bumps (golden ratio, sqrt(3) - 1)
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = mulhi32(M0, c.v[0]), lo0 = M0 * c.v[0];
    const uint32_t hi1 = mulhi32(M1, c.v[2]), lo1 = M1 * c.v[2];
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

// Round-to-nearest float multiply and add that the CUDA compiler may not contract into an FMA, so host and
// device round identically where a draw's bits must match across backends.
DYN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
DYN_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

// uint32 -> float in (0, 1], the same mapping (and rounding) as cuRAND's host generator.
DYN_HD float u32_to_uniform(uint32_t x) {
  constexpr float kInv2Pow32 = 2.3283064e-10f;
  return add_rn(mul_rn(float(x), kInv2Pow32), kInv2Pow32 * 0.5f);
}

// uint32 -> integer in [0, n) by multiply-shift (bias below 2^-32 * n).
DYN_HD uint32_t u32_to_below(uint32_t x, uint32_t n) { return uint32_t((uint64_t(x) * n) >> 32); }

// A sequence of draws named by (seed, stream, env, step, sub). Each draw consumes 32 bits; a new Philox block
// is computed every 4 draws (the counter's first word counts blocks).
class Philox {
 public:
  DYN_HD Philox(uint32_t seed, uint32_t stream, uint32_t env, uint32_t step, uint32_t sub = 0)
      : k0_(seed), k1_(stream), step_(step), env_(env), sub_(sub) {}

  DYN_HD uint32_t next_u32() {
    if (used_ == 4) {
      buf_ = philox4x32_10(Philox4{{block_, step_, env_, sub_}}, k0_, k1_);
      ++block_;
      used_ = 0;
    }
    const uint32_t x = used_ == 0 ? buf_.v[0] : used_ == 1 ? buf_.v[1] : used_ == 2 ? buf_.v[2] : buf_.v[3];
    ++used_;
    return x;
  }

  // Uniform in (0, 1].
  DYN_HD float uniform() { return u32_to_uniform(next_u32()); }

  // Uniform integer in [0, n).
  DYN_HD uint32_t uniform_int(uint32_t n) { return u32_to_below(next_u32(), n); }

  DYN_HD bool bernoulli(float p) { return uniform() <= p; }  // p = 0 never, p = 1 always

  // Standard normal by Box–Muller; the second value of each pair is kept for the next call.
  DYN_HD float normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const float u1 = uniform(), u2 = uniform();
    const float r = sqrtf(-2.0f * logf(u1));
    float s, c;
    sincospif_(2.0f * u2, &s, &c);
    spare_ = r * s;
    has_spare_ = true;
    return r * c;
  }

  // Poisson(lambda): inversion for lambda < 10, Hörmann's transformed rejection (PTRS, 1993) above.
  DYN_HD int poisson(float lambda) {
    if (!(lambda > 0.0f)) return 0;
    if (lambda < 10.0f) return poisson_inversion(lambda);
    return poisson_ptrs(lambda);
  }

  // Index drawn with probabilities p[0..n) (summing to 1) by inversion of one uniform.
  DYN_HD int categorical(const float* p, int n) {
    const float u = uniform();
    float cum = 0.0f;
    for (int i = 0; i < n - 1; ++i) {
      cum = add_rn(cum, p[i]);
      if (u <= cum) return i;
    }
    return n - 1;
  }

 private:
  DYN_HD static void sincospif_(float x, float* s, float* c) {
#if defined(__CUDA_ARCH__)
    sincospif(x, s, c);
#else
    const double a = 3.14159265358979323846 * double(x);
    *s = float(std::sin(a));
    *c = float(std::cos(a));
#endif
  }

  DYN_HD int poisson_inversion(float lambda) {
    // exp in double then rounded, and uncontracted float steps, so CPU and GPU walk the same CDF
    const float u = uniform();
    float p = float(exp(-double(lambda))), cdf = p;
    int k = 0;
    while (u > cdf && k < 1000) {  // the cap only guards float round-off at u == 1
      ++k;
      p = mul_rn(p, lambda / float(k));
      cdf = add_rn(cdf, p);
      if (p == 0.0f) break;
    }
    return k;
  }

  DYN_HD int poisson_ptrs(float lambda_f) {
    const double lambda = lambda_f;
    const double slam = sqrt(lambda), loglam = log(lambda);
    const double b = 0.931 + 2.53 * slam;
    const double a = -0.059 + 0.02483 * b;
    const double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    const double v_r = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
      const double U = double(uniform()) - 0.5;
      const double V = double(uniform());
      const double us = 0.5 - fabs(U);
      const double k = floor((2.0 * a / us + b) * U + lambda + 0.43);
      if (us >= 0.07 && V <= v_r) return int(k);
      if (k < 0.0 || (us < 0.013 && V > us)) continue;
      if (log(V) + log(inv_alpha) - log(a / (us * us) + b) <= -lambda + k * loglam - lgamma(k + 1.0)) return int(k);
    }
  }

  uint32_t k0_, k1_, step_, env_, sub_;
  uint32_t block_ = 0;
  int used_ = 4;
  Philox4 buf_{};
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace dyn
