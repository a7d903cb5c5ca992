// GRU over a sequence: T steps for N streams with a per-step reset mask (the hidden state is zeroed before a
// step where an episode starts) and an optional per-step injection added to the input pre-activations; backward
// through time, full or truncated every k steps. Either backend, float or double. A seed batch runs S networks of one
// shape at once over seed-major sequences [S, T, N, ·] (each seed's block is exactly a single run's [T, N, ·]).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/buffer.h"
#include "kernels/fused_plans.h"
#include "nn/mlp.h"
#include "nn/params.h"

namespace dyn {

// Every sequence array has a leading seed axis S (1 unless a seed batch reserved it).
template <class T>
struct GruWorkspace {
  int steps = 0, batch = 0, seeds = 1;
  Buffer<T> gi;     // [S, T, N, 3H] input pre-activations (W_ih x + b_ih + injection)
  Buffer<T> gates;  // [S, T, N, 3H] r, z, n
  Buffer<T> ghn;    // [S, T, N, H]  W_hn h + b_hn
  Buffer<T> hprev;  // [S, T, N, H]  the hidden state each step started from (zero after a reset)
  Buffer<T> h;      // [S, T, N, H]  outputs h_1..h_T
  Buffer<T> gh;     // [S, N, 3H]    scratch
  Buffer<T> dgi;    // [S, T, N, 3H] backward
  Buffer<T> dgh;    // [S, T, N, 3H] backward
  Buffer<T> carry;  // [S, N, H]     backward: d loss / d h flowing to the previous step
  void reserve(Backend b, int steps, int batch, int hidden, int seeds = 1);
};

class Gru {
 public:
  Gru() = default;
  // Registers "<prefix>.weight_ih" [3H, I], ".weight_hh" [3H, H], ".bias_ih" [3H], ".bias_hh" [3H]
  // (orthogonal weights, zero biases).
  Gru(int input, int hidden, ParamLayout& layout, const std::string& prefix);
  int input() const { return input_; }
  int hidden() const { return hidden_; }
  size_t weight_ih_offset() const { return w_ih_; }
  size_t weight_hh_offset() const { return w_hh_; }
  size_t bias_ih_offset() const { return b_ih_; }
  size_t bias_hh_offset() const { return b_hh_; }

  // x [T, N, I]; reset [T, N] (nullptr: never); inject [T, N, 3H] (nullptr: none); h0 [N, H] (nullptr: zeros).
  // Outputs h_1..h_T in ws.h [T, N, H]. Checked, then the recurrence is dispatched by recur_path(): the fused
  // kernel runs all steps in one launch, the GEMM path one GEMM and one gate pass per step.
  template <class T>
  void forward(Backend b, const T* params, const T* x, const uint8_t* reset, const T* inject, const T* h0, int steps,
               int batch, GruWorkspace<T>& ws) const;

  // forward() in two parts over a workspace already reserved (ws.reserve) for all steps, for callers that build
  // each step's input from the previous step's output: the input projection gi = x W_ihᵀ + b_ih of steps
  // [t0, t1) (x is the whole input [T, N, I]) in one GEMM, then the recurrence over those steps.
  template <class T>
  void project_input(Backend b, const T* params, const T* x, int t0, int t1, GruWorkspace<T>& ws) const;
  template <class T>
  void recur(Backend b, const T* params, const uint8_t* reset, const T* h0, int t0, int t1, GruWorkspace<T>& ws) const;

  // project_input and recur for a seed batch's workspace (ws.reserve with seeds; sequences [S, T, N, ·] as in
  // forward_seeds): steps [t0, t1) of every seed, seed s's parameters at s · param_stride (the GEMM path); a caller
  // that builds each step's input from the last step's output, as forward_seeds would compute it (bit for bit on the
  // CPU). backward_seeds applies after.
  template <class T>
  void project_input_seeds(Backend b, const T* params, size_t param_stride, const T* x, int t0, int t1,
                           GruWorkspace<T>& ws) const;
  template <class T>
  void recur_seeds(Backend b, const T* params, size_t param_stride, const uint8_t* reset, const T* h0, int t0, int t1,
                   GruWorkspace<T>& ws) const;

