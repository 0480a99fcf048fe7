"""The wildfire task's results table: `geoformers_train wildfire` (the default config: EmberFormer, persistence, the
last-frame and the stacked UNet; the U-TAE-style baseline is off by default, see bench/wildfire_experiments.py
--variants utae) on several seeds and simulator draws, plus the run time, peak memory and predict cost of one
default run.

    # seeds 0 1 x data.sim_seed 0 1, 4 runs 2 at a time -> table
    python bench/wildfire.py
    # one default run, timed (wall, CPU, peak memory), then predict
    python bench/wildfire.py --time
    # every model of those runs zero-shot on the 12 real NDWS tiles
    python bench/wildfire.py --ndws
    # 1 epoch, one seed: a smoke test (about 2 min of CPU)
    python bench/wildfire.py --quick

Each run writes `runs/wildfire_bench/s{seed}_d{sim_seed}/` (reused when its summary.json exists) and the script
writes `bench/wildfire_results.json`, which the task notebook's results table is generated from.
Run time: one default run (the config's `train.num_threads: 1`) took 205 s of CPU and 220 s of wall time in
`--time` on a busy 2-core machine (EmberFormer 64 s, the stacked UNet 95 s, the last-frame UNet 41 s); with two
threads the same run took 854 s of CPU and 896 s of wall time there. `--time` runs the default config as a user
would, so run it alone (`flock`) on a quiet machine.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wildfire_common import mean_std, scores, train

HERE = Path(__file__).parent
ASSEMBLE = False  # --assemble: read unfinished run folders instead of training again
CPU_RUNS = None  # --cpu_runs: folder of bench/wildfire_experiments.py runs with EmberFormer's CPU time
ORDER = ['emberformer', 'unet_stacked', 'utae', 'unet_last_frame', 'persistence']


def run(seed, sim_seed, root, extra=(), threads=1):
    out = Path(root) / f's{seed}_d{sim_seed}'
    if ASSEMBLE and out.exists() and not (out / 'summary.json').exists():
        return assemble(out, seed, sim_seed)
    if not (out / 'summary.json').exists():
        r = train(out, [f'seed={seed}', f'data.sim_seed={sim_seed}', *extra], threads)
        if r.returncode:
            raise SystemExit(f'run {out} failed:\n{r.stderr[-3000:]}')
    if not (out / 'summary.json').exists():
        return assemble(out, seed, sim_seed)
    s = json.loads((out / 'summary.json').read_text())
    rows = {s['config']['model']['name']: s['metrics'], **s['baselines']}
    return dict(
        seed=seed,
        sim_seed=sim_seed,
        run=str(out),
        models={
            k: dict(
                scores(m),
                params=s['cost'].get(k, {}).get('params'),
                train_cpu_s=s['cost'].get(k, {}).get('train_cpu_s'),
            )
            for k, m in rows.items()
            if 'f1' in m  # a baseline stopped by a signal has no metrics
        },
    )


def assemble(out, seed, sim_seed):
    """A run's record from its folder when it has no summary.json (stopped before the end): EmberFormer's last
    validation in metrics.jsonl, each finished baseline's own summary.json, persistence evaluated here"""
    import torch
    from geoformers.baselines.wildfire import Persistence
    from geoformers.core import count_params
    from geoformers.train.config import resolve_config
    from geoformers.train.evaluation import evaluate, make_loader
    from geoformers.train.tasks import get_task

    out = Path(out)
    task = get_task('wildfire')
    cfg = resolve_config(task, base=json.loads((out/'config.json').read_text()))
    val = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines() if '"val"' in l][-1]
    cpu = None  # EmberFormer's CPU was not recorded: take it from a standalone run of the same config, if any
    alone = Path(CPU_RUNS or '.') / f'ember_v1_u16_s{seed}_d{sim_seed}_e8' / 'summary.json'
    if CPU_RUNS and alone.exists():
        cpu = json.loads(alone.read_text())['cost']['emberformer']['train_cpu_s']
    models = {'emberformer': dict(scores(val), params=count_params(task.model(cfg)),
                                  train_cpu_s=cpu)}
    for b in ('unet_stacked', 'utae', 'unet_last_frame'):
        f = out/'baselines'/b/'summary.json'
        if not f.exists(): continue
        bs = json.loads(f.read_text())
        models[b] = dict(scores(bs['metrics']), **bs['cost'][b])
    data = task.data(cfg)
    pm = evaluate(task, Persistence(), make_loader(data['val'], cfg, data['collate']), cfg, torch.device('cpu'))
    models['persistence'] = dict(scores(pm), params=0, train_cpu_s=0.0)
    return dict(seed=seed, sim_seed=sim_seed, run=str(out), assembled=True, models=models)


def _cpu(rs):
    "Mean training CPU over the runs that recorded it, with their count when not all did"
    xs = [r['train_cpu_s'] for r in rs if r['train_cpu_s'] is not None]
    if not xs:
        return 'n/a'
    return f"{statistics.mean(xs):.0f}" + (f" ({len(xs)} run)" if len(xs) < len(rs) else '')


