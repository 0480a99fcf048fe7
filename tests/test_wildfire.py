"Integration tests of the wildfire task: the CLI end to end on tiny settings, NetCDF folders, the DINOv2 variant."

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from geoformers.data.firesim import simulate_fires
from geoformers.data.wildfire import save_fires
from geoformers.testing import shared_data, torchrun_cmd
from geoformers.train.config import resolve_config
from geoformers.train.evaluation import evaluate, make_loader
from geoformers.train.loop import fit
from geoformers.train.settings import as_config
from geoformers.train.tasks import get_task

TINY = [
    'data.n_fires=6',
    'data.size=32',
    'data.days=6',
    'model.dim=32',
    'model.dec_hidden=16',
    'model.ref_hidden=8',
    'model.dino_hidden=32',
    'model.unet_hidden=8',
    'model.stack_hidden=8',
    'model.utae_hidden=8',
    'train.batch_size=4',
    'train.progress=false',
]
BASELINES = {'persistence', 'unet_last_frame', 'unet_stacked', 'utae'}


def test_cli_smoke(tmp_path):
    "geoformers_train wildfire --max_steps 2 writes a summary with the metrics, every baseline and their costs"
    out = tmp_path / 'run'
    cmd = [
        sys.executable,
        '-m',
        'geoformers.train.cli',
        'wildfire',
        '--out',
        str(out),
        '--max_steps',
        '2',
        '--set',
        *TINY,
        'baselines.utae=true',
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / 'summary.json').read_text())
    for m in ('f1', 'iou', 'ap', 'precision', 'recall', 'accuracy', 'new_f1', 'threshold'):
        assert m in s['metrics']
    assert set(s['baselines']) == BASELINES
    assert set(s['cost']) == BASELINES | {'emberformer'}
    assert s['cost']['emberformer']['params'] > 0 and s['cost']['unet_stacked']['train_cpu_s'] > 0
    for b in ('unet_last_frame', 'unet_stacked', 'utae'):
        assert (out / 'baselines' / b / 'best.pt').exists()
    assert s['baselines']['persistence']['new_f1'] == 0.0
    assert list((out / 'previews').glob('*.png')), 'a preview PNG is written'


def test_netcdf_folder_and_dino(tmp_path):
    "A folder of NetCDF fires trains the DINOv2 variant (tiny offline DINOv2), unfreezing it after one epoch"
    save_fires(simulate_fires(5, size=32, days=5), tmp_path / 'fires')
    task = get_task('wildfire')
    cfg = resolve_config(
        task,
        overrides=TINY
        + [
            f'data.source={tmp_path / "fires"}',
            'model.name=emberformer_dino',
            'train.epochs=2',
            'baselines.unet_last_frame=false',
            'baselines.unet_stacked=false',
            'baselines.utae=false',
        ],
    )
    s = fit(task, cfg, tmp_path / 'run')
    assert np.isfinite(s['metrics']['loss']) and 'persistence' in s['baselines']
    lrs = [
        json.loads(l)
        for l in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
        if '"train"' in l
    ]
    assert 'pretrained' in lrs[-1]['lr']


def test_ndws_tiles():
    "The 12 real NDWS tiles read into the same format; persistence F1 matches the tiles' documented 0.25"
    root = shared_data('wildfire', 'ndws_micro')
    if root is None:
        pytest.skip('shared NDWS tiles absent')
    from geoformers.data.wildfire import WildfireDataset, collate_fires, load_ndws
    from geoformers.baselines.wildfire import Persistence

    task = get_task('wildfire')
    cfg = as_config(resolve_config(task, overrides=TINY))
    ds = WildfireDataset(load_ndws(root), t_min=1, t_max=1)
    m = evaluate(task, Persistence(), make_loader(ds, cfg, collate_fires), cfg, torch.device('cpu'))
    assert abs(m['f1'] - 0.25) < 0.01


