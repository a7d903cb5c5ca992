// Collective (kernels/collective.h): MPI and NCCL where the build has them, one rank otherwise.
#include "kernels/collective.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "kernels/buffer.h"
#include "kernels/check.h"
#include "kernels/copy.h"

#ifdef DYN_WITH_MPI
#include <mpi.h>
#endif
#ifdef DYN_WITH_NCCL
#include <nccl.h>
#endif

namespace dyn {

namespace {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

#ifdef DYN_WITH_MPI
void mpi_check(int status, const char* what) {
  if (status != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(status, text, &len);
    throw std::runtime_error(std::string("MPI error from ") + what + ": " + std::string(text, size_t(len)));
  }
}
#define DYN_MPI_CHECK(call) mpi_check((call), #call)

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}

// Host memory: reduced on rank 0 (MPI_Reduce sums in rank order for a commutative built-in op on the common
// algorithms, but the order is not promised; what is promised is one result, broadcast to every rank).
template <class T>
void host_allreduce(T* x, int64_t n) {
  for (int64_t off = 0; off < n; off += INT32_MAX) {
    const int count = int(std::min<int64_t>(n - off, INT32_MAX));
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    DYN_MPI_CHECK(
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : x + off, x + off, count, mpi_type<T>(), MPI_SUM, 0, MPI_COMM_WORLD));
    DYN_MPI_CHECK(MPI_Bcast(x + off, count, mpi_type<T>(), 0, MPI_COMM_WORLD));
  }
}
#endif

#ifdef DYN_WITH_NCCL
void nccl_check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw std::runtime_error(std::string("NCCL error from ") + what + ": " + ncclGetErrorString(r));
}
#define DYN_NCCL_CHECK(call) nccl_check((call), #call)
#endif

}  // namespace

Collective& Collective::world() {
  static Collective c;
  return c;
}

bool Collective::built_with_mpi() {
#ifdef DYN_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool Collective::built_with_nccl() {
#ifdef DYN_WITH_NCCL
  return true;
#else
  return false;
#endif
}

Collective::Collective() {
  if (!launched_by_mpi()) return;
#ifdef DYN_WITH_MPI
  int provided = 0;
  DYN_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  // errors come back as codes (checked, thrown) instead of aborting inside MPI
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  mpi_ = true;
  // one GPU per rank: the ranks on one node take its devices in turn (their rank among the node's ranks)
  MPI_Comm node;
  int local = 0, devices = 0;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
  }
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 1)
    cudaSetDevice(local % devices);
  else
    cudaGetLastError();  // no device here: the CPU backend (clears the sticky error of the query)
#else
  std::fprintf(stderr,
               "warning: launched by mpirun / srun, but this dynamite_gpu was built without MPI (install "
               "libopenmpi-dev and rebuild): every process runs alone as rank 0 of 1\n");
#endif
}

Collective::~Collective() {
#ifdef DYN_WITH_NCCL
  if (nccl_) ncclCommDestroy(static_cast<ncclComm_t>(nccl_));
#endif
#ifdef DYN_WITH_MPI
  if (mpi_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
#endif
}

namespace {

template <class T>
void allreduce(Collective& c, Backend b, T* x, int64_t n, void*& nccl) {
  if (!c.distributed() || n == 0) return;
#ifdef DYN_WITH_MPI
  if (b == Backend::cuda) {
#ifdef DYN_WITH_NCCL
    if (!nccl) {  // one communicator over the ranks' GPUs, its id from rank 0
      ncclUniqueId id;
      if (c.rank() == 0) DYN_NCCL_CHECK(ncclGetUniqueId(&id));
      DYN_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
      ncclComm_t comm;
      DYN_NCCL_CHECK(ncclCommInitRank(&comm, c.size(), id, c.rank()));
      nccl = comm;
    }
    DYN_NCCL_CHECK(ncclAllReduce(x, x, size_t(n), sizeof(T) == 4 ? ncclFloat32 : ncclFloat64, ncclSum,
                                 static_cast<ncclComm_t>(nccl), cuda_stream()));
    return;
#else
    std::vector<T> host = read_values(b, x, n);  // through host memory: slow, but the same sums
    host_allreduce(host.data(), n);
    cuda_copy(x, host.data(), size_t(n) * sizeof(T), cudaMemcpyHostToDevice);
    return;
#endif
  }
  host_allreduce(x, n);
#else
  (void)b, (void)x, (void)nccl;
#endif
}

}  // namespace

void Collective::allreduce_sum(Backend b, float* x, int64_t n) { allreduce(*this, b, x, n, nccl_); }
void Collective::allreduce_sum(Backend b, double* x, int64_t n) { allreduce(*this, b, x, n, nccl_); }

bool Collective::same_on_all(uint64_t value) {
  if (!distributed()) return true;
#ifdef DYN_WITH_MPI
  uint64_t lo = value, hi = value;
  DYN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
  DYN_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD));
  return lo == hi;
#else
  return true;
#endif
}

std::string Collective::broadcast(const std::string& from_rank0) {
  if (!distributed()) return from_rank0;
#ifdef DYN_WITH_MPI
  uint64_t len = from_rank0.size();
  DYN_MPI_CHECK(MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD));
  std::string out = rank_ == 0 ? from_rank0 : std::string(len, '\0');
  for (uint64_t off = 0; off < len; off += INT32_MAX)
    DYN_MPI_CHECK(
        MPI_Bcast(out.data() + off, int(std::min<uint64_t>(len - off, INT32_MAX)), MPI_CHAR, 0, MPI_COMM_WORLD));
  return out;
#else
  return from_rank0;
#endif
}

void Collective::abort(int code, const std::string& message) {
  std::fprintf(stderr, "rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
#ifdef DYN_WITH_MPI
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

int data_parallel_ranks() { return Collective::world().size(); }

void sum_over_ranks(Backend b, float* x, int64_t n) { Collective::world().allreduce_sum(b, x, n); }
void sum_over_ranks(Backend b, double* x, int64_t n) { Collective::world().allreduce_sum(b, x, n); }

namespace {

template <class T>
void average(Backend b, T* x, int64_t n) {
  Collective& ranks = Collective::world();
  if (!ranks.distributed()) return;
  ranks.allreduce_sum(b, x, n);
  scale_values(b, x, T(1) / T(ranks.size()), n);
}

}  // namespace

void average_over_ranks(Backend b, float* x, int64_t n) { average(b, x, n); }
void average_over_ranks(Backend b, double* x, int64_t n) { average(b, x, n); }

}  // namespace dyn
