"Integration tests of the bandset task: --dry_run token counts, a short run with the probe protocol, predict and eval."
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli

TINY = ['data.n_train=32', 'data.n_val=16', 'data.probe_train=32', 'model.dim=32', 'model.depth=2',
        'model.pred_depth=1', 'train.batch_size=8', 'train.progress=false', 'baselines.supervised_steps=2']


def facts(stdout):
    "The JSON facts block --dry_run prints after the YAML config"
    return json.loads(stdout[stdout.index('\n{') + 1:])


def s2_geotiff(path, seed=0, size=48, units='dn', date='20200715T103031'):
    "A 13-band L1C-order S2 GeoTIFF (uint16 digital numbers or float reflectance) rendered from a synthetic scene"
    from geoformers.data.geotiff import GeoInfo, write_geotiff
    from geoformers.data.multispectral import S2_L1C_ORDER, band_names, synth_scene
    s = synth_scene(seed, modalities=('s2',), size=size, times=1, cloud_prob=0., missing_prob=0.,
                    labels='resolution')['s2'][0].numpy()                      # [12, H, W] reflectance
    names = band_names('s2')
    a = np.stack([s[names.index(b)] if b in names else np.full_like(s[0], 0.002) for b in S2_L1C_ORDER])
    a = (a.clip(1e-4, 2) * 1e4).round().astype('uint16') if units == 'dn' else (a.clip(1e-4, 2)).astype('float32')
    geo = GeoInfo(pixel_scale=(10., 10., 0.), tiepoint=(0., 0., 0., 562990., 5690260., 0.),
                  geokeys=(1, 1, 0, 2, 1024, 0, 1, 1, 3072, 0, 1, 32760))
    f = Path(path)/f'S2A_{date}_T60HWB.tif'
    write_geotiff(f, a, geo)
    return f


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A 2-step run of the default task (three S2 bandsets, resolution scenes) on tiny data"
    out = tmp_path_factory.mktemp('bandset')/'run'
    r = run_cli('geoformers_train', 'bandset', '--out', out, '--max_steps', '2', '--set', *TINY)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return out


def test_dry_run_default_and_merge_preset():
    r = run_cli('geoformers_train', 'bandset', '--dry_run')
    assert r.returncode == 0, r.stderr[-2000:]
    f = facts(r.stdout)
    assert f['tokens_per_sample']['before_merge'] == f['tokens_per_sample']['after_merge'] == 96
    r = run_cli('geoformers_train', 'bandset', '--dry_run', '--config', 'midlayer_merged_bandsets_cross_random_masked_neg')
    assert r.returncode == 0, r.stderr[-2000:]
    f = facts(r.stdout)
    assert (f['tokens_per_sample']['before_merge'], f['tokens_per_sample']['after_merge']) == (96, 32)
    assert f['s2_tokens_per_position_after_merge'] == 1 and f['merge_after_layer'] == 1


def test_run_writes_probe_protocol_baselines_and_sanity(tiny_run):
    s = json.loads((tiny_run/'summary.json').read_text())
    assert s['steps'] == 2
    for k in ('knn_1', 'knn_10', 'knn_100', 'linear_1', 'linear_10', 'linear_100'):
        assert 0 <= s['metrics'][k] <= 1 and s['metrics'][f'{k}_se'] > 0
        for b in ('random_init', 'mean_spectrum', 'supervised'): assert 0 <= s['baselines'][b][k] <= 1
    assert 'linear_100/10 m structure' in s['metrics']
    assert set(s['sanity']) == {'1%', '10%', 'passes'}
    assert (tiny_run/'baselines'/'supervised_encoder.pt').exists()
    assert list((tiny_run/'previews').glob('*.png'))


