"Shared helpers for the test suite: `run_cli` runs a geoformers command the way a user does."
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args, cwd=None, timeout=300, env=None, input=None) -> subprocess.CompletedProcess:
    """Run a command (`'geoformers_train', 'toy', ...`) as a user would, with 1 thread; returns the CompletedProcess
    (`.returncode`, `.stdout`, `.stderr`). Console scripts are taken from this interpreter's environment, so the tests
    work without an activated virtual environment. Use it as `from conftest import run_cli` or the `cli` fixture."""
    args = [str(a) for a in args]
    here = Path(sys.executable).parent / args[0]
    if here.exists(): args[0] = str(here)
    elif shutil.which(args[0]) is None and args[0] == 'python': args[0] = sys.executable
    full_env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'HF_HUB_OFFLINE': '1',
                'MPLBACKEND': 'Agg', **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env, input=input)


def assert_user_error(r: subprocess.CompletedProcess, *words: str):
    "A user error: exit code 2, one `error:` line on stderr naming every word in `words` (case-insensitive), no traceback"
    msg = f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    assert r.returncode == 2, msg
    assert 'Traceback' not in r.stderr, msg
    err = r.stderr.lower()
    for w in words: assert w.lower() in err, f"{w!r} not in the message\n{msg}"


@pytest.fixture
def cli():
    "The `run_cli` helper as a fixture"
    return run_cli


@pytest.fixture(scope='session')
def toy_run(tmp_path_factory) -> Path:
    "A finished tiny toy run (40 steps), shared by the tests of a session: do not modify it, copy it"
    root = tmp_path_factory.mktemp('toy_run')
    r = run_cli('geoformers_train', 'toy', '--out', root/'run', '--max_steps', '40', '--set', 'train.progress=false')
    assert r.returncode == 0, r.stderr[-3000:]
    return root/'run'