@pytest.mark.parametrize('fusion', ['concat', 'cross_attn'])
def test_emberformer_dino_model(fusion):
    "EmberFormerDINO (the notebook's `#| slow` lesson): shapes, terrain cache, padded dates cannot leak, check_module"
    from geoformers.data.wildfire import WildfireDataset, collate_fires
    from geoformers.models.emberformer import EmberFormerDINO
    from geoformers.testing import check_module, tiny_dinov2

    b = collate_fires(
        [
            WildfireDataset(simulate_fires(2, size=32, days=8), t_min=2, t_max=5)[k]
            for k in (0, 3, 8)
        ]
    )
    args = [b[k] for k in ('fire', 'wind', 'static', 'valid_t')]
    torch.manual_seed(0)
    ed = EmberFormerDINO(tiny_dinov2(), dim=32, heads=4, dec_hidden=16, fusion=fusion).eval()
    out = ed.forward_pixels(*args, static_key=b['fire_idx'])
    assert out.shape == (3, 1, 32, 32) and ed(*args).shape == (3, 1, 3, 3)
    assert len(ed._cache) == 2
    torch.testing.assert_close(ed.forward_pixels(*args, static_key=b['fire_idx']), out)
    f2 = b['fire'].clone()
    f2[0, 2:] = 1.0  # sample 0 has T = 2: dates 2.. are padding
    torch.testing.assert_close(ed.forward_pixels(f2, *args[1:]), out)
    check_module(
        EmberFormerDINO(tiny_dinov2(), dim=32, heads=4, dec_hidden=16, fusion=fusion),
        *args,
        pixels=True,
        shape=(3, 1, 32, 32),
    )


