"""What bench/bandset_objectives.py and bench/bandset_table.py share: the hidden arguments by which the bench
runs one (row, seed) in a worker process of its own, and the pool that runs those workers `jobs` at a time.
Not a bench on its own."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add_worker_args(ap: argparse.ArgumentParser):
    "The hidden `--one ROW --seed S --part FILE` a worker process is started with"
    ap.add_argument('--one', help=argparse.SUPPRESS)
    ap.add_argument('--seed', type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument('--part', help=argparse.SUPPRESS)


def run_worker(a, one_run) -> bool:
    "In a worker (`--one` given): write `one_run(row, seed, quick)` as JSON to `--part`; True if it did"
    if not a.one:
        return False
    Path(a.part).write_text(json.dumps(one_run(a.one, a.seed, a.quick), default=float))
    return True


def run_workers(script, todo: list, jobs: int, quick: bool):
    "`script --one ROW --seed S` for every (row, seed) of `todo`, `jobs` at a time: (row, seed, result)"
    todo = list(todo)
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    running = []
    with tempfile.TemporaryDirectory() as tmp:
        while todo or running:
            while todo and len(running) < jobs:
                r, s = todo.pop(0)
                part = Path(tmp) / f'{len(todo)}.json'
                cmd = [sys.executable, str(script), '--one', r, '--seed', str(s), '--part', str(part)]
                proc = subprocess.Popen(cmd + (['--quick'] if quick else []), env=env)
                running.append((proc, part, r, s))
            time.sleep(1)
            for p in [x for x in running if x[0].poll() is not None]:
                running.remove(p)
                if p[0].returncode:
                    raise RuntimeError(f"run {p[2]!r} seed {p[3]} failed ({p[0].returncode})")
                yield p[2], p[3], json.loads(p[1].read_text())
