// Checkpoints through the learners' state visitors (host/checkpoint.h).
#include "host/checkpoint.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <set>
#include <stdexcept>

#include "host/checked_io.h"
#include "kernels/check.h"

namespace dyn {

namespace {

size_t byte_count(DType dtype, const std::vector<int64_t>& shape) {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

void copy_bytes(void* dst, const void* src, size_t n, Backend b, cudaMemcpyKind kind) {
  if (n == 0) return;
  if (b == Backend::cuda)
    cuda_copy(dst, src, n, kind);
  else
    std::memcpy(dst, src, n);
}

class SaveVisitor : public StateVisitor {
 public:
  ArrayMap arrays;

 protected:
  void visit(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* data,
             Backend backend) override {
    if (arrays.count(name)) throw std::logic_error("checkpoint: two arrays named '" + name + "'");
    StoredArray& a = arrays[name];
    a.dtype = dtype;
    a.shape = shape;
    a.bytes.resize(byte_count(dtype, shape));
    copy_bytes(a.bytes.data(), data, a.bytes.size(), backend, cudaMemcpyDeviceToHost);
  }
  void visit_text(const std::string& name, std::string& s) override {
    StoredArray& a = arrays[name];
    a.dtype = DType::u8;
    a.shape = {int64_t(s.size())};
    a.bytes = s;
  }
};

class LoadVisitor : public StateVisitor {
 public:
  LoadVisitor(const ArrayMap& arrays, const std::string& what) : arrays_(arrays), what_(what) {}
  std::set<std::string> used;

 protected:
  void visit(const std::string& name, DType dtype, const std::vector<int64_t>& shape, void* data,
             Backend backend) override {
    const StoredArray& a = find(name);
    if (a.dtype != dtype || a.shape != shape)
      throw std::runtime_error(what_ + ": array '" + name + "' is " + safetensors_dtype(a.dtype) + " " +
                               shape_text(a.shape) + "; this run's is " + safetensors_dtype(dtype) + " " +
                               shape_text(shape) + " (a checkpoint of another config?)");
    copy_bytes(data, a.bytes.data(), a.bytes.size(), backend, cudaMemcpyHostToDevice);
  }
  void visit_text(const std::string& name, std::string& s) override { s = find(name).bytes; }

 private:
  const StoredArray& find(const std::string& name) {
    const auto it = arrays_.find(name);
    if (it == arrays_.end())
      throw std::runtime_error(what_ + ": no array '" + name + "' (a checkpoint of another config?)");
    used.insert(name);
    return it->second;
  }
  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
  const ArrayMap& arrays_;
  std::string what_;
};

}  // namespace

ArrayMap capture_state(Learner& learner) {
  synchronize(learner.backend());
  SaveVisitor v;
  learner.visit_state(v);
  return std::move(v.arrays);
}

uint64_t shared_state_hash(Learner& learner) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const std::string& bytes) {
    for (const char c : bytes) h = (h ^ uint64_t(uint8_t(c))) * 1099511628211ull;
  };
  for (const auto& [name, a] : capture_state(learner)) {  // ArrayMap: in name order
    if (name.find("params") == std::string::npos && name.find("adam") == std::string::npos &&
        name.find("norm.stats") == std::string::npos)
      continue;
    mix(name);
    mix(a.bytes);
  }
  return h;
}

size_t save_checkpoint(const std::string& path, Learner& learner, const Metadata& metadata) {
  const std::string file = encode_safetensors(capture_state(learner), metadata);
  write_file_atomically(path, file);
  return file.size();
}

Checkpoint read_checkpoint(const std::string& path) {
  Checkpoint c;
  decode_safetensors(read_file(path, "checkpoint"), "checkpoint '" + path + "'", c.arrays, c.metadata);
  return c;
}

void restore_state(Learner& learner, const Checkpoint& c, const std::string& what) {
  synchronize(learner.backend());
  LoadVisitor v(c.arrays, what);
  learner.visit_state(v);
  for (const auto& [name, a] : c.arrays)
    if (!v.used.count(name)) throw std::runtime_error(what + ": array '" + name + "' belongs to no part of this run");
  synchronize(learner.backend());
}

}  // namespace dyn
