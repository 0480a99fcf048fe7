"""Tasks at a glance: train every task with its default command; record what the home page quotes.

    python bench/tasks_at_a_glance.py          # each task's default run (about 25 min on 2 cores)
    python bench/tasks_at_a_glance.py --quick  # a few steps each, less data (about 5 min): plumbing
    python bench/tasks_at_a_glance.py --tasks wildfire,icecube

Each task runs `geoformers_train TASK` in a fresh working folder, as a new user would
(`weather-text` runs after `weather-mae` in the same folder: it captions through that run). For each
run the script measures the wall time and the peak resident memory of the whole process tree
(sampled every 0.1 s) and its CPU seconds, reads `runs/TASK/summary.json`, and writes one JSON file
(default `bench/results/tasks_at_a_glance.json`, or `..._quick.json` with `--quick`) with the date,
the machine, and per task: the command, what it trains, the default data, wall time, peak memory,
the headline metric and the same metric for each baseline. `nbs/index.ipynb` renders its table from
that file (the full run's when it exists, else the quick one's, marked as such): after a run,
`python tools/make_readme.py --execute` re-executes the home page and rewrites README.md. Run it on
a quiet machine: other jobs inflate the wall times.
"""
import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Per task: what it trains, its default data, the headline metric (as in summary.json) and which
# way is better. Order matters: weather-text captions through the weather-mae run before it.
TASKS = {
    'wildfire': dict(trains='EmberFormer: next-day fire spread from fire maps, wind and terrain',
                     data='60 simulated fires, 48×48 px, 14 days (embedded simulator)',
                     metric='f1', better='higher'),
    'weather-mae': dict(trains='SatSwinMAE: masked autoencoding of ERA5-style windows',
                        data='9600 days of synthetic ERA5 fields, 1°, 3-hourly (embedded)',
                        metric='loss', better='lower'),
    'weather-text': dict(trains='Prefixer (+ last LM block, encoder): captions through a causal LM',
                         data='the same days with generated weather captions',
                         metric='perplexity', better='lower', after='weather-mae'),
    'bandset': dict(trains='LatentMIM: self-supervised bandset encoder for S2 + Landsat',
                    data='1024 synthetic multispectral scenes (S2 + Landsat, clouds, gaps)',
                    metric='knn_10', better='higher'),
    'icecube': dict(trains='T1 + EventAccumulator + T2: neutrino direction from pulses',
                    data='3200 synthetic events on the real IceCube geometry',
                    metric='mean_angular_error', better='lower'),
}

# --quick: a few steps on less data; the numbers only show that every run completes.
QUICK = {
    'wildfire': ['--max_steps', '8', '--set', 'data.n_fires=10', 'train.epochs=1'],
    'weather-mae': ['--max_steps', '8', '--set', 'data.n_days=240', 'train.epochs=1'],
    'weather-text': ['--max_steps', '8', '--set', 'data.n_days=240', 'train.epochs=1',
                     'model.lm_steps=20', 'eval.n_generate=4', 'eval.max_new_tokens=16'],
    'bandset': ['--max_steps', '8', '--set', 'data.n_train=64', 'data.n_val=32',
                'data.probe_train=32', 'train.epochs=1'],
    'icecube': ['--max_steps', '8', '--set', 'data.n_train=64', 'data.n_val=32', 'train.epochs=1'],
}


def _tree_rss(pid:int)->int:
    "Resident bytes of process `pid` and all its descendants (0 once it has exited)"
    try:
        import psutil
        try:
            p = psutil.Process(pid)
            procs = [p] + p.children(recursive=True)
        except psutil.NoSuchProcess: return 0
        total = 0
        for q in procs:
            try: total += q.memory_info().rss
            except psutil.NoSuchProcess: pass
        return total
    except ImportError:   # Linux without psutil: /proc
        kids, total = {pid}, 0
        for st in Path('/proc').glob('[0-9]*/stat'):
            try: f = st.read_text().rsplit(')', 1)[1].split()
            except OSError: continue
            if int(f[1]) in kids: kids.add(int(st.parent.name))
        for k in kids:
            try: pages = int(Path(f'/proc/{k}/statm').read_text().split()[1])
            except OSError: continue
            total += pages * os.sysconf('SC_PAGE_SIZE')
        return total


