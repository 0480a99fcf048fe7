"""Wildfire experiments: every model variant on the task's own benchmark, several seeds and simulator draws.

Each run is `geoformers_train wildfire` with baselines off and the variant's `--set` overrides, in its own process
(`train.num_threads=1`), so that `summary.json`'s `cost` holds the process CPU seconds of that model alone.
Runs go `--jobs` at a time
finished runs (a `summary.json` in their folder) are reused, so the script can be
stopped and restarted. Prints one JSON line per run and, at the end, a table of mean ± std per variant.

    python bench/wildfire_experiments.py --variants ember_st4 unet_stacked --seeds 0 1 --sim_seeds 0 1 --jobs 2
    # is the gain the transformer's or the refinement UNet's? the default, without attention, without the transformer
    python bench/wildfire_experiments.py --variants ember_v1_u16 ember_last refine_only refine_only_h22
    # 1 epoch, 2 variants, one seed: a smoke test (~2 min)
    python bench/wildfire_experiments.py --quick

Run time: one 8-epoch run takes 60-250 s of CPU depending on the variant (see the `train_cpu_s` column).
"""

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wildfire_common import mean_std, scores, train

# the defaults before this round
OLD = ['model.decoder=unet', 'model.skip_wind=false', 'model.refine=conv']
VARIANTS = {
    # the previous default: per-patch temporal attention, patch 8, UNet patch-grid decoder, conv refinement
    'ember_v1': OLD,
    # factorised space-time attention (dates, then patches), patch 8 or 4
    'ember_st8': OLD + ['model.space=true'],
    'ember_st4_wr3': OLD
    + ['model.space=true', 'model.patch=4', 'model.skip_wind=true', 'model.ref_depth=3'],
    # + the day's wind in the pixel skip, a deeper and wider conv refinement
    'ember_v1_wr3': OLD + ['model.skip_wind=true', 'model.ref_depth=3'],
    'ember_st8_wr3': OLD + ['model.space=true', 'model.skip_wind=true', 'model.ref_depth=3'],
    'ember_st8_wr3_h24': OLD
    + ['model.space=true', 'model.skip_wind=true', 'model.ref_depth=3', 'model.ref_hidden=24'],
    # a pixel UNet around the patch grid (refine: unet), light patch-grid decoder: 'ember_v1_u16' is the new default
    'ember_v1_u16': ['model.skip_wind=true', 'model.refine=unet', 'model.decoder=light'],
    'ember_st8_u16': [
        'model.space=true',
        'model.skip_wind=true',
        'model.refine=unet',
        'model.decoder=light',
    ],
    'ember_st8_u12': [
        'model.space=true',
        'model.skip_wind=true',
        'model.refine=unet',
        'model.decoder=light',
        'model.ref_hidden=12',
    ],
    # what the transformer adds: the default with its attention removed ('last': each patch's last-date
    # token) or with no patch features at all ('none': the refinement UNet alone), and that UNet widened to
    # EmberFormer's parameter count
    'ember_last': ['model.encoder=last'],
    'refine_only': ['model.encoder=none'],
    'refine_only_h22': ['model.encoder=none', 'model.ref_hidden=22'],
    # baselines trained on their own
    'unet_last_frame': ['model.name=unet_last_frame'],
    'unet_stacked': ['model.name=unet_stacked'],
    'unet_stacked_16': ['model.name=unet_stacked', 'model.stack_hidden=16'],
    'utae': ['model.name=utae'],
}
COLLECT = False
OFF = [
    'baselines.unet_last_frame=false',
    'baselines.unet_stacked=false',
    'baselines.utae=false',
]


def run(variant, seed, sim_seed, epochs, root, extra=()):
    tag = f'{variant}_s{seed}_d{sim_seed}_e{epochs}' + (
        '_' + '_'.join(extra).replace('=', '-') if extra else ''
    )
    out = Path(root) / tag
    if not (out / 'summary.json').exists() and COLLECT:
        return dict(variant=variant, seed=seed, sim_seed=sim_seed, error='not run (--collect)')
    if not (out / 'summary.json').exists():
        sets = [*OFF, *VARIANTS[variant], f'seed={seed}', f'data.sim_seed={sim_seed}']
        r = train(out, [*sets, f'train.epochs={epochs}', *extra], threads=1)
        if r.returncode or not (out / 'summary.json').exists():
            err = r.stderr[-800:] or 'no summary'
            return dict(variant=variant, seed=seed, sim_seed=sim_seed, error=err)
    s = json.loads((out / 'summary.json').read_text())
    cost = s['cost'][s['config']['model']['name']]
    m = s['metrics']
    rec = dict(
        variant=variant,
        seed=seed,
        sim_seed=sim_seed,
        epochs=epochs,
        extra=list(extra),
        **scores(m),
        params=cost['params'],
        train_cpu_s=cost['train_cpu_s'],
    )
    print(json.dumps(rec), flush=True)
    return rec


def table(recs):
    by = {}
    for r in recs:
        if 'error' in r:
            continue
        by.setdefault((r['variant'], r['epochs'], tuple(r['extra'])), []).append(r)
    print("| variant | epochs | runs | params | F1 | AP | new_f1 | train CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (v, e, x), rs in sorted(
        by.items(), key=lambda kv: -statistics.mean(r['f1'] for r in kv[1])
    ):
        ms = lambda k: mean_std(rs, k)
        name = v + (' ' + ' '.join(x) if x else '')
        print(
            f"| {name} | {e} | {len(rs)} | {rs[0]['params'] / 1e3:.0f}K | {ms('f1')} | {ms('ap')} | {ms('new_f1')} | "
            f"{statistics.mean(r['train_cpu_s'] for r in rs):.0f} |"
        )


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--variants', nargs='+', default=['ember_v1_u16', 'unet_stacked'])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--sim_seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--epochs', nargs='+', type=int, default=[8])
    p.add_argument('--set', nargs='*', default=[], help='extra overrides for every run')
    p.add_argument('--jobs', type=int, default=2)
    p.add_argument('--root', default='runs/wildfire_experiments')
    p.add_argument('--quick', action='store_true')
    p.add_argument('--collect', action='store_true', help='only read finished runs, train nothing')
    p.add_argument('--json', default=None, help='also write the records to this JSON file')
    a = p.parse_args()
    COLLECT = a.collect
    if a.quick:
        a.variants, a.seeds, a.sim_seeds, a.epochs = ['ember_v1_u16', 'unet_stacked'], [0], [0], [1]
    jobs = [
        (v, s, d, e) for e in a.epochs for s in a.seeds for d in a.sim_seeds for v in a.variants
    ]
    with ThreadPoolExecutor(a.jobs) as ex:
        recs = list(ex.map(lambda j: run(*j, a.root, tuple(a.set)), jobs))
    if a.json:
        Path(a.json).write_text(json.dumps([r for r in recs if 'error' not in r], indent=1))
    for r in recs:
        if 'error' in r:
            print('FAILED', r['variant'], r['seed'], r['sim_seed'], r['error'], file=sys.stderr)
    table(recs)
