// Running normaliser: a parallel reduction for a batch's moments, one parallel_for item per feature for the merge,
// one per element for the transform.
#include <cmath>

#include "algo/running_norm.h"
#include "kernels/collective.h"
#include "kernels/moments.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Feature k: the chunks' sums in chunk order, then the merge (every feature reads the old count; it is advanced
// after, by CountRows). Data parallel: first without the merge (stats null), the sums into chunk 0's place for the
// ranks to add up, then again over that one chunk to merge.
struct MergeChunks {
  double* stats;    // [2·dim + 1], or null: keep the sums in partial[0, 2·dim)
  double* partial;  // [chunks, dim, 2]
  int dim, chunks;
  int64_t rows;
  DYN_HD void operator()(int64_t k) const {
    double s1 = 0, s2 = 0;
    for (int c = 0; c < chunks; ++c) {
      s1 += partial[(int64_t(c) * dim + k) * 2];
      s2 += partial[(int64_t(c) * dim + k) * 2 + 1];
    }
    if (stats) {
      merge_batch_moments(stats[k], stats[dim + k], stats[2 * dim], double(rows), s1, s2);
    } else {
      partial[k * 2] = s1;
      partial[k * 2 + 1] = s2;
    }
  }
};

// Element i of rows [·, dim]: normalised by the statistics of its run (i / per_run), or of the one run.
struct NormalizeRows {
  const float* x;
  float* y;
  const double* const* run_stats;  // [R] (nullptr: stats alone)
  const double* stats;
  int64_t per_run;  // elements
  int dim;
  float clip;
  DYN_HD void operator()(int64_t i) const {
    const double* s = run_stats ? run_stats[i / per_run] : stats;
    y[i] = normalized_value(x[i], s, dim, int(i % dim), clip);
  }
};

struct CountRows {
  double* count;
  int64_t rows;
  DYN_HD void operator()(int64_t) const { *count += double(rows); }
};

}  // namespace

RunningNorm::RunningNorm(Backend b, int dim)
    : b_(b), dim_(dim), stats_(b, size_t(2 * dim + 1)), partial_(b, size_t(kMaxMomentChunks) * dim * 2) {
  std::vector<double> init(size_t(2 * dim + 1), 0.0);
  for (int k = 0; k < dim; ++k) init[dim + k] = 1.0;
  init[2 * dim] = 1e-4;  // a tiny prior count, as baselines' RunningMeanStd
  stats_.from_host(init);
}

void RunningNorm::update(const float* x, int64_t rows) {
  if (rows <= 0) return;
  double* s = stats_.data();
  column_moments(b_, x, rows, dim_, s, partial_.data());  // about the running mean s[0, dim)
  int chunks = moment_chunks(rows);
  const int ranks = data_parallel_ranks();
  if (ranks > 1) {  // every rank passes the same number of rows about the same running mean: the sums add up
    parallel_for(b_, dim_, MergeChunks{nullptr, partial_.data(), dim_, chunks, rows});
    sum_over_ranks(b_, partial_.data(), int64_t(2) * dim_);
    chunks = 1;
  }
  const int64_t all_rows = rows * ranks;
  parallel_for(b_, dim_, MergeChunks{s, partial_.data(), dim_, chunks, all_rows});
  parallel_for(b_, 1, CountRows{s + 2 * dim_, all_rows});
}

void RunningNorm::normalize(const float* x, float* y, int64_t rows, float clip) const {
  parallel_for(b_, rows * dim_, NormalizeRows{x, y, nullptr, stats_.data(), rows * dim_, dim_, clip});
}

void RunningNorm::scale(const float* x, float* y, int64_t rows, float clip) const {
  const double* s = stats_.data();
  const int d = dim_;
  parallel_for(b_, rows * d, [=] DYN_LAMBDA(int64_t i) {
    const int k = int(i % d);
    const float v = float(x[i] / sqrt(s[d + k] + 1e-8));
    y[i] = v < -clip ? -clip : v > clip ? clip : v;
  });
}

RunNorms::RunNorms(Backend b, int dim, int runs) : b_(b) {
  std::vector<const double*> stats;
  for (int r = 0; r < runs; ++r) {
    norms_.emplace_back(b, dim);
    stats.push_back(norms_.back().stats_data());  // a Buffer keeps its memory when the vector moves it
  }
  stats_ = Buffer<const double*>::copy_of(b, stats);
}

void RunNorms::normalize(const float* x, float* y, int64_t n, int run0, int R) const {
  parallel_for(b_, R * n * dim(), NormalizeRows{x, y, stats_.data() + run0, nullptr, n * dim(), dim(), kNormClip});
}

}  // namespace dyn