def test_predict_parquet_matches_a_direct_model_call(tiny_run, tmp_path):
    import pyarrow.parquet as pq
    from geoformers.tasks.bandset_embeddings import embed_scenes
    from geoformers.train.predict import load_run
    out = tmp_path/'val.parquet'
    r = run_cli('geoformers_predict', tiny_run, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    t = pq.read_table(out)
    task, cfg, model = load_run(tiny_run)
    scenes = task.probe_sets(cfg)[1]
    assert t.column('id').to_pylist() == [s['id'] for s in scenes]
    assert t.column('label').to_pylist() == [s['label'] for s in scenes]
    emb = np.stack(t.column('embedding').to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(emb, embed_scenes(model.encoder, scenes).numpy(), atol=1e-5)
    meta = json.loads(t.schema.metadata[b'geoformers'])
    assert meta['task'] == 'bandset' and meta['embedding_dim'] == 32
    assert json.loads(Path(f'{out}.provenance.json').read_text())['checkpoint_step'] == 2


def test_predict_geotiff_per_patch_embeddings_keep_the_georeferencing(tiny_run, tmp_path):
    from geoformers.data.geotiff import read_description, read_geotiff
    from geoformers.tasks.bandset_embeddings import embed_geotiff
    from geoformers.train.predict import load_run
    tif = s2_geotiff(tmp_path, size=48)                                    # 48 px: two tiles of 32, one padded
    out = tmp_path/'emb.tif'
    r = run_cli('geoformers_predict', tiny_run, '--data', tif, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    a, geo = read_geotiff(out)
    assert a.shape == (32, 6, 6)                                          # D bands on the 8-pixel patch grid
    assert geo.pixel_scale == (80., 80., 0.) and geo.tiepoint == (0., 0., 0., 562990., 5690260., 0.)
    assert geo.crs() == 'EPSG:32760'
    _, _, model = load_run(tiny_run)
    direct, _ = embed_geotiff(model.encoder, tif, tile=32)
    np.testing.assert_allclose(a, direct.numpy(), atol=1e-5)
    assert np.isfinite(a).all()
    assert read_description(out)['source'] == tif.name


def test_eval_on_a_folder_of_labelled_geotiffs(tiny_run, tmp_path):
    data = tmp_path/'scenes'
    for c, seeds in (('rows', range(4)), ('plain', range(4, 8))):
        (data/c).mkdir(parents=True)
        for s in seeds: s2_geotiff(data/c, seed=s, size=32, date=f'2020071{s}T103031')
    r = run_cli('geoformers_eval', tiny_run, '--data', data)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tiny_run/'eval-scenes.json').read_text())
    text = json.dumps(res)
    assert 'linear_100' in text and 'mean_spectrum' in text and 'labelled' in text


def test_ddp_two_processes(tmp_path):
    "Under torchrun only one rank's batch runs the probe, yet every rank reports the probe keys (the all-reduce needs them)"
    import os
    import subprocess
    from geoformers.testing import torchrun_cmd
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(torchrun_cmd('bandset', '--out', str(tmp_path/'run'), '--max_steps', '2', '--set', *TINY,
                                    'baselines.supervised=false'),
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert s['steps'] == 2 and 0 <= s['metrics']['knn_10'] <= 1


def test_patch_discrimination_centring():
    "A vector shared by every token of a sample carries no identity: centred, it changes nothing; uncentred, it swamps"
    from geoformers.models.latentmim import patch_discrimination
    torch.manual_seed(0)
    t = torch.randn(2, 12, 32)
    p = t + 0.5 * torch.randn(2, 12, 32)
    off = 10 * torch.randn(32)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[0, 8:] = False
    assert torch.allclose(patch_discrimination(p + off, t + off, valid), patch_discrimination(p, t, valid), atol=1e-4)
    assert patch_discrimination(p + off, t + off, valid, center=False) > 2 * patch_discrimination(p, t, valid, center=False)
    assert patch_discrimination(t + off, t + off, valid) < 0.01          # a copy of the targets is a perfect prediction


def test_model_folder_predicts_like_the_run(tiny_run, tmp_path):
    "save_pretrained, then predict from the model folder: the same scene embeddings and ids"
    from conftest import assert_model_folder_predicts_like_the_run
    assert_model_folder_predicts_like_the_run(tiny_run, tmp_path, '.parquet')
