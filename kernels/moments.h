// Per-column moments of a batch by a parallel reduction: for x [rows, dim] and a shift per column (the running
// mean, so the sums do not cancel), the sums of (x − shift) and (x − shift)² over chunks of rows, in double. The
// caller merges the chunks (RunningNorm::update). Fixed chunking, so the result does not depend on scheduling.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace dyn {

// Rows per chunk and the chunk count for a batch of `rows` rows (at most kMaxMomentChunks chunks).
constexpr int kMaxMomentChunks = 256;
constexpr int64_t kMinMomentChunkRows = 512;
int64_t moment_chunk_rows(int64_t rows);
int moment_chunks(int64_t rows);

// partial [chunks, dim, 2]: Σ (x − shift) and Σ (x − shift)² of each column over each chunk of rows. shift [dim]
// and partial are backend memory; a CUDA block (or a CPU loop iteration) per chunk.
void column_moments(Backend b, const float* x, int64_t rows, int dim, const double* shift, double* partial);
// The same for `runs` runs side by side in one launch: x [runs, rows, dim], run r about its own shift shifts[r] [dim]
// (a table of backend pointers), into partial [runs, chunks, dim, 2]. Run r's sums are exactly those of
// column_moments of its rows alone.
void column_moments_of_runs(Backend b, const float* x, int64_t rows, int dim, int runs, const double* const* shifts,
                            double* partial);

}  // namespace dyn
