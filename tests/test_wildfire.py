"Integration tests of the wildfire task: the CLI end to end on tiny settings, NetCDF folders, the DINOv2 variant."
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from geoformers.data.firesim import simulate_fires
from geoformers.data.wildfire import save_fires
from geoformers.testing import shared_data, torchrun_cmd
from geoformers.train.loop import as_config, evaluate, fit, make_loader
from geoformers.train.tasks import get_task, resolve_config

TINY = ['data.n_fires=6', 'data.size=32', 'data.days=6', 'model.dim=32', 'model.dec_hidden=16', 'model.ref_hidden=8',
        'model.dino_hidden=32', 'model.unet_hidden=8', 'train.batch_size=4', 'train.progress=false']


def test_cli_smoke(tmp_path):
    "geoformers_train wildfire --max_steps 2 writes a summary with the metrics and both baselines"
    out = tmp_path/'run'
    cmd = [sys.executable, '-m', 'geoformers.train.cli', 'wildfire', '--out', str(out), '--max_steps', '2', '--set', *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out/'summary.json').read_text())
    for m in ('f1', 'iou', 'ap', 'precision', 'recall', 'accuracy', 'new_f1'): assert m in s['metrics']
    assert set(s['baselines']) == {'persistence', 'unet_last_frame'}
    assert s['baselines']['persistence']['new_f1'] == 0.
    assert list((out/'previews').glob('*.png')), 'a preview PNG is written'


def test_netcdf_folder_and_dino(tmp_path):
    "A folder of NetCDF fires trains the DINOv2 variant (tiny offline DINOv2), unfreezing it after one epoch"
    save_fires(simulate_fires(5, size=32, days=5), tmp_path/'fires')
    task = get_task('wildfire')
    cfg = resolve_config(task, overrides=TINY + [f'data.source={tmp_path/"fires"}', 'model.name=emberformer_dino',
                                                 'train.epochs=2', 'baselines.unet_last_frame=false'])
    s = fit(task, cfg, tmp_path/'run')
    assert np.isfinite(s['metrics']['loss']) and 'persistence' in s['baselines']
    lrs = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines() if '"train"' in l]
    assert 'pretrained' in lrs[-1]['lr']


def test_ndws_tiles():
    "The 12 real NDWS tiles read into the same format; persistence F1 matches the data README"
    root = shared_data('wildfire', 'ndws_micro')
    if root is None: pytest.skip('shared NDWS tiles absent')
    from geoformers.data.wildfire import WildfireDataset, collate_fires, load_ndws
    from geoformers.tasks.wildfire import Persistence
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
    b = collate_fires([WildfireDataset(simulate_fires(2, size=32, days=8), t_min=2, t_max=5)[k] for k in (0, 3, 8)])
    args = [b[k] for k in ('fire', 'wind', 'static', 'valid_t')]
    torch.manual_seed(0)
    ed = EmberFormerDINO(tiny_dinov2(), dim=32, heads=4, dec_hidden=16, fusion=fusion).eval()
    out = ed.forward_pixels(*args, static_key=b['fire_idx'])
    assert out.shape == (3, 1, 32, 32) and ed(*args).shape == (3, 1, 3, 3)
    assert len(ed._cache) == 2
    torch.testing.assert_close(ed.forward_pixels(*args, static_key=b['fire_idx']), out)
    f2 = b['fire'].clone(); f2[0, 2:] = 1.                      # sample 0 has T = 2: dates 2.. are padding
    torch.testing.assert_close(ed.forward_pixels(f2, *args[1:]), out)
    check_module(EmberFormerDINO(tiny_dinov2(), dim=32, heads=4, dec_hidden=16, fusion=fusion), *args, pixels=True, shape=(3, 1, 32, 32))


def test_ddp_two_processes(tmp_path):
    "Under torchrun the pixel logits go through DDP's forward, and the one-process UNet baseline fit on rank 0 does not all-reduce"
    r = subprocess.run(torchrun_cmd('wildfire', '--out', str(tmp_path/'ddp'), '--max_steps', '2', '--set', *TINY), capture_output=True, text=True, timeout=600, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads((tmp_path/'ddp'/'summary.json').read_text())['steps'] == 2
