"""Is the resolution scene family what it claims? The mean spectrum against supervised encoders per band group.

On `labels='resolution'` scenes (nbs/12_data.multispectral) this probes, with the task's protocol (linear and kNN
at 100 % of 1024 labelled scenes, 1024 held-out scenes, per class group):
- the mean spectrum of each scene (no encoder): it should reach the spectral classes but not the 10 m structure
  classes, far below the supervised ceiling;
- an encoder of the task's default size trained on the labels (`62_baselines.bandset.train_supervised`, as many
  steps as a default run) that sees only one resolution group of S2 (`only10m`, `only20m`, `only60m`) or all three
  (`default`): each should read the groups whose bands it sees and no other.
Writes `bench/results/bandset_family.json`. Both seeds took 160 s on 2 cores at load 4-7 (four supervised
encoders of 128 steps per seed); `--quick` about 1 minute.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from geoformers.baselines.bandset import mean_spectra, train_supervised
from geoformers.data.multispectral import class_names
from geoformers.tasks.bandset_embeddings import embed_scenes
from geoformers.train.config import resolve_config
from geoformers.train.tasks import get_task

GROUPS = ('only10m', 'only20m', 'only60m', 'default')
OUT = Path(__file__).parent/'results'/'bandset_family.json'


def run(seed:int, quick:bool)->dict:
    task = get_task('bandset')
    ov = [f'seed={seed}', f'data.seed={seed}']
    if quick: ov += ['data.n_train=64', 'data.n_val=64', 'data.probe_train=64', 'train.max_steps=4']
    cfg = resolve_config(task, None, ov)
    task.data(cfg)
    tr, te = task.probe_sets(cfg)
    out = dict(seed=seed, mean_spectrum=task.probe(mean_spectra(tr)[0], mean_spectra(te)[0], cfg))
    steps = cfg.train.max_steps or cfg.train.epochs * (cfg.data.n_train // cfg.train.batch_size)
    for g in GROUPS:
        c = resolve_config(task, None, [*ov, f'model.bandsets.s2={g}'])
        torch.manual_seed(seed)
        enc = task.model(c).encoder
        t0 = time.time()
        train_supervised(enc, tr, len(class_names(c.data.labels)), steps=steps, lr=c.baselines.supervised_lr,
                         batch_size=c.train.batch_size, seed=seed)
        out[f'supervised {g}'] = task.probe(embed_scenes(enc, tr), embed_scenes(enc, te), c)
        print(g, seed, round(time.time() - t0), 's', flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seeds', nargs='*', type=int, default=[0, 1])
    ap.add_argument('--quick', action='store_true')
    a = ap.parse_args()
    t0 = time.time()
    res = dict(runs=[run(s, a.quick) for s in a.seeds[:1] if a.quick] or [run(s, False) for s in a.seeds])
    res.update(wall_s=round(time.time() - t0), date=time.strftime('%Y-%m-%d'), threads=torch.get_num_threads())
    out = OUT.with_name('bandset_family_quick.json') if a.quick else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=float))
    for r in res['runs']:
        print(json.dumps({k: {m: round(v, 3) for m, v in d.items() if m.startswith('linear_100')}
                          for k, d in r.items() if isinstance(d, dict)}))


if __name__ == '__main__':
    main()