def test_ddp_two_processes(tmp_path):
    "Under torchrun the pixel logits go through DDP's forward, and the one-process UNet baseline fit on rank 0 does not all-reduce"
    r = subprocess.run(
        torchrun_cmd(
            'wildfire', '--out', str(tmp_path / 'ddp'), '--max_steps', '2', '--set', *TINY
        ),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads((tmp_path / 'ddp' / 'summary.json').read_text())['steps'] == 2


def _tiny_run(tmp_path):
    "A 2-step run with every baseline, for predict and eval"
    task = get_task('wildfire')
    cfg = resolve_config(task, overrides=TINY + ['train.max_steps=2', 'baselines.utae=true'])
    fit(task, cfg, tmp_path / 'run')
    return task, cfg


def _direct(model, fire, day, t_max):
    "Probability map of `day` from a direct model call on the history before it"
    from geoformers.data.wildfire import WildfireDataset, collate_fires

    ds = WildfireDataset([fire], t_min=day, t_max=t_max)
    b = collate_fires([ds[0]])
    with torch.no_grad():
        return (
            model.eval()(*[b[k] for k in ('fire', 'wind', 'static', 'valid_t')], pixels=True)
            .sigmoid()[0, 0]
            .numpy()
        )


def test_predict_api_matches_model(tmp_path):
    "task.predict on held-out NetCDF fires writes one CF file per fire whose values match direct model calls"
    import xarray as xr
    from geoformers.data.wildfire import load_fires

    task, cfg = _tiny_run(tmp_path)
    model = task.model(cfg)
    from geoformers.train.checkpoint import load_checkpoint

    load_checkpoint(tmp_path / 'run' / 'best.pt', model)
    held = save_fires(simulate_fires(2, seed=100, size=32, days=5), tmp_path / 'held')
    out = task.predict(
        model,
        cfg,
        data=tmp_path / 'held',
        out=tmp_path / 'pred',
        attrs={'run': str(tmp_path / 'run')},
    )
    files = sorted(out.glob('*.nc'))
    assert [f.name for f in files] == ['sim_00100.nc', 'sim_00101.nc']
    thr = json.loads((tmp_path / 'run' / 'summary.json').read_text())['metrics']['threshold']
    fire = load_fires(tmp_path / 'held')[0]
    with xr.open_dataset(files[0]) as p:
        assert p.fire_prob.dims == ('time', 'y', 'x') and p.sizes['time'] == 5
        np.testing.assert_array_equal(
            p.x.values, fire.x.values if 'x' in fire.coords else np.arange(32)
        )
        np.testing.assert_array_equal(p.time.values, np.arange(1, 6))
        for day in (1, 3):
            np.testing.assert_allclose(
                p.fire_prob.values[day - 1], _direct(model, fire, day, cfg.data.t_max), atol=1e-5
            )
        np.testing.assert_array_equal(
            p.fire_pred.values, (p.fire_prob.values >= thr).astype('int8')
        )
        assert p.fire_pred.attrs['threshold'] == thr and p.attrs['Conventions'] == 'CF-1.8'


@pytest.mark.skipif(
    shutil.which('geoformers_predict') is None,
    reason='geoformers_predict (train-api-v1) not installed',
)
def test_predict_cli_matches_model(tmp_path):
    "geoformers_predict on a held-out fire writes a NetCDF equal to a direct call of the run's best model"
    import xarray as xr
    from geoformers.train.checkpoint import load_checkpoint

    task, cfg = _tiny_run(tmp_path)
    held = save_fires(simulate_fires(1, seed=200, size=32, days=6), tmp_path / 'held')[0]
    r = subprocess.run(
        [
            'geoformers_predict',
            str(tmp_path / 'run'),
            '--data',
            str(held),
            '--out',
            str(tmp_path / 'p.nc'),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    model = task.model(cfg)
    load_checkpoint(tmp_path / 'run' / 'best.pt', model)
    from geoformers.data.wildfire import load_fires

    fire = load_fires(tmp_path / 'held')[0]
    with xr.open_dataset(tmp_path / 'p.nc') as p:
        np.testing.assert_allclose(
            p.fire_prob.values[4], _direct(model, fire, 5, cfg.data.t_max), atol=1e-5
        )
        np.testing.assert_array_equal(
            p.y.values, fire.y.values if 'y' in fire.coords else np.arange(32)
        )
        assert p.attrs['task'] == 'wildfire'
    assert (tmp_path / 'p.nc.provenance.json').exists()


def test_eval_ndws_and_baselines(tmp_path):
    "eval_data on the 12 NDWS tiles (TFRecord shard in the official layout) states the -1 policy; saved baselines score"
    root = shared_data('wildfire', 'ndws_micro')
    if root is None:
        pytest.skip('shared NDWS tiles absent')
    from geoformers.data.ndws import NDWS_FEATURES, write_ndws_tfrecord
    from geoformers.data.wildfire import NDWS_CHANNELS

    task, cfg = _tiny_run(tmp_path)
    samples = []
    for p in sorted(root.rglob('*.npz')):
        z = np.load(p)
        samples.append(
            {**dict(zip(NDWS_CHANNELS, z['inputs'])), 'FireMask': z['targets'][0].astype('float32')}
        )
    write_ndws_tfrecord(tmp_path / 'ndws.tfrecord', samples)
    data = task.eval_data(cfg, tmp_path / 'ndws.tfrecord')
    assert len(data['val']) == 12 and 'excluded' in data['note'] and '-1' in data['note']
    b = task.eval_baselines(data, cfg, tmp_path / 'run')
    assert set(b) == BASELINES
    assert abs(b['persistence']['f1'] - 0.25) < 0.01


def test_model_folder_predicts_like_the_run(tmp_path):
    "save_pretrained, then predict from the model folder: the same fire maps (threshold included)"
    from conftest import assert_model_folder_predicts_like_the_run

    _tiny_run(tmp_path)
    held = save_fires(simulate_fires(1, seed=300, size=32, days=5), tmp_path / 'held')[0]
    assert_model_folder_predicts_like_the_run(tmp_path / 'run', tmp_path, '.nc', data=held)
