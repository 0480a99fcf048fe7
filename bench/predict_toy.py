"""Wall time and peak memory of `geoformers_predict` for the toy task.

    python bench/predict_toy.py [--quick] [--rows N]

Trains a 40-step toy run in a scratch folder, then times, each in a fresh process:
`geoformers_predict --help` (the baseline: interpreter, torch and geoformers imports),
`geoformers_predict RUN` on the run's default data (its 128 validation rows), and
`geoformers_predict RUN --data rows.csv` on `--rows` rows (default 200,000; 20,000 with --quick).
Memory is the process's peak resident set size. Prints one JSON object. Deterministic data; about
1 min (20 s with --quick) on 2 cores.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# run a module as `python -m` does, then report this process's peak RSS (KiB on Linux)
WRAP = """import resource, runpy, sys
mod, sys.argv = sys.argv[1], [sys.argv[1]] + sys.argv[2:]
try: runpy.run_module(mod, run_name='__main__', alter_sys=True)
except SystemExit as e: assert not e.code, e.code
print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def timed(module, *args, cwd, repeat=3) -> dict:
    "Best wall time (s) over `repeat` fresh processes running `python -m module args`, and peak RSS"
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    best, peak = None, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, '-c', WRAP, module, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=env,
        )
        dt = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr[-2000:]
        kib = int(r.stderr.strip().splitlines()[-1].split()[1])
        best, peak = dt if best is None else min(best, dt), max(peak, kib)
    return dict(wall_s=round(best, 3), peak_rss_mib=round(peak / 1024, 1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true')
    p.add_argument('--rows', type=int, default=None)
    a = p.parse_args()
    rows = a.rows or (20_000 if a.quick else 200_000)
    tmp = Path(tempfile.mkdtemp())
    r = subprocess.run(
        [
            sys.executable,
            '-m',
            'geoformers.train.cli',
            'toy',
            '--out',
            'run',
            '--max_steps',
            '40',
            '--set',
            'train.progress=false',
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f'x{i}': rng.normal(size=rows) for i in range(8)})
    df.to_csv(tmp / 'rows.csv', index=False)
    res = dict(rows=rows, quick=a.quick)
    res['baseline_predict_help'] = timed('geoformers.predict', '--help', cwd=tmp)
    res['predict_default_data_128_rows'] = timed(
        'geoformers.predict', 'run', '--out', 'val.csv', '--overwrite', cwd=tmp
    )
    res[f'predict_csv_{rows}_rows'] = timed(
        'geoformers.predict',
        'run',
        '--data',
        'rows.csv',
        '--out',
        'pred.csv',
        '--overwrite',
        '--batch_size',
        '4096',
        cwd=tmp,
    )
    print(json.dumps(res, indent=2))


if __name__ == '__main__':
    main()
