// safetensors encode and decode (host/safetensors.h).
#include "host/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <stdexcept>

namespace dyn {

namespace {

const std::pair<DType, const char*> kNames[] = {{DType::f32, "F32"}, {DType::f64, "F64"}, {DType::i32, "I32"},
                                                {DType::u32, "U32"}, {DType::i64, "I64"}, {DType::u64, "U64"},
                                                {DType::u8, "U8"}};

int64_t elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

}  // namespace

size_t dtype_size(DType d) {
  switch (d) {
    case DType::f64:
    case DType::i64:
    case DType::u64:
      return 8;
    case DType::f32:
    case DType::i32:
    case DType::u32:
      return 4;
    case DType::u8:
      return 1;
  }
  return 1;
}

const char* safetensors_dtype(DType d) {
  for (const auto& [t, name] : kNames)
    if (t == d) return name;
  return "U8";
}

std::string encode_safetensors(const ArrayMap& arrays, const Metadata& metadata) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors is little-endian; so is every target here");
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, a] : arrays) {
    header[name] = {
        {"dtype", safetensors_dtype(a.dtype)}, {"shape", a.shape}, {"data_offsets", {offset, offset + a.bytes.size()}}};
    offset += a.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  out.reserve(8 + n + offset);
  out += text;
  for (const auto& [name, a] : arrays) out += a.bytes;
  return out;
}

void decode_safetensors(const std::string& file, const std::string& what, ArrayMap& arrays, Metadata& metadata) {
  auto fail = [&](const std::string& why) {
    throw std::runtime_error(what + ": not a valid safetensors file: " + why);
  };
  if (file.size() < 8) fail("shorter than its 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  if (n > file.size() - 8) fail("the header length " + std::to_string(n) + " runs past the end");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.substr(8, n));
  } catch (const std::exception& e) {
    fail(std::string("its header is not JSON (") + e.what() + ")");
  }
  const uint64_t data = 8 + n, data_size = file.size() - data;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      for (auto m = it->begin(); m != it->end(); ++m) metadata[m.key()] = m->get<std::string>();
      continue;
    }
    StoredArray a;
    const std::string dt = it->at("dtype").get<std::string>();
    bool known = false;
    for (const auto& [t, name] : kNames)
      if (dt == name) a.dtype = t, known = true;
    if (!known) fail("array '" + it.key() + "' has dtype " + dt + ", which this program does not write");
    a.shape = it->at("shape").get<std::vector<int64_t>>();
    const auto range = it->at("data_offsets").get<std::vector<uint64_t>>();
    if (range.size() != 2 || range[0] > range[1] || range[1] > data_size)
      fail("array '" + it.key() + "' lies outside the file");
    if (range[1] - range[0] != uint64_t(elements(a.shape)) * dtype_size(a.dtype))
      fail("array '" + it.key() + "' has " + std::to_string(range[1] - range[0]) + " bytes for its shape");
    a.bytes = file.substr(data + range[0], range[1] - range[0]);
    arrays[it.key()] = std::move(a);
  }
}

}  // namespace dyn
