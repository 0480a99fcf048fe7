"Integration tests of the weather tasks: `weather-mae` -> `weather-text` -> `geoformers_predict` / `geoformers_caption`."
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from geoformers.testing import torchrun_cmd

TINY_DATA = ['data.n_days=5']
TINY_MAE = ['model.dim=24', 'model.depth=2', 'model.heads=2', 'model.decoder_dim=16', 'model.decoder_heads=2']
TINY_TEXT = ['model.lm_dim=32', 'model.lm_depth=1', 'model.lm_steps=3', 'model.lm_batch_size=4', 'model.vocab_size=300',
             'eval.n_generate=2', 'eval.max_new_tokens=6']
COMMON = ['train.batch_size=4', 'train.progress=false']


def run(args, cwd, timeout=300):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def caption_cmd(*args):
    return [sys.executable, '-c', 'from geoformers.tasks.weather import caption_cli; caption_cli()', *args]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "A tiny weather-mae run and a weather-text run on top of it (found by `mae_ckpt: auto`)"
    tmp = tmp_path_factory.mktemp('weather')
    run(['geoformers_train', 'weather-mae', '--max_steps', '2', '--set', *TINY_DATA, *TINY_MAE, *COMMON], tmp)
    run(['geoformers_train', 'weather-text', '--max_steps', '2', '--set', *TINY_DATA, *TINY_TEXT, *COMMON], tmp)
    return tmp


@pytest.fixture(scope='module')
def heldout(tmp_path_factory):
    "Two days of other fields (another seed), 3-hourly like the runs' data, as NetCDF"
    from geoformers.data.era5_synth import synth_era5
    p = tmp_path_factory.mktemp('heldout')/'other.nc'
    synth_era5(n_days=2, seed=7, res=1.0, start='2020-06-01').isel(time=slice(None, None, 3)).to_netcdf(p)
    return p


@pytest.fixture(scope='module')
def heldout_captioned(tmp_path_factory):
    "A folder of other fields (3 days, another seed) with a captions.csv beside them, as geoformers_eval reads it"
    from geoformers.data.era5_captions import synth_captions
    from geoformers.data.era5_synth import synth_era5
    d = tmp_path_factory.mktemp('heldout_caps')
    hourly = synth_era5(n_days=3, seed=7, res=1.0, start='2020-06-01')
    hourly.isel(time=slice(None, None, 3)).to_netcdf(d/'fields.nc')
    synth_captions(hourly).to_csv(d/'captions.csv', index=False)
    return d


def test_weather_pipeline(runs):
    "2 steps of each task; weather-text finds the MAE checkpoint itself; its summary has every baseline"
    assert (runs/'runs'/'weather-mae'/'best.pt').exists()
    assert len(list((runs/'runs'/'cache').glob('synth_era5_*'))) == 2     # fields and captions, read back by weather-text
    s = json.loads((runs/'runs'/'weather-text'/'summary.json').read_text())
    assert {'loss', 'perplexity'} <= set(s['metrics'])
    assert set(s['baselines']) == {'no_prefix', 'facts_prefix', 'caption_prior', 'majority'}
    assert s['baselines']['no_prefix']['perplexity'] > 1 and s['baselines']['facts_prefix']['perplexity'] > 1
    assert 'fact_accuracy' in s['generation'] and 'fact_accuracy' in s['baselines']['facts_prefix']
    date = s['samples'][0]['date']
    r = run(caption_cmd('--date', date, '--run', 'runs/weather-text', '--max_new_tokens', '5', '--max_samples', '1'), runs)
    assert r.stdout.splitlines()[-1].startswith(date)


