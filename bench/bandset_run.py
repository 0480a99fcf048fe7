"""Wall time and peak memory of the default `geoformers_train bandset` run and of `geoformers_predict` on it.

Runs, each as its own process (peak memory: GNU time's maximum resident set):
1. `geoformers_train bandset --out RUN` with the shipped defaults (the budget: under 10 minutes on 2 CPU cores);
2. `geoformers_predict RUN` on the run's validation scenes (Parquet of pooled embeddings);
3. `geoformers_predict RUN --data <the Sentinel-2 sample GeoTIFF>` (per-patch embeddings), when the sample is here.
Writes `bench/results/bandset_run.json` with the timings, the run's summary metrics and its sanity check. Time it
alone on the machine: `flock /tmp/bench.lock python bench/bandset_run.py` (any lock file works elsewhere).
About 5 minutes on a quiet 2-core machine; `--quick` (tiny data, 4 steps) under a minute.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent/'results'/'bandset_run.json'
QUICK = ['data.n_train=64', 'data.n_val=64', 'data.probe_train=64', 'train.max_steps=4']


def timed(cmd:list)->dict:
    "Run `cmd`; its wall time, peak resident memory and exit code (the last lines of output on failure)"
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir/cmd[0]) if (bin_dir/cmd[0]).exists() else cmd[0], *map(str, cmd[1:])]
    with tempfile.NamedTemporaryFile('r', suffix='.txt') as f:      # GNU time: peak RSS (KB) and wall (s)
        t0 = time.time()
        r = subprocess.run(['/usr/bin/time', '-f', '%M %e', '-o', f.name, *cmd], capture_output=True, text=True,
                           env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        wall = time.time() - t0
        peak_kb = int(f.read().split()[-2])
    if r.returncode: raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return dict(command=' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)), wall_s=round(wall, 1),
                peak_rss_mb=round(peak_kb / 1024))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    from geoformers.testing import shared_data
    res = dict(date=time.strftime('%Y-%m-%d'), cpus=os.cpu_count(), load_before=os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp)/'run'
        extra = ['--set', *QUICK] if a.quick else []
        res['train'] = timed(['geoformers_train', 'bandset', '--out', run, *extra])
        s = json.loads((run/'summary.json').read_text())
        res['metrics'] = {k: v for k, v in s['metrics'].items() if k.startswith(('knn', 'linear'))}
        res['baselines'] = {b: {k: v for k, v in m.items() if k.startswith(('knn', 'linear'))}
                            for b, m in s['baselines'].items()}
        res['sanity'] = s.get('sanity')
        res['runtime_s'] = s.get('runtime_s')
        res['predict_val'] = timed(['geoformers_predict', run, '--out', Path(tmp)/'val.parquet'])
        tif = shared_data('s2', '20201002T221611_20201002T221610_T60HWB.tif')
        if tif is not None:
            res['predict_geotiff'] = timed(['geoformers_predict', run, '--data', tif, '--out', Path(tmp)/'emb.tif'])
            res['predict_geotiff']['command'] = res['predict_geotiff']['command'].replace(str(tif), tif.name)
        for k in ('train', 'predict_val', 'predict_geotiff'):
            if k in res: res[k]['command'] = res[k]['command'].replace(tmp, 'TMP')
    res['load_after'] = os.getloadavg()
    out = OUT.with_name('bandset_run_quick.json') if a.quick else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps({k: res[k] for k in ('train', 'predict_val', 'predict_geotiff') if k in res}, indent=1))


if __name__ == '__main__':
    main()