  // The implementation recur() (and so forward()) takes on backend b for scalar T.
  template <class T>
  OpPath recur_path(Backend b) const;
  // The fused kernel's launch for steps [t0, t1) of recur() over a reserved workspace (hidden 64 or 128).
  FusedGruPlan fused_recur_plan(const float* params, const uint8_t* reset, const float* h0, int t0, int t1,
                                GruWorkspace<float>& ws) const;

  // Given dh_out [T, N, H] = d loss / d h_t for the last forward: adds parameter gradients into `grads` and writes
  // dx [T, N, I], dinject [T, N, 3H] and dh0 [N, H] where not nullptr. truncate_every = k > 0 stops the gradient
  // between steps t-1 and t whenever t % k == 0; 0 is full backpropagation through time.
  template <class T>
  void backward(Backend b, const T* params, T* grads, const T* x, const uint8_t* reset, const T* dh_out,
                int truncate_every, T* dx, T* dinject, T* dh0, GruWorkspace<T>& ws) const;

  // forward() and backward() of S copies of this GRU at once, one per seed: seed s's parameters (and gradients) are
  // the blob at s · param_stride ([S, P]), and every sequence is seed-major: x [S, T, N, I], reset [S, T, N],
  // inject [S, T, N, 3H], dh_out [S, T, N, H], ws.h [S, T, N, H]; h0 and dh0 are [S, N, H]. Per step, one
  // strided-batched GEMM and one gate pass over all S · N streams; the input projection and the weight gradients
  // are one strided-batched GEMM over each seed's T · N rows. Seed s's figures are those of forward / backward on
  // its own block — bit for bit on the CPU; on CUDA within rounding (the GEMM path, never the fused kernel).
  template <class T>
  void forward_seeds(Backend b, const T* params, size_t param_stride, const T* x, const uint8_t* reset, const T* inject,
                     const T* h0, int seeds, int steps, int batch, GruWorkspace<T>& ws) const;
  template <class T>
  void backward_seeds(Backend b, const T* params, T* grads, size_t param_stride, const T* x, const uint8_t* reset,
                      const T* dh_out, int truncate_every, T* dx, T* dinject, T* dh0, GruWorkspace<T>& ws) const;

 private:
  template <class T>
  void check_steps(const char* op, int t0, int t1, const GruWorkspace<T>& ws, Backend b, int seeds = 1) const;
  // The GEMM path of recur() for the workspace's seeds (recur: one seed, param_stride unused).
  template <class T>
  void recur_gemm(Backend b, const T* params, size_t param_stride, const uint8_t* reset, const T* h0, int t0, int t1,
                  GruWorkspace<T>& ws) const;
  int input_ = 0, hidden_ = 0;
  size_t w_ih_ = 0, w_hh_ = 0, b_ih_ = 0, b_hh_ = 0;
};

// ---- fused CUDA path (kernels/fused_gru.cu): float only, hidden 64 or 128 ----

bool fused_gru_supported(int hidden);

// Launches a plan of Gru::fused_recur_plan on the CUDA stream.
void launch_fused_gru(const FusedGruPlan& plan);

// Gru::forward on Backend::cuda forced onto the fused kernel (tests and benchmarks compare the two paths): the
// input projection is one cuBLAS GEMM, then one kernel runs all T steps, each block owning a slice of the streams
// with W_hh held in shared memory for the whole sequence. Fills the same workspace, so Gru::backward applies.
void gru_forward_fused(const Gru& gru, const float* params, const float* x, const uint8_t* reset, const float* inject,
                       const float* h0, int steps, int batch, GruWorkspace<float>& ws);

}  // namespace dyn
