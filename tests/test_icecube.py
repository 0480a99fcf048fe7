"IceCube integration tests: packing without truncation, backend agreement, the real files, a 2-step training smoke run"
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geoformers.data.dom_packing import collate_dom_packing
from geoformers.data.icecube import IceCubeSynth, extreme_event, load_geometry, read_graphnet, read_kaggle_batch
from geoformers.models.t1 import DOMTransformer
from geoformers.testing import shared_data


@pytest.fixture(scope='module')
def geom(): return load_geometry()


def test_extreme_event_packs_without_truncation(geom):
    e = extreme_event(geom)
    b = collate_dom_packing([e])
    md = b['metadata']
    assert md['n_pulses'] == len(e['time']) == int(b['dom_mask'].sum()) and md['n_truncated'] == 0
    assert md['packing_efficiency'] >= 0.99
    split = collate_dom_packing([e], max_seq_len=64)['metadata']       # long DOMs split across rows
    assert split['n_pulses'] == len(e['time']) and (split['dom_n_pulses'] > 64).any()


def test_typical_packing_efficiency(geom):
    ds = IceCubeSynth(96, seed=3, geometry=geom)
    effs = [collate_dom_packing([ds[j] for j in range(32*i, 32*(i+1))])['metadata']['packing_efficiency'] for i in range(3)]
    assert np.mean(effs) >= 0.98


def test_backends_agree_with_split_doms(geom):
    ds = IceCubeSynth(8, seed=0, geometry=geom)
    b = collate_dom_packing([ds[i] for i in range(8)], max_seq_len=32)
    torch.manual_seed(0)
    t1 = DOMTransformer(dim=32, depth=2, heads=4, max_batch_size=3).eval()
    outs = {}
    with torch.no_grad():
        for be in ('flex', 'dense', 'bucket'): t1.backend = be; outs[be] = t1(b)
    torch.testing.assert_close(outs['flex'], outs['dense'], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(outs['bucket'], outs['dense'], atol=1e-4, rtol=1e-4)


def test_first_hit_seed_beats_linefit(geom):
    from geoformers.tasks.icecube import first_hit_linefit_score, linefit_score
    ev = [IceCubeSynth(128, seed=9, geometry=geom)[i] for i in range(128)]
    assert first_hit_linefit_score(ev, geom) < linefit_score(ev, geom[['x', 'y', 'z']].values) - 0.2


def test_bucket_plan_matches_dense(geom):
    from geoformers.models.t1 import bucket_attend, bucket_plan, dense_dom_mask, segments
    b = collate_dom_packing([IceCubeSynth(4, seed=1, geometry=geom)[i] for i in range(4)], max_seq_len=64)
    ids = b['dom_boundaries']; q, k, v = torch.randn(3, ids.shape[0], 2, ids.shape[1], 8)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense_dom_mask(ids))
    pos, start, length, _ = segments(ids)
    fl = lambda t: t.transpose(1, 2).reshape(-1, 2, 8)[pos]
    for exact in (1, 8, 64):
        torch.testing.assert_close(bucket_attend(fl(q), fl(k), fl(v), bucket_plan(start, length, exact)), fl(ref), atol=1e-5, rtol=1e-5)


def test_real_files():
    p = shared_data('icecube', 'kaggle', 'test', 'batch_661.parquet')
    g = shared_data('icecube', 'graphnet', 'oscNext_genie_level7_v02', 'oscNext_genie_level7_v02_first_5_frames.db')
    if p is None or g is None: pytest.skip("../shared/data/icecube is absent (set GEOFORMERS_SHARED_DATA)")
    assert [len(e['time']) for e in read_kaggle_batch(p)] == [299, 36, 43]
    ev = read_graphnet(g)
    assert len(ev) == 5 and all(np.isfinite(e['target']).all() for e in ev)
    b = collate_dom_packing(ev)
    assert b['metadata']['n_pulses'] == 56


def test_train_smoke(tmp_path):
    out = tmp_path/'run'
    cmd = [str(Path(sys.executable).parent/'geoformers_train'), 'icecube', '--max_steps', '2', '--out', str(out), '--set',
           'data.n_train=16', 'data.n_val=8', 'model.dim=16', 'model.heads=2', 'model.t1_depth=1', 'model.t2_depth=1',
           'train.batch_size=8', 'train.progress=false']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out/'summary.json').read_text())
    assert 0 <= s['metrics']['mean_angular_error'] <= np.pi
    assert 'linefit' in s['baselines']
