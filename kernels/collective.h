// The ranks of a data-parallel run: MPI between processes (mpirun, srun), NCCL between their GPUs, and one rank with
// nothing to do when the process was not launched by MPI (or the build has no MPI). The building block of issue 19's
// data-parallel training: gradients, normaliser moments and advantage sums are summed over ranks through it.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/backend.h"

namespace dyn {

class Collective {
 public:
  // The process's ranks, set up on first use: MPI when launched by mpirun / srun (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
  // PMIX_RANK in the environment) in a build with MPI; otherwise one rank.
  static Collective& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  // Whether the build has MPI / NCCL (the --version line and the tests say which).
  static bool built_with_mpi();
  static bool built_with_nccl();

  // x[0..n) ← the sum over ranks of every rank's x[0..n), in place, on x's backend (NCCL on CUDA where the build has
  // it, else through host memory and MPI). Every rank ends with the same bits: the sum is reduced once, in rank
  // order, on rank 0 and broadcast (on CUDA, NCCL's ring gives every rank the owner's chunk). No-op with one rank.
  void allreduce_sum(Backend b, float* x, int64_t n);
  void allreduce_sum(Backend b, double* x, int64_t n);
  // True when every rank passed the same value (a parameter hash checked every K iterations).
  bool same_on_all(uint64_t value);
  // Rank 0's bytes on every rank (e.g. a message or a config).
  std::string broadcast(const std::string& from_rank0);
  // Stops every rank: prints "rank R: message" to stderr and ends the job with `code` (MPI_Abort); with one rank,
  // exits.
  [[noreturn]] void abort(int code, const std::string& message);

  Collective(const Collective&) = delete;
  Collective& operator=(const Collective&) = delete;

 private:
  Collective();
  ~Collective();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  void* nccl_ = nullptr;  // ncclComm_t, created on the first CUDA reduction
};

// The data-parallel run's ranks as the learners see them (Collective::world()): how many, and the sums every rank
// takes part in — the same calls in the same order on every rank. With one rank, nothing happens.
int data_parallel_ranks();
void sum_over_ranks(Backend b, float* x, int64_t n);
void sum_over_ranks(Backend b, double* x, int64_t n);
// x ← the mean over ranks of x (gradients): the sum, then a scale by 1 / ranks on the backend.
void average_over_ranks(Backend b, float* x, int64_t n);
void average_over_ranks(Backend b, double* x, int64_t n);

}  // namespace dyn
