"Integration tests of the training machinery: console scripts, and a 2-process DDP run on CPU (gloo)."
import json
import os
import subprocess

import pytest

from geoformers.testing import torchrun_cmd


def run(*args, timeout=300, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env, **kw)


def test_console_script_help_and_list():
    r = run('geoformers_train', '--help')
    assert r.returncode == 0 and '--set' in r.stdout
    r = run('geoformers_train', '--list')
    assert r.returncode == 0 and 'toy' in r.stdout.split()


def test_unknown_key_is_a_clear_error():
    r = run('geoformers_train', 'toy', '--set', 'model.hiden=3', '--print_config')
    assert r.returncode != 0 and "did you mean 'model.hidden'" in r.stderr


def test_ddp_two_processes_gloo(tmp_path):
    "Both ranks step; rank 0 logs the all-reduced mean of the ranks' own losses"
    out = tmp_path/'ddp'
    r = run(*torchrun_cmd('toy', '--out', str(out), '--max_steps', '6',
                          '--set', 'train.rank_logs=true', 'train.log_every=1', 'train.progress=false'))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [[json.loads(l) for l in (out/f'rank{i}.jsonl').read_text().splitlines()] for i in (0, 1)]
    assert [len(x) for x in ranks] == [6, 6]                                  # both ranks stepped 6 times
    main = [json.loads(l) for l in (out/'metrics.jsonl').read_text().splitlines() if '"train"' in l]
    assert [m['world_size'] for m in main] == [2]*6
    for m, a, b in zip(main, *ranks):
        assert m['loss'] == pytest.approx((a['local_loss'] + b['local_loss']) / 2, rel=1e-6)
        assert a['local_loss'] != b['local_loss']                           # each rank saw its own shard
    summary = json.loads((out/'summary.json').read_text())
    assert summary['steps'] == 6 and 'train_mean' in summary['baselines']
