"""How much a linear probe on the `bandset` encoder can gain: a supervised bound, and per-band standardised inputs.

Runs the `bandset` task through its own loop, then prints its probes (`linear_100`, `knn_10`) next to the
`random_init` and `mean_spectrum` baselines of the same run (nbs/42a, *The cover family*). The figures quoted there
were measured on the cover family, with a ridge probe on 512 labelled scenes, by this script as of commit 275e4de;
today's equivalent is `--set data.labels=cover data.modalities=[s2,landsat] model.standardise=false
model.contrastive_weight=0 data.n_val=1024 baselines.supervised=false` (the probe is now the protocol of
`53_metrics.probes`):
- `--supervised`: the training loss is the cross-entropy of a linear head on the pooled embedding (all tokens
  visible) instead of LatentMIM: the bound a probe on this encoder can reach at the same budget.
- standardised inputs are the task's own option, `--set model.standardise=true` (the trained model and the
  random-init baseline alike; `mean_spectrum` stays raw).
It also prints, at initialisation, how much of a token is patch content and how much composite encodings, and the
probe and loss at every evaluation. Any `--set` override of the task goes after the flags. About 65 s per
default-sized run on 2 CPU cores, e.g.
`python bench/bandset_headroom.py --set model.standardise=true data.n_val=1024 seed=1 data.seed=1`.
"""
import argparse
import json
import tempfile

import torch
import torch.nn.functional as F
from torch import nn
from geoformers.data.multispectral import collate_scenes

from geoformers.data.multispectral import class_names
from geoformers.models.bandset import BandsetEncoder
from geoformers.models.bandset_tokens import MaskValue
from geoformers.models.latentmim import LatentMIM
from geoformers.train.config import resolve_config
from geoformers.train.loop import fit
from geoformers.train.run_log import read_metrics
from geoformers.train.tasks import get_task

def supervise(task):
    "Patch LatentMIM's loss to the cross-entropy of a linear head (added by the task's model) on the pooled embedding"
    def forward(self, batch):
        ce = F.cross_entropy(self.head(self.encoder(batch)['pooled']), batch['label'])
        return dict(patch_disc=ce, infonce=ce.new_zeros(()), loss=ce)
    LatentMIM.forward = forward

@torch.no_grad()
def token_composition(enc:BandsetEncoder, batch:dict)->dict: # root mean square per channel of valid tokens
    "Patch content against composite encodings in the encoder's input tokens, and the content's spread across scenes"
    toks, masks = enc.tokenize(batch)
    out = {}
    for m, t in toks.items():
        e = enc.encodings(m, t.shape[:-1], batch['months'])
        ok = masks[m] != MaskValue.MISSING
        c = (t - e)[ok]
        out[m] = dict(content_rms=round(float(c.pow(2).mean().sqrt()), 3), encodings_rms=round(float(e[ok].pow(2).mean().sqrt()), 3),
                      content_spread=round(float(c.std(0).mean()), 3))
    return out

def main(supervised:bool, overrides:list):
    task = get_task('bandset')
    cfg = resolve_config(task, None, ['train.progress=false', *overrides])
    if supervised: supervise(task)
    model, init = task.model, {}
    def patched_model(cfg):                  # fit builds the data first: its probe scenes are reused, not regenerated
        labelled, first = task.probe_sets(cfg)[0], not init
        m = model(cfg)
        if supervised: m.head = nn.Linear(m.encoder.dim, len(class_names(cfg.data.labels)))
        if first:                            # the model that trains, at initialisation
            init.update(token_composition(m.encoder, collate_scenes(labelled[:64])))
            print('tokens at init:', json.dumps(init))
        return m
    task.model = patched_model
    with tempfile.TemporaryDirectory() as tmp:
        s = fit(task, cfg, tmp)
        for r in read_metrics(tmp):
            if 'linear_100' in r:
                print(f"step {r['step']:4d}  loss {r['loss']:.3f}  linear_100 {r['linear_100']:.3f}  "
                      f"knn_10 {r['knn_10']:.3f}")
    b = s['baselines']
    print(json.dumps(dict(supervised=supervised, standardise=cfg.model.standardise, overrides=overrides, steps=s['steps'],
                          **{f'{k}': round(s['metrics'][k], 3) for k in ('linear_100', 'knn_10')},
                          random_init={k: round(b['random_init'][k], 3) for k in ('linear_100', 'knn_10')},
                          mean_spectrum={k: round(b['mean_spectrum'][k], 3) for k in ('linear_100', 'knn_10')},
                          runtime_s=round(s['runtime_s']))))

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--supervised', action='store_true')
    ap.add_argument('--set', nargs='*', default=[])
    a = ap.parse_args()
    main(a.supervised, a.set)
