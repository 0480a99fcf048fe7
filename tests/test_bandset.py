"Integration tests of the bandset task: --dry_run token counts for the presets, and a 2-step training run."
import json
import os
import subprocess

from geoformers.testing import torchrun_cmd

TINY = ['data.n_train=16', 'data.n_val=8', 'data.probe_train=16', 'model.dim=32', 'model.depth=2', 'model.pred_depth=1',
        'train.batch_size=8', 'train.progress=false']


def run(*args, timeout=120):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    return subprocess.run(['geoformers_train', 'bandset', *args], capture_output=True, text=True, timeout=timeout, env=env)


def facts(stdout):
    "The JSON facts block --dry_run prints after the YAML config"
    return json.loads(stdout[stdout.index('\n{') + 1:])


def test_dry_run_default_and_merge_preset():
    r = run('--dry_run')
    assert r.returncode == 0, r.stderr[-2000:]
    f = facts(r.stdout)
    assert f['tokens_per_sample']['before_merge'] == f['tokens_per_sample']['after_merge'] == 160
    r = run('--dry_run', '--config', 'midlayer_merged_bandsets_cross_random_masked_neg')
    assert r.returncode == 0, r.stderr[-2000:]
    f = facts(r.stdout)
    assert (f['tokens_per_sample']['before_merge'], f['tokens_per_sample']['after_merge']) == (160, 64)
    assert f['s2_tokens_per_position_after_merge'] == 1 and f['merge_after_layer'] == 1


def test_two_step_run_writes_probe_and_baseline(tmp_path):
    r = run('--out', str(tmp_path), '--max_steps', '2', '--config', 'merged_bandsets_cross_random_masked_neg',
            '--set', *TINY, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads((tmp_path/'summary.json').read_text())
    assert s['steps'] == 2 and 0 <= s['metrics']['probe_acc'] <= 1
    assert 'probe_acc' in s['baselines']['random_init'] and 'loss' in s['metrics'] and 'probe_acc_fewshot' in s['metrics']
    assert 0 <= s['baselines']['mean_spectrum']['probe_acc'] <= 1      # the no-encoder baseline
    assert s['tokens_per_sample']['after_merge'] == 64
    assert list((tmp_path/'previews').glob('*.png'))            # preview: masks of both strategies


def test_patch_discrimination_centring():
    "A vector shared by every token of a sample carries no identity: centred, it changes nothing; uncentred, it swamps the scores"
    import torch
    from geoformers.models.latentmim import patch_discrimination
    torch.manual_seed(0)
    t = torch.randn(2, 12, 32); p = t + 0.5 * torch.randn(2, 12, 32); off = 10 * torch.randn(32)
    valid = torch.ones(2, 12, dtype=torch.bool); valid[0, 8:] = False
    assert torch.allclose(patch_discrimination(p + off, t + off, valid), patch_discrimination(p, t, valid), atol=1e-4)
    assert patch_discrimination(p + off, t + off, valid, center=False) > 2 * patch_discrimination(p, t, valid, center=False)
    assert patch_discrimination(t + off, t + off, valid) < 0.01          # a copy of the targets is a perfect prediction


def test_ddp_two_processes(tmp_path):
    "Under torchrun only one rank's batch runs the probe, yet every rank reports the probe keys (the all-reduce needs them)"
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(torchrun_cmd('bandset', '--out', str(tmp_path), '--max_steps', '2', '--set', *TINY), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads((tmp_path/'summary.json').read_text())
    assert s['steps'] == 2 and 0 <= s['metrics']['probe_acc'] <= 1 and s['metrics']['embed_std'] > 0
