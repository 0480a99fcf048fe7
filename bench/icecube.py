"""IceCube benchmark: every figure of the IceCube block as ratios against baselines measured in the same run.

    python bench/icecube.py                 # everything (about 12 min on a quiet 2-core machine)
    python bench/icecube.py --quick         # smaller data and fewer repeats (about 4 min): plumbing
    python bench/icecube.py --only stream,memory
    python bench/icecube.py --default_run   # also train the default `geoformers_train icecube` and predict

Sections (`--only`): `packing` (best fit vs next fit with truncation), `stream` (KaggleStream events/s vs pyarrow
reading the same files into numpy), `train` (end-to-end training events/s through the stream with 0, 1 and 2
DataLoader workers, and the share of a step spent waiting for loading + collation), `blockmask` (FlexAttention
BlockMask build time vs the flex forward, typical and extreme batches; the naive `create_block_mask` for
reference), `backends` (T1 training throughput: bucket vs the dense block mask and the attention-free bound, on
typical batches and on batches with long modules), `memory` (peak training memory of one T1+T2 step on the
24.8K-pulse and the 113K-pulse event with the default config, whose T1 works in mini-batches of at most 20,000
pulse slots recomputed in backward, and with `model.checkpoint_pulses=0` (64-row mini-batches, activations
kept), each in a fresh process; once as the task runs, where checkpointed steps have glibc return freed memory at
once (`geoformers.core.return_freed_memory`), and once with that switch disabled (`_keep`: glibc keeps freed
memory for reuse); and the step-time costs of checkpointing and of returning memory). `--default_run` adds the default run's metric, wall time and peak memory and
`geoformers_predict` on its validation events and on a streamed Kaggle test folder (wall time, peak memory).

Timings on shared CPUs are noisy: throughputs are medians over interleaved repeats, reported as ratios to a
baseline measured in the same run. The default is one intra-op thread (`--threads 1`): on an oversubscribed
machine several threads spin against each other. Run timed benches under `flock /tmp/bench.lock` or on a
quiet machine. Results go to stdout as JSON and to `bench/results/icecube.json` (read by the task notebook).
"""
import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from geoformers.data.detectors import icecube86
from geoformers.data.dom_packing import collate_dom_packing, pack_next_fit
from geoformers.data.icecube import IceCubeSynth, extreme_event, synth_event
from geoformers.data.kaggle import batch_files, meta_path
from geoformers.data.kaggle_stream import KaggleStream
from geoformers.data.kaggle_write import write_kaggle
from geoformers.models.t1 import DOMTransformer, flex_dom_mask

ROOT = Path(__file__).resolve().parent.parent


def timed(f, *a, **kw):
    t = time.perf_counter()
    out = f(*a, **kw)
    return time.perf_counter() - t, out


def next_fit_efficiency(events, max_len=512):
    "Next fit in event order with truncation at max_len (the hierarchical design's packing)"
    lens = np.concatenate([np.unique(e['sensor_id'], return_counts=True)[1] for e in events])
    kept = np.minimum(lens, max_len)
    rows = pack_next_fit(kept, max_len)[2]
    return kept.sum() / (rows * max_len), int((lens - kept).sum())


def packing(det, n_batches):
    ds = IceCubeSynth(32 * n_batches, seed=123, detector=det)
    ours, nf, trunc = [], [], 0
    for i in range(n_batches):
        ev = [ds[j] for j in range(32 * i, 32 * (i + 1))]
        ours.append(collate_dom_packing(ev, det)['metadata']['packing_efficiency'])
        e, t = next_fit_efficiency(ev)
        nf.append(e)
        trunc += t
    big = extreme_event(det)
    bb = collate_dom_packing([big], det)['metadata']
    be, bt = next_fit_efficiency([big])
    return dict(typical_best_fit=float(np.mean(ours)), typical_next_fit=float(np.mean(nf)),
                typical_next_fit_truncated=trunc, extreme_pulses=bb['n_pulses'], extreme_doms=bb['total_doms'],
                extreme_best_fit=bb['packing_efficiency'], extreme_next_fit=float(be),
                extreme_next_fit_truncated=bt, best_fit_truncated=0)


def kaggle_folder(root, n_files, per_file, group):
    "A synthetic Kaggle folder, written once and reused (deterministic)"
    d = Path(root)/f'kaggle_{n_files}x{per_file}_{group}'
    if not (d/'train_meta.parquet').exists():
        write_kaggle(d, n_files=n_files, events_per_file=per_file, events_per_group=group)
    return d