def table(recs, cols=('f1', 'ap', 'new_f1'), cost=True):
    "Markdown table: mean ± std over runs per model"
    head = (
        ['model']
        + (['params'] if cost else [])
        + [c.replace('f1', 'F1').replace('ap', 'AP') if c in ('f1', 'ap') else c for c in cols]
        + (['training CPU s'] if cost else [])
    )
    lines = ['| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
    for k in ORDER:
        rs = [r['models'][k] for r in recs if k in r['models']]
        if not rs:
            continue
        row = [k]
        if cost:
            row.append(f"{rs[0]['params'] / 1e3:.0f}K" if rs[0]['params'] else '0')
        row += [mean_std(rs, c) for c in cols]
        if cost:
            row.append(_cpu(rs))
        lines.append('| ' + ' | '.join(row) + ' |')
    return '\n'.join(lines)


def ndws_shard(root) -> Path:
    "The 12 real NDWS tiles written as one TFRecord shard in the official layout (features, 64x64 floats)"
    import numpy as np
    from geoformers.data.ndws import write_ndws_tfrecord
    from geoformers.data.wildfire import NDWS_CHANNELS
    from geoformers.testing import shared_data

    tiles = shared_data('wildfire', 'ndws_micro')
    if tiles is None:
        raise SystemExit('the NDWS tiles are not here')
    samples = []
    for p in sorted(tiles.rglob('*.npz')):
        z = np.load(p)
        samples.append(
            {**dict(zip(NDWS_CHANNELS, z['inputs'])), 'FireMask': z['targets'][0].astype('float32')}
        )
    out = Path(root) / 'ndws_micro.tfrecord'
    out.parent.mkdir(parents=True, exist_ok=True)
    write_ndws_tfrecord(out, samples)
    return out


def ndws(recs, root):
    "geoformers_eval of every run on the NDWS shard: EmberFormer and the run's saved baselines"
    shard = ndws_shard(root)
    out = []
    for r in recs:
        cmd = ['geoformers_eval', r['run'], '--data', str(shard), '--overwrite']
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f'{cmd} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}')
        e = json.loads((Path(r['run']) / 'eval-ndws_micro.json').read_text())
        rows = {'emberformer': e['metrics'], **e['baselines']}
        out.append(
            dict(
                seed=r['seed'],
                sim_seed=r['sim_seed'],
                run=r['run'],
                note=e['note'],
                printed=p.stdout,
                models={
                    k: dict(
                        scores(m, 'precision', 'recall'),
                        params=None,
                        train_cpu_s=None,
                    )
                    for k, m in rows.items()
                    if 'f1' in m
                },
            )
        )
    return out


def timed(root):
    "One default run as a user runs it: wall, CPU, peak memory; then predict on its validation fires"
    out = Path(root) / 'timed'
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = train(out, [])
    if r.returncode:
        raise SystemExit(f'run {out} failed:\n{r.stderr[-3000:]}')
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cost = dict(
        wall_s=round(time.time() - t0, 1),
        cpu_s=round(c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime, 1),
        peak_rss_mb=round(c1.ru_maxrss / 1024),
    )
    code = (
        "import json,resource,time,torch; from geoformers.train.tasks import get_task; "
        "from geoformers.train.settings import as_config; "
        "from geoformers.train.checkpoint import load_checkpoint; "
        f"run='{out}'; t=get_task('wildfire'); cfg=as_config(json.load(open(run+'/config.json'))); "
        "m=t.model(cfg); load_checkpoint(run+'/best.pt', m); t0=time.time(); "
        "p=t.predict(m, cfg, out=run+'/pred', attrs={'run': run}); "
        "print(json.dumps(dict(wall_s=round(time.time()-t0,2), files=len(list(p.glob('*.nc'))))))"
    )
    t0 = time.time()
    r = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True)
    c2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pred = {
        **json.loads(r.stdout.strip().splitlines()[-1]),
        'process_wall_s': round(time.time() - t0, 1),
        'peak_rss_mb': round(c2.ru_maxrss / 1024),
    }
    s = json.loads((out / 'summary.json').read_text())
    return dict(train=cost, predict=pred, runtime_s=s['runtime_s'], threads=os.cpu_count())


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--sim_seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--root', default='runs/wildfire_bench')
    p.add_argument('--time', action='store_true')
    p.add_argument('--quick', action='store_true')
    p.add_argument('--ndws', action='store_true')
    p.add_argument('--assemble', action='store_true', help='use run folders stopped before their summary')
    p.add_argument('--cpu_runs', default=None, help='with --assemble: standalone runs with EmberFormer CPU')
    a = p.parse_args()
    ASSEMBLE, CPU_RUNS = a.assemble, a.cpu_runs
    if a.time:
        print(json.dumps(timed(a.root), indent=1))
        raise SystemExit
    if a.ndws:
        recs = ndws(json.loads((HERE / 'wildfire_results.json').read_text()), a.root)
        (HERE / 'wildfire_ndws.json').write_text(json.dumps(recs, indent=1))
        print(recs[0]['printed'])
        print(table(recs, ('f1', 'ap', 'precision', 'recall'), cost=False))
        raise SystemExit
    extra = ['train.epochs=1'] if a.quick else []
    if a.quick:
        a.seeds, a.sim_seeds, a.root = [0], [0], a.root + '_quick'
    jobs = [(s, d) for s in a.seeds for d in a.sim_seeds]
    with ThreadPoolExecutor(a.jobs) as ex:
        recs = list(ex.map(lambda j: run(*j, a.root, extra), jobs))
    if not a.quick:
        (HERE / 'wildfire_results.json').write_text(json.dumps(recs, indent=1))
    print(table(recs))
