"IceCube integration tests: packing, exact long modules, the stream, other detectors, training and predict"
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from geoformers.data.detectors import graphnet_geometry, icecube86
from geoformers.data.dom_packing import collate_dom_packing
from geoformers.data.graphnet import read_graphnet, write_graphnet
from geoformers.data.icecube import IceCubeSynth, event_cols, extreme_event
from geoformers.data.kaggle import batch_files, read_kaggle_batch
from geoformers.data.kaggle_stream import KaggleStream
from geoformers.data.kaggle_write import write_kaggle
from geoformers.models.t1 import DOMTransformer
from geoformers.testing import shared_data

BIN = Path(sys.executable).parent
TINY = ['model.dim=16', 'model.heads=2', 'model.t1_depth=1', 'model.t2_depth=1', 'train.batch_size=8',
        'train.progress=false']


@pytest.fixture(scope='module')
def det(): return icecube86()


@pytest.fixture(scope='module')
def kaggle(tmp_path_factory):
    "A small synthetic Kaggle folder: 3 training files (unequal row groups) and a test split"
    d = tmp_path_factory.mktemp('kaggle')
    write_kaggle(d, n_files=3, events_per_file=37, events_per_group=10)
    write_kaggle(d, n_files=1, events_per_file=23, events_per_group=10, split='test', first_batch=661, seed=5)
    return d


def run(cmd, **kw):
    return subprocess.run([str(BIN/cmd[0]), *map(str, cmd[1:])], capture_output=True, text=True, timeout=600, **kw)


def test_extreme_event_packs_without_truncation(det):
    e = extreme_event(det)
    b = collate_dom_packing([e], det)
    md = b['metadata']
    assert md['n_pulses'] == len(e['time']) == int(b['dom_mask'].sum()) and md['n_truncated'] == 0
    assert md['packing_efficiency'] >= 0.99
    s = collate_dom_packing([e], det, max_seq_len=64)                 # long modules get long rows
    lb = s['long_boundaries']
    assert int(s['dom_mask'].sum()) + int((lb >= 0).sum()) == len(e['time'])
    assert s['metadata']['n_long'] == int((md['dom_n_pulses'] > 64).sum()) > 0


def test_typical_packing_efficiency(det):
    ds = IceCubeSynth(96, seed=3, detector=det)
    effs = [collate_dom_packing([ds[j] for j in range(32*i, 32*(i+1))], det)['metadata']['packing_efficiency']
            for i in range(3)]
    assert np.mean(effs) >= 0.98


def test_long_module_exact_on_every_backend(det):
    "A 2,000-pulse DOM packed beside others embeds as it does alone, within 1e-5, on flex, dense and bucket"
    rng = np.random.default_rng(1)
    n = 2000
    ev = dict(event_cols(np.r_[np.full(n, 7), rng.integers(100, 5000, 80)], np.sort(rng.uniform(1e4, 2e4, n + 80)),
                         rng.lognormal(0, .5, n + 80), rng.random(n + 80) < .1), event_id=1,
              target=np.zeros(2, np.float32))
    b = collate_dom_packing([ev], det, max_seq_len=256)
    d = int((b['metadata']['module_ids'] == 7).nonzero())
    torch.manual_seed(0)
    t1 = DOMTransformer(dim=32, depth=2, heads=4, max_batch_size=2).eval()
    with torch.no_grad():
        h = t1.proj(b['long_sequences'][0][None])
        for blk in t1.blocks:
            h = blk(h)
        ref = t1.norm(h).mean(1)[0]
        for be in ('flex', 'dense', 'bucket'):
            t1.backend = be
            assert (t1(b)[d] - ref).abs().max() < 1e-5, be