def _count(stream)->int:
    "Events of one pass"
    return sum(len(b) for b in stream)


def stream(folder, repeats):
    """Events/s of one pass of KaggleStream (one process; batches of 32 events as pulse columns; shuffled in blocks
    of at least 2048 events (`buffer=2048`, the default), shuffled within row-group chunks (`buffer=0`), and in file
    order) against pyarrow reading the same columns of the same files into numpy (and the meta file once)"""
    files = batch_files(folder)
    cols = ['sensor_id', 'time', 'charge', 'auxiliary', 'event_id']

    def baseline():
        m = pq.read_table(meta_path(files[0]))
        _ = {k: m.column(k).to_numpy() for k in m.column_names}
        for f in files:
            t = pq.read_table(f, columns=cols)
            _ = {k: t.column(k).to_numpy() for k in cols}
        return m.num_rows

    t_init, shuffled = timed(KaggleStream, files, buffer=2048, seed=0, batch_size=32)   # once per run: chunk sizes
    orders = {'stream': shuffled, 'stream_within_chunks': KaggleStream(files, buffer=0, seed=0, batch_size=32),
              'stream_in_order': KaggleStream(files, shuffle=False, batch_size=32)}
    res = {'pyarrow': [], **{k: [] for k in orders}}
    for _ in range(repeats):
        for k, f in (('pyarrow', baseline), *((k, partial(_count, s)) for k, s in orders.items())):
            s, n = timed(f)
            res[k].append(n / s)
    med = {k: statistics.median(v) for k, v in res.items()}
    return dict(events=int(n), files=len(files), events_per_s=med, stream_init_s=t_init,
                stream_vs_pyarrow=med['stream'] / med['pyarrow'],
                stream_within_chunks_vs_pyarrow=med['stream_within_chunks'] / med['pyarrow'],
                stream_in_order_vs_pyarrow=med['stream_in_order'] / med['pyarrow'])


def train_workers(folder, steps, workers=(0, 1, 2)):
    "Training events/s through KaggleStream + collate + the default model, and the share spent waiting for data"
    from torch.utils.data import DataLoader
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    task = get_task('icecube')
    cfg = resolve_config(task)
    det = icecube86()
    out = {}
    for w in workers:
        torch.manual_seed(0)
        model = task.model(cfg)
        opt = torch.optim.AdamW(model.parameters(), 1e-4)
        ks = KaggleStream(batch_files(folder), det, batch_size=32, seed=1)
        dl = DataLoader(ks, batch_size=None, collate_fn=partial(collate_dom_packing, detector=det), num_workers=w)
        it = iter(dl)
        next(it)                                          # workers started, first batch out of the way
        wait = total = 0.
        n = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            b = next(it)
            wait += time.perf_counter() - t
            task.loss(model, b, cfg)['loss'].backward()
            opt.step()
            opt.zero_grad()
            n += len(b['ids'])
        total = time.perf_counter() - t0
        out[f'workers_{w}'] = dict(events_per_s=n / total, load_collate_share=wait / total)
        del it, dl
    return out


def blockmask(det, repeats):
    "BlockMask build (ours, from module runs; and create_block_mask) vs the flex forward of T1, per mini-batch"
    from torch.nn.attention.flex_attention import create_block_mask
    import warnings
    warnings.filterwarnings('ignore', message='flex_attention called without torch.compile')
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    cfg = resolve_config(get_task('icecube'))
    m = cfg.model
    t1 = DOMTransformer(m.dim, m.t1_depth, m.heads, max_batch_size=m.max_batch_size, backend='flex').eval()
    ds = IceCubeSynth(32, seed=5, detector=det)
    cases = dict(typical=collate_dom_packing([ds[i] for i in range(32)], det),
                 extreme=collate_dom_packing([extreme_event(det)], det))
    out = {}
    for name, b in cases.items():
        mbs = t1.minibatches(b)
        build, naive, fwd = [], [], []
        for _ in range(repeats):
            build.append(sum(timed(flex_dom_mask, ids)[0] for _, ids in mbs))
            def naive_mask(ids):
                def same(bb, h, q, k): return ids[bb, q] == ids[bb, k]
                return create_block_mask(same, ids.shape[0], None, ids.shape[1], ids.shape[1], device='cpu')
            naive.append(sum(timed(naive_mask, ids)[0] for _, ids in mbs[:1]) * len(mbs))
            with torch.no_grad():
                fwd.append(timed(t1, b)[0])
        bm, nm, fm = (statistics.median(v) for v in (build, naive, fwd))
        out[name] = dict(rows=int(b['packed_sequences'].shape[0]), minibatches=len(mbs), build_s=bm,
                         naive_build_s=nm, flex_forward_s=fm - bm, build_vs_forward=bm / (fm - bm),
                         naive_vs_forward=nm / (fm - bm))
    return out


