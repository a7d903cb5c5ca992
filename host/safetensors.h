// The safetensors format (what PyTorch, JAX and numpy read): an 8-byte little-endian header length, a JSON header
// naming each array's dtype, shape and byte range (plus string metadata under "__metadata__"), then the bytes,
// little-endian. Written with nlohmann-json; the reader checks every range against the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kernels/state_io.h"

namespace dyn {

struct StoredArray {
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian, row-major
};
using ArrayMap = std::map<std::string, StoredArray>;
using Metadata = std::map<std::string, std::string>;

size_t dtype_size(DType d);
const char* safetensors_dtype(DType d);  // "F32", "U8", ...

// The file's bytes: header (padded with spaces to a multiple of 8) then the arrays in name order.
std::string encode_safetensors(const ArrayMap& arrays, const Metadata& metadata);
// Parses a file's bytes; std::runtime_error naming `what` and the problem when it is not a valid safetensors file.
void decode_safetensors(const std::string& file, const std::string& what, ArrayMap& arrays, Metadata& metadata);

}  // namespace dyn
