"""Bad input for the bandset task (#21): each case asserts exit code 2 and the key words of the message, or, for data,
that nothing silently changes. Causes: 3 (values outside their code book, units), 9 (clear errors: typos, unknown
modality, channel and dtype mismatches, truncated files) and 7 (batch ids name the data of a non-finite loss)."""
import json
import math

import numpy as np
import pytest
import torch

from conftest import assert_user_error, run_cli
from test_bandset import TINY, s2_geotiff, tiny_run  # noqa: F401  (tiny_run is a fixture)


def train(*args):
    return run_cli('geoformers_train', 'bandset', '--dry_run', *args)


# --- configuration: names and ranges (cause 9, cause 2) -------------------------------------------------------------
@pytest.mark.parametrize('override, words', [
    ('data.labels=textures', ['data.labels', 'textures', 'resolution']),
    ('data.modalities=[sentinel2]', ['modality', 'sentinel2', 's2']),
    ('model.bandsets.s2=singel', ['singel', "did you mean 'single'"]),
    ('model.bandsets.s2=B08', ["'B08'", 'single']),
    ('data.probe_train=5000', ['data.probe_train', '5000', 'n_train']),
    ('data.probe_fractions=[0.01,2.0]', ['probe_fractions', '2.0']),
    ('data.probe_draws=[10,5]', ['probe_draws', 'same length']),
    ('model.contrastive_views=crops', ['contrastive_views', 'crops', 'dates']),
    ('data.n_val=0', ['data.n_val', '0']),
])
def test_config_errors_name_the_key_and_the_valid_values(override, words):
    assert_user_error(train('--set', override), *words)


def test_cross_date_views_need_two_dates():
    assert_user_error(train('--set', 'data.times=1'), 'contrastive_views', 'data.times')


# --- GeoTIFF input to predict (cause 3: units, cause 9: files) --------------------------------------------------------
def predict(run, data, out):
    return run_cli('geoformers_predict', run, '--data', data, '--out', out)


def test_float_reflectance_is_not_scaled_again(tiny_run, tmp_path):
    from geoformers.data.geotiff import read_geotiff
    (tmp_path/'dn').mkdir()
    (tmp_path/'refl').mkdir()
    dn = s2_geotiff(tmp_path/'dn', units='dn')
    fl = s2_geotiff(tmp_path/'refl', units='reflectance')
    for f, o in ((dn, 'a.tif'), (fl, 'b.tif')): assert predict(tiny_run, f, tmp_path/o).returncode == 0
    a, b = read_geotiff(tmp_path/'a.tif')[0], read_geotiff(tmp_path/'b.tif')[0]
    np.testing.assert_allclose(a, b, atol=1e-3)                           # the same scene in either unit


def test_truncated_geotiff_names_its_file(tiny_run, tmp_path):
    f = s2_geotiff(tmp_path)
    cut = tmp_path/'S2A_20200715T103031_cut.tif'
    cut.write_bytes(f.read_bytes()[:len(f.read_bytes()) // 2])
    assert_user_error(predict(tiny_run, cut, tmp_path/'o.tif'), 'S2A_20200715T103031_cut.tif', 'truncated')


def test_geotiff_with_other_band_count(tiny_run, tmp_path):
    from geoformers.data.geotiff import read_geotiff, write_geotiff
    a, geo = read_geotiff(s2_geotiff(tmp_path))
    f = write_geotiff(tmp_path/'S2A_20200715T103031_12.tif', a[:12], geo)
    assert_user_error(predict(tiny_run, f, tmp_path/'o.tif'), '12 bands', 'band_order')


def test_ambiguous_float_units(tiny_run, tmp_path):
    from geoformers.data.geotiff import read_geotiff, write_geotiff
    a, geo = read_geotiff(s2_geotiff(tmp_path))
    f = write_geotiff(tmp_path/'S2A_20200715T103031_x.tif', (a / 500).astype('float32'), geo)   # values ~0-10
    assert_user_error(predict(tiny_run, f, tmp_path/'o.tif'), 'units', "units='dn'")


def test_geotiff_without_a_date(tiny_run, tmp_path):
    f = s2_geotiff(tmp_path)
    g = f.rename(tmp_path/'scene.tif')
    assert_user_error(predict(tiny_run, g, tmp_path/'o.tif'), 'scene.tif', 'acquisition month')


def test_eval_folder_without_classes(tiny_run, tmp_path):
    s2_geotiff(tmp_path)
    assert_user_error(run_cli('geoformers_eval', tiny_run, '--data', tmp_path), 'class sub-folders')


# --- Python API: readers and models (cause 9) ------------------------------------------------------------------------
def test_band_order_typo_names_the_valid_bands(tmp_path):
    from geoformers.data.multispectral import S2_L1C_ORDER, read_s2_geotiff
    from geoformers.errors import DataError
    order = [b if b != 'B8A' else 'B08A' for b in S2_L1C_ORDER]
    with pytest.raises(DataError, match=r"'B08A'.*valid: B01"): read_s2_geotiff(s2_geotiff(tmp_path), band_order=order)


def test_encoder_accepts_float16_float64_and_integer_input():
    from geoformers.data.multispectral import SyntheticScenes, collate_scenes
    from geoformers.models.bandset import BandsetEncoder
    torch.manual_seed(0)
    enc = BandsetEncoder({'s2': 'default'}, dim=32, depth=1).eval()
    b = collate_scenes([SyntheticScenes(2, labels='resolution', modalities=('s2',))[i] for i in range(2)])
    ref = enc(b)['pooled']
    for dt in (torch.float64, torch.float16):
        torch.testing.assert_close(enc({**b, 's2': b['s2'].to(dt)})['pooled'], ref, atol=2e-2, rtol=0)
    dn = {**b, 's2': (b['s2'] * 1e4).round().to(torch.int32)}               # integers are digital numbers
    with pytest.raises(Exception, match='integer'): enc(dn)


def test_band_typo_in_a_bandset_names_the_valid_bands():
    from geoformers.errors import ConfigError
    from geoformers.models.bandset import BandsetEncoder
    with pytest.raises(ConfigError, match=r"'B8'.*valid: B01"): BandsetEncoder({'s2': [['B02', 'B8']]})


def test_encoder_names_the_expected_bands():
    from geoformers.data.multispectral import SyntheticScenes, collate_scenes
    from geoformers.models.bandset import BandsetEncoder
    enc = BandsetEncoder({'s2': 'default'}, dim=32, depth=1)
    b = collate_scenes([SyntheticScenes(1, labels='resolution', modalities=('s2',))[0]])
    with pytest.raises(ValueError, match='12 bands'): enc({**b, 's2': b['s2'][:, :, :10]})
    with pytest.raises(ValueError, match="no 's2'"): enc({k: v for k, v in b.items() if k != 's2'})


# --- non-finite losses name the scenes (cause 7) ---------------------------------------------------------------------
def test_nonfinite_loss_names_the_scenes(tmp_path):
    from geoformers.train.tasks import get_task, resolve_config
    from geoformers.train.loop import fit
    task = get_task('bandset')
    cfg = resolve_config(task, None, [*TINY, 'baselines.supervised=false'])
    real = task.loss
    def nan_loss(model, batch, cfg):
        out = real(model, batch, cfg)
        return {**out, 'loss': out['loss'] * math.nan}
    task.loss = nan_loss
    with pytest.raises(Exception, match=r'scene \d+ \(seed 0\)'): fit(task, cfg, tmp_path/'run')
