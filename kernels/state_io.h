// A learner's whole state as named arrays, for checkpoints: every component lists what it keeps between iterations
// through one StateVisitor function, used both to save and to load, so the two cannot disagree. A checkpoint is
// then the visitor's arrays in a safetensors file (host/checkpoint.h); a resumed run continues bit for bit on the
// CPU.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/buffer.h"

namespace dyn {

enum class DType : uint8_t { f32, f64, i32, u32, i64, u64, u8 };

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  if constexpr (std::is_same_v<T, double>) return DType::f64;
  if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  if constexpr (std::is_same_v<T, uint32_t>) return DType::u32;
  if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  if constexpr (std::is_same_v<T, uint64_t>) return DType::u64;
  if constexpr (std::is_same_v<T, uint8_t>) return DType::u8;
}

class StateVisitor {
 public:
  virtual ~StateVisitor() = default;
  // `shape`'s product elements of `dtype` at `data` in `backend` memory, named prefix + `name`. Saving copies them
  // out; loading copies the saved array in (the same dtype and shape, else std::runtime_error naming it).
  void array(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* data, Backend backend) {
    visit(prefix + name, dtype, shape, data, backend);
  }
  // A whole buffer, 1-D unless a shape is given.
  template <class T>
  void buffer(const std::string& name, Buffer<T>& b, std::vector<int64_t> shape = {}) {
    if (b.size() == 0) return;
    if (shape.empty()) shape = {int64_t(b.size())};
    array(name, dtype_of<T>(), shape, b.data(), b.backend());
  }
  // Run `run`'s equal share of a buffer that `runs` runs of a seed batch hold side by side (run r's part at
  // [r·size/runs, (r+1)·size/runs)): the 1-D array that run alone has, buffer() of its own.
  template <class T>
  void share(const std::string& name, Buffer<T>& b, int run, int runs) {
    if (b.size() == 0) return;
    const int64_t n = int64_t(b.size()) / runs;
    array(name, dtype_of<T>(), {n}, b.data() + run * n, b.backend());
  }
  // A host value.
  template <class T>
  void value(const std::string& name, T& v) {
    array(name, dtype_of<T>(), {1}, &v, Backend::cpu);
  }
  // Plain-old-data structs in a buffer (env states, episode sums), as bytes [n, sizeof(T)]; with a run, run `run`'s
  // equal share of a buffer `runs` runs hold side by side (as share()): bytes [n / runs, sizeof(T)].
  template <class T>
  void bytes(const std::string& name, Buffer<T>& b, int run = 0, int runs = 1) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (b.size() == 0) return;
    const int64_t n = int64_t(b.size()) / runs;
    array(name, DType::u8, {n, int64_t(sizeof(T))}, b.data() + run * n, b.backend());
  }
  // Variable-length host bytes: saved as u8; loading replaces `s`.
  void text(const std::string& name, std::string& s) { visit_text(prefix + name, s); }
  // A random engine's state (as its operator<< writes it).
  template <class Engine>
  void rng(const std::string& name, Engine& e);
  // A component's own arrays (its visit_state) under prefix + `name` + ".".
  template <class C>
  void part(const std::string& name, C& c);
  // Run `run`'s arrays of a seed-batched component (its visit_state(v, run)): the names and shapes the run alone has.
  template <class C>
  void part(const std::string& name, C& c, int run);
  std::string prefix;  // of the names of the component being visited (StatePrefix)

 protected:
  virtual void visit_text(const std::string& name, std::string& s) = 0;
  virtual void visit(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* data,
                     Backend backend) = 0;
};

template <class Engine>
void StateVisitor::rng(const std::string& name, Engine& e) {
  std::ostringstream out;
  out << e;
  std::string state = out.str();
  text(name, state);
  std::istringstream in(state);
  in >> e;
}

template <class C>
void StateVisitor::part(const std::string& name, C& c) {
  const std::string saved = prefix;
  prefix += name + ".";
  c.visit_state(*this);
  prefix = saved;
}

template <class C>
void StateVisitor::part(const std::string& name, C& c, int run) {
  const std::string saved = prefix;
  prefix += name + ".";
  c.visit_state(*this, run);
  prefix = saved;
}

}  // namespace dyn
