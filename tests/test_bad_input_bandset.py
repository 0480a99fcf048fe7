"""Bad input for the bandset task (#21): each case asserts exit code 2 and the key words of the message, or, for data,
that nothing silently changes. Causes: 2 (ranges), 3 (values outside their code book: role masks, units), 4 (inf is
NaN), 9 (clear errors: typos, unknown modality, channel and dtype mismatches, truncated files) and 7 (batch ids
name the data of a non-finite loss)."""
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
    ('model.patch_size=7', ['model.patch_size=7', 'data.size=32', '[1, 2, 4, 8, 16, 32]']),
    ('model.merge_after_layer=9', ['model.merge_after_layer=9', 'model.depth=4', '0..3']),
    ('model.heads=5', ['model.heads=5', 'model.dim=64', 'one of']),
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


# --- role masks: codes outside MaskValue, booleans (cause 3) ---------------------------------------------------------
def _merge_inputs():
    from geoformers.models.bandset_tokens import BandsetMerge, MaskValue
    torch.manual_seed(0)
    E = MaskValue.ONLINE_ENCODER.value
    return BandsetMerge(3, 8), torch.randn(2, 3, 8), torch.full((2, 3), E)


def test_merge_refuses_a_mask_code_outside_maskvalue():
    mg, x, mask = _merge_inputs()
    mask[1, 2] = 7
    with pytest.raises(ValueError, match=r'holds \[7\], which are not MaskValue codes.*ONLINE_ENCODER=0'): mg(x, mask)


def test_merge_refuses_a_boolean_mask():
    mg, x, mask = _merge_inputs()
    with pytest.raises(ValueError, match='boolean mask is ambiguous'): mg(x, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='float32'): mg(x, mask.float())


def test_encoder_refuses_boolean_or_unknown_role_masks():
    from geoformers.data.multispectral import SyntheticScenes, collate_scenes
    from geoformers.models.bandset import BandsetEncoder
    enc = BandsetEncoder({'s2': 'default'}, dim=32, depth=1)
    b = collate_scenes([SyntheticScenes(2, labels='resolution', modalities=('s2',))[i] for i in range(2)])
    base = enc.base_masks(b)
    valid = {'s2': base['s2'] == 0}                                        # "True = valid": ambiguous
    with pytest.raises(ValueError, match=r"masks\['s2'\].*boolean"): enc(b, valid)
    with pytest.raises(ValueError, match='not MaskValue codes'): enc(b, {'s2': base['s2'] + 5})


def test_unknown_modality_names_the_valid_ones():
    from geoformers.errors import ConfigError
    from geoformers.models.bandset import BandsetEncoder
    with pytest.raises(ConfigError, match=r"unknown modality 'sentinel2'.*valid: landsat, s2"):
        BandsetEncoder({'sentinel2': 'default'})


# --- non-finite reflectance is no data (cause 4) --------------------------------------------------------------------
def test_nan_and_inf_pixels_are_no_data_and_change_nothing_else(tmp_path):
    from geoformers.data.geotiff import read_geotiff, write_geotiff
    from geoformers.tasks.bandset_embeddings import geotiff_scene
    a, geo = read_geotiff(s2_geotiff(tmp_path, units='reflectance'))
    ref, _ = geotiff_scene(write_geotiff(tmp_path/'S2A_20200715T103031_ok.tif', a, geo))
    bad = a.copy()
    bad[3, 5, 7] = np.inf
    bad[0, 9, 2] = -np.inf
    bad[6, 1, 1] = np.nan
    sc, _ = geotiff_scene(write_geotiff(tmp_path/'S2A_20200715T103031_bad.tif', bad, geo))
    hit = torch.zeros_like(sc['s2_valid'])
    hit[0, 5, 7] = hit[0, 9, 2] = hit[0, 1, 1] = True
    assert torch.equal(sc['s2_valid'], ref['s2_valid'] & ~hit)             # exactly those pixels are invalid
    assert torch.isfinite(sc['s2']).all()
    keep = ~hit[:, None].expand_as(sc['s2'])
    assert torch.equal(sc['s2'][keep], ref['s2'][keep])                    # and nothing else moved


