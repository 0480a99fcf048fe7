"""The default weather pipeline end to end, and predict on its default data.

Runs `geoformers_train weather-mae` then `geoformers_train weather-text` with their default configs (embedded data,
9600 days) in a working folder, each as a child process: wall time, CPU time and peak memory of each stage, the
perplexity ratio (vision prefix / `no_prefix`) and every baseline of `weather-text`'s summary.json, including
`facts_prefix` (the same frozen LM given the facts an analysis extracts from the window). Then `predict` of both runs
on their default data (the held-out windows): wall time and peak memory, each in a fresh process.
Writes `bench/results/weather_pipeline.json`, which nbs/41_tasks.weather renders.

Run from the repository root: `python bench/weather_pipeline.py [--work runs-bench]` (about 13-15 minutes on 2 cores,
7 GB peak; run it alone: `flock /tmp/bench.lock ...` on a shared machine). `--quick` runs 40 days and a few
steps (about 2 minutes) to check the script; `--predict_only` re-measures predict on an existing work folder;
`--baselines_only` scores only the text baselines of `weather-text` (`no_prefix`, `facts_prefix`, `majority`) with the
default data and text LM, without the vision stages (`bench/results/weather_text_baselines.json`; the LM and data are
trained or read from `WORK/lm` and `WORK/cache`; about 13 minutes from nothing, 3 with both cached).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent/'results'/'weather_pipeline.json'
QUICK = {'weather-mae': ['data.n_days=40', 'train.max_steps=6', 'train.val_every=null'],
         'weather-text': ['data.n_days=40', 'train.max_steps=6', 'train.val_every=null', 'model.lm_steps=6',
                          'eval.n_generate=4']}


MEASURE = """
import json, resource, subprocess, sys, time
t0 = time.time()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps(dict(rc=r.returncode, wall_s=round(time.time() - t0, 1), cpu_s=round(u.ru_utime + u.ru_stime, 1),
                      peak_gb=round(u.ru_maxrss / 1e6, 2), out=r.stdout[-2000:], err=r.stderr[-3000:])))
"""

def child(cmd:list, cwd:Path)->dict:
    "Run `cmd` in a fresh process: its wall s, CPU s and peak RSS (GB)"
    r = subprocess.run([sys.executable, '-c', MEASURE, *cmd], cwd=cwd, capture_output=True, text=True)
    m = json.loads(r.stdout.splitlines()[-1])
    if m.pop('rc'): sys.exit(f"{' '.join(cmd)} failed:\n{m['out']}\n{m['err']}")
    m.pop('out')
    m.pop('err')
    return m


PREDICT = """
import sys
from geoformers.tasks.weather_text_predict import _load_run
task, cfg, model = _load_run(sys.argv[1])
print(task.predict(model, cfg, None, sys.argv[2]))
"""


def predict(work:Path)->dict:
    out = {}
    for run, suffix in (('weather-mae', '.nc'), ('weather-text', '.csv')):
        m = child([sys.executable, '-c', PREDICT, f'runs/{run}', f'predict-{run}{suffix}'], work)
        out[run] = {**m, 'note': 'held-out windows of the default data; includes rebuilding the data and model'}
        print(f"predict {run}: {m['wall_s']} s wall, {m['peak_gb']} GB peak", flush=True)
    return out


def baselines_only(work:Path)->dict:
    "The text baselines of the default weather-text data and LM, without the vision run"
    from geoformers.baselines.weather import text_baselines
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    t0 = time.time()
    t = get_task('weather-text')
    cfg = resolve_config(t, None, [f'data.cache={work}/cache', f'model.lm_dir={work}/lm', 'model.mae_ckpt=none'])
    data = t.data(cfg)
    lm, tok = t.language(cfg)
    pos = t._gen_idx(data, cfg)
    res = text_baselines(lm, tok, t.val_windows, t.val_idx, [t.val_idx[p] for p in pos], t.train_caps['text'], None,
                         max_len=t.max_len, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.train.batch_size)
    res.update(n_val=len(t.val_idx), n_generated=len(pos), seconds=round(time.time() - t0, 1),
               date=time.strftime('%Y-%m-%d'), loadavg=os.getloadavg()[0])
    out = RESULTS.with_name('weather_text_baselines.json')
    out.write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps(res, indent=1, default=float))
    return res


def main(work:str, quick:bool, predict_only:bool):
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    res = json.loads(RESULTS.read_text()) if predict_only and RESULTS.exists() else {}
    if not predict_only:
        stages = {}
        for task in ('weather-mae', 'weather-text'):
            over = ['--set', *QUICK[task]] if quick else []
            stages[task] = child(['geoformers_train', task, '--out', f'runs/{task}', *over], work)
            print(f"{task}: {stages[task]}", flush=True)
        s = json.loads((work/'runs'/'weather-text'/'summary.json').read_text())
        b = s['baselines']
        table = {'vision prefix (weather-text)': {**s['metrics'], **s['generation']}}
        table.update({k: b[k] for k in ('facts_prefix', 'no_prefix', 'caption_prior', 'majority') if k in b})
        res = dict(stages=stages, table=table, ratio=s['metrics']['perplexity'] / b['no_prefix']['perplexity'],
                   facts_ratio=b['facts_prefix']['perplexity'] / b['no_prefix']['perplexity'] if 'facts_prefix' in b else None,
                   wall_min=sum(v['wall_s'] for v in stages.values()) / 60,
                   cpu_s=sum(v['cpu_s'] for v in stages.values()),
                   peak_gb=max(v['peak_gb'] for v in stages.values()),
                   mae=json.loads((work/'runs'/'weather-mae'/'summary.json').read_text())['metrics'],
                   mae_baselines=json.loads((work/'runs'/'weather-mae'/'summary.json').read_text())['baselines'],
                   quick=quick, date=time.strftime('%Y-%m-%d'), loadavg=os.getloadavg()[0])
    res['predict'] = predict(work)
    if not quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=1, default=float))
    print(json.dumps(res, indent=1, default=float))


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--work', default='runs-bench', help='working folder (its runs/ and runs/cache are reused)')
    ap.add_argument('--quick', action='store_true', help='40 days, a few steps: checks the script, writes no results')
    ap.add_argument('--predict_only', action='store_true', help='only re-measure predict in an existing work folder')
    ap.add_argument('--baselines_only', action='store_true', help='only the text baselines, without the vision run')
    a = ap.parse_args()
    if a.baselines_only: baselines_only(Path(a.work).resolve())
    else: main(a.work, a.quick, a.predict_only)