def backends(det, n_batches, repeats, max_seq_len=512, backs=('dense', 'bucket', 'none')):
    "T1 training steps (forward + backward + optimiser) per backend; pulses/s, median of interleaved repeats"
    ds = IceCubeSynth(32 * n_batches, seed=7, detector=det)
    batches = [collate_dom_packing([ds[j] for j in range(32 * i, 32 * (i + 1))], det, max_seq_len)
               for i in range(n_batches)]
    pulses = sum(b['metadata']['n_pulses'] for b in batches)
    res = {}
    for _ in range(repeats):                       # interleave backends so load changes hit them alike
        for be in backs:
            torch.manual_seed(0)
            t1 = DOMTransformer(backend=be)
            opt = torch.optim.AdamW(t1.parameters(), 1e-4)
            t = time.perf_counter()
            for b in batches:
                t1(b).square().mean().backward()
                opt.step()
                opt.zero_grad()
            res.setdefault(be, []).append(pulses / (time.perf_counter() - t))
    med = {be: statistics.median(v) for be, v in res.items()}
    return dict(max_seq_len=max_seq_len, long_modules=sum(b['metadata']['n_long'] for b in batches),
                pulses_per_s=med, bucket_vs_dense=med['bucket'] / med['dense'],
                bucket_vs_attention_free=med['bucket'] / med['none'], pulses=pulses)


def _status_kb(key):
    "A memory figure of this process from /proc/self/status, in kB"
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(key + ':'):
            return int(line.split()[1])
    raise RuntimeError(f'{key} not in /proc/self/status')


def _reset_peak_kb():
    """Reset this process's peak resident memory (Linux: write 5 to /proc/self/clear_refs) and return the
    resident memory now: what a step adds on top is its own peak, not the import's or the set-up's"""
    Path('/proc/self/clear_refs').write_text('5')
    return _status_kb('VmRSS')


def _memory_child(brightness, ck, keep):
    """In a fresh process: peak RSS growth and time of one training step (default model) on one event;
    `keep` disables the task's switch to returning freed memory (glibc's default reuse throughout)"""
    import geoformers.tasks.icecube as icecube_task
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    if keep:
        icecube_task.return_freed_memory = lambda on=True: False
    torch.set_num_threads(1)
    task = get_task('icecube')
    cfg = resolve_config(task, overrides=[] if ck else ['model.checkpoint_pulses=0'])   # default: 20000
    det = icecube86()
    e = synth_event(np.random.default_rng(0), det, brightness=brightness, kind='track')
    b = collate_dom_packing([e], det)
    model = task.model(cfg)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    base = _reset_peak_kb()
    s, _ = timed(lambda: (task.loss(model, b, cfg)['loss'].backward(), opt.step()))
    peak = _status_kb('VmHWM')
    s2, _ = timed(lambda: (opt.zero_grad(), task.loss(model, b, cfg)['loss'].backward(), opt.step()))
    print(json.dumps(dict(pulses=len(e['time']), doms=b['metadata']['total_doms'], checkpoint=ck,
                          peak_mb=(peak - base) / 1024, step_s=min(s, s2))))


def memory():
    """Peak step memory per case, as the task runs (checkpointed steps return freed memory at once) and with
    glibc keeping freed memory for reuse (`_keep`)"""
    out = {}
    for alloc, keep in (('', False), ('_keep', True)):
        for br, name in ((1e4, 'event_24.8K'), (1.6e5, 'event_113K')):
            for ck in (False, True):
                r = subprocess.run([sys.executable, __file__, '--memory_child', f'{br},{int(ck)},{int(keep)}'],
                                   capture_output=True, text=True, timeout=900)
                if r.returncode:
                    raise RuntimeError(r.stderr[-2000:])
                out[f"{name}_{'checkpoint' if ck else 'plain'}{alloc}"] = json.loads(r.stdout.strip().splitlines()[-1])
        g = lambda k: out[k + alloc]['peak_mb']
        out[f'ratio_113K_vs_24.8K_checkpoint{alloc}'] = g('event_113K_checkpoint') / g('event_24.8K_checkpoint')
        out[f'ratio_113K_vs_24.8K_plain{alloc}'] = g('event_113K_plain') / g('event_24.8K_plain')
        out[f'checkpoint_memory_saving_113K{alloc}'] = g('event_113K_plain') / g('event_113K_checkpoint')
    step = lambda k: out[k]['step_s']
    out['checkpoint_step_time_cost_113K'] = step('event_113K_checkpoint') / step('event_113K_plain')
    out['memory_return_step_time_cost_113K'] = step('event_113K_checkpoint') / step('event_113K_checkpoint_keep')
    return out