@pytest.mark.parametrize('dtype', ['int8', 'uint8'])
def test_8bit_geotiff_names_the_dtype(tiny_run, tmp_path, dtype):
    "8-bit pixels cannot hold S2 digital numbers: they were scaled by 1e-4 into near-black scenes, silently"
    from geoformers.data.geotiff import read_geotiff, write_geotiff
    a, geo = read_geotiff(s2_geotiff(tmp_path, units='reflectance'))
    f = write_geotiff(tmp_path/f'S2A_20200715T103031_{dtype}.tif', (a * 100).astype(dtype), geo)
    assert_user_error(predict(tiny_run, f, tmp_path/'o.tif'), f.name, dtype, 'uint16')
    assert not (tmp_path/'o.tif').exists()


def test_geotiff_with_only_inf_pixels_names_the_cause(tiny_run, tmp_path):
    from geoformers.data.geotiff import read_geotiff, write_geotiff
    a, geo = read_geotiff(s2_geotiff(tmp_path, units='reflectance'))
    f = write_geotiff(tmp_path/'S2A_20200715T103031_inf.tif', np.full_like(a, np.inf), geo)
    assert_user_error(predict(tiny_run, f, tmp_path/'o.tif'), f.name, 'no valid pixel', 'inf')


def test_encoder_names_inf_at_valid_pixels():
    "An inf marked valid used to turn the scene's tokens into NaN silently; at invalid pixels it changes nothing"
    from geoformers.models.bandset import BandsetEncoder
    enc = BandsetEncoder({'s2': 'default'}, dim=16, depth=1, heads=2, patch_size=8).eval()
    x = torch.rand(2, 1, 12, 16, 16)
    valid = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    b = dict(s2=x, s2_valid=valid, months=torch.zeros(2, 1, dtype=torch.long))
    with torch.no_grad(): ref = enc(b)['tokens']['s2']
    bad = x.clone()
    bad[0, 0, 3, 5, 7] = float('inf')
    with pytest.raises(ValueError, match=r'1 non-finite.*s2_valid'):
        enc({**b, 's2': bad})
    v2 = valid.clone()
    v2[0, 0, 5, 7] = False
    x2 = x.clone()
    x2[0, 0, 3, 5, 7] = 0.
    with torch.no_grad():
        torch.testing.assert_close(enc({**b, 's2': bad, 's2_valid': v2})['tokens']['s2'],
                                   enc({**b, 's2': x2, 's2_valid': v2})['tokens']['s2'])
    assert torch.isfinite(ref).all()


def test_predict_data_that_is_not_a_geotiff(tiny_run, tmp_path):
    f = tmp_path/'scenes.csv'
    f.write_text('a,b\n1,2\n')
    assert_user_error(predict(tiny_run, f, tmp_path/'o.parquet'), 'scenes.csv', 'GeoTIFF')


def test_predict_geotiff_respects_the_out_suffix_and_existing_files(tiny_run, tmp_path):
    "A GeoTIFF with --out x.parquet is refused (it used to write x.tif over an existing one); x.tif needs --overwrite"
    f = s2_geotiff(tmp_path)
    (tmp_path/'x.tif').write_bytes(b'mine')
    assert_user_error(predict(tiny_run, f, tmp_path/'x.parquet'), 'x.parquet', 'GeoTIFF', '.tif')
    assert_user_error(predict(tiny_run, f, tmp_path/'x.tif'), 'x.tif', '--overwrite')
    assert (tmp_path/'x.tif').read_bytes() == b'mine' and not (tmp_path/'x.parquet').exists()
    assert_user_error(run_cli('geoformers_predict', tiny_run, '--out', tmp_path/'v.tif'), 'v.tif', '.parquet')
    r = run_cli('geoformers_predict', tiny_run, '--data', f, '--out', tmp_path/'x.tif', '--overwrite')
    assert r.returncode == 0 and (tmp_path/'x.tif').read_bytes() != b'mine', r.stderr[-2000:]


# --- non-finite losses name the scenes (cause 7) ---------------------------------------------------------------------
def test_nonfinite_loss_names_the_scenes(tmp_path):
    from geoformers.train.config import resolve_config
    from geoformers.train.loop import fit
    from geoformers.train.tasks import get_task
    task = get_task('bandset')
    cfg = resolve_config(task, None, [*TINY, 'baselines.supervised=false'])
    real = task.loss
    def nan_loss(model, batch, cfg):
        out = real(model, batch, cfg)
        return {**out, 'loss': out['loss'] * math.nan}
    task.loss = nan_loss
    with pytest.raises(Exception, match=r'scene \d+ \(seed 0\)'): fit(task, cfg, tmp_path/'run')
