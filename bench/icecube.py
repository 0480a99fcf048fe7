"""IceCube benchmark: packing efficiency, T1 peak memory, T1 training throughput per backend, collation share.

Usage: python bench/icecube.py [--quick] [--skip_memory] [--threads 1]
Timings on shared CPUs are noisy: every throughput is reported as a ratio to baselines measured in the same run.
On an oversubscribed machine several intra-op threads spin against each other (2 threads cost 10x the CPU of 1
per training step here), so the default is one thread; `--threads 0` keeps torch's default.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from geoformers.data.dom_packing import collate_dom_packing, pack_next_fit
from geoformers.data.icecube import IceCubeSynth, extreme_event, load_geometry, synth_event
from geoformers.models.t1 import DOMTransformer


def next_fit_efficiency(events, max_len=512):
    "The seed's packing: DOMs in event order, truncated at max_len, next fit"
    lens = []
    for e in events:
        _, n = np.unique(e['sensor_id'], return_counts=True)
        lens.append(n)
    lens = np.concatenate(lens)
    kept = np.minimum(lens, max_len)
    rows = pack_next_fit(kept, max_len)[2]
    return kept.sum() / (rows * max_len), int((lens - kept).sum())


def packing(geom, n_batches):
    ds = IceCubeSynth(32 * n_batches, seed=123, geometry=geom)
    ours, seed, trunc = [], [], 0
    for i in range(n_batches):
        ev = [ds[j] for j in range(32 * i, 32 * (i + 1))]
        ours.append(collate_dom_packing(ev)['metadata']['packing_efficiency'])
        e, t = next_fit_efficiency(ev); seed.append(e); trunc += t
    big = extreme_event(geom)
    bb = collate_dom_packing([big])['metadata']
    be, bt = next_fit_efficiency([big])
    return dict(typical_ours=float(np.mean(ours)), typical_next_fit=float(np.mean(seed)), typical_next_fit_truncated=trunc,
                extreme_pulses=bb['n_pulses'], extreme_doms=bb['total_doms'], extreme_ours=bb['packing_efficiency'],
                extreme_next_fit=float(be), extreme_next_fit_truncated=bt, ours_truncated=0)


def _memory_child(brightness, backend, max_batch_size):
    "Run in a fresh process: peak RSS growth of one T1 forward (inference) on an event of the given brightness"
    geom = load_geometry()
    e = synth_event(np.random.default_rng(0), geom, brightness=brightness, kind='track')
    b = collate_dom_packing([e])
    t1 = DOMTransformer(backend=backend, max_batch_size=max_batch_size).eval()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad(): t1(b)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(pulses=len(e['time']), rows=int(b['packed_sequences'].shape[0]), backend=backend,
                          max_batch_size=max_batch_size, peak_mb=(peak - base) / 1024)))


def memory(cases):
    out = []
    for br, be, mbs in cases:
        r = subprocess.run([sys.executable, __file__, '--memory_child', f'{br},{be},{mbs}'], capture_output=True, text=True, timeout=600)
        if r.returncode: raise RuntimeError(r.stderr[-2000:])
        out.append(json.loads(r.stdout.strip().splitlines()[-1]))
    return out


def throughput(geom, n_batches, backends=('dense', 'bucket', 'none'), repeats=3):
    "T1 training steps (forward + backward + optimiser) on typical batches; pulses/s, median of repeats"
    ds = IceCubeSynth(32 * n_batches, seed=7, geometry=geom)
    batches = [collate_dom_packing([ds[j] for j in range(32 * i, 32 * (i + 1))]) for i in range(n_batches)]
    pulses = sum(b['metadata']['n_pulses'] for b in batches)
    res = {}
    for _ in range(repeats):                       # interleave backends so load changes hit them alike
        for be in backends:
            torch.manual_seed(0)
            t1 = DOMTransformer(backend=be)
            opt = torch.optim.AdamW(t1.parameters(), 1e-4)
            t = time.perf_counter()
            for b in batches:
                t1(b).square().mean().backward(); opt.step(); opt.zero_grad()
            res.setdefault(be, []).append(pulses / (time.perf_counter() - t))
    med = {be: statistics.median(v) for be, v in res.items()}
    return dict(pulses_per_s=med, bucket_vs_dense=med['bucket'] / med['dense'], bucket_vs_attention_free=med['bucket'] / med['none'],
                pulses=pulses)


def collate_share(geom, n_batches):
    "Share of a full T1+T2 training step (default task config) spent in collate_dom_packing"
    from geoformers.train.tasks import get_task, resolve_config
    task = get_task('icecube'); cfg = resolve_config(task)
    model = task.model(cfg); opt = torch.optim.AdamW(model.parameters(), 1e-4)
    ds = IceCubeSynth(32 * n_batches, seed=11, geometry=geom)
    tc = ts = 0.
    for i in range(n_batches):
        ev = [ds[j] for j in range(32 * i, 32 * (i + 1))]
        t = time.perf_counter(); b = collate_dom_packing(ev); tc += time.perf_counter() - t
        t = time.perf_counter(); task.loss(model, b, cfg)['loss'].backward(); opt.step(); opt.zero_grad(); ts += time.perf_counter() - t
    return dict(collate_s=tc, step_s=ts, collate_share=tc / (tc + ts))


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true'); p.add_argument('--skip_memory', action='store_true')
    p.add_argument('--memory_child'); p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.memory_child:
        br, be, mbs = a.memory_child.split(','); _memory_child(float(br), be, int(mbs)); sys.exit()
    geom = load_geometry()
    nb = 3 if a.quick else 10
    r = dict(packing=packing(geom, nb)); print(json.dumps(r['packing'], indent=1), flush=True)
    if not a.skip_memory:
        r['memory'] = memory([(1e4, 'dense', 64), (1.6e5, 'dense', 64), (1.6e5, 'bucket', 64), (1.6e5, 'dense', 100000)])
        print(json.dumps(r['memory'], indent=1), flush=True)
    r['throughput'] = throughput(geom, 2 if a.quick else 4); print(json.dumps(r['throughput'], indent=1), flush=True)
    r['collate'] = collate_share(geom, nb); print(json.dumps(r['collate'], indent=1), flush=True)
