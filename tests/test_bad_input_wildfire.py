"""Bad input to the wildfire task: each case gets a clear error (exit code 2 from the command line, a `UserError`
from Python) whose message names the cause, or, for data that is valid, nothing is silently changed."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from geoformers.data.firesim import simulate_fires
from geoformers.data.wildfire import WildfireDataset, collate_fires, save_fires
from geoformers.errors import UserError

TINY = [
    'data.n_fires=4',
    'data.size=16',
    'data.days=5',
    'model.dim=16',
    'model.dec_hidden=8',
    'model.ref_hidden=8',
    'train.batch_size=2',
    'train.progress=false',
]


def cli(*args):
    "Run `geoformers_train wildfire ARGS --dry_run`; returns (exit code, all output)"
    r = subprocess.run(
        [sys.executable, '-m', 'geoformers.train.cli', 'wildfire', '--dry_run', *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r.returncode, r.stdout + r.stderr


def expect_cli_error(args, *words):
    "Exit code 2 with every word in the message (or, before the CLI error wrapper landed, a UserError traceback)"
    rc, out = cli(*args)
    assert rc != 0, out[-1500:]
    wrapped = rc == 2
    assert wrapped or any(e in out for e in ('DataError', 'ConfigError', 'UserError')), out[-1500:]
    for w in words:
        assert w in out, f'{w!r} not in: {out[-1500:]}'
    if wrapped:
        assert 'Traceback' not in out, out[-1500:]


def expect_user_error(args, *words):
    "What the command line would report with exit code 2: a `UserError` naming every word (in-process, fast)"
    from geoformers.train.cli import run_task

    assert args[0] == '--set'
    with pytest.raises(UserError) as e:
        run_task('wildfire', None, args[1:], dry_run=True)
    for w in words:
        assert w in str(e.value), f'{w!r} not in: {e.value}'


def test_cli_exit_code(tmp_path, fires):
    "End to end through the command: exit code 2 and a message naming the file, the value and the fix"
    fires[1]['fire'] = fires[1].fire.astype('int16')
    fires[1]['fire'][2, 3, 3] = 255
    expect_cli_error(
        ['--set', *TINY, _folder(tmp_path, fires)], 'sim_00001.nc', '255.0', 'code book', 'recode'
    )
    expect_cli_error(['--set', *TINY, 'model.name=unet'], "model.name='unet'", 'unet_stacked')


@pytest.fixture
def fires():
    return [f.copy(deep=True) for f in simulate_fires(3, size=16, days=5)]


def _folder(tmp_path, fires):
    "Write the fires as they are (save_fires would refuse them) and return the data.source override"
    (tmp_path / 'fires').mkdir()
    for f in fires:
        f.to_netcdf(tmp_path / 'fires' / f"{f.attrs['fire_id']}.nc")
    return f'data.source={tmp_path / "fires"}'


# 3. values outside their code book
@pytest.mark.parametrize('code', [2, 255])
def test_fire_code_outside_code_book(tmp_path, fires, code):
    fires[1]['fire'] = fires[1].fire.astype('int16')
    fires[1]['fire'][2, 3, 3] = code
    expect_user_error(
        ['--set', *TINY, _folder(tmp_path, fires)], 'sim_00001.nc', f'{float(code)}', 'code book'
    )


@pytest.mark.parametrize('var,value', [('elevation', np.nan), ('u', np.inf), ('fuel', -np.inf)])
def test_non_finite_terrain_or_wind(tmp_path, fires, var, value):
    "NaN and inf are one case; a NaN in a validation fire's inputs stops at load time, not in bincount"
    fires[2][var] = fires[2][var].astype('float32')
    fires[2][var].values.flat[0] = value
    expect_user_error(['--set', *TINY, _folder(tmp_path, fires)], 'sim_00002.nc', var, 'non-finite')


def test_nan_fire_is_uncertain_not_burning(tmp_path, fires):
    "NaN in a fire map is the documented 'uncertain' code: masked in the loss, not read as fire or no fire"
    fires[0]['fire'] = fires[0].fire.astype('float32')
    fires[0]['fire'][3, :4, :4] = np.nan
    ds = WildfireDataset(fires, t_min=2, t_max=8)
    target = ds[1]['target'][0]  # fire 0, target day 3
    assert (target[:4, :4] == -1).all() and (target[4:] >= 0).all()
    # day 3 in a history: shown as 0, never as NaN
    history = ds[2]['fire']
    assert torch.isfinite(history).all()


# 9. unclear errors: missing variables, unreadable files, bad paths
def test_missing_variable(tmp_path, fires):
    fires = [f.drop_vars('fuel') for f in fires]
    expect_user_error(['--set', *TINY, _folder(tmp_path, fires)], 'lacks variables', 'fuel')


def test_truncated_netcdf(tmp_path, fires):
    paths = save_fires(fires, tmp_path / 'fires')
    raw = paths[1].read_bytes()
    paths[1].write_bytes(raw[: len(raw) // 3])
    expect_user_error(
        ['--set', *TINY, f'data.source={tmp_path / "fires"}'],
        'sim_00001.nc',
        'not a readable NetCDF',
    )


def test_source_folder_missing(tmp_path):
    expect_user_error(
        ['--set', *TINY, f'data.source={tmp_path / "nope"}'], 'no such folder', 'data.source'
    )


def test_source_folder_empty(tmp_path):
    (tmp_path / 'empty').mkdir()
    expect_user_error(['--set', *TINY, f'data.source={tmp_path / "empty"}'], 'no *.nc fires')


# 2. numbers that mean something else
def test_unknown_model_name():
    expect_user_error(
        ['--set', *TINY, 'model.name=unet'], "model.name='unet' is not allowed", 'unet_stacked'
    )


def test_t_min_zero():
    expect_user_error(['--set', *TINY, 'data.t_min=0'], 'data.t_min=0', '>= 1')


def test_one_fire_cannot_split():
    expect_user_error(['--set', *TINY, 'data.n_fires=1'], 'data.n_fires=1', '>= 2')


def test_val_frac_out_of_range():
    expect_user_error(['--set', *TINY, 'data.val_frac=1.5'], 'data.val_frac=1.5', '< 1')


def test_fires_too_short_for_t_min():
    expect_user_error(['--set', *TINY, 'data.t_min=9'], 'data.t_min=9', 'lower data.t_min')


@pytest.mark.parametrize('override,words', [
    ('loss.pos_weight=-1', ['loss.pos_weight=-1', '> 0 or null']),
    ('loss.dice=-1', ['loss.dice=-1', '>= 0']),
    ('model.dropout=2', ['model.dropout=2', '< 1']),
    ('model.heads=3', ['model.heads=3', 'model.dim=16', '[1, 2, 4, 8, 16]']),
])
def test_loss_and_model_ranges(override, words):
    "Negative loss weights used to train silently; heads not dividing dim and dropout 2 were tracebacks"
    expect_user_error(['--set', *TINY, override], *words)


# predict / eval inputs
def test_eval_data_unknown_format(tmp_path):
    from geoformers.data.ndws import read_fire_data

    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(UserError, match='not a wildfire input'):
        read_fire_data(tmp_path / 'notes.txt')


def test_corrupt_tfrecord(tmp_path):
    from geoformers.data.ndws import read_ndws_tfrecord, write_tfrecord

    write_tfrecord(tmp_path / 'a.tfrecord', [b'x' * 100])
    raw = (tmp_path / 'a.tfrecord').read_bytes()
    (tmp_path / 'a.tfrecord').write_bytes(raw[:50])
    with pytest.raises(UserError, match='a.tfrecord: truncated'):
        read_ndws_tfrecord(tmp_path / 'a.tfrecord')
    bad = bytearray(raw)
    bad[20] ^= 1
    (tmp_path / 'b.tfrecord').write_bytes(bytes(bad))
    with pytest.raises(UserError, match='CRC mismatch'):
        read_ndws_tfrecord(tmp_path / 'b.tfrecord')


def test_tfrecord_missing_feature(tmp_path):
    from geoformers.data.ndws import (
        NDWS_FEATURES,
        encode_example,
        read_ndws_tfrecord,
        write_tfrecord,
    )

    ex = {f: np.zeros((64, 64), 'float32') for f in NDWS_FEATURES if f != 'erc'}
    write_tfrecord(tmp_path / 's.tfrecord', [encode_example(ex)])
    with pytest.raises(UserError, match=r"record 0 lacks features \['erc'\]"):
        read_ndws_tfrecord(tmp_path / 's.tfrecord')


def _ndws_tile(tmp_path, mask=None, target=None, ndvi=None):
    "An NDWS .npz tile (12 inputs, 1 target) with optional PrevFireMask / FireMask / NDVI replaced"
    from geoformers.data.wildfire import NDWS_CHANNELS

    rng = np.random.default_rng(0)
    c = {k: rng.uniform(0, 100, (16, 16)).astype('float32') for k in NDWS_CHANNELS}
    c['NDVI'] = rng.uniform(-2000, 9000, (16, 16)).astype('float32')
    c['PrevFireMask'] = (rng.random((16, 16)) < 0.1).astype('float32')
    y = (rng.random((16, 16)) < 0.1).astype('float32')
    if mask is not None: c['PrevFireMask'][3, 3] = mask
    if target is not None: y[4, 4] = target
    if ndvi is not None: c['NDVI'] = c['NDVI'] / 1e4
    f = tmp_path / 'tile_007.npz'
    np.savez(f, inputs=np.stack([c[k] for k in NDWS_CHANNELS]), targets=y[None])
    return f


@pytest.mark.parametrize('code', [2, 255, -2, 0.5])
@pytest.mark.parametrize('where', ['PrevFireMask', 'FireMask'])
def test_ndws_fire_code_names_the_mask_and_file(tmp_path, code, where):
    "NDWS masks outside {-1, 0, 1}: the message names the NDWS variable and the tile's path, not 'fire'"
    from geoformers.data.ndws import read_fire_data

    kw = {'mask': code} if where == 'PrevFireMask' else {'target': code}
    f = _ndws_tile(tmp_path, **kw)
    with pytest.raises(UserError) as e:
        read_fire_data(f)
    for w in (str(f), where, str(float(code)), 'code book', 'recode'):
        assert w in str(e.value), f'{w!r} not in: {e.value}'


def test_ndws_ndvi_in_unit_range_is_refused(tmp_path):
    "NDVI given as -1..1 instead of NDWS's x 1e4 used to be read as bare ground (fuel 0) silently"
    from geoformers.data.ndws import read_fire_data

    assert read_fire_data(_ndws_tile(tmp_path))[0].fuel.values.max() > 0.5    # NDWS units: fine
    f = _ndws_tile(tmp_path, ndvi='unit')
    with pytest.raises(UserError) as e:
        read_fire_data(f)
    for w in (str(f), 'NDVI', '1e4'):
        assert w in str(e.value), f'{w!r} not in: {e.value}'


def test_ndws_tfrecord_fire_code_names_the_shard(tmp_path):
    from geoformers.data.ndws import NDWS_FEATURES, read_ndws_tfrecord, write_ndws_tfrecord

    ex = {f: np.zeros((64, 64), 'float32') for f in NDWS_FEATURES}
    ex['FireMask'][1, 1] = 255
    write_ndws_tfrecord(tmp_path / 's.tfrecord', [ex])
    with pytest.raises(UserError, match=r"s.tfrecord #0: NDWS FireMask holds \[255.0\]"):
        read_ndws_tfrecord(tmp_path / 's.tfrecord')


# model inputs: channels and dtypes
def _batch():
    ds = WildfireDataset(simulate_fires(2, size=16, days=5), t_min=2, t_max=4)
    b = collate_fires([ds[k] for k in (0, 3)])
    return [b[k] for k in ('fire', 'wind', 'static', 'valid_t')]


@pytest.mark.parametrize('name', ['emberformer', 'unet_last_frame', 'unet_stacked', 'utae'])
def test_model_channel_mismatch(name):
    from geoformers.tasks.wildfire import wildfire_model
    from geoformers.train.config import resolve_config
    from geoformers.train.settings import as_config
    from geoformers.train.tasks import get_task

    cfg = as_config(resolve_config(get_task('wildfire'), overrides=TINY + [f'model.name={name}']))
    m = wildfire_model(cfg.model)
    fire, wind, static, valid = _batch()
    with pytest.raises(UserError, match='static has 3 channels, the model was built for 5'):
        m(fire, wind, static[:, :3], valid, pixels=True)
    with pytest.raises(UserError, match=r'expected wind \[B=2'):
        m(fire, wind[..., :1], static, valid, pixels=True)


@pytest.mark.parametrize('name', ['emberformer', 'unet_stacked', 'utae'])
def test_model_accepts_other_dtypes(name):
    "float16, float64 and integer inputs are converted to the model's float32, with the same result"
    from geoformers.tasks.wildfire import wildfire_model
    from geoformers.train.config import resolve_config
    from geoformers.train.settings import as_config
    from geoformers.train.tasks import get_task

    cfg = as_config(resolve_config(get_task('wildfire'), overrides=TINY + [f'model.name={name}']))
    m = wildfire_model(cfg.model).eval()
    fire, wind, static, valid = _batch()
    static = static.half().float()
    ref = m(fire, wind, static, valid, pixels=True)
    out = m(fire.long(), wind.double(), static.half(), valid.int(), pixels=True)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


# 8. a signal during a baseline's training
def test_stopped_baseline_keeps_summary(monkeypatch):
    "A baseline fit stopped by SIGTERM (no 'metrics' in its result) is recorded as stopped, not a KeyError"
    import geoformers.baselines.wildfire as bw
    from geoformers.train.config import resolve_config
    from geoformers.train.settings import as_config
    from geoformers.train.tasks import get_task

    task = get_task('wildfire')
    cfg = as_config(resolve_config(task, overrides=TINY))
    data = task.data(cfg)
    monkeypatch.setattr(
        bw, 'fit', lambda *a, **k: {'task': 'wildfire', 'stopped_at': 3, 'signal': 'SIGTERM'}
    )
    out = task.baselines(data, cfg, '/tmp/unused')
    assert out['unet_last_frame'] == {'stopped_at': 3} and 'unet_stacked' not in out
    assert 'persistence' in out


# 1. outputs are never replaced without --overwrite
@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A 1-step wildfire run to predict with"
    from geoformers.train.config import resolve_config
    from geoformers.train.loop import fit
    from geoformers.train.tasks import get_task

    out = tmp_path_factory.mktemp('run') / 'r'
    task = get_task('wildfire')
    fit(task, resolve_config(task, overrides=TINY + ['train.max_steps=1']), out)
    return out


def predict(*args):
    from pathlib import Path

    exe = Path(sys.executable).parent / 'geoformers_predict'
    r = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_predict_folder_output_is_not_replaced(tiny_run, tmp_path, fires):
    "Several fires with --out x.nc write the folder x/; a second run refuses it unless --overwrite"
    save_fires(fires[:2], tmp_path / 'fires')
    rc, out = predict(tiny_run, '--data', tmp_path / 'fires', '--out', tmp_path / 'x.nc')
    assert rc == 0, out[-1500:]
    files = sorted((tmp_path / 'x').glob('*.nc'))
    assert len(files) == 2
    before = {f: f.read_bytes() for f in files}
    rc, out = predict(tiny_run, '--data', tmp_path / 'fires', '--out', tmp_path / 'x.nc')
    assert rc == 2 and 'Traceback' not in out, out[-1500:]
    assert str(tmp_path / 'x') in out and '--overwrite' in out, out[-1500:]
    assert {f: f.read_bytes() for f in files} == before
    rc, out = predict(tiny_run, '--data', tmp_path / 'fires', '--out', tmp_path / 'x.nc', '--overwrite')
    assert rc == 0, out[-1500:]


def test_predict_overwrite_removes_stale_files(tiny_run, tmp_path, fires):
    "--overwrite deletes every file the earlier prediction listed: no mix of two predictions"
    import json

    save_fires(fires[:3], tmp_path / 'three')
    save_fires(fires[:2], tmp_path / 'two')
    rc, out = predict(tiny_run, '--data', tmp_path / 'three', '--out', tmp_path / 'x')
    assert rc == 0, out[-1500:]
    assert len(list((tmp_path / 'x').glob('*.nc'))) == 3
    rc, out = predict(tiny_run, '--data', tmp_path / 'two', '--out', tmp_path / 'x', '--overwrite')
    assert rc == 0, out[-1500:]
    names = sorted(f.name for f in (tmp_path / 'x').iterdir())
    assert names == sorted(f"{f.attrs['fire_id']}.nc" for f in fires[:2]), names
    assert json.loads((tmp_path / 'x.provenance.json').read_text())['files'] == names


def test_predict_overwrite_refuses_foreign_files(tiny_run, tmp_path, fires):
    "A file no prediction listed stops --overwrite (exit 2, named) before anything is deleted"
    save_fires(fires[:2], tmp_path / 'fires')
    rc, out = predict(tiny_run, '--data', tmp_path / 'fires', '--out', tmp_path / 'x')
    assert rc == 0, out[-1500:]
    (tmp_path / 'x' / 'notes.txt').write_text('mine')
    (tmp_path / 'y').mkdir()
    (tmp_path / 'y' / 'keep.nc').write_text('not a prediction')     # a folder with no provenance
    for folder, name in (('x', 'notes.txt'), ('y', 'keep.nc')):
        files = sorted(tmp_path.rglob('*'))
        before = {f: f.read_bytes() for f in files if f.is_file()}
        rc, out = predict(tiny_run, '--data', tmp_path / 'fires', '--out', tmp_path / folder,
                          '--overwrite')
        assert rc == 2 and 'Traceback' not in out, out[-1500:]
        assert name in out and 'another --out' in out, out[-1500:]
        assert sorted(tmp_path.rglob('*')) == files
        assert {f: f.read_bytes() for f in files if f.is_file()} == before
