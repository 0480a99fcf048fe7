"""Bad input and faults for the training machinery (causes 1, 2, 3 (NaN metric), 7, 8, 9 of the
bad-input review): each case asserts the exit code and the key words of the message, or that nothing
silently changed. Most cases run the console-script functions in this process (`run_inproc`, same
parsing and exit codes); a few run real processes (`run_cli`)."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Subset

from conftest import assert_user_error, run_cli, run_inproc
from geoformers.errors import CheckpointError, ConfigError, DataError
from geoformers.tasks.toy import ToyTask
from geoformers.train.checkpoint import load_checkpoint
from geoformers.train.cli import train_cli
from geoformers.train.config import resolve_config
from geoformers.train.loop import fit
from geoformers.train.eval import eval_cli
from geoformers.train.predict import predict_cli
from geoformers.train.run_log import read_metrics
from geoformers.train.stopping import NonFiniteLoss
from geoformers.train.tasks import get_task

QUIET = ['--set', 'train.progress=false']


def train(*args, cwd=None):
    return run_inproc(train_cli, *args, cwd=cwd)


def snapshot(folder: Path) -> dict:
    "Every file of a folder and its bytes"
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


@pytest.fixture
def run4(tmp_path) -> Path:
    "A finished 4-step toy run of its own"
    r = train('toy', '--out', tmp_path / 'r', '--max_steps', '4', *QUIET)
    assert r.returncode == 0, r.stderr
    return tmp_path / 'r'


# -------------------- cause 1: runs get overwritten


def test_second_run_into_a_run_folder_is_refused_and_changes_nothing(run4):
    before = snapshot(run4)
    r = train(
        'toy', '--out', run4, '--max_steps', '1', '--set', 'train.lr=0.5', 'train.progress=false'
    )
    assert_user_error(r, 'already holds a run', '--resume', '--overwrite')
    assert snapshot(run4) == before


def test_overwrite_replaces_the_run_entirely(run4):
    r = train(
        'toy',
        '--out',
        run4,
        '--max_steps',
        '2',
        '--overwrite',
        '--set',
        'train.lr=0.5',
        'train.log_every=1',
        'train.progress=false',
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((run4 / 'config.json').read_text())['train']['lr'] == 0.5
    assert [m['step'] for m in read_metrics(run4) if m['split'] == 'train'] == [
        1,
        2,
    ]  # no record of the old run
    assert json.loads((run4 / 'summary.json').read_text())['steps'] == 2


def test_runs_started_at_once_get_different_folders(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, '-m', 'geoformers.train.cli', 'toy', '--max_steps', '3', *QUIET],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    folders = sorted(p.name for p in (tmp_path / 'runs').iterdir())
    assert folders == ['toy', 'toy-2']
    for f in folders:
        assert json.loads((tmp_path / 'runs' / f / 'summary.json').read_text())['steps'] == 3


def test_out_pointing_at_a_file(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    assert_user_error(
        train('toy', '--out', tmp_path / 'notes.txt', '--max_steps', '1'), 'is a file'
    )
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_resume_and_overwrite_together(run4):
    assert_user_error(train('toy', '--out', run4, '--resume', '--overwrite'), 'exclude each other')


def test_resume_a_folder_without_a_run(tmp_path):
    (tmp_path / 'empty').mkdir()
    assert_user_error(
        train('toy', '--out', tmp_path / 'empty', '--resume'), 'cannot resume', 'not a run folder'
    )
    assert_user_error(train('toy', '--resume', cwd=tmp_path), 'no run of', 'toy')


# -------------------- cause 2: zero and negative numbers


@pytest.mark.parametrize(
    'args, words',
    [
        (['--max_steps', '0'], ['train.max_steps=0', '>= 1']),
        (['--max_steps', '-3'], ['train.max_steps=-3', '>= 1']),
        (['--set', 'train.epochs=-1'], ['train.epochs=-1', '>= 1']),
        (['--set', 'train.epochs=0'], ['train.epochs=0']),
        (['--set', 'train.batch_size=0'], ['train.batch_size=0', 'an int >= 1']),
        (['--set', 'train.log_every=0'], ['train.log_every=0']),
        (['--set', 'train.grad_accum=0'], ['train.grad_accum=0']),
        (['--set', 'train.val_every=0'], ['train.val_every=0', 'or null']),
        (['--set', 'train.max_steps=2.5'], ['train.max_steps=2.5', 'an int']),
        (['--set', 'train.lr=-1'], ['train.lr=-1', '> 0']),
        (['--set', 'train.lr=.nan'], ['train.lr', 'not finite']),
        (['--set', 'train.warmup_steps=-5'], ['train.warmup_steps=-5', '>= 0']),
        (['--set', 'train.schedule=linear'], ['train.schedule', "'cosine', 'constant'"]),
        (['--set', 'data.n_val=0'], ['data.n_val=0', '>= 1']),
        (['--set', 'model.dropout=1.5'], ['model.dropout=1.5', '< 1']),
        (['--set', 'train.betas=[0.9, 1.5]'], ['train.betas=[0.9, 1.5]', '[0, 1)']),
        (['--set', 'train.betas=[-0.1, 0.9]'], ['train.betas', '[0, 1)']),
        (['--set', 'model.act=relu6'], ['model.act', "'relu6'", "'gelu'"]),
        (['--set', 'model.act=null'], ['model.act=None', "'gelu'"]),
        (
            ['--max_steps', '1', '--set', 'train.max_steps=2.5'],
            ['train.max_steps is given twice', '--max_steps 1', 'train.max_steps=2.5', 'keep one'],
        ),
    ],
)
def test_out_of_range_values_are_refused_before_anything_runs(tmp_path, args, words):
    r = train('toy', '--out', tmp_path / 'r', *args)
    assert_user_error(r, *words)
    assert not (tmp_path / 'r').exists()  # refused at config resolution: no folder, no run


# -------------------- cause 3: a NaN metric never chooses best.pt


class NaNMetric(ToyTask):
    "Toy whose validation metric is NaN from the `after`-th validation on"

    def __init__(self, after=0):
        self.after, self.calls = after, 0

    def compute_metrics(self, stats, cfg):
        self.calls += 1
        m = super().compute_metrics(stats, cfg)
        return {**m, 'loss': float('nan')} if self.calls > self.after else m


def test_nan_metric_at_every_validation_fails_without_best(tmp_path, capsys):
    task = NaNMetric()
    cfg = resolve_config(
        task, overrides=['train.max_steps=4', 'train.val_every=2', 'train.progress=false']
    )
    with pytest.raises(DataError, match='never finite, so no best.pt'):
        fit(task, cfg, tmp_path / 'r')
    assert 'does not choose best.pt' in capsys.readouterr().err
    assert not (tmp_path / 'r' / 'best.pt').exists() and (tmp_path / 'r' / 'last.pt').exists()


def test_nan_metric_later_keeps_the_finite_best(tmp_path):
    task = NaNMetric(after=1)
    cfg = resolve_config(
        task, overrides=['train.max_steps=6', 'train.val_every=2', 'train.progress=false']
    )
    s = fit(task, cfg, tmp_path / 'r')
    best = torch.load(tmp_path / 'r' / 'best.pt', weights_only=True)
    assert best['state']['step'] == 2 and np.isfinite(s['best']['loss'])
    assert any('not finite' in w for w in s['warnings'])


# -------------------- cause 7: failures after training keep it


class Poisoned(ToyTask):
    "Toy with an inf in training row `row`"

    def __init__(self, row):
        self.row = row

    def data(self, cfg):
        d = super().data(cfg)
        d['train'].x[self.row, 0] = float('inf')
        return d


def test_nonfinite_loss_at_step_1_names_ids_and_no_checkpoint(tmp_path):
    cfg = resolve_config(
        ToyTask(), overrides=['train.progress=false', 'train.batch_size=512', 'train.max_steps=3']
    )
    with pytest.raises(NonFiniteLoss) as e:
        fit(Poisoned(7), cfg, tmp_path / 'r')
    msg = str(e.value)
    assert 'step 1' in msg and "x in 'train row 7'" in msg and 'No checkpoint was written' in msg
    assert 'last.pt' not in msg and not (tmp_path / 'r' / 'last.pt').exists()


def test_nonfinite_loss_later_names_the_last_checkpoint(tmp_path):
    cfg = resolve_config(
        ToyTask(),
        overrides=[
            'train.progress=false',
            'train.batch_size=8',
            'train.val_every=2',
            'train.max_steps=64',
        ],
    )
    with pytest.raises(NonFiniteLoss) as e:
        fit(Poisoned(300), cfg, tmp_path / 'r')
    assert e.value.bad_inputs == {'x': ['train row 300']} and e.value.step > 2
    assert str(tmp_path / 'r' / 'last.pt') in str(e.value)
    assert (
        torch.load(tmp_path / 'r' / 'last.pt', weights_only=True)['state']['step']
        == e.value.last_step
    )


class FailingValidation(ToyTask):
    def compute_metrics(self, stats, cfg):
        raise KeyError('sse')


def test_failing_validation_keeps_last_pt_and_says_so(tmp_path):
    cfg = resolve_config(ToyTask(), overrides=['train.progress=false', 'train.max_steps=4'])
    with pytest.raises(KeyError) as e:
        fit(FailingValidation(), cfg, tmp_path / 'r')
    assert any('last.pt' in n and '--resume' in n for n in getattr(e.value, '__notes__', []))
    assert torch.load(tmp_path / 'r' / 'last.pt', weights_only=True)['state']['step'] == 4
    r = train('toy', '--out', tmp_path / 'r', '--resume', *QUIET)  # the fixed task finishes the run
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'r' / 'summary.json').read_text())['steps'] == 4


class EmptyVal(ToyTask):
    def data(self, cfg):
        d = super().data(cfg)
        return {**d, 'val': Subset(d['val'], [])}


def test_empty_validation_split_is_a_data_error(tmp_path):
    cfg = resolve_config(ToyTask(), overrides=['train.progress=false', 'train.max_steps=2'])
    with pytest.raises(DataError, match='validation split .* is empty'):
        fit(EmptyVal(), cfg, tmp_path / 'r')


# -------------------- cause 8: resume and logs


def _wait_for(path: Path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def _long_toy_run(out, *sets: str, cwd=None) -> subprocess.Popen:
    "`geoformers_train toy` for 100000 steps in a process of its own (one thread), to be stopped"
    cmd = [sys.executable, '-m', 'geoformers.train.cli', 'toy', '--out', str(out)]
    return subprocess.Popen(
        [*cmd, '--max_steps', '100000', '--set', *sets, 'train.progress=false'],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
    )


def test_kill_9_then_resume_logs_every_step_once(tmp_path):
    out = tmp_path / 'r'
    p = _long_toy_run(out, 'train.val_every=200', 'train.log_every=10')
    _wait_for(out / 'best.pt', p)
    time.sleep(0.3)  # a few more log records past the checkpoint
    p.kill()
    p.communicate()
    step = torch.load(out / 'last.pt', weights_only=True)['state']['step']
    r = train('toy', '--out', out, '--resume', '--max_steps', str(step + 20))
    assert r.returncode == 0, r.stderr
    keys = [(m['split'], m['step']) for m in read_metrics(out)]
    assert len(keys) == len(set(keys)), 'a step was logged twice'
    assert [s for _, s in keys] == sorted(s for _, s in keys)


def test_sigterm_prints_a_resume_command_that_works(tmp_path):
    p = _long_toy_run('r', 'model.hidden=12', cwd=tmp_path)
    _wait_for(tmp_path / 'r' / 'config.json', p)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    line = next(l for l in out.splitlines() if 'continue with:' in l)
    cmd = shlex.split(line.split('continue with:')[1])
    assert cmd[:2] == ['geoformers_train', 'toy'] and '--resume' in cmd
    stopped = int(line.split('stopped at step ')[1].split()[0])
    r = run_cli(
        *cmd, '--max_steps', stopped + 3, cwd=tmp_path
    )  # --set model.hidden=12 not repeated
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / 'r' / 'summary.json').read_text())
    assert s['steps'] == stopped + 3 and s['config']['model']['hidden'] == 12


class PreemptedBaseline(ToyTask):
    "Toy whose trained baseline gets SIGTERM on the first try"

    tries = 0

    def baselines(self, data, cfg, run_dir):
        self.tries += 1
        sub = SelfTerm() if self.tries == 1 else ToyTask()
        return {'mlp': fit(sub, cfg, Path(run_dir) / 'baseline_mlp')['metrics']}


class SelfTerm(ToyTask):
    calls = 0

    def loss(self, model, batch, cfg):
        self.calls += 1
        if self.calls == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(model, batch, cfg)


def test_sigterm_during_a_trained_baseline_stops_cleanly(tmp_path):
    task = PreemptedBaseline()
    cfg = resolve_config(task, overrides=['train.max_steps=4', 'train.progress=false'])
    r = fit(task, cfg, tmp_path / 'r')
    assert r['stopped_at'] == 4 and r['during'] == 'baselines' and r['signal'] == 'SIGTERM'
    s = fit(task, cfg, tmp_path / 'r', resume=True)
    assert 'mlp' in s['baselines'] and s['steps'] == 4


def test_resume_with_another_model_is_refused(run4):
    r = train('toy', '--out', run4, '--resume', '--set', 'model.hidden=64')
    assert_user_error(r, 'another config', 'model.hidden: 32 (checkpoint) vs 64 (now)')


# -------------------- cause 9: errors that were tracebacks


@pytest.mark.parametrize(
    'text, words',
    [
        ('', ['is empty']),
        ('- a\n- b\n', ['holds a list']),
        ('train: {lr: 1\n', ['not valid YAML']),
        ('42\n', ['holds a int']),
    ],
)
def test_bad_yaml_files(tmp_path, text, words):
    (tmp_path / 'c.yaml').write_text(text)
    assert_user_error(
        train('toy', '--config', tmp_path / 'c.yaml', '--print_config'), 'c.yaml', *words
    )


@pytest.mark.parametrize(
    'args, words',
    [
        (['--set', 'model=3'], ["'model' is a section", 'model.hidden']),
        (['--set', 'train.lr'], ['key=value']),
        (['--set', 'model.hiden=3'], ["did you mean 'model.hidden'"]),
        (['--set', 'train.betas=[0.9'], ['not valid yaml']),
        (['--config', 'no_such.yaml'], ['no config file', 'no_such.yaml']),
        (['--device', 'tpu'], ['device', 'tpu', 'cannot be used']),
    ],
)
def test_bad_command_lines(tmp_path, args, words):
    assert_user_error(train('toy', '--out', tmp_path / 'r', '--max_steps', '1', *args), *words)


def test_config_that_is_a_folder_and_unknown_task(tmp_path):
    assert_user_error(train('toy', '--config', tmp_path, '--print_config'), 'is a folder')
    assert_user_error(train('tyo'), "did you mean 'toy'")


def test_debug_shows_the_traceback_and_the_shell_sees_exit_2(tmp_path):
    r = run_cli('geoformers_train', 'toy', '--max_steps', '0')
    assert_user_error(r, 'train.max_steps=0')
    assert len(r.stderr.strip().splitlines()) == 1  # one line
    r = run_cli('geoformers_train', 'toy', '--max_steps', '0', '--debug')
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'ConfigError' in r.stderr


def test_renamed_key_names_the_new_one():
    class Renamed(ToyTask):
        renamed_keys = {'data.noise': 'data.noise_std'}

    with pytest.raises(ConfigError, match="'data.noise' was renamed to 'data.noise_std'"):
        resolve_config(Renamed(), overrides=['data.noise=0.3'])
    with pytest.raises(ConfigError, match="renamed to 'data.noise_std'"):
        resolve_config(Renamed(), {'data': {'noise': 0.3}})


# -------------------- predict / eval / checkpoints (issue 17 item 6)


def test_predict_refuses_what_is_not_a_run(tmp_path, run4):
    assert_user_error(run_inproc(predict_cli, tmp_path / 'nope'), 'no run folder')
    (tmp_path / 'folder').mkdir()
    assert_user_error(
        run_inproc(predict_cli, tmp_path / 'folder'), 'not a run folder', 'config.json'
    )
    (tmp_path / 'nockpt').mkdir()
    (tmp_path / 'nockpt' / 'config.json').write_text((run4 / 'config.json').read_text())
    assert_user_error(
        run_inproc(predict_cli, tmp_path / 'nockpt'), 'holds no checkpoint', '--resume'
    )


def test_predict_with_a_checkpoint_of_another_task_or_size(tmp_path, run4):
    ck = torch.load(run4 / 'best.pt', weights_only=True)
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'config.json').write_text((run4 / 'config.json').read_text())
    torch.save({**ck, 'config': {**ck['config'], 'task': 'wildfire'}}, other / 'best.pt')
    assert_user_error(run_inproc(predict_cli, other), "from a run of task 'wildfire', not 'toy'")
    r = train(
        'toy',
        '--out',
        tmp_path / 'big',
        '--max_steps',
        '1',
        '--set',
        'model.hidden=48',
        'train.progress=false',
    )
    assert r.returncode == 0, r.stderr
    (other / 'best.pt').write_bytes((tmp_path / 'big' / 'best.pt').read_bytes())
    assert_user_error(
        run_inproc(predict_cli, other),
        '0.weight [48, 8] (checkpoint) vs [32, 8] (model)',
        'model.hidden: 48 (checkpoint) vs 32 (now)',
    )


def test_predict_data_problems_and_existing_output(tmp_path, run4):
    assert_user_error(
        run_inproc(predict_cli, run4, '--data', tmp_path / 'missing.csv'),
        'missing.csv',
        'no such file',
    )
    pd.DataFrame({'a': [1.0], 'b': [2.0]}).to_csv(tmp_path / 'wrong.csv', index=False)
    assert_user_error(
        run_inproc(
            predict_cli, run4, '--data', tmp_path / 'wrong.csv', '--out', tmp_path / 'p.csv'
        ),
        'lacks columns',
        "'x0'",
        "['a', 'b']",
    )
    df = pd.DataFrame({f'x{i}': [0.5, 1.0] for i in range(8)})
    df.loc[1, 'x3'] = np.inf
    df.to_csv(tmp_path / 'inf.csv', index=False)
    assert_user_error(
        run_inproc(predict_cli, run4, '--data', tmp_path / 'inf.csv', '--out', tmp_path / 'p.csv'),
        'rows [1]',
        'non-finite',
    )
    (tmp_path / 'p.csv').write_text('keep me')
    df.loc[1, 'x3'] = 0
    df.to_csv(tmp_path / 'ok.csv', index=False)
    assert_user_error(
        run_inproc(predict_cli, run4, '--data', tmp_path / 'ok.csv', '--out', tmp_path / 'p.csv'),
        'exists',
        '--overwrite',
    )
    assert (tmp_path / 'p.csv').read_text() == 'keep me'


def test_eval_needs_data_and_labels(tmp_path, run4):
    r = run_inproc(eval_cli, run4)
    assert r.returncode == 2 and '--data' in r.stderr
    pd.DataFrame({f'x{i}': [0.5] for i in range(8)}).to_csv(tmp_path / 'nolabels.csv', index=False)
    assert_user_error(
        run_inproc(eval_cli, run4, '--data', tmp_path / 'nolabels.csv'), "lacks columns ['y']"
    )


def test_checkpoint_of_another_task_given_as_a_pretrained_part(run4):
    "A checkpoint handed to a model it does not fit (as model.mae_ckpt) says which task it is from"
    with pytest.raises(CheckpointError, match="from a run of task 'toy'"):
        load_checkpoint(run4 / 'best.pt', torch.nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match='is a folder'):
        load_checkpoint(run4, torch.nn.Linear(3, 3))


def test_eval_and_predict_refuse_batch_sizes_below_one(tmp_path, run4):
    pd.DataFrame({f'x{i}': [0.5] for i in range(8)} | {'y': [1.0]}).to_csv(
        tmp_path / 'd.csv', index=False
    )
    for bs in ('0', '-1'):
        for cmd in (eval_cli, predict_cli):
            out = tmp_path / f'{cmd.__name__}{bs}.json'
            r = run_inproc(cmd, run4, '--data', tmp_path / 'd.csv', '--out', out, '--batch_size', bs)
            assert_user_error(r, f'--batch_size {bs}', '>= 1')
            assert not out.exists()


def test_save_pretrained_into_a_run_folder_is_refused(run4):
    from geoformers.train.hub import GeoformersModel
    from geoformers.errors import RunFolderError

    before = snapshot(run4)
    with pytest.raises(RunFolderError, match='holds a training run .*folder of its own'):
        GeoformersModel.from_run(run4).save_pretrained(run4)
    assert snapshot(run4) == before


class FailingBaseline(ToyTask):
    def baselines(self, data, cfg, out):
        raise RuntimeError('baseline broke')


def test_failing_baseline_after_training_says_the_model_is_saved(tmp_path):
    cfg = resolve_config(ToyTask(), overrides=['train.progress=false', 'train.max_steps=3'])
    with pytest.raises(RuntimeError, match='baseline broke') as e:
        fit(FailingBaseline(), cfg, tmp_path / 'r')
    notes = ' '.join(getattr(e.value, '__notes__', []))
    assert 'best.pt' in notes and 'last.pt' in notes and 'summary.json was not written' in notes
    assert (tmp_path / 'r' / 'best.pt').exists() and not (tmp_path / 'r' / 'summary.json').exists()


def test_nonfinite_loss_from_the_command_is_one_message_exit_2(tmp_path):
    r = train(
        'toy', '--out', tmp_path / 'r', '--max_steps', '30',
        '--set', 'train.progress=false', 'train.lr=1e30', 'train.grad_clip=0',
    )
    assert_user_error(r, 'non-finite loss', 'train.lr', 'train row')


def test_resume_with_another_log_every_and_a_cut_last_log_line(run4):
    "log_every may change on resume; a line cut short by kill -9 is dropped, not kept"
    with open(run4 / 'metrics.jsonl', 'a') as f:
        f.write('{"split": "tr')
    r = train('toy', '--out', run4, '--resume', '--max_steps', '6', *QUIET, 'train.log_every=1')
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in (run4 / 'metrics.jsonl').read_text().splitlines()]
    steps = [m['step'] for m in recs if m['split'] == 'train']
    assert steps == sorted(set(steps)) and steps[-2:] == [5, 6]
