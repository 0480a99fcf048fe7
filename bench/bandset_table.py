"""The bandset experiment table: which S2 bandset layout keeps quality at what cost (nbs/42_tasks.bandset).

Nine presets of the `bandset` task (single bandset of 12 bands, without 60 m, 10 m only, two bandsets, three
bandsets unmerged, merged before the transformer, merged after the second of four blocks, band dropout 0.3,
random band dropout U(0, 0.3)), each trained with the task's defaults on two seeds (data and model: `seed=s data.seed=s`). Two parts:

- `--quality`: every (preset, seed) is one `fit` of the task, validated once at the end; from its summary the
  table keeps the probe protocol of the pretrained encoder (kNN and linear at 1 / 10 / 100 % of the labels, with
  standard errors, and per-group accuracies at 100 %), the random-init encoder of the same preset, the mean
  spectrum, and for the three-bandset preset the supervised encoder (the ceiling). Runs go `--jobs` at a time, one
  thread each (`OMP_NUM_THREADS=1`); they are not timed.
- `--timing`: in one process, interleaved repeats time every preset's encoder alone (every token visible, what the
  probe and inference pay) and a whole training step (both losses, backward, AdamW, EMA update) on one batch of the
  default size; the fastest of the repeats (other processes only ever add time; medians are kept beside them),
  and ratios to the three-bandset preset. Run it alone on the machine:
  `flock /tmp/bench.lock python bench/bandset_table.py --timing` (any lock file works elsewhere).

Both parts merge into `bench/results/bandset_table.json` (`--out`), which nbs/42_tasks.bandset renders. Run time
on 2 CPU cores: `--quality --jobs 2` took 62 minutes on a machine shared with other jobs (load 13-18; 18 runs of
3.5-12 minutes, two at a time), `--timing` 40 s; `--quick` (tiny data, 4 steps, one seed) about 3 minutes.
"""
import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

from bandset_common import add_worker_args, run_worker, run_workers

ROWS = {   # table row -> preset (None: the task's defaults, three bandsets unmerged)
    'single bandset (12 bands)': 'single_bandset_cross_random_masked_neg',
    'single, no 60 m (10 bands)': 'single_bandset_no60m_cross_random_masked_neg',
    '10 m only (4 bands)': 'single_bandset_10m_only_cross_random_masked_neg',
    'two bandsets (10 m, 20 m)': 'two_bandset_cross_random_masked_neg',
    'three bandsets, unmerged': None,
    'three, merged before the transformer': 'merged_bandsets_cross_random_masked_neg',
    'three, merged after block 2 of 4': 'midlayer_merged_bandsets_cross_random_masked_neg',
    'single + band dropout 0.3': 'single_bandset_band_dropout_cross_random_masked_neg',
    'single + band dropout U(0, 0.3)': 'single_bandset_all12_random_band_dropout_cross_random_masked_neg',
}
REFERENCE = 'three bandsets, unmerged'
SEEDS = (0, 1)
QUICK = ['data.n_train=64', 'data.n_val=64', 'data.probe_train=64', 'train.max_steps=4', 'train.batch_size=16',
         'baselines.supervised_steps=4']
OUT = Path(__file__).parent/'results'/'bandset_table.json'


def overrides(row:str, seed:int, quick:bool)->list:
    ov = [f'seed={seed}', f'data.seed={seed}', 'train.progress=false', 'train.val_every=1000000',
          f'baselines.supervised={str(row == REFERENCE).lower()}']
    return ov + (QUICK if quick else [])


def one_run(row:str, seed:int, quick:bool)->dict:
    "Train one (preset, seed) with the task's own loop; the parts of its summary the table needs"
    from geoformers.train.config import resolve_config
    from geoformers.train.loop import fit
    from geoformers.train.tasks import get_task
    task = get_task('bandset')
    cfg = resolve_config(task, ROWS[row], overrides(row, seed, quick))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        s = fit(task, cfg, tmp)
    return dict(row=row, preset=ROWS[row], seed=seed, wall_s=round(time.time() - t0, 1), steps=s['steps'],
                pretrained={k: v for k, v in s['metrics'].items() if not k.startswith(('loss', 'patch', 'info'))},
                final_loss=s['metrics'].get('loss'), baselines=s['baselines'], sanity=s.get('sanity'),
                tokens_per_sample=s['tokens_per_sample']['after_merge'])


def quality(jobs:int, quick:bool, rows:list)->list:
    "Every (row, seed) as a subprocess (one thread each), `jobs` at a time"
    todo = [(r, s) for r in rows for s in (SEEDS[:1] if quick else SEEDS)]
    results = []
    for r, s, run in run_workers(__file__, todo, jobs, quick):
        results.append(run)
        print(f"done: {r} seed {s} ({run['wall_s']} s)", flush=True)
    return results


