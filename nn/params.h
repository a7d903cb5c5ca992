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

// Values and gradients of one network on a backend.
template <class T>
struct ParamBlob {
  ParamLayout layout;
  Buffer<T> value, grad;  // [total]

  ParamBlob() = default;
  ParamBlob(Backend b, ParamLayout l, uint32_t seed)
      : layout(std::move(l)), value(b, layout.total()), grad(b, layout.total()) {
    std::vector<T> host;
    initialize_params(layout, seed, host);
    value.from_host(host);
    grad.zero();
  }
  // Each view as its own named array with its shape (a checkpoint's tensors read as the network's layers).
  void visit_state(StateVisitor& v) {
    for (const ParamView& view : layout.views())
      v.array(view.name, dtype_of<T>(), std::vector<int64_t>(view.shape.begin(), view.shape.end()),
              value.data() + view.offset, value.backend());
  }
};

}  // namespace dyn
