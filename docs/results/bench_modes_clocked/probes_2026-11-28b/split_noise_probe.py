import sys, functools
import dhal.policies.bench_modes as bm
from dhal.policies.mode_split import SplitConfig
seed=int(sys.argv[1]); noise=float(sys.argv[2])
bm.SplitConfig = functools.partial(SplitConfig, noise=noise)
cfg=bm.BenchModesConfig(clocked_guard=True, assignment="posterior", learned_noise=True, test_sequences=256,
  decoder_sees_frame=True, kl_weight=0.9, kl_mean_over_modes=True, state_dim=12, jump_prob=0.002, seed=seed,
  split_dead_modes=True, baseline=False, progress=False)
r=bm.run_modes_benchmark(cfg)
print(noise, r.accuracy, r.runs[3].state_error, r.runs[3].occupancy, r.runs[3].splits)
