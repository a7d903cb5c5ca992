// Checkpoints: a learner's whole state (Learner::visit_state) plus the driver's metadata in one safetensors file,
// written atomically, and read back into a learner built from the same config.
#pragma once

#include <string>

#include "algo/learner.h"
#include "host/safetensors.h"

namespace dyn {

struct Checkpoint {
  ArrayMap arrays;
  Metadata metadata;  // the driver's: config, iteration, metrics sizes, ...
};

// The learner's state now (copied out of backend memory).
ArrayMap capture_state(Learner& learner);
// FNV-1a over the arrays every data-parallel rank holds alike — the parameters (names with "params"), the optimisers'
// state ("adam") and the normalisers ("norm.stats") — in name order: equal on every rank, or the ranks diverged.
uint64_t shared_state_hash(Learner& learner);
// Writes the learner's state and `metadata` to `path` atomically (the previous file stays until the new one is
// whole); returns the file's size in bytes.
size_t save_checkpoint(const std::string& path, Learner& learner, const Metadata& metadata);
// Reads a checkpoint; std::runtime_error naming the file when it is not one.
Checkpoint read_checkpoint(const std::string& path);
// Loads a checkpoint's arrays into a learner of the same config; std::runtime_error naming any array that is
// missing, of another dtype or shape, or left over.
void restore_state(Learner& learner, const Checkpoint& c, const std::string& what);

}  // namespace dyn
