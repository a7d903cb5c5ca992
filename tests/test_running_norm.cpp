// RunningNorm's batch statistics by parallel reduction (kernels/moments.h) against the serial Welford pass it
// replaced, and the CUDA column-moments kernel run on the host (tests/cuda_emulation.h) against the CPU path.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "algo/running_norm.h"
#include "kernels/moments.h"
#include "tests/random_vectors.h"
// after the CUDA runtime headers:
#include "tests/cuda_emulation.h"

namespace dyn::moments {
double moments_smem[2 * 256];  // the kernel's dynamic shared memory, one block at a time
}

#include "kernels/moments_kernel.cuh"

using namespace dyn;

namespace {

// The update RunningNorm ran before (one thread per feature): Welford within the batch, then Chan's merge.
struct SerialNorm {
  std::vector<double> mean, var;
  double count = 1e-4;
  explicit SerialNorm(int dim) : mean(size_t(dim), 0.0), var(size_t(dim), 1.0) {}
  void update(const std::vector<float>& x, int64_t rows) {
    const int d = int(mean.size());
    for (int k = 0; k < d; ++k) {
      double m = 0, m2 = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const double v = x[size_t(r * d + k)], delta = v - m;
        m += delta / double(r + 1);
        m2 += delta * (v - m);
      }
      const double vb = m2 / double(rows), n_b = double(rows), n = count + n_b, delta = m - mean[size_t(k)];
      mean[size_t(k)] += delta * n_b / n;
      var[size_t(k)] = (var[size_t(k)] * count + vb * n_b + delta * delta * count * n_b / n) / n;
    }
    count += double(rows);
  }
};

// A batch [rows, dim] with per-column offsets and scales far from (0, 1), so cancellation would show.
std::vector<float> batch(int64_t rows, int dim, uint32_t seed) {
  std::vector<float> x = randn<float>(size_t(rows) * dim, seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int k = 0; k < dim; ++k)
      x[size_t(r * dim + k)] = 1000.0f * float(k % 3) + (0.5f + float(k % 5)) * x[size_t(r * dim + k)];
  return x;
}

}  // namespace

TEST(RunningNorm, ParallelMomentsMatchTheSerialWelford) {
  // dims: the reward scale (1), gridworld and physics policy inputs, and more columns than a block has threads;
  // batches of one row, one rollout step, one chunk exactly, and many chunks
  for (int dim : {1, 6, 49, 300}) {
    RunningNorm norm(Backend::cpu, dim);
    SerialNorm ref(dim);
    uint32_t seed = 10;
    for (int64_t rows : {int64_t(1), int64_t(16), int64_t(512), int64_t(960), int64_t(70001)}) {
      if (dim == 300 && rows > 1000) continue;  // keeps the test short; 960 rows already span two chunks
      const std::vector<float> x = batch(rows, dim, seed++);
      const auto xb = Buffer<float>::copy_of(Backend::cpu, x);
      norm.update(xb.data(), rows);
      ref.update(x, rows);
      const std::vector<double> s = norm.stats();
      double worst = 0;
      for (int k = 0; k < dim; ++k) {
        worst =
            std::fmax(worst, std::fabs(s[size_t(k)] - ref.mean[size_t(k)]) / (1.0 + std::fabs(ref.mean[size_t(k)])));
        worst = std::fmax(worst, std::fabs(s[size_t(dim + k)] - ref.var[size_t(k)]) / ref.var[size_t(k)]);
      }
      // both in double; measured ≤ 2.1e-13 relative (unshifted sums of squares would lose ~1e-9 on the offset columns)
      EXPECT_LT(worst, 5e-12) << "dim " << dim << " rows " << rows;
      EXPECT_EQ(s[size_t(2 * dim)], ref.count);
    }
  }
}

TEST(RunningNorm, ChunksCoverEveryRowOnce) {
  for (int64_t rows :
       {int64_t(1), int64_t(511), int64_t(512), int64_t(513), int64_t(131072), int64_t(245760), int64_t(1) << 31}) {
    const int64_t chunk = moment_chunk_rows(rows);
    const int chunks = moment_chunks(rows);
    EXPECT_LE(chunks, kMaxMomentChunks);
    EXPECT_GE(chunk * chunks, rows);
    EXPECT_LT(chunk * (chunks - 1), rows);
  }
}

TEST(RunningNorm, CudaKernelEmulatedMatchesCpuPath) {
  for (int dim : {1, 6, 100, 300}) {
    const int64_t rows = 3000;  // 6 chunks of 512 rows, the last partly full
    const std::vector<float> x = batch(rows, dim, 3);
    std::vector<double> shift(static_cast<size_t>(dim));
    for (int k = 0; k < dim; ++k) shift[size_t(k)] = 999.0 * (k % 3) + 0.1 * k;
    const auto xb = Buffer<float>::copy_of(Backend::cpu, x);
    const auto sb = Buffer<double>::copy_of(Backend::cpu, shift);
    const int chunks = moment_chunks(rows);
    Buffer<double> cpu(Backend::cpu, size_t(chunks) * dim * 2), emu(Backend::cpu, size_t(chunks) * dim * 2);
    column_moments(Backend::cpu, xb.data(), rows, dim, sb.data(), cpu.data());
    emulate_launch(unsigned(chunks), moments::kThreads, moments::column_moments_kernel<float>,
                   static_cast<const float*>(xb.data()), rows, dim, moment_chunk_rows(rows), chunks,
                   static_cast<const double* const*>(nullptr), static_cast<const double*>(sb.data()), emu.data());
    // the same sums in another order, in double
    const double* a = cpu.data();
    const double* e = emu.data();
    for (size_t i = 0; i < cpu.size(); ++i)
      ASSERT_NEAR(e[i], a[i], 1e-9 * (1.0 + std::fabs(a[i]))) << "dim " << dim << " entry " << i;
  }
}

