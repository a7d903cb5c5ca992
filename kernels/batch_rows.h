// The Philox keys of a batch's rows: which seed and global env index each row of an env batch, and the policy
// samples drawn for it, are keyed by — one run's rows, a data-parallel rank's share, or a seed batch's runs side by
// side.
#pragma once

#include <cstdint>

#include "kernels/hd.h"

namespace dyn {

// An env's Philox key: its run's seed and its global index. Every random draw of an env (reset, session process,
// latent moves, scripted actions) is keyed by it, so the same key gives the same env in any batch.
struct EnvKey {
  uint32_t seed, env;
};

// Which env row i of a batch is. One run: env first_env + i of the env's own seed. A seed batch of S runs of per_run
// envs each (BatchEnv::set_runs): env first_env + i % per_run of run i / per_run's seed — the keys that run alone
// gives its envs, so S runs step in one launch exactly as S separate batches.
struct BatchRows {
  uint32_t seed = 0;  // one run's
  uint32_t first_env = 0;
  const uint32_t* seeds = nullptr;  // [S] backend memory (nullptr: one run)
  int64_t per_run = 0;
  DYN_HD int64_t run(int64_t i) const { return seeds ? i / per_run : 0; }  // the run row i belongs to
  DYN_HD EnvKey key(int64_t i) const {
    return seeds ? EnvKey{seeds[i / per_run], first_env + uint32_t(i % per_run)}
                 : EnvKey{seed, first_env + uint32_t(i)};
  }
};

}  // namespace dyn
