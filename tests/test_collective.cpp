// The ranks of a data-parallel run (kernels/collective.h; label cpu). Registered twice: under `mpirun -np 2` (two
// ranks on this machine, oversubscribed), where sums over ranks must equal the sums of both ranks' values and hold
// the same bits on every rank, a hash check must tell equal values from unequal ones, and rank 0's text must reach
// rank 1; and alone, where it is one rank (every call a no-op) and starts `mpirun -np 2` on itself with
// --abort-demo to check that one rank's abort stops the other, waiting in a reduction, with the rank's message.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "kernels/collective.h"
#include "tests/slurp.h"

using namespace dyn;

namespace {

std::string g_self;  // this executable, for the abort demo

// A value per (rank, i) whose two-rank sum rounds: the sum's bits depend on getting both addends right.
template <class T>
T value_of(int rank, int64_t i) {
  return T(1) / T(3 + i) * T(rank + 1) + T(i % 7) * T(1e-3) * T(rank ? -1 : 1);
}

uint64_t hash_bytes(const void* p, size_t n) {  // FNV-1a
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
  return h;
}

template <class T>
void expect_sum_over_ranks(Collective& c) {
  const int64_t n = 100003;  // not a multiple of anything MPI might chunk by
  std::vector<T> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = value_of<T>(c.rank(), i);
  c.allreduce_sum(Backend::cpu, x.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    T want = value_of<T>(0, i);
    for (int r = 1; r < c.size(); ++r) want += value_of<T>(r, i);
    if (c.size() == 2) {
      ASSERT_EQ(x[i], want) << "element " << i;  // two addends: one rounding, the same in either order
    } else {
      ASSERT_NEAR(x[i], want, 1e-5 * (1 + std::abs(want))) << "element " << i;
    }
  }
  EXPECT_TRUE(c.same_on_all(hash_bytes(x.data(), x.size() * sizeof(T)))) << "every rank holds the same bits";
}

}  // namespace

TEST(Collective, SumsOverRanksHoldTheSameBitsEverywhere) {
  Collective& c = Collective::world();
  if (!c.distributed()) GTEST_SKIP() << "one rank (run under mpirun -np 2 for this test)";
  EXPECT_EQ(c.size(), 2);
  expect_sum_over_ranks<float>(c);
  expect_sum_over_ranks<double>(c);
}

TEST(Collective, HashCheckTellsEqualFromUnequal) {
  Collective& c = Collective::world();
  if (!c.distributed()) GTEST_SKIP() << "one rank (run under mpirun -np 2 for this test)";
  EXPECT_TRUE(c.same_on_all(0x1234567890abcdefull));
  EXPECT_FALSE(c.same_on_all(0x1234567890abcdefull + uint64_t(c.rank())));
  EXPECT_FALSE(c.same_on_all(c.rank() == 1 ? 1ull << 63 : 0));
}

TEST(Collective, BroadcastGivesRankZerosText) {
  Collective& c = Collective::world();
  if (!c.distributed()) GTEST_SKIP() << "one rank (run under mpirun -np 2 for this test)";
  const std::string text = c.broadcast(c.rank() == 0 ? std::string(70000, 'z') + "end" : "ignored");
  EXPECT_EQ(text, std::string(70000, 'z') + "end");
}

TEST(Collective, OneRankIsANoOp) {
  Collective& c = Collective::world();
  if (c.distributed()) GTEST_SKIP() << "run alone for this test";
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  std::vector<float> x = {1.5f, -2.25f};
  c.allreduce_sum(Backend::cpu, x.data(), 2);
  EXPECT_EQ(x, (std::vector<float>{1.5f, -2.25f}));
  EXPECT_TRUE(c.same_on_all(42));
  EXPECT_EQ(c.broadcast("abc"), "abc");
}

// One rank aborts while the other waits in a reduction: the job ends (not hangs) with the abort's code and message.
TEST(Collective, AbortStopsEveryRank) {
  if (Collective::world().distributed()) GTEST_SKIP() << "run alone for this test (it starts mpirun itself)";
  if (!Collective::built_with_mpi()) GTEST_SKIP() << "built without MPI";
  const std::filesystem::path err =
      std::filesystem::temp_directory_path() / ("dyn_abort_" + std::to_string(::getpid()) + ".err");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string cmd =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 60 mpirun -np 2 "
      "--oversubscribe " +
      g_self + " --abort-demo >/dev/null 2>" + err.string();
  const int raw = std::system(cmd.c_str());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string text = slurp(err);
  std::filesystem::remove(err);
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_NE(WEXITSTATUS(raw), 0) << text;
  EXPECT_NE(WEXITSTATUS(raw), 124) << "the job hung until timeout: " << text;
  EXPECT_NE(text.find("rank 1: loss is not finite (the demo's failure)"), std::string::npos) << text;
  EXPECT_LT(secs, 30.0);
}

int main(int argc, char** argv) {
  g_self = std::filesystem::canonical("/proc/self/exe").string();
  if (argc > 1 && std::strcmp(argv[1], "--abort-demo") == 0) {
    Collective& c = Collective::world();
    if (c.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      c.abort(3, "loss is not finite (the demo's failure)");
    }
    std::vector<float> x(16, 1.0f);
    c.allreduce_sum(Backend::cpu, x.data(), 16);  // never completes: rank 1 is gone
    return 0;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
