"""Where a `weather-text` run's held-out caption loss goes, by kind of token, with the prefix and without it.

Loads a finished run folder (`geoformers.train.predict.load_run`), scores every validation caption with the
run's model (prefix) and with the frozen text LM alone (`no_prefix`, the baseline of `summary.json`), and sums the
negative log-likelihood per caption over four kinds of token: the pressure number (digits), the compass words
(where the low is, where it moves, where the wind comes from, where it rains), the first word (it also picks the
phrasing) and everything else. The totals per token match `summary.json`'s `loss` and `no_prefix` loss.
Run: `python bench/weather_token_loss.py runs/weather-text` from the folder the run was made in (its `lm_dir` and
`mae_ckpt` are relative paths, and so is its `data.cache`); about 20 s for the default run.
"""
import argparse
import re

import torch
import torch.nn.functional as F

from geoformers.train.evaluation import make_loader
from geoformers.train.predict import load_run

COMPASS = re.compile(r'^(north|south|east|west|centre)(erly)?$|^(north|south)-?(east|west)(erly)?$|^(east|west)erly$|^-$')
KINDS = ('number', 'compass', 'first word', 'other')

def kind(tok:str, position:int)->str:
    w = tok.strip()
    if position == 0: return 'first word'
    if w.isdigit(): return 'number'
    return 'compass' if COMPASS.match(w) else 'other'

@torch.no_grad()
def token_nll(model, batch, prefix:bool)->torch.Tensor: # -> [B, L-1] NLL of every next token (0 where padded)
    out = model(batch['x'], batch['tokens'], batch['mask'], prefix=prefix)
    nll = F.cross_entropy(out.logits[:, :-1].transpose(1, 2).float(), batch['tokens'][:, 1:], reduction='none')
    return nll * batch['mask'][:, 1:]

def main(run:str):
    torch.set_num_threads(1)
    task, cfg, model = load_run(run)
    data = task.data(cfg)
    frozen = task.model(cfg).eval()                    # the text LM as pretrained: what `no_prefix` scores
    sums = {k: {'prefix': 0., 'no_prefix': 0.} for k in KINDS}
    captions = tokens = 0
    for b in make_loader(data['val'], cfg, data['collate']):
        with_p, without = token_nll(model, b, True), token_nll(frozen, b, False)
        for i in range(len(b['tokens'])):
            n = int(b['mask'][i, 1:].sum())
            for j in range(n):
                t = task.tok.decode([int(b['tokens'][i, j + 1])])
                k = kind(t, j) if j < n - 1 else 'other'      # the last label is EOS
                sums[k]['prefix'] += float(with_p[i, j]); sums[k]['no_prefix'] += float(without[i, j])
            captions += 1; tokens += n
    print(f"{captions} held-out captions, {tokens / captions:.1f} tokens each; nats per caption:")
    print(f"{'':12s} {'prefix':>8s} {'no_prefix':>10s}")
    for k in KINDS: print(f"{k:12s} {sums[k]['prefix'] / captions:8.2f} {sums[k]['no_prefix'] / captions:10.2f}")
    tp, tn = (sum(s[w] for s in sums.values()) for w in ('prefix', 'no_prefix'))
    print(f"{'total':12s} {tp / captions:8.2f} {tn / captions:10.2f}   (per token {tp / tokens:.4f} / {tn / tokens:.4f})")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('run', nargs='?', default='runs/weather-text')
    main(ap.parse_args().run)
