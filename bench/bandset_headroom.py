"""How much a linear probe on the `bandset` encoder can gain: a supervised bound and per-band standardised inputs.

Runs the `bandset` task through its own loop with up to two changes, then prints its `probe_acc` next to the
`random_init` and `mean_spectrum` baselines of the same run (nbs/35, *Headroom*):
- `--supervised`: the training loss is the cross-entropy of a linear head on the pooled embedding (all tokens
  visible) instead of LatentMIM: the bound a probe on this encoder can reach at the same budget.
- `--standardise`: every band is standardised (mean and std over the valid pixels of 256 training scenes) before the
  patch embeddings, for the trained model and the random-init baseline alike (`mean_spectrum` stays raw).
Any `--set` override of the task goes after them. About 70 s per default-sized run on 2 CPU cores, e.g.
`python bench/bandset_headroom.py --standardise --set data.n_val=1024 seed=1 data.seed=1`.
"""
import argparse
import json
import tempfile

import torch
import torch.nn.functional as F
from torch import nn

from geoformers.data.multispectral import CLASSES, LAYOUTS, SyntheticScenes
from geoformers.models.bandset import BandsetEncoder
from geoformers.models.latentmim import LatentMIM
from geoformers.train.loop import fit
from geoformers.train.tasks import get_task, resolve_config

def band_stats(cfg, n:int=256)->dict: # {modality: ([C, 1, 1] mean, [C, 1, 1] std)} over valid pixels
    d = cfg.data
    ds = SyntheticScenes(n, seed=2 * d.seed, modalities=tuple(d.modalities), size=d.size, times=d.times,
                         cloud_prob=d.cloud_prob, missing_prob=d.missing_prob, labels=d.labels)
    out = {}
    for m in d.modalities:
        x = torch.cat([ds[i][m].transpose(0, 1)[:, ds[i][f'{m}_valid']] for i in range(n)], 1)   # [C, valid pixels]
        out[m] = (x.mean(1)[:, None, None], x.std(1)[:, None, None])
    return out

def standardise(stats:dict):
    "Patch `BandsetEncoder.tokenize` to standardise every band first"
    tokenize = BandsetEncoder.tokenize
    def patched(self, batch, masks=None):
        b = dict(batch)
        for m, (mu, sd) in stats.items(): b[m] = (batch[m] - mu.to(batch[m])) / sd.to(batch[m])
        return tokenize(self, b, masks)
    BandsetEncoder.tokenize = patched

def supervise(task):
    "Patch the task's model to train a linear head on the pooled embedding with cross-entropy"
    def forward(self, batch):
        ce = F.cross_entropy(self.head(self.encoder(batch)['pooled']), batch['label'])
        return dict(patch_disc=ce, infonce=ce.new_zeros(()), loss=ce)
    LatentMIM.forward = forward
    model = task.model
    def with_head(cfg):
        m = model(cfg); m.head = nn.Linear(m.encoder.dim, len(CLASSES if cfg.data.labels == 'cover' else LAYOUTS)); return m
    task.model = with_head

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--supervised', action='store_true')
    ap.add_argument('--standardise', action='store_true')
    ap.add_argument('--set', nargs='*', default=[])
    a = ap.parse_args()
    task = get_task('bandset')
    cfg = resolve_config(task, None, ['train.progress=false', *a.set])
    if a.standardise: standardise(band_stats(cfg))
    if a.supervised: supervise(task)
    with tempfile.TemporaryDirectory() as tmp: s = fit(task, cfg, tmp)
    b = s['baselines']
    print(json.dumps(dict(supervised=a.supervised, standardise=a.standardise, overrides=a.set, steps=s['steps'],
                          probe_acc=round(s['metrics']['probe_acc'], 3), random_init=round(b['random_init']['probe_acc'], 3),
                          mean_spectrum=round(b['mean_spectrum']['probe_acc'], 3))))
