"""Caption-step time of `weather-text`: one process (one thread, torch's default threads) against two DDP processes.

The DDP setting runs 1 thread and batch 8 per process, so the global batch (16) and the step count stay the
default's. Each setting trains twice, for `--short` and `--long` steps. The difference of the two runs'
`train_runtime_s`, divided by the extra steps, is the time per step; data, LM loading and the final validation
cancel out. Run it from the folder of a finished default pipeline (`runs/weather-mae/best.pt` and the cached text
LM in `runs/weather_text_lm`): `python bench/weather_ddp.py`. Takes about 8 minutes on 2 cores; nothing else should run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from geoformers.testing import torchrun_cmd

SETTINGS = {  # name: (launcher, extra overrides)
    'one process, default threads': ([sys.executable, '-m', 'geoformers.train.cli'], []),
    'one process, 1 thread': ([sys.executable, '-m', 'geoformers.train.cli'], ['train.num_threads=1']),
    'two DDP processes, 1 thread, batch 8 each': (torchrun_cmd(), ['train.num_threads=1', 'train.batch_size=8']),
}

def train_runtime(launcher:list, overrides:list, steps:int, out:Path)->float:
    cmd = [*launcher, 'weather-text', '--out', str(out), '--max_steps', str(steps),
           '--set', 'train.progress=false', 'eval.n_generate=1', *overrides]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'} if 'train.num_threads=1' in overrides else dict(os.environ)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: sys.exit(r.stderr[-3000:])
    return json.loads((out/'summary.json').read_text())['train_runtime_s']

def main(short:int, long:int):
    ms = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (launcher, over) in SETTINGS.items():
            a, b = (train_runtime(launcher, over, n, Path(tmp)/f'{len(ms)}-{n}') for n in (short, long))
            ms[name] = (b - a) / (long - short) * 1000
            print(f"{name:45s} {ms[name]:6.1f} ms per step", flush=True)
    base = ms['one process, default threads']
    for name, t in ms.items(): print(f"{name:45s} {base / t:5.2f}x the speed of one process with default threads")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--short', type=int, default=40); ap.add_argument('--long', type=int, default=440)
    main(**vars(ap.parse_args()))