def _children_cpu()->float:
    "User + system CPU seconds of every finished child process (load-independent, unlike wall time)"
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(cmd:list, cwd:Path, log:Path)->dict:
    "Run `cmd` in `cwd`, output to `log`: wall and CPU time, peak tree RSS, exit code"
    t0 = time.time()
    cpu0 = _children_cpu()
    with open(log, 'w') as f:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        peak = 0
        while p.poll() is None:
            peak = max(peak, _tree_rss(p.pid))
            time.sleep(0.1)
    return dict(wall_s=round(time.time() - t0, 1), cpu_s=round(_children_cpu() - cpu0, 1),
                peak_rss_mb=round(peak / 2**20), rc=p.returncode)


def headline(task:str, summary:dict)->dict:
    "The task's headline metric and the same metric for each baseline that reports it"
    spec = TASKS[task]
    m = spec['metric']
    base = {b: v[m] for b, v in (summary.get('baselines') or {}).items() if m in v}
    return dict(metric=m, better=spec['better'], value=summary.get('metrics', {}).get(m),
                baselines=base)


def run_all(tasks:list, quick:bool, work:Path)->list:
    rows, folders = [], {}
    for task in tasks:
        spec = TASKS[task]
        folder = folders.get(spec.get('after'))
        folder = folder or Path(tempfile.mkdtemp(prefix=f'{task}-', dir=work))
        folders[task] = folder
        cmd = ['geoformers_train', task] + (QUICK[task] if quick else [])
        print(f'{task}: {" ".join(cmd)} (in {folder.name})', flush=True)
        r = measure(cmd, folder, folder/f'{task}.log')
        row = dict(task=task, command=' '.join(cmd), trains=spec['trains'], data=spec['data'],
                   after=spec.get('after'), **r)
        summ = folder/'runs'/task/'summary.json'
        if r['rc'] == 0 and summ.exists():
            s = json.loads(summ.read_text())
            row.update(headline=headline(task, s), metrics=s.get('metrics'),
                       baselines=s.get('baselines'), runtime_s=s.get('runtime_s'))
        else:
            row['error'] = (folder/f'{task}.log').read_text()[-2000:]
        print(f"  {r['wall_s']} s ({r['cpu_s']} s CPU), peak {r['peak_rss_mb']} MB, "
              f"rc {r['rc']}", flush=True)
        rows.append(row)
    return rows


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='a few steps per task (plumbing only)')
    ap.add_argument('--tasks', default=','.join(TASKS), help='comma-separated, default all')
    ap.add_argument('--out', help='JSON (default bench/results/tasks_at_a_glance[_quick].json)')
    ap.add_argument('--keep', action='store_true', help='keep the run folders (printed)')
    a = ap.parse_args(argv)
    tasks = [t for t in TASKS if t in a.tasks.split(',')]
    for t in tasks:
        after = TASKS[t].get('after')
        if after and after not in tasks: sys.exit(f'{t} needs {after} in the same bench run')
    name = f"tasks_at_a_glance{'_quick' if a.quick else ''}.json"
    out = Path(a.out or ROOT/'bench'/'results'/name)
    work = Path(tempfile.mkdtemp(prefix='geoformers-glance-'))
    t0 = time.time()
    try: rows = run_all(tasks, a.quick, work)
    finally:
        if a.keep: print(f'run folders kept under {work}')
        else: shutil.rmtree(work, ignore_errors=True)
    import geoformers
    import torch
    res = dict(date=dt.date.today().isoformat(), quick=a.quick,
               machine=dict(cpus=os.cpu_count(), platform=platform.platform(terse=True),
                            python=platform.python_version(), torch=torch.__version__),
               geoformers=geoformers.__version__, total_s=round(time.time() - t0, 1), tasks=rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False, default=float) + '\n')
    print(f'wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}; '
          'now python tools/make_readme.py --execute renders the home page and README.md')
    return 0 if all(r['rc'] == 0 for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