def test_backends_agree(det):
    ds = IceCubeSynth(8, seed=0, detector=det)
    b = collate_dom_packing([ds[i] for i in range(8)], det, max_seq_len=32)
    torch.manual_seed(0)
    t1 = DOMTransformer(dim=32, depth=2, heads=4, max_batch_size=3).eval()
    outs = {}
    with torch.no_grad():
        for be in ('flex', 'dense', 'bucket'):
            t1.backend = be
            outs[be] = t1(b)
    torch.testing.assert_close(outs['flex'], outs['dense'], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(outs['bucket'], outs['dense'], atol=1e-4, rtol=1e-4)


def test_first_hit_prior_beats_linefit(det):
    from geoformers.baselines.icecube import first_hit_linefit_score, linefit_score
    ev = IceCubeSynth(128, seed=9, detector=det)
    fh, lf = first_hit_linefit_score(ev, det), linefit_score(ev, det)
    assert fh['mean_angular_error'] < lf['mean_angular_error'] - 0.2


def test_stream_every_event_once(kaggle):
    "3 files of 37 events: every event exactly once over 2 ranks x 2 workers (minus E mod 2), and over 1 x 3"
    files = batch_files(kaggle)
    every = sorted(e['event_id'] for f in files for e in read_kaggle_batch(f))
    ks = KaggleStream(files, buffer=16, seed=4, batch_size=5)
    ids = lambda n: [i for b in DataLoader(ks, batch_size=None, collate_fn=lambda b: b.event_ids.tolist(),
                                           num_workers=n) for i in b]
    full0 = ids(0)
    assert sorted(ids(2)) == every and sorted(full0) == every
    got = []
    try:
        for r in range(2):
            os.environ.update(RANK=str(r), WORLD_SIZE='2')
            got.append(ids(2))
    finally:
        os.environ.update(RANK='0', WORLD_SIZE='1')
    assert len(got[0]) == len(got[1]) == len(every) // 2
    assert not set(got[0]) & set(got[1]) and len(set(every) - set(got[0] + got[1])) == len(every) % 2
    ks.set_epoch(1)
    assert ids(0) != full0                    # a new epoch, a new order
    full = ids(2)
    ks.set_epoch(1, start=15)
    assert ids(2) == full[15:]               # mid-epoch resume continues the order exactly


def _peak_child(folder, n):
    "Peak memory (tracemalloc + the arrow pool) of streaming the first n files, in a fresh process"
    code = f"""
import tracemalloc, json, pyarrow as pa
from geoformers.data.kaggle import batch_files
from geoformers.data.kaggle_stream import KaggleStream
tracemalloc.start()
ks = KaggleStream(batch_files({str(folder)!r})[:{n}], buffer=32, batch_size=8)
n = sum(len(b) for b in ks)
print(json.dumps(dict(n=n, peak=tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory())))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_stream_memory_flat_in_files(tmp_path):
    write_kaggle(tmp_path, n_files=6, events_per_file=150, events_per_group=50)
    one, six = _peak_child(tmp_path, 1), _peak_child(tmp_path, 6)
    assert six['n'] == 6 * one['n']
    assert six['peak'] < 1.3 * one['peak'], (one, six)


def test_real_files(det):
    p = shared_data('icecube', 'kaggle', 'test', 'batch_661.parquet')
    g = shared_data('icecube', 'graphnet', 'oscNext_genie_level7_v02', 'oscNext_genie_level7_v02_first_5_frames.db')
    if p is None or g is None:
        pytest.skip("the shared IceCube sample data is absent (set GEOFORMERS_SHARED_DATA)")
    assert [len(e['time']) for e in read_kaggle_batch(p)] == [299, 36, 43]
    ev = read_graphnet(g)
    assert len(ev) == 5 and all(np.isfinite(e['target']).all() for e in ev)
    assert collate_dom_packing(ev, det)['metadata']['n_pulses'] == 56


def _train(out, *sets):
    r = run(['geoformers_train', 'icecube', '--max_steps', '2', '--out', out, '--set', *TINY, *sets])
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((Path(out)/'summary.json').read_text())


def test_train_smoke(tmp_path):
    s = _train(tmp_path/'run', 'data.n_train=16', 'data.n_val=8')
    assert 0 <= s['metrics']['mean_angular_error'] <= np.pi
    assert {'linefit', 'first_hit_linefit'} <= set(s['baselines'])


def test_checkpointed_batches_return_freed_memory(det, monkeypatch):
    "Batches over the pulse budget run checkpointed with freed memory returned; smaller ones switch it off"
    import geoformers.tasks.icecube as icecube_task
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    calls = []
    monkeypatch.setattr(icecube_task, 'return_freed_memory', calls.append)
    events = sorted((IceCubeSynth(4, 0, det)[i] for i in range(4)), key=lambda e: len(e['time']))
    budget = len(events[0]['time'])                                   # the smallest event fits
    task = get_task('icecube')
    cfg = resolve_config(task, overrides=TINY + [f'model.checkpoint_pulses={budget}'])
    model = task.model(cfg)
    for batch in (collate_dom_packing(events[-1:], det), collate_dom_packing(events[:1], det)):
        task.loss(model, batch, cfg)['loss'].backward()
    assert calls == [True, False]


def _load(run_dir):
    from geoformers.train.checkpoint import load_checkpoint
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    task = get_task('icecube')
    cfg = resolve_config(task, json.loads((Path(run_dir)/'config.json').read_text()))
    model = task.model(cfg)
    load_checkpoint(Path(run_dir)/'best.pt', model)
    return task, cfg, model.eval()


def _predict(run_dir, data, out):
    "geoformers_predict when the command exists, else the task's predict on the run's best checkpoint"
    if (BIN/'geoformers_predict').exists():
        r = run(['geoformers_predict', run_dir, '--data', data, '--out', out])
        assert r.returncode == 0, r.stderr[-3000:]
    else:
        task, cfg, model = _load(run_dir)
        task.predict(model, cfg, data, out)
    return pd.read_csv(out) if str(out).endswith('.csv') else pd.read_parquet(out)


def _direct(run_dir, events, det):
    from geoformers.data.icecube import vector_to_angles
    task, cfg, model = _load(run_dir)
    with torch.no_grad():
        pred, _, ids = model(collate_dom_packing(events, det, cfg.data.max_seq_len))
    az, zen = vector_to_angles(pred.double())
    return ids.numpy(), az.numpy(), zen.numpy()


def _loop_streams()->bool:
    "Whether the training loop takes an IterableDataset (a change requested of the loop's owner)"
    import inspect
    from geoformers.train import loop
    return 'IterableDataset' in inspect.getsource(loop)


@pytest.mark.xfail(not _loop_streams(), strict=True,
                   reason="the training loop does not yet take a streaming (IterableDataset) training split")
def test_train_from_kaggle_folder_and_predict_submission(kaggle, tmp_path, det):
    "Train from streamed batch files, then predict the test split to a submission and check it"
    _train(tmp_path/'run', f'data.source={kaggle}', 'data.batches=1-2', 'data.n_val=8')
    sub = _predict(tmp_path/'run', kaggle, tmp_path/'sub.csv')
    evs = read_kaggle_batch(kaggle/'test'/'batch_661.parquet')
    ids, az, zen = _direct(tmp_path/'run', evs, det)
    assert list(sub.columns) == ['event_id', 'azimuth', 'zenith']
    np.testing.assert_array_equal(sub.event_id.values, ids)
    np.testing.assert_allclose(sub.azimuth.values, az, atol=1e-5)
    np.testing.assert_allclose(sub.zenith.values, zen, atol=1e-5)


def test_predict_kaggle_test_files_with_the_command(kaggle, tmp_path, det):
    "A tiny run predicts Kaggle test files (streamed) to Parquet; the table matches a direct model call"
    _train(tmp_path/'run', 'data.n_train=16', 'data.n_val=8')
    sub = _predict(tmp_path/'run', kaggle, tmp_path/'sub.parquet')
    evs = read_kaggle_batch(kaggle/'test'/'batch_661.parquet')
    ids, az, zen = _direct(tmp_path/'run', evs, det)
    np.testing.assert_array_equal(sub.event_id.values, ids)
    np.testing.assert_allclose(sub.azimuth.values, az, atol=1e-5)
    np.testing.assert_allclose(sub.zenith.values, zen, atol=1e-5)
    assert (tmp_path/'sub.parquet.provenance.json').exists()


def test_prometheus_train_and_predict(tmp_path):
    p = shared_data('icecube', 'graphnet', 'prometheus', 'prometheus-events.db')
    if p is None:
        pytest.skip("the shared Prometheus sample is absent")
    _train(tmp_path/'run', f'data.source={p}', 'data.position_scale=50', 'data.val_fraction=0.2')
    sub = _predict(tmp_path/'run', p, tmp_path/'sub.parquet')
    assert len(sub) == 50 and np.isfinite(sub[['azimuth', 'zenith']].values).all()


def test_upgrade_train_and_predict(tmp_path):
    "Synthetic events on the IceCube-Upgrade geometry (multi-PMT modules): train, then predict GraphNeT files"
    g = shared_data('icecube', 'graphnet', 'geometry_tables', 'icecube_upgrade.parquet')
    if g is None:
        pytest.skip("the shared Upgrade geometry table is absent")
    up = graphnet_geometry(g)
    _train(tmp_path/'run', f'data.geometry={g}', 'data.n_train=16', 'data.n_val=8')
    evs = [IceCubeSynth(6, seed=9, detector=up)[i] for i in range(6)]
    write_graphnet(evs, up, tmp_path/'upgrade')
    sub = _predict(tmp_path/'run', tmp_path/'upgrade', tmp_path/'sub.csv')
    back = read_graphnet(tmp_path/'upgrade', up)
    ids, az, zen = _direct(tmp_path/'run', back, up)
    np.testing.assert_array_equal(sub.event_id.values, ids)
    np.testing.assert_allclose(sub.azimuth.values, az, atol=1e-5)


def test_model_folder_predicts_like_the_run(kaggle, tmp_path):
    "save_pretrained, then predict Kaggle test files from the model folder: the same submission"
    from conftest import assert_model_folder_predicts_like_the_run
    _train(tmp_path/'run', 'data.n_train=16', 'data.n_val=8')
    assert_model_folder_predicts_like_the_run(tmp_path/'run', tmp_path, '.csv', data=kaggle)