def _tree_peak(cmd, cwd):
    "Wall time and peak resident memory (whole process tree, sampled every 0.1 s) of a command"
    try:
        import psutil
    except ImportError:                                   # without psutil: the largest child's peak
        t0 = time.time()
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(r.stderr[-3000:])
        return time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(p.pid)
    peak = 0
    while p.poll() is None:
        try:
            peak = max(peak, sum(q.memory_info().rss for q in [ps] + ps.children(recursive=True)))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    out, err = p.communicate()
    if p.returncode:
        raise RuntimeError(err[-3000:])
    return time.time() - t0, peak / 2**30


def default_run(work, quick):
    "The default `geoformers_train icecube` (wall, peak memory, metric) and predict on it"
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    bin_ = Path(sys.executable).parent
    run = work/'run'
    args = [str(bin_/'geoformers_train'), 'icecube', '--out', str(run), '--set', 'train.progress=false']
    if quick:
        args += ['data.n_train=64', 'data.n_val=32', '--max_steps', '8']
    if run.exists():
        import shutil
        shutil.rmtree(run)
    wall, peak = _tree_peak(args, work)
    s = json.loads((run/'summary.json').read_text())
    out = dict(command=' '.join(['geoformers_train', 'icecube'] + (args[6:] if quick else [])), wall_s=wall,
               peak_gb=peak, mean_angular_error=s['metrics']['mean_angular_error'],
               baselines={k: v['mean_angular_error'] for k, v in s['baselines'].items()}, steps=s['steps'])
    pred = bin_/'geoformers_predict'
    if pred.exists():
        test = kaggle_folder(work, 2, 500 if quick else 5000, 500)
        test_split = work/'kaggle_test'
        if not (test_split/'test_meta.parquet').exists():
            write_kaggle(test_split, n_files=2, events_per_file=500 if quick else 5000, events_per_group=500,
                         split='test', first_batch=661)
        for name, extra in (('predict_val', []), ('predict_kaggle_test', ['--data', str(test_split)])):
            sub = work/f'{name}.csv'
            if sub.exists():
                sub.unlink()
            w, pk = _tree_peak([str(pred), str(run), '--out', str(sub), *extra], work)
            n = sum(1 for _ in open(sub)) - 1
            out[name] = dict(wall_s=w, peak_gb=pk, events=n)
        del test
    return out


