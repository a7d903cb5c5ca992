// The encoder inputs of algo/encoder_inputs.h: one parallel_for item per row.
#include "algo/agent_carry.h"
#include "algo/encoder_inputs.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Latent row i of whole episodes [S, T+1, B] (R = (T+1)·B rows per run): it sees a_{t−1} and r_{t−1}, transition
// row t·B + b − B of its run's [T, B]; the first B rows of each run start.
template <class T>
struct EpisodeInputs {
  int B, A;
  int64_t R;
  const int32_t* act;
  const T *act_value, *rew;
  int32_t* pa;
  T *pav, *pr;
  uint8_t* st;
  DYN_HD void operator()(int64_t i) const {
    const int64_t run = i / R, local = i - run * R;
    const bool first = local < B;
    const int64_t tr = run * (R - B) + local - B;  // the previous transition's row
    pa[i] = (first || !act) ? 0 : act[tr];
    if (act_value)
      for (int k = 0; k < A; ++k) pav[i * A + k] = first ? T(0) : act_value[tr * A + k];
    pr[i] = first ? T(0) : rew[tr];
    st[i] = first ? 1 : 0;
  }
};

// The encoder's inputs of one row: s, the previous action's features (one-hot, or the vector) and r (zero where an
// episode starts), and the GRU's reset.
template <class T>
struct EncoderInputs {
  int O, A;
  bool discrete;
  const T* obs;
  const int32_t* prev_a;
  const T *prev_a_value, *prev_r;
  const uint8_t* start;
  T *xs, *xa, *xr;
  uint8_t* reset;
  DYN_HD void operator()(int64_t i) const {
    for (int k = 0; k < O; ++k) xs[i * O + k] = obs[i * O + k];
    for (int k = 0; k < A; ++k)
      xa[i * A + k] =
          action_feature(discrete, discrete ? prev_a[i] : 0,
                         discrete ? static_cast<const T*>(nullptr) : prev_a_value + i * A, start[i] != 0, k);
    xr[i] = start[i] ? T(0) : prev_r[i];
    reset[i] = start[i];
  }
};

}  // namespace

template <class T>
void episode_inputs(Backend b, const EpisodeBatchView<T>& ep, int actions, int32_t* prev_a, T* prev_a_value, T* prev_r,
                    uint8_t* start) {
  const int64_t R = int64_t(ep.steps + 1) * ep.batch;  // per run
  parallel_for(
      b, R * ep.runs,
      EpisodeInputs<T>{ep.batch, actions, R, ep.act, ep.act_value, ep.rew, prev_a, prev_a_value, prev_r, start});
}

template <class T>
void encoder_inputs(Backend b, int obs_dim, int actions, bool discrete, const T* obs, const int32_t* prev_a,
                    const T* prev_a_value, const T* prev_r, const uint8_t* start, int64_t rows, T* xs, T* xa, T* xr,
                    uint8_t* reset) {
  parallel_for(
      b, rows,
      EncoderInputs<T>{obs_dim, actions, discrete, obs, prev_a, prev_a_value, prev_r, start, xs, xa, xr, reset});
}

#define DYN_INSTANTIATE_ENCODER_INPUTS(T)                                                                \
  template void episode_inputs<T>(Backend, const EpisodeBatchView<T>&, int, int32_t*, T*, T*, uint8_t*); \
  template void encoder_inputs<T>(Backend, int, int, bool, const T*, const int32_t*, const T*, const T*, \
                                  const uint8_t*, int64_t, T*, T*, T*, uint8_t*);
DYN_INSTANTIATE_ENCODER_INPUTS(float)
DYN_INSTANTIATE_ENCODER_INPUTS(double)

}  // namespace dyn
