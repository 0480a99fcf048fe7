"""What bench/wildfire.py and bench/wildfire_experiments.py share: one `geoformers_train wildfire` run in its
own process, the scores they keep of it, and the mean ± std cell of their tables. Not a bench on its own."""

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

TRAIN = [sys.executable, '-m', 'geoformers.train.cli', 'wildfire']
SCORES = ('f1', 'ap', 'new_f1', 'iou')


def train(out, sets, threads=None) -> subprocess.CompletedProcess:
    "`geoformers_train wildfire --out OUT --set SETS` (an unfinished folder is cleared first); `threads` pins CPU"
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
        sets = [*sets, f'train.num_threads={threads}']
    cmd = [*TRAIN, '--out', str(out), '--set', 'train.progress=false', *sets]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def scores(metrics: dict, *more) -> dict:
    "The metrics a results table keeps (`SCORES` and `more`)"
    return {k: metrics[k] for k in (*SCORES, *more)}


def mean_std(rs, key) -> str:
    "`mean ± std` of `key` over the records `rs`, three decimals"
    xs = [r[key] for r in rs]
    return f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}"
