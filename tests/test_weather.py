"Integration tests of the weather tasks: `weather-mae` -> `weather-text` -> `geoformers_caption` on tiny settings."
import json
import os
import shutil
import subprocess
import sys

from geoformers.testing import torchrun_cmd

TINY_DATA = ['data.n_days=5']
TINY_MAE = ['model.dim=24', 'model.depth=2', 'model.heads=2', 'model.decoder_dim=16', 'model.decoder_heads=2']
TINY_TEXT = ['model.lm_dim=32', 'model.lm_depth=1', 'model.lm_steps=3', 'model.lm_batch_size=4', 'model.vocab_size=300',
             'eval.n_generate=2', 'eval.max_new_tokens=6']
COMMON = ['train.batch_size=4', 'train.progress=false']


def run(args, cwd, timeout=240):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def caption_cmd(*args):
    "The console script when installed, else the same function through fastcore's parser"
    if shutil.which('geoformers_caption'): return ['geoformers_caption', *args]
    return [sys.executable, '-c', 'from geoformers.tasks.weather import caption_cli; caption_cli()', *args]


def test_weather_pipeline(tmp_path):
    "2 steps of each task; weather-text finds the MAE checkpoint itself; captions print for a held-out date"
    run(['geoformers_train', 'weather-mae', '--max_steps', '2', '--set', *TINY_DATA, *TINY_MAE, *COMMON], tmp_path)
    assert (tmp_path/'runs'/'weather-mae'/'best.pt').exists()
    assert len(list((tmp_path/'runs'/'cache').glob('synth_era5_*'))) == 2     # fields and captions, which weather-text reads back
    run(['geoformers_train', 'weather-text', '--max_steps', '2', '--set', *TINY_DATA, *TINY_TEXT, *COMMON], tmp_path)
    s = json.loads((tmp_path/'runs'/'weather-text'/'summary.json').read_text())
    assert {'loss', 'perplexity'} <= set(s['metrics'])
    assert s['baselines']['no_prefix']['perplexity'] > 1
    assert 'fact_accuracy' in s['generation'] and 'fact_accuracy' in s['baselines']['majority']
    date = s['samples'][0]['date']
    r = run(caption_cmd('--date', date, '--run', 'runs/weather-text', '--max_new_tokens', '5', '--max_samples', '1'), tmp_path)
    assert r.stdout.startswith(date)


def test_weather_text_ddp(tmp_path):
    "Under torchrun with 2 processes rank 0 trains the text LM while rank 1 waits; both ranks then step on it"
    run(torchrun_cmd('weather-text', '--out', 'runs/ddp', '--max_steps', '2', '--set', 'model.mae_ckpt=none', 'train.rank_logs=true',
                     'train.log_every=1', *TINY_DATA, *TINY_TEXT, *COMMON, 'train.batch_size=2'), tmp_path)
    ranks = [(tmp_path/'runs'/'ddp'/f'rank{i}.jsonl').read_text().splitlines() for i in (0, 1)]
    assert [len(r) for r in ranks] == [2, 2]
    assert json.loads((tmp_path/'runs'/'weather_text_lm'/'spec.json').read_text())['steps'] == 3
    lm_log = (tmp_path/'runs'/'weather_text_lm'/'metrics.jsonl').read_text().splitlines()
    assert len(set(lm_log)) == len(lm_log)                  # one LM run logged (two ranks training would append it twice)
    s = json.loads((tmp_path/'runs'/'ddp'/'summary.json').read_text())
    assert s['steps'] == 2 and s['baselines']['no_prefix']['perplexity'] > 1


def test_mae_from_config_norm_pix_loss():
    "`norm_pix_loss` reaches SatSwinMAE; configs and checkpoints without the key keep per-patch normalised targets"
    from geoformers.tasks.weather import mae_from_config
    base = dict(dim=16, depth=1, heads=2, patch=[2, 4, 4], window=[1, 2, 2], decoder_dim=8, decoder_heads=2, mask_ratio=0.75)
    assert mae_from_config(base, 3).norm_pix_loss
    assert mae_from_config({**base, 'norm_pix_loss': True}, 3).norm_pix_loss
    assert not mae_from_config({**base, 'norm_pix_loss': False}, 3).norm_pix_loss
