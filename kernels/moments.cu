// Column moments: one CUDA block per chunk of rows (kernels/moments_kernel.cuh), or one CPU loop iteration per chunk.
#include "kernels/moments.h"
#include "kernels/moments_kernel.cuh"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Chunk c of the CPU path: every column's two sums over the chunk's rows, row by row.
struct ChunkMoments {
  const float* x;
  int64_t rows, chunk;
  int dim;
  const double* shift;
  double* partial;
  DYN_HD void operator()(int64_t c) const {
    double* out = partial + c * dim * 2;
    for (int k = 0; k < 2 * dim; ++k) out[k] = 0.0;
    const int64_t r1 = (c + 1) * chunk < rows ? (c + 1) * chunk : rows;
    for (int64_t r = c * chunk; r < r1; ++r)
      for (int k = 0; k < dim; ++k) {
        const double v = double(x[r * dim + k]) - shift[k];
        out[2 * k] += v;
        out[2 * k + 1] += v * v;
      }
  }
};

}  // namespace

int64_t moment_chunk_rows(int64_t rows) {
  const int64_t even = (rows + kMaxMomentChunks - 1) / kMaxMomentChunks;
  return even > kMinMomentChunkRows ? even : kMinMomentChunkRows;
}

int moment_chunks(int64_t rows) {
  const int64_t chunk = moment_chunk_rows(rows);
  return rows <= 0 ? 0 : int((rows + chunk - 1) / chunk);
}

void column_moments(Backend b, const float* x, int64_t rows, int dim, const double* shift, double* partial) {
  const int chunks = moment_chunks(rows);
  if (chunks == 0 || dim <= 0) return;
  const int64_t chunk = moment_chunk_rows(rows);
  if (b == Backend::cpu) {
    parallel_for(b, chunks, ChunkMoments{x, rows, chunk, dim, shift, partial}, 2);
    return;
  }
  moments::column_moments_kernel<float>
      <<<chunks, moments::kThreads, 2 * moments::kThreads * sizeof(double), cuda_stream()>>>(x, rows, dim, chunk, shift,
                                                                                             partial);
  DYN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace dyn
