// Column moments: one CUDA block per chunk of rows of each run (kernels/moments_kernel.cuh), or one CPU loop iteration
// per chunk.
#include "kernels/moments.h"
#include "kernels/moments_kernel.cuh"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Item i of the CPU path, chunk c = i % chunks of run i / chunks: every column's two sums over the chunk's rows,
// row by row.
struct ChunkMoments {
  const float* x;
  int64_t rows, chunk;
  int chunks, dim;
  const double* const* shifts;  // [runs], or null: `shift` for every run
  const double* shift;
  double* partial;
  DYN_HD void operator()(int64_t i) const {
    const int64_t run = i / chunks, c = i % chunks;
    const double* shift_of_run = shifts ? shifts[run] : shift;
    const float* xr = x + run * rows * dim;
    double* out = partial + i * dim * 2;
    for (int k = 0; k < 2 * dim; ++k) out[k] = 0.0;
    const int64_t r1 = (c + 1) * chunk < rows ? (c + 1) * chunk : rows;
    for (int64_t r = c * chunk; r < r1; ++r)
      for (int k = 0; k < dim; ++k) {
        const double v = double(xr[r * dim + k]) - shift_of_run[k];
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

namespace {

void moments_of_runs(Backend b, const float* x, int64_t rows, int dim, int runs, const double* const* shifts,
                     const double* shift, double* partial) {
  const int chunks = moment_chunks(rows);
  if (chunks == 0 || dim <= 0 || runs <= 0) return;
  const int64_t chunk = moment_chunk_rows(rows);
  if (b == Backend::cpu) {
    parallel_for(b, int64_t(runs) * chunks, ChunkMoments{x, rows, chunk, chunks, dim, shifts, shift, partial}, 2);
    return;
  }
  moments::column_moments_kernel<float>
      <<<unsigned(runs) * unsigned(chunks), moments::kThreads, 2 * moments::kThreads * sizeof(double), cuda_stream()>>>(
          x, rows, dim, chunk, chunks, shifts, shift, partial);
  DYN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void column_moments(Backend b, const float* x, int64_t rows, int dim, const double* shift, double* partial) {
  moments_of_runs(b, x, rows, dim, 1, nullptr, shift, partial);
}

void column_moments_of_runs(Backend b, const float* x, int64_t rows, int dim, int runs, const double* const* shifts,
                            double* partial) {
  moments_of_runs(b, x, rows, dim, runs, shifts, nullptr, partial);
}

}  // namespace dyn
