"""Which pretraining objective makes the bandset encoder beat random init and the mean spectrum (nbs/42a).

Every row is one `fit` of the `bandset` task with its defaults (three bandsets, resolution scene family, 128
steps, standardised bands) but the objective, on two seeds (`seed=s data.seed=s`), validated once at the end.
Rows with overrides only change config keys; the rows marked *patched* replace `LatentMIM.forward` in this
process with an objective the library does not ship (kept here so that their figures can be reproduced):

- design: patch discrimination + InfoNCE between two masked views of the same date (weight 0.1);
- patch discrimination alone (the task's default before the cross-date term), with and without target centring;
- patch discrimination + cross-date InfoNCE (the task's default), and the cross-date term alone (*patched*);
- latent regression: smooth-L1 to the layer-normed EMA target tokens, data2vec-style (*patched*);
- pixel reconstruction of the standardised bands of decoder tokens, MAE-style, per-bandset linear heads (*patched*);
- patch discrimination against the tokens at the same position of the *other* scenes of the batch (*patched*).

Prints one JSON line per run and merges everything into `bench/results/bandset_objectives.json`, with the probe
protocol of the pretrained encoder and of the random-init encoder and the mean spectrum of the same run. 16 runs,
`--jobs 2` at a time: 47 minutes on a 2-core machine shared with other jobs (load about 15); `--quick`: a few minutes.
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from bandset_common import add_worker_args, run_worker, run_workers

ROWS = {
    'design: patch disc. + masked-view InfoNCE 0.1': ['model.contrastive_views=masks', 'model.contrastive_weight=0.1'],
    'patch discrimination alone': ['model.contrastive_weight=0'],
    'patch discrimination alone, targets not centred': ['model.contrastive_weight=0', 'model.center_targets=false'],
    'patch disc. + cross-date InfoNCE (default)': [],
    'cross-date InfoNCE alone': ['patch=dates_only'],
    'latent regression (smooth L1)': ['model.contrastive_weight=0', 'patch=latent_l1'],
    'pixel reconstruction': ['model.contrastive_weight=0', 'patch=pixels'],
    'cross-scene negatives': ['model.contrastive_weight=0', 'patch=cross_scene'],
}
SEEDS = (0, 1)
QUICK = ['data.n_train=64', 'data.n_val=64', 'data.probe_train=64', 'train.max_steps=4', 'train.batch_size=16']
OUT = Path(__file__).parent/'results'/'bandset_objectives.json'


def install(kind:str, task):
    "Replace `LatentMIM.forward` (and add heads to the task's model) for a patched row"
    import torch
    import torch.nn.functional as F
    from einops import rearrange
    from torch import nn
    from geoformers.models.bandset_tokens import MaskValue, collapse
    from geoformers.models.latentmim import DEC, LatentMIM
    build = task.model

    def model(cfg):
        m = build(cfg)
        if kind == 'pixels':
            P = m.encoder.patch_size
            m.pix_heads = nn.ModuleDict({k: nn.ModuleList([nn.Linear(m.encoder.dim, len(ix) * P * P) for ix in bs])
                                         for k, bs in m.encoder.bandsets.items()})
        return m

    def forward(self, batch):
        masks = self.make_masks(batch)
        enc = self.encoder(batch, masks)
        pred = self.predictor(enc, batch['months'])
        p, flat, _ = collapse(pred, enc['orig_masks'])
        dec = flat == DEC
        zero = p.sum() * 0.
        if kind == 'dates_only': loss = zero
        elif kind == 'pixels':
            errs, cnt = zero, zero
            for k, pr in pred.items():
                x = self.encoder.standardise[k](batch[k])
                mk = enc['orig_masks'][k] == DEC
                for j, (head, ix) in enumerate(zip(self.pix_heads[k], self.encoder.bandsets[k])):
                    P = self.encoder.patch_size
                    tgt = rearrange(x[:, :, ix], 'b t c (h p1) (w p2) -> b h w t (c p1 p2)', p1=P, p2=P)
                    e = (head(pr[..., j, :]) - tgt).pow(2).mean(-1)
                    errs, cnt = errs + (e * mk[..., j]).sum(), cnt + mk[..., j].sum()
            loss = errs / cnt.clamp(min=1)
        else:
            with torch.no_grad(): t = collapse(self.target_encoder(batch)['tokens'], enc['orig_masks'])[0]
            if kind == 'latent_l1':
                e = F.smooth_l1_loss(p, F.layer_norm(t, (t.shape[-1],)), reduction='none').mean(-1)
                loss = (e * dec).sum() / dec.sum().clamp(min=1)
            else:                                                        # cross_scene
                pn, tn = F.normalize(p.float(), dim=-1), F.normalize(t.float(), dim=-1)
                s = torch.einsum('bnd,cnd->nbc', pn, tn) / self.tau      # [N, B, B]: same token, other scenes
                s = s.masked_fill(~(flat != MaskValue.MISSING).T[:, None, :], -1e4)
                B = p.shape[0]
                ce = F.cross_entropy(s.reshape(-1, B), torch.arange(B).repeat(p.shape[1]), reduction='none')
                w = dec.T.reshape(-1).float()
                loss = (ce * w).sum() / w.sum().clamp(min=1) * 2 * self.tau
        return dict(patch_disc=loss, infonce=zero, loss=loss)
    LatentMIM.forward = forward
    task.model = model


def one_run(row:str, seed:int, quick:bool)->dict:
    from geoformers.train.config import resolve_config
    from geoformers.train.loop import fit
    from geoformers.train.tasks import get_task
    task = get_task('bandset')
    ov = [o for o in ROWS[row] if not o.startswith('patch=')]
    patched = [o[len('patch='):] for o in ROWS[row] if o.startswith('patch=')]
    if patched: install(patched[0], task)
    cfg = resolve_config(task, None, [f'seed={seed}', f'data.seed={seed}', 'train.progress=false',
                                      'train.val_every=1000000', 'baselines.supervised=false', *ov,
                                      *(QUICK if quick else [])])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        s = fit(task, cfg, tmp)
    keep = lambda d: {k: v for k, v in d.items() if k.startswith(('knn', 'linear'))}
    return dict(row=row, seed=seed, overrides=ROWS[row], wall_s=round(time.time() - t0, 1),
                final_loss=s['metrics'].get('loss'), pretrained=keep(s['metrics']),
                random_init=keep(s['baselines']['random_init']), mean_spectrum=keep(s['baselines']['mean_spectrum']),
                sanity=s.get('sanity'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--rows', nargs='*', default=list(ROWS))
    ap.add_argument('--seeds', nargs='*', type=int, default=list(SEEDS))
    ap.add_argument('--quick', action='store_true')
    ap.add_argument('--out', default=None)
    add_worker_args(ap)
    a = ap.parse_args()
    if run_worker(a, one_run):
        return
    out = Path(a.out or (OUT.with_name('bandset_objectives_quick.json') if a.quick else OUT))
    res = json.loads(out.read_text()) if out.exists() else {'runs': []}
    todo = [(r, s) for r in a.rows for s in (a.seeds[:1] if a.quick else a.seeds)]
    t0 = time.time()
    for r, s, run in run_workers(__file__, todo, a.jobs, a.quick):
        res['runs'] = [x for x in res['runs'] if (x['row'], x['seed']) != (r, s)] + [run]
        print(json.dumps({k: run[k] for k in ('row', 'seed', 'wall_s')}), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=float))
    res.update(rows=list(ROWS), wall_s=round(time.time() - t0), date=time.strftime('%Y-%m-%d'))
    out.write_text(json.dumps(res, indent=1, default=float))


if __name__ == '__main__':
    main()
