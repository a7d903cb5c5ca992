// Running normaliser: a parallel reduction for a batch's moments, one parallel_for item per feature (of every run of
// a seed batch) for the merge, one per element for the transform.
#include <cmath>
#include <stdexcept>

#include "algo/running_norm.h"
#include "kernels/collective.h"
#include "kernels/moments.h"
#include "kernels/parallel_for.cuh"

namespace dyn {

namespace {

// Item i, feature k = i % dim of run i / dim: the chunks' sums in chunk order, then the merge (every feature reads
// the old count; it is advanced after, by CountRows). Data parallel (one run): first without the merge (stats null),
// the sums into chunk 0's place for the ranks to add up, then again over that one chunk to merge.
struct MergeChunks {
  double* const* run_stats;  // [R] each run's [2·dim + 1], or null: `stats` (one run)
  double* stats;             // [2·dim + 1], or null with run_stats null: keep the sums in partial[0, 2·dim)
  double* partial;           // [R, chunks, dim, 2]
  int dim, chunks;
  int64_t rows;  // per run
  DYN_HD void operator()(int64_t i) const {
    const int64_t run = i / dim, k = i % dim;
    const double* part = partial + run * chunks * dim * 2;
    double s1 = 0, s2 = 0;
    for (int c = 0; c < chunks; ++c) {
      s1 += part[(int64_t(c) * dim + k) * 2];
      s2 += part[(int64_t(c) * dim + k) * 2 + 1];
    }
    double* s = run_stats ? run_stats[run] : stats;
    if (s) {
      merge_batch_moments(s[k], s[dim + k], s[2 * dim], double(rows), s1, s2);
    } else {
      partial[k * 2] = s1;
      partial[k * 2 + 1] = s2;
    }
  }
};

// Run r's row count.
struct CountRows {
  double* const* run_stats;  // [R], or null: `stats`
  double* stats;
  int dim;
  int64_t rows;
  DYN_HD void operator()(int64_t r) const { (run_stats ? run_stats[r] : stats)[2 * dim] += double(rows); }
};

// Element i of rows [·, dim]: normalised (center) or only scaled by the statistics of its run (i / per_run), or of
// the one run.
struct TransformRows {
  const float* x;
  float* y;
  const double* const* run_stats;  // [R] (nullptr: stats alone)
  const double* stats;
  int64_t per_run;  // elements
  int dim;
  float clip;
  bool center;
  DYN_HD void operator()(int64_t i) const {
    const double* s = run_stats ? run_stats[i / per_run] : stats;
    const int k = int(i % dim);
    y[i] = center ? normalized_value(x[i], s, dim, k, clip) : scaled_value(x[i], s, dim, k, clip);
  }
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
    parallel_for(b_, dim_, MergeChunks{nullptr, nullptr, partial_.data(), dim_, chunks, rows});
    sum_over_ranks(b_, partial_.data(), int64_t(2) * dim_);
    chunks = 1;
  }
  const int64_t all_rows = rows * ranks;
  parallel_for(b_, dim_, MergeChunks{nullptr, s, partial_.data(), dim_, chunks, all_rows});
  parallel_for(b_, 1, CountRows{nullptr, s, dim_, all_rows});
}

void RunningNorm::normalize(const float* x, float* y, int64_t rows, float clip) const {
  parallel_for(b_, rows * dim_, TransformRows{x, y, nullptr, stats_.data(), rows * dim_, dim_, clip, true});
}

void RunningNorm::scale(const float* x, float* y, int64_t rows, float clip) const {
  parallel_for(b_, rows * dim_, TransformRows{x, y, nullptr, stats_.data(), rows * dim_, dim_, clip, false});
}

RunNorms::RunNorms(Backend b, int dim, int runs) : b_(b) {
  std::vector<double*> stats;
  for (int r = 0; r < runs; ++r) {
    norms_.emplace_back(b, dim);
    stats.push_back(norms_.back().stats_data());  // a Buffer keeps its memory when the vector moves it
  }
  stats_ = Buffer<double*>::copy_of(b, stats);
  if (runs > 1) partial_ = Buffer<double>(b, size_t(runs) * kMaxMomentChunks * dim * 2);
}

void RunNorms::update(const float* x, int64_t n) {
  const int R = int(norms_.size());
  if (R == 1) return norms_[0].update(x, n);  // (data parallel: with the ranks' all-reduce)
  if (n <= 0) return;
  if (data_parallel_ranks() > 1)
    throw std::logic_error("RunNorms: a seed batch does not train data parallel (one seed per data-parallel run)");
  // every run's chunks in one launch, then every run's features merged in one, and the counts
  column_moments_of_runs(b_, x, n, dim(), R, stats_.data(), partial_.data());  // about each run's running mean
  parallel_for(b_, int64_t(R) * dim(),
               MergeChunks{stats_.data(), nullptr, partial_.data(), dim(), moment_chunks(n), n});
  parallel_for(b_, R, CountRows{stats_.data(), nullptr, dim(), n});
}

void RunNorms::normalize(const float* x, float* y, int64_t n, int run0, int R) const {
  parallel_for(b_, R * n * dim(),
               TransformRows{x, y, stats_.data() + run0, nullptr, n * dim(), dim(), kNormClip, true});
}

void RunNorms::scale(const float* x, float* y, int64_t n) const {
  const int R = int(norms_.size());
  parallel_for(b_, R * n * dim(), TransformRows{x, y, stats_.data(), nullptr, n * dim(), dim(), kNormClip, false});
}

}  // namespace dyn
