// Parameter layout and the Philox-drawn initialisers.
#include "nn/params.h"

#include <cmath>
#include <stdexcept>

#include "kernels/philox.h"

namespace dyn {

size_t ParamLayout::add(const std::string& name, std::vector<int> shape, Init init, double scale) {
  for (const ParamView& v : views_)
    if (v.name == name) throw std::invalid_argument("ParamLayout: duplicate view '" + name + "'");
  ParamView v;
  v.name = name;
  v.shape = std::move(shape);
  v.size = 1;
  for (int d : v.shape) v.size *= size_t(d);
  v.offset = total_;
  v.init = init;
  v.scale = scale;
  total_ += v.size;
  views_.push_back(v);
  return v.offset;
}

const ParamView& ParamLayout::view(const std::string& name) const {
  for (const ParamView& v : views_)
    if (v.name == name) return v;
  throw std::invalid_argument("ParamLayout: no view named '" + name + "'");
}

namespace {

// Orthogonal [rows, cols] (torch.nn.init.orthogonal_): a Gaussian [big, small] matrix whose columns are
// orthonormalised by modified Gram–Schmidt (= QR with a positive R diagonal), transposed when rows < cols.
void orthogonal(int rows, int cols, double gain, Philox& rng, double* out) {
  const int big = rows > cols ? rows : cols, small = rows > cols ? cols : rows;
  std::vector<double> q(size_t(big) * small);  // column-major: column c is q[c * big .. c * big + big)
  for (double& x : q) x = rng.normal();
  for (int c = 0; c < small; ++c) {
    double* qc = &q[size_t(c) * big];
    for (int p = 0; p < c; ++p) {
      const double* qp = &q[size_t(p) * big];
      double dot = 0;
      for (int i = 0; i < big; ++i) dot += qp[i] * qc[i];
      for (int i = 0; i < big; ++i) qc[i] -= dot * qp[i];
    }
    double norm = 0;
    for (int i = 0; i < big; ++i) norm += qc[i] * qc[i];
    norm = std::sqrt(norm);
    for (int i = 0; i < big; ++i) qc[i] /= norm;
  }
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      out[size_t(r) * cols + c] = gain * (rows >= cols ? q[size_t(c) * big + r] : q[size_t(r) * big + c]);
}

// normc (OpenAI baselines): Gaussian rows scaled to norm `scale` over the input dimension.
void normc(int rows, int cols, double scale, Philox& rng, double* out) {
  for (int r = 0; r < rows; ++r) {
    double norm = 0;
    for (int c = 0; c < cols; ++c) {
      out[size_t(r) * cols + c] = rng.normal();
      norm += out[size_t(r) * cols + c] * out[size_t(r) * cols + c];
    }
    norm = std::sqrt(norm);
    for (int c = 0; c < cols; ++c) out[size_t(r) * cols + c] *= scale / norm;
  }
}

}  // namespace

template <class T>
void initialize_params(const ParamLayout& layout, uint32_t seed, std::vector<T>& out) {
  out.assign(layout.total(), T(0));
  std::vector<double> tmp;
  for (size_t k = 0; k < layout.views().size(); ++k) {
    const ParamView& v = layout.views()[k];
    if (v.init == Init::zeros) continue;
    if (v.init == Init::constant) {
      for (size_t i = 0; i < v.size; ++i) out[v.offset + i] = T(v.scale);
      continue;
    }
    const int rows = v.shape.empty() ? 1 : v.shape[0];
    const int cols = int(v.size / size_t(rows));
    tmp.assign(v.size, 0.0);
    Philox rng(seed, kStreamInit, uint32_t(k), 0);  // each view its own stream: adding a view keeps the others
    if (v.init == Init::orthogonal)
      orthogonal(rows, cols, v.scale, rng, tmp.data());
    else
      normc(rows, cols, v.scale, rng, tmp.data());
    for (size_t i = 0; i < v.size; ++i) out[v.offset + i] = T(tmp[i]);
  }
}

template void initialize_params<float>(const ParamLayout&, uint32_t, std::vector<float>&);
template void initialize_params<double>(const ParamLayout&, uint32_t, std::vector<double>&);

}  // namespace dyn