def test_predict_mae(runs, heldout):
    "geoformers_predict writes the pooled embeddings of held-out windows; they equal a direct model call"
    from geoformers.train.predict import load_run
    out = runs/'emb.nc'
    run(['geoformers_predict', 'runs/weather-mae', '--data', str(heldout), '--out', str(out)], runs)
    assert (runs/'emb.nc.provenance.json').exists()
    emb = xr.open_dataset(out)
    task, cfg, model = load_run(runs/'runs'/'weather-mae')
    from geoformers.data.weather_inputs import weather_windows
    dsw = weather_windows(cfg.data, stats=task.windows.stats, paths=str(heldout), verbose=False)
    x = torch.stack([dsw[i]['x'] for i in range(len(dsw))])
    with torch.no_grad(): ref = model.encode_tokens(x).mean(1).numpy()
    np.testing.assert_allclose(emb.embedding.values, ref, rtol=1e-4, atol=1e-5)
    assert list(emb.window.values) == [dsw[i]['id'] for i in range(len(dsw))]
    assert str(emb.time.values[0])[:10] == '2020-06-01' and emb.date.values[-1] == '2020-06-02'
    assert emb.attrs['task'] == 'weather-mae'


def test_predict_text(runs, heldout):
    "geoformers_predict writes `date, window, caption` for held-out windows; captions equal a direct model call"
    from geoformers.train.predict import load_run
    out = runs/'caps.csv'
    run(['geoformers_predict', 'runs/weather-text', '--data', str(heldout), '--out', str(out)], runs)
    df = pd.read_csv(out)
    assert list(df.columns) == ['date', 'window', 'caption'] and list(df.date) == ['2020-06-01', '2020-06-02']
    task, cfg, model = load_run(runs/'runs'/'weather-text')
    from geoformers.data.weather_inputs import weather_windows
    dsw = weather_windows(cfg.data, stats=task.windows.stats, paths=str(heldout), verbose=False)
    direct = task.generate(model, torch.stack([dsw[i]['x'] for i in range(len(dsw))]), cfg)
    assert list(pd.read_csv(out, keep_default_na=False).caption) == direct
    assert list(df.window) == [dsw[i]['id'] for i in range(len(dsw))]


def test_weather_text_ddp(tmp_path):
    "Under torchrun with 2 processes rank 0 trains the text LM while rank 1 waits; both ranks then step on it"
    run(torchrun_cmd('weather-text', '--out', 'runs/ddp', '--max_steps', '2', '--set', 'model.mae_ckpt=none',
                     'train.rank_logs=true', 'train.log_every=1', *TINY_DATA, *TINY_TEXT, *COMMON,
                     'train.batch_size=2'), tmp_path)
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


@pytest.mark.parametrize('name,suffix', [('weather-mae', '.nc'), ('weather-text', '.csv')])
def test_model_folder_predicts_like_the_run(runs, heldout, tmp_path, monkeypatch, name, suffix):
    "save_pretrained, then predict from the model folder: the same embeddings / captions"
    from conftest import assert_model_folder_predicts_like_the_run
    monkeypatch.chdir(runs)
    assert_model_folder_predicts_like_the_run(runs/'runs'/name, tmp_path, suffix, data=heldout)


@pytest.mark.parametrize('name', ['weather-mae', 'weather-text'])
def test_eval_scores_the_baselines(runs, heldout, heldout_captioned, name):
    "geoformers_eval on other data scores the baselines training reports, with the same metrics, and prints them"
    data = heldout if name == 'weather-mae' else heldout_captioned
    r = run(['geoformers_eval', f'runs/{name}', '--data', str(data), '--name', 'other', '--overwrite'], runs)
    res = json.loads((runs/'runs'/name/'eval-other.json').read_text())
    s = json.loads((runs/'runs'/name/'summary.json').read_text())
    assert res['baselines'] and set(res['baselines']) == set(s['baselines'])
    for b, m in s['baselines'].items():
        assert set(res['baselines'][b]) == set(m), b
        assert all(np.isfinite(v) for v in res['baselines'][b].values()), res['baselines'][b]
        assert b in r.stdout
    if name == 'weather-mae': assert res['baselines']['patch_mean']['loss'] > 0
    else: assert res['baselines']['no_prefix']['perplexity'] > 1 and res['samples'] == 3
