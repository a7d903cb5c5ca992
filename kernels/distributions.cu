// Batched distributions: one parallel_for item per row over the DYN_HD math of nn/distributions.h.
#include "kernels/parallel_for.cuh"
#include "nn/distributions.h"
#include "nn/distributions_batch.h"

namespace dyn {

template <class T>
void categorical_log_prob_entropy(Backend b, const T* logits, const int32_t* actions, T* logp, T* entropy, int64_t n,
                                  int a) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    const T* z = logits + i * a;
    if (logp) logp[i] = categorical_log_prob(z, a, actions[i]);
    if (entropy) entropy[i] = categorical_entropy(z, a);
  });
}

template <class T>
void categorical_backward(Backend b, const T* logits, const int32_t* actions, const T* g_logp, const T* g_entropy,
                          T* dlogits, int64_t n, int a) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    const T* z = logits + i * a;
    T* dz = dlogits + i * a;
    for (int k = 0; k < a; ++k) dz[k] = T(0);
    if (g_logp) categorical_log_prob_grad(z, a, actions[i], g_logp[i], dz);
    if (g_entropy) categorical_entropy_grad(z, a, g_entropy[i], dz);
  });
}

template <class T>
void categorical_act(Backend b, const T* logits, bool deterministic, const BatchRows& rows, StepRef step,
                     int32_t* actions, int64_t n, int a) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    const T* z = logits + i * a;
    if (deterministic) {
      actions[i] = categorical_mode(z, a);
    } else {
      const EnvKey key = rows.key(i);
      Philox rng(key.seed, kStreamPolicy, key.env, step.get());
      actions[i] = categorical_sample(z, a, rng);
    }
  });
}

template <class T>
void gaussian_log_prob_batch(Backend b, const T* mu, const T* log_std, const T* x, T* logp, int64_t n, int d) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) { logp[i] = gaussian_log_prob(mu + i * d, log_std, x + i * d, d); });
}

template <class T>
void gaussian_log_prob_backward(Backend b, const T* mu, const T* log_std, const T* x, const T* g, T* dmu,
                                T* dlog_std_rows, int64_t n, int d) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    for (int k = 0; k < d; ++k) dmu[i * d + k] = dlog_std_rows[i * d + k] = T(0);
    gaussian_log_prob_grad(mu + i * d, log_std, x + i * d, d, g[i], dmu + i * d, dlog_std_rows + i * d,
                           static_cast<T*>(nullptr));
  });
}

template <class T>
void gaussian_act(Backend b, const T* mu, const T* log_std, int64_t log_std_stride, bool deterministic,
                  const BatchRows& rows, StepRef step, T* x, int64_t n, int d) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    using std::exp;
    const EnvKey key = rows.key(i);
    const T* ls = log_std + rows.run(i) * log_std_stride;
    Philox rng(key.seed, kStreamPolicy, key.env, step.get());
    for (int k = 0; k < d; ++k)
      x[i * d + k] = deterministic ? mu[i * d + k] : mu[i * d + k] + exp(ls[k]) * T(rng.normal());
  });
}

template <class T>
void gaussian_kl_batch(Backend b, const T* mu1, const T* lv1, const T* mu2, const T* lv2, T* kl, int64_t n, int d) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    kl[i] = mu2 ? gaussian_kl(mu1 + i * d, lv1 + i * d, mu2 + i * d, lv2 + i * d, d)
                : gaussian_kl_std_normal(mu1 + i * d, lv1 + i * d, d);
  });
}

template <class T>
void gaussian_kl_batch_backward(Backend b, const T* mu1, const T* lv1, const T* mu2, const T* lv2, const T* g, T* dmu1,
                                T* dlv1, T* dmu2, T* dlv2, int64_t n, int d) {
  parallel_for(b, n, [=] DYN_LAMBDA(int64_t i) {
    const int64_t o = i * d;
    for (int k = 0; k < d; ++k) {
      dmu1[o + k] = dlv1[o + k] = T(0);
      if (dmu2) dmu2[o + k] = T(0);
      if (dlv2) dlv2[o + k] = T(0);
    }
    if (mu2)
      gaussian_kl_grad(mu1 + o, lv1 + o, mu2 + o, lv2 + o, d, g[i], dmu1 + o, dlv1 + o, dmu2 ? dmu2 + o : nullptr,
                       dlv2 ? dlv2 + o : nullptr);
    else
      gaussian_kl_std_normal_grad(mu1 + o, lv1 + o, d, g[i], dmu1 + o, dlv1 + o);
  });
}

#define DYN_INSTANTIATE_DISTRIBUTIONS(T)                                                                              \
  template void categorical_log_prob_entropy<T>(Backend, const T*, const int32_t*, T*, T*, int64_t, int);             \
  template void categorical_backward<T>(Backend, const T*, const int32_t*, const T*, const T*, T*, int64_t, int);     \
  template void categorical_act<T>(Backend, const T*, bool, const BatchRows&, StepRef, int32_t*, int64_t, int);       \
  template void gaussian_log_prob_batch<T>(Backend, const T*, const T*, const T*, T*, int64_t, int);                  \
  template void gaussian_log_prob_backward<T>(Backend, const T*, const T*, const T*, const T*, T*, T*, int64_t, int); \
  template void gaussian_act<T>(Backend, const T*, const T*, int64_t, bool, const BatchRows&, StepRef, T*, int64_t,   \
                                int);                                                                                 \
  template void gaussian_kl_batch<T>(Backend, const T*, const T*, const T*, const T*, T*, int64_t, int);              \
  template void gaussian_kl_batch_backward<T>(Backend, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,  \
                                              T*, int64_t, int);
DYN_INSTANTIATE_DISTRIBUTIONS(float)
DYN_INSTANTIATE_DISTRIBUTIONS(double)

}  // namespace dyn