def table(r):
    "The rows the task notebook shows"
    t = {}
    if 'default_run' in r:
        d = r['default_run']
        t['default run: mean angular error (rad)'] = (f"{d['mean_angular_error']:.3f} (LineFit "
                                                      f"{d['baselines']['linefit']:.3f}, first-hit LineFit "
                                                      f"{d['baselines']['first_hit_linefit']:.3f})")
        t['default run: wall time, peak memory'] = f"{d['wall_s']:.0f} s, {d['peak_gb']:.2f} GB"
        for k in ('predict_val', 'predict_kaggle_test'):
            if k in d:
                t[f'{k.replace("_", " ")}: events, wall, peak'] = (f"{d[k]['events']}, {d[k]['wall_s']:.0f} s, "
                                                                   f"{d[k]['peak_gb']:.2f} GB")
    if 'stream' in r:
        st = r['stream']
        t['stream vs pyarrow to numpy (events/s): buffer 2048 / within chunks / in order'] = (
            f"{st['stream_vs_pyarrow']:.2f}× / {st['stream_within_chunks_vs_pyarrow']:.2f}× / "
            f"{st['stream_in_order_vs_pyarrow']:.2f}×")
    if 'train' in r:
        t['training events/s, workers 0 / 1 / 2'] = ' / '.join(
            f"{v['events_per_s']:.0f}" for v in r['train'].values())
        t['loading + collation share of a step, workers 0 / 1 / 2'] = ' / '.join(
            f"{v['load_collate_share']:.1%}" for v in r['train'].values())
    if 'blockmask' in r:
        t['BlockMask build / flex forward, typical / extreme'] = ' / '.join(
            f"{r['blockmask'][k]['build_vs_forward']:.1%}" for k in ('typical', 'extreme'))
    if 'backends' in r:
        b = r['backends']
        t['T1 bucket vs dense, vs attention-free'] = f"{b['bucket_vs_dense']:.2f}×, {b['bucket_vs_attention_free']:.2f}"
    if 'memory' in r:
        m = r['memory']
        t['peak step memory 113K / 24.8K pulses, checkpoint on / off'] = (
            f"{m['ratio_113K_vs_24.8K_checkpoint']:.2f} / {m['ratio_113K_vs_24.8K_plain']:.2f} "
            f"(glibc keeping freed memory: {m['ratio_113K_vs_24.8K_checkpoint_keep']:.2f} / "
            f"{m['ratio_113K_vs_24.8K_plain_keep']:.2f})")
        t['checkpoint step time cost (113K)'] = f"{m['checkpoint_step_time_cost_113K']:.2f}×"
        t['returning freed memory, step time cost (113K)'] = f"{m['memory_return_step_time_cost_113K']:.2f}×"
    if 'packing' in r:
        p = r['packing']
        t['packing, typical / extreme (0 truncated)'] = f"{p['typical_best_fit']:.2%} / {p['extreme_best_fit']:.2%}"
    return t


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true')
    p.add_argument('--only', default='packing,stream,train,blockmask,backends,memory')
    p.add_argument('--default_run', action='store_true')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--work', default=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'geoformers_bench_icecube'))
    p.add_argument('--out', default=str(ROOT/'bench'/'results'/'icecube.json'))
    p.add_argument('--memory_child')
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.memory_child:
        br, ck, keep = a.memory_child.split(',')
        _memory_child(float(br), bool(int(ck)), bool(int(keep)))
        sys.exit()
    det = icecube86()
    only = set(a.only.split(','))
    q = a.quick
    every = only >= {'packing', 'stream', 'train', 'blockmask', 'backends', 'memory'}
    cmd = ('python bench/icecube.py' + (' --quick' if q else '') + ('' if every else f' --only {a.only}')
           + (' --default_run' if a.default_run else ''))
    r = dict(date=dt.date.today().isoformat(), command=cmd, threads=a.threads, cpus=os.cpu_count(),
             load_avg_at_start=os.getloadavg()[0])
    t0 = time.time()
    folder = kaggle_folder(a.work, 2 if q else 4, 2000 if q else 5000, 1000) if only & {'stream', 'train'} else None
    steps = dict(packing=lambda: packing(det, 3 if q else 10),
                 stream=lambda: stream(folder, 3 if q else 7),
                 train=lambda: train_workers(folder, 10 if q else 30),
                 blockmask=lambda: blockmask(det, 2 if q else 3),
                 backends=lambda: dict(typical=backends(det, 2 if q else 4, 3),
                                       long_modules=backends(det, 2 if q else 4, 3, max_seq_len=64)),
                 memory=memory)
    for k, f in steps.items():
        if k in only:
            r[k] = f()
            if k == 'backends':
                r[k] = dict(r[k]['typical'], long_modules=r[k]['long_modules'])
            print(json.dumps({k: r[k]}, indent=1, default=float), flush=True)
    if a.default_run:
        r['default_run'] = default_run(a.work, q)
        print(json.dumps({'default_run': r['default_run']}, indent=1, default=float), flush=True)
    r['load_avg_at_end'] = os.getloadavg()[0]
    r['run_s'] = time.time() - t0
    r['table'] = table(r)
    out = Path(a.out)
    if q:
        out = out.with_name(out.stem + '_quick.json')
    out.parent.mkdir(parents=True, exist_ok=True)
    ran = [k for k in [*steps, 'default_run'] if k in r]
    r['commands'] = {k: cmd for k in ran}                 # the command that measured each section
    if out.exists() and not (only >= set(steps) and a.default_run):      # keep sections not run this time
        old = json.loads(out.read_text())
        old_cmds = {k: old.get('commands', {}).get(k, old['command'])
                    for k in [*steps, 'default_run'] if k in old}
        r = {**old, **r, 'commands': {**old_cmds, **r['commands']}}
        r['command'] = '; '.join(dict.fromkeys(r['commands'].values()))
        r['table'] = table(r)
    out.write_text(json.dumps(r, indent=1, default=float))
    print(json.dumps(r['table'], indent=1))
