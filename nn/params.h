// Parameters: one flat blob per network with named views (so zeroing, copying and checkpointing are one call),
// and initialisers — orthogonal with gain, normc, zeros, a constant — drawn from Philox on the host, so CPU and GPU
// start from identical weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/state_io.h"

namespace dyn {

enum class Init { zeros, orthogonal, normc, constant };  // constant: every value = scale (a LayerNorm gain)

struct ParamView {
  std::string name;
  size_t offset = 0;       // elements from the blob start
  std::vector<int> shape;  // e.g. {out, in} for a weight, {out} for a bias
  size_t size = 0;
  Init init = Init::zeros;
  double scale = 1.0;  // orthogonal: gain; normc: row norm; constant: the value
};

class ParamLayout {
 public:
  // Adds a view and returns its offset; names must be unique.
  size_t add(const std::string& name, std::vector<int> shape, Init init, double scale = 1.0);
  const ParamView& view(const std::string& name) const;
  const std::vector<ParamView>& views() const { return views_; }
  size_t total() const { return total_; }

 private:
  std::vector<ParamView> views_;
  size_t total_ = 0;
};

// Fills `out` (layout.total() values) with the initial values of every view, drawn from Philox(seed, kStreamInit).
template <class T>
void initialize_params(const ParamLayout& layout, uint32_t seed, std::vector<T>& out);

// Each run's initialisation seed of a second network of its learner: its seed XOR the network's salt.
inline std::vector<uint32_t> salted_seeds(const std::vector<uint32_t>& seeds, uint32_t salt) {
  std::vector<uint32_t> out;
  for (const uint32_t seed : seeds) out.push_back(seed ^ salt);
  return out;
}

// Values and gradients of one network on a backend, or of a seed batch's S copies of it side by side ([S, total]:
// run s's blob at s · total, initialised from its own seed as that run alone would be).
template <class T>
struct ParamBlob {
  ParamLayout layout;
  Buffer<T> value, grad;  // [S, total]

  ParamBlob() = default;
  ParamBlob(Backend b, ParamLayout l, uint32_t seed) : ParamBlob(b, std::move(l), std::vector<uint32_t>{seed}) {}
  ParamBlob(Backend b, ParamLayout l, const std::vector<uint32_t>& seeds)
      : layout(std::move(l)), value(b, seeds.size() * layout.total()), grad(b, seeds.size() * layout.total()) {
    std::vector<T> all, one;
    for (const uint32_t seed : seeds) {
      initialize_params(layout, seed, one);
      all.insert(all.end(), one.begin(), one.end());
    }
    value.from_host(all);
    grad.zero();
  }
  int seeds() const { return layout.total() ? int(value.size() / layout.total()) : 1; }
  // Each view of run `run`'s blob as its own named array with its shape (a checkpoint's tensors read as the
  // network's layers; a seed batch's run writes exactly what it would alone).
  void visit_state(StateVisitor& v, int run = 0) {
    for (const ParamView& view : layout.views())
      v.array(view.name, dtype_of<T>(), std::vector<int64_t>(view.shape.begin(), view.shape.end()),
              value.data() + size_t(run) * layout.total() + view.offset, value.backend());
  }
};

}  // namespace dyn