// A seed batch's moments: runs side by side in one launch, each about its own shift, equal each run alone — bit for
// bit on the CPU, and to rounding from the emulated CUDA kernel's grid of runs × chunks.
TEST(RunningNorm, MomentsOfRunsEqualEachRunAlone) {
  const int runs = 3, dim = 7;
  const int64_t rows = 1100;  // 3 chunks per run, the last partly full
  const std::vector<float> x = batch(runs * rows, dim, 21);
  const auto xb = Buffer<float>::copy_of(Backend::cpu, x);
  std::vector<Buffer<double>> shift;
  std::vector<const double*> shift_of_run;
  for (int r = 0; r < runs; ++r) {
    std::vector<double> s(static_cast<size_t>(dim));
    for (int k = 0; k < dim; ++k) s[size_t(k)] = 100.0 * r + 999.0 * (k % 3);
    shift.push_back(Buffer<double>::copy_of(Backend::cpu, s));
    shift_of_run.push_back(shift.back().data());
  }
  const auto shifts = Buffer<const double*>::copy_of(Backend::cpu, shift_of_run);
  const int chunks = moment_chunks(rows);
  const size_t per_run = size_t(chunks) * dim * 2;
  Buffer<double> batched(Backend::cpu, runs * per_run), emu(Backend::cpu, runs * per_run), alone(Backend::cpu, per_run);
  column_moments_of_runs(Backend::cpu, xb.data(), rows, dim, runs, shifts.data(), batched.data());
  emulate_launch(unsigned(runs * chunks), moments::kThreads, moments::column_moments_kernel<float>,
                 static_cast<const float*>(xb.data()), rows, dim, moment_chunk_rows(rows), chunks,
                 static_cast<const double* const*>(shifts.data()), static_cast<const double*>(nullptr), emu.data());
  for (int r = 0; r < runs; ++r) {
    column_moments(Backend::cpu, xb.data() + r * rows * dim, rows, dim, shift_of_run[size_t(r)], alone.data());
    for (size_t i = 0; i < per_run; ++i) {
      const double a = alone.data()[i];
      ASSERT_EQ(batched.data()[r * per_run + i], a) << "run " << r << " entry " << i;
      ASSERT_NEAR(emu.data()[r * per_run + i], a, 1e-9 * (1.0 + std::fabs(a))) << "run " << r << " entry " << i;
    }
  }
}

// RunNorms over a seed batch (its one-launch update, normalisation and scale) equals one RunningNorm per run.
TEST(RunningNorm, SeedBatchEqualsEachRunAlone) {
  const int runs = 4, dim = 5;
  RunNorms batch_norms(Backend::cpu, dim, runs);
  std::vector<RunningNorm> alone;
  for (int r = 0; r < runs; ++r) alone.emplace_back(Backend::cpu, dim);
  uint32_t seed = 40;
  for (int64_t n : {int64_t(16), int64_t(700), int64_t(3)}) {  // one chunk, two chunks, a few rows
    std::vector<float> x = batch(runs * n, dim, seed++);
    for (size_t i = 0; i < x.size(); ++i) x[i] *= 1.0f + float(i / size_t(n * dim));  // the runs' data differ
    const auto xb = Buffer<float>::copy_of(Backend::cpu, x);
    batch_norms.update(xb.data(), n);
    Buffer<float> normalized(Backend::cpu, x.size()), scaled(Backend::cpu, x.size());
    batch_norms.normalize(xb.data(), normalized.data(), n);
    batch_norms.scale(xb.data(), scaled.data(), n);
    Buffer<float> one(Backend::cpu, size_t(n * dim));
    for (int r = 0; r < runs; ++r) {
      const float* xr = xb.data() + r * n * dim;
      alone[size_t(r)].update(xr, n);
      EXPECT_EQ(batch_norms[r].stats(), alone[size_t(r)].stats()) << "run " << r << ", " << n << " rows";
      alone[size_t(r)].normalize(xr, one.data(), n);
      for (int64_t i = 0; i < n * dim; ++i) ASSERT_EQ(normalized.data()[r * n * dim + i], one.data()[i]) << r;
      alone[size_t(r)].scale(xr, one.data(), n);
      for (int64_t i = 0; i < n * dim; ++i) ASSERT_EQ(scaled.data()[r * n * dim + i], one.data()[i]) << r;
    }
  }
  EXPECT_NE(batch_norms[0].stats(), batch_norms[1].stats());  // each run kept its own
}
