// InfoNCE over one row of logits (CPC's cross-entropy with the positive at index 0): loss = log Σ_j exp(l_j) − l_0
// over the valid entries j (the positive is always valid), its gradient, and whether the positive ranks first.
// One source of math for both backends (kernels/info_nce.cu).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/backend.h"
#include "kernels/hd.h"

namespace dyn {

// Returns the loss of logits [k]; valid [k] may be nullptr (all valid). dlogits [k] (if not nullptr) ← g · d loss /
// d logits = g · (softmax over the valid entries − one-hot(0)), 0 at invalid entries.
template <class T>
DYN_HD T info_nce_row(const T* logits, const uint8_t* valid, int k, T g, T* dlogits) {
  using std::exp;
  using std::log;
  T m = logits[0];
  for (int j = 1; j < k; ++j)
    if ((!valid || valid[j]) && logits[j] > m) m = logits[j];
  T z = T(0);
  for (int j = 0; j < k; ++j)
    if (j == 0 || !valid || valid[j]) z += exp(logits[j] - m);
  if (dlogits)
    for (int j = 0; j < k; ++j) {
      const bool on = j == 0 || !valid || valid[j];
      dlogits[j] = on ? g * (exp(logits[j] - m) / z - (j == 0 ? T(1) : T(0))) : T(0);
    }
  return m + log(z) - logits[0];
}

// The positive's logit is above every valid negative's (a tie counts as a miss).
template <class T>
DYN_HD bool info_nce_hit(const T* logits, const uint8_t* valid, int k) {
  for (int j = 1; j < k; ++j)
    if ((!valid || valid[j]) && logits[j] >= logits[0]) return false;
  return true;
}

// Rows of logits [N, K] (positive at column 0), valid [N, K] or nullptr, per-row weights w [N] (0: skip the row):
// loss [N] = w · InfoNCE, hit [N] = w > 0 and the positive ranks first, dlogits [N, K] = w · d InfoNCE / d logits
// (any of loss, hit, dlogits may be nullptr). kernels/info_nce.cu.
template <class T>
void info_nce_batch(Backend b, const T* logits, const uint8_t* valid, const T* w, T* loss, uint8_t* hit, T* dlogits,
                    int64_t n, int k);

}  // namespace dyn
