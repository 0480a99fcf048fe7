"Shared helpers for the test suite: `run_cli` runs a geoformers command the way a user does."

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args, cwd=None, timeout=300, env=None, input=None) -> subprocess.CompletedProcess:
    """Run a command (`'geoformers_train', 'toy', ...`) as a user would, with 1 thread; returns the
    CompletedProcess (`.returncode`, `.stdout`, `.stderr`). Console scripts are taken from this
    interpreter's environment, so the tests work without an activated virtual environment. Use it as
    `from conftest import run_cli` or the `cli` fixture."""
    args = [str(a) for a in args]
    here = Path(sys.executable).parent / args[0]
    if here.exists():
        args[0] = str(here)
    elif shutil.which(args[0]) is None and args[0] == 'python':
        args[0] = sys.executable
    full_env = {
        **os.environ,
        'OMP_NUM_THREADS': '1',
        'PYTHONUNBUFFERED': '1',
        'HF_HUB_OFFLINE': '1',
        'MPLBACKEND': 'Agg',
        **(env or {}),
    }
    return subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env, input=input
    )


def assert_user_error(r: subprocess.CompletedProcess, *words: str):
    "A user error: exit code 2, no traceback, stderr naming every word in `words` (any case)"
    msg = f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    assert r.returncode == 2, msg
    assert 'Traceback' not in r.stderr, msg
    err = r.stderr.lower()
    for w in words:
        assert w.lower() in err, f"{w!r} not in the message\n{msg}"


@pytest.fixture
def cli():
    "The `run_cli` helper as a fixture"
    return run_cli


@pytest.fixture(scope='session')
def toy_run(tmp_path_factory) -> Path:
    "A finished tiny toy run (40 steps), shared by a session's tests: do not modify it, copy it"
    root = tmp_path_factory.mktemp('toy_run')
    r = run_cli(
        'geoformers_train',
        'toy',
        '--out',
        root / 'run',
        '--max_steps',
        '40',
        '--set',
        'train.progress=false',
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return root / 'run'


def run_inproc(command, *args, cwd=None) -> subprocess.CompletedProcess:
    """Run a console-script function (`train_cli`, `predict_cli`, ...) in this process with the
    argument list `args`, exactly as its command would (argument parsing, `--debug`, exit code 2 for
    user errors), capturing stdout and stderr. Much faster than `run_cli` (no new interpreter); use
    `run_cli` where the process itself matters."""
    import contextlib
    import io
    from geoformers.errors import run_cli as _run

    out, err, code = io.StringIO(), io.StringIO(), 0
    here = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                _run(getattr(command, '__wrapped__', command), [str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(
        [getattr(command, '__name__', str(command)), *map(str, args)],
        code,
        out.getvalue(),
        err.getvalue(),
    )


def assert_same_predictions(a: Path, b: Path):
    """Two `geoformers_predict` outputs (a file, or a folder of them) hold the same values,
    coordinates and ids; their provenance (run folder, checkpoint path) may differ, not compared"""
    a, b = Path(a), Path(b)
    if a.is_dir():
        names = sorted(p.name for p in a.iterdir())
        assert names == sorted(p.name for p in b.iterdir())
        for n in names:
            assert_same_predictions(a / n, b / n)
    elif a.suffix == '.nc':
        import xarray as xr

        with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
            xr.testing.assert_equal(x, y)  # values and coordinates; attributes left out
    elif a.suffix == '.csv':
        import pandas as pd

        pd.testing.assert_frame_equal(pd.read_csv(a), pd.read_csv(b))
    elif a.suffix == '.parquet':
        import pyarrow.parquet as pq

        x, y = (pq.read_table(p).replace_schema_metadata(None) for p in (a, b))
        assert x.equals(y)
    elif a.suffix != '.json':
        raise AssertionError(f'no comparison for {a.suffix} files ({a})')


def assert_model_folder_predicts_like_the_run(run: Path, tmp_path: Path, suffix: str, data=None):
    """`save_pretrained` of a run, then `geoformers_predict` from the model folder writes what the
    run itself predicts (the hub path: `from_pretrained` reads the same folder layout)"""
    from geoformers.train.hub import GeoformersModel
    from geoformers.train.predict import predict_run

    GeoformersModel.from_run(run).save_pretrained(tmp_path / 'model')
    a = predict_run(run, data=data, out=tmp_path / f'from_run{suffix}')
    b = predict_run(tmp_path / 'model', data=data, out=tmp_path / f'from_model{suffix}')
    assert_same_predictions(a, b)