def timing(quick:bool, repeats:int=7)->dict:
    "Fastest encoder and training-step time of every preset on one default batch, interleaved; ratios to REFERENCE"
    import torch
    from geoformers.data.multispectral import collate_scenes
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    task = get_task('bandset')
    fns = {}
    for row, preset in ROWS.items():
        cfg = resolve_config(task, preset, ['data.n_train=64', 'data.n_val=8', 'data.probe_train=64'])
        torch.manual_seed(0)
        m = task.model(cfg).train()
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-3)
        b = collate_scenes([task.data(cfg)['train'][i] for i in range(4 if quick else cfg.train.batch_size)])
        def step(m=m, opt=opt, b=b, cfg=cfg):
            task.loss(m, b, cfg)['loss'].backward()
            opt.step()
            opt.zero_grad()
            task.after_step(m, cfg, 0)
        @torch.no_grad()
        def encode(m=m, b=b):
            m.encoder.eval()(b)
            m.encoder.train()
        fns[row] = dict(encoder=encode, train_step=step)
    for f in fns.values():                                               # warm-up
        f['encoder']()
        f['train_step']()
    times = {r: {w: [] for w in f} for r, f in fns.items()}
    for _ in range(2 if quick else repeats):
        for r, f in fns.items():
            for w, g in f.items():
                t0 = time.perf_counter()
                g()
                times[r][w].append(time.perf_counter() - t0)
    med = {r: {w: statistics.median(v) for w, v in t.items()} for r, t in times.items()}
    best = {r: {w: min(v) for w, v in t.items()} for r, t in times.items()}
    return dict(threads=torch.get_num_threads(), repeats=2 if quick else repeats,
                batch=4 if quick else 32, seconds=best, median_seconds=med,
                ratios={r: {w: round(t[w] / best[REFERENCE][w], 3) for w in t} for r, t in best.items()})


def _mean_se(vals:list, ses:list)->tuple:
    "Mean of per-seed accuracies and the standard error of that mean (independent seeds)"
    return statistics.fmean(vals), math.sqrt(sum(s * s for s in ses)) / len(ses)


def summarise(runs:list)->dict:
    "Per row: every probe metric averaged over seeds (with the standard error of the mean) and per seed"
    keys = [k for k in runs[0]['pretrained'] if not k.endswith('_se') and '/' not in k]
    out = {}
    for row in ROWS:
        rs = sorted((r for r in runs if r['row'] == row), key=lambda r: r['seed'])
        if not rs: continue
        row_out = dict(preset=rs[0]['preset'], tokens_per_sample=rs[0]['tokens_per_sample'],
                       seeds=[r['seed'] for r in rs], wall_s=[r['wall_s'] for r in rs])
        for name, get in (('pretrained', lambda r: r['pretrained']),
                          ('random_init', lambda r: r['baselines']['random_init'])):
            row_out[name] = {}
            for k in keys:
                m, se = _mean_se([get(r)[k] for r in rs], [get(r)[f'{k}_se'] for r in rs])
                row_out[name][k] = dict(mean=round(m, 4), se=round(se, 4), per_seed=[round(get(r)[k], 4) for r in rs])
            row_out[name]['groups'] = {k: [round(get(r)[k], 4) for r in rs] for k in get(rs[0]) if '/' in k}
        row_out['sanity_passes'] = [r['sanity']['passes'] for r in rs if r.get('sanity')]
        out[row] = row_out
    refs = {}
    for name in ('mean_spectrum', 'supervised'):
        by_seed = {r['seed']: r for r in runs if name in r['baselines']}   # the same scenes for every row
        rs = [by_seed[s] for s in sorted(by_seed)]
        if not rs: continue
        refs[name] = {}
        for k in keys:
            m, se = _mean_se([r['baselines'][name][k] for r in rs], [r['baselines'][name][f'{k}_se'] for r in rs])
            refs[name][k] = dict(mean=round(m, 4), se=round(se, 4), per_seed=[round(r['baselines'][name][k], 4)
                                                                               for r in rs])
        refs[name]['groups'] = {k: [round(r['baselines'][name][k], 4) for r in rs]
                                for k in rs[0]['baselines'][name] if '/' in k}
    return dict(rows=out, references=refs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quality', action='store_true', help='train every preset on both seeds')
    ap.add_argument('--timing', action='store_true', help='time every preset (run it alone)')
    ap.add_argument('--jobs', type=int, default=2, help='quality runs at a time')
    ap.add_argument('--rows', nargs='*', default=list(ROWS), help='table rows to (re)run')
    ap.add_argument('--quick', action='store_true', help='tiny data and 4 steps, one seed: checks the bench')
    ap.add_argument('--summarise', action='store_true', help='only recompute the table from the stored runs')
    ap.add_argument('--out', default=None, help=f'JSON to merge the results into (default {OUT})')
    add_worker_args(ap)
    a = ap.parse_args()
    if run_worker(a, one_run):
        return
    out = Path(a.out or (OUT.with_name('bandset_table_quick.json') if a.quick else OUT))
    res = json.loads(out.read_text()) if out.exists() else {}
    t0 = time.time()
    if a.summarise: res.update(table=summarise(res['runs']))
    if a.quality:
        runs = [r for r in res.get('runs', []) if r['row'] not in a.rows] + quality(a.jobs, a.quick, a.rows)
        res.update(runs=runs, table=summarise(runs), quality_wall_s=round(time.time() - t0),
                   quality_date=time.strftime('%Y-%m-%d'))
    if a.timing:
        t1 = time.time()
        res.update(timing=timing(a.quick), timing_wall_s=round(time.time() - t1), timing_date=time.strftime('%Y-%m-%d'))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps({k: v for k, v in res.items() if k not in ('runs', 'table')}, indent=1, default=float))


if __name__ == '__main__':
    main()
