"""Bad input for the ERA5 windows and the weather tasks: each case asserts a clear error (exit code 2 and key words
for the command-line cases) or, for data, that nothing silently changes (issue causes 4, 5, 6 and 9)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from geoformers.data.captions import load_captions, parse_dates
from geoformers.data.era5_captions import synth_captions
from geoformers.data.era5_synth import synth_era5
from geoformers.data.normalise import channel_stats
from geoformers.data.sources import open_data
from geoformers.data.windows import WindowDataset
from geoformers.errors import ConfigError, DataError
from geoformers.testing import synth_cube

KW = dict(window={'time': 6, 'lat': 5, 'lon': 6})
DAY = dict(window={'time': 8, 'lat': 16, 'lon': 24}, stride={'time': 8, 'lat': 16, 'lon': 24})
TINY_MAE = ['model.dim=24', 'model.depth=2', 'model.heads=2', 'model.decoder_dim=16', 'model.decoder_heads=2',
            'train.batch_size=2', 'train.progress=false']


def cli(*args, cwd=None, timeout=240):
    "Run a console script; (exit code, stdout + stderr)"
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    return r.returncode, r.stdout + r.stderr


def user_error(rc:int, out:str, *words):
    "Exit code 2 (the CLI error wrapper) with every key word in the message"
    assert rc == 2, f"exit code {rc}:\n{out[-2000:]}"
    for w in words: assert w in out, f"{w!r} not in:\n{out[-2000:]}"
    assert 'Traceback' not in out, out[-2000:]


@pytest.fixture(scope='module')
def days():
    return synth_era5(n_days=4, seed=0, res=1.0).isel(time=slice(None, None, 3))


# cause 4: NaN and inf are one case
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nonfinite_raise(bad):
    c = synth_cube(time=6, lat=5, lon=6)
    c['t2m'][2, 1, 1] = bad
    with pytest.raises(DataError, match=r'non-finite values \(NaN or inf\)'): WindowDataset(c, 't2m', **KW)[0]


def test_inf_left_out_of_statistics():
    a = np.random.default_rng(0).standard_normal((20, 4, 4)).astype('float32')
    b = a.copy()
    b[3, 1, 1] = np.inf
    st = channel_stats([b], ['x'])
    assert np.isfinite(st.mean).all() and np.isfinite(st.std).all()
    ok = np.isfinite(b)
    np.testing.assert_allclose(st.mean, b[ok].mean(), rtol=1e-5)


def test_inf_filled_and_masked():
    c = synth_cube(time=6, lat=5, lon=6)
    c['t2m'][2, 1, 1] = np.inf
    w = WindowDataset(c, 't2m', nan='fill', normalise=True, **KW)[0]['x']
    assert torch.isfinite(w).all() and w[1].sum() == 1


# cause 5: irregular and integer time axes, overlapping files
def test_gap_is_named():
    c = synth_cube(time=48, lat=5, lon=6).isel(time=np.r_[0:12, 30:48])
    with pytest.raises(DataError, match="gap.*2019-03-01 11:00 -> 2019-03-02 06:00.*gaps='skip'"):
        WindowDataset(c, 't2m', **KW)


def test_gap_skip_drops_only_windows_over_it():
    c = synth_cube(time=48, lat=5, lon=6).isel(time=np.r_[0:12, 30:48])
    w = WindowDataset(c, 't2m', gaps='skip', verbose=False, stride={'time': 4}, **KW)
    spans = [np.diff(c.time.values[w[i]['start']['time']:w[i]['start']['time'] + 6]).max() for i in range(len(w))]
    assert len(w) == 6 and max(spans) == np.timedelta64(1, 'h')


def test_integer_time_refused():
    c = synth_cube(time=12, lat=5, lon=6).assign_coords(time=np.arange(12))
    with pytest.raises(DataError, match='holds int64 values.*not dates'): WindowDataset(c, 't2m', **KW)


def test_overlapping_files_named(tmp_path):
    c = synth_cube(time=12, lat=5, lon=6)
    c.isel(time=slice(0, 8)).to_netcdf(tmp_path/'a.nc')
    c.isel(time=slice(6, 12)).to_netcdf(tmp_path/'b.nc')
    with pytest.raises(DataError, match=r'a\.nc and .*b\.nc overlap in time'): open_data(str(tmp_path/'*.nc'))


def test_gap_in_files_from_the_command_line(tmp_path, days):
    days.isel(time=np.r_[0:8, 16:32]).to_netcdf(tmp_path/'gap.nc')
    rc, out = cli('geoformers_train', 'weather-mae', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"gap.nc"}', *TINY_MAE)
    user_error(rc, out, 'gap', "gaps='skip'")


# cause 9: unreadable files
def test_zero_byte_netcdf(tmp_path):
    (tmp_path/'e.nc').write_bytes(b'')
    with pytest.raises(DataError, match=r'e\.nc is empty \(0 bytes\)'): WindowDataset(tmp_path/'e.nc', 't2m', **KW)


def test_truncated_netcdf_from_the_command_line(tmp_path, days):
    days.to_netcdf(tmp_path/'full.nc')
    (tmp_path/'cut.nc').write_bytes((tmp_path/'full.nc').read_bytes()[:5000])
    rc, out = cli('geoformers_train', 'weather-mae', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"cut.nc"}', *TINY_MAE)
    user_error(rc, out, 'cut.nc', 'not a readable NetCDF', 'truncated or corrupt')


def test_missing_zarr_store(tmp_path):
    (tmp_path/'x.zarr').mkdir()
    with pytest.raises(DataError, match='no Zarr store with consolidated metadata'): open_data(tmp_path/'x.zarr')


# cause 6: captions parsed one way
def test_ambiguous_day_month_refused():
    with pytest.raises(DataError, match="ambiguous.*date_format='%d/%m/%Y'"): parse_dates(['04/03/2019', '05/03/2019'])


def test_day_first_with_day_over_12_and_option(days):
    caps = synth_captions(synth_era5(n_days=4, seed=0, res=1.0))
    iso = WindowDataset(days, ['msl'], captions=caps, verbose=False, **DAY)
    dm = caps.assign(date=pd.to_datetime(caps.date).dt.strftime('%d/%m/%Y'))
    opt = WindowDataset(days, ['msl'], captions=dm, date_format='%d/%m/%Y', verbose=False, **DAY)
    assert [len(r) for r in opt.cap_rows] == [len(r) for r in iso.cap_rows] == [3, 3, 3, 3]
    with pytest.raises(DataError, match='ambiguous'): WindowDataset(days, ['msl'], captions=dm, **DAY)


def test_month_first_dates_join(days, capsys):
    caps = synth_captions(synth_era5(n_days=4, seed=0, res=1.0))
    md = pd.concat([caps.assign(date=pd.to_datetime(caps.date).dt.strftime('%m/%d/%Y')),
                    pd.DataFrame({'date': ['03/13/2019'], 'event description': ['a later date']})])
    w = WindowDataset(days, ['msl'], captions=md, **DAY)
    out = capsys.readouterr().out
    assert 'read as %m/%d/%Y' in out and '12 matched a window date, 1 matched none' in out
    assert [len(r) for r in w.cap_rows] == [3, 3, 3, 3]


def test_latin1_captions(tmp_path, days):
    f = tmp_path/'caps.csv'
    f.write_bytes('date,event description\n2019-03-01,Dépression sur la Manche\n'.encode('latin-1'))
    with pytest.raises(DataError, match="not utf-8 text.*encoding='latin-1'"): load_captions(f)
    w = WindowDataset(days, ['msl'], captions=f, encoding='latin-1', verbose=False, **DAY)
    assert w[0]['caption'] == 'Dépression sur la Manche'


def test_undated_captions_counted(days, capsys):
    caps = pd.DataFrame({'date': ['2019-03-01', None, 'not a date'], 'event description': ['a', 'b', 'c']})
    WindowDataset(days, ['msl'], captions=caps, **DAY)
    assert '1 matched a window date, 0 matched none, 2 dropped (2 without a readable date' in capsys.readouterr().out


def test_captions_matching_no_window(days):
    caps = pd.DataFrame({'date': ['2020-01-01'], 'event description': ['another year']})
    with pytest.raises(DataError, match='0 matched a window date, 1 matched none.*window dates 2019-03-01'):
        WindowDataset(days, ['msl'], captions=caps, **DAY)


# cause 9: checkpoints and channels
def test_mae_checkpoint_from_another_task(tmp_path):
    rc, out = cli('geoformers_train', 'toy', '--max_steps', '1', '--out', str(tmp_path/'toy'), '--set',
                  'train.progress=false')
    assert rc == 0, out
    rc, out = cli('geoformers_train', 'weather-text', '--max_steps', '1', '--out', str(tmp_path/'t'), '--set',
                  f'model.mae_ckpt={tmp_path/"toy"/"best.pt"}', 'data.n_days=4', 'model.lm_steps=2',
                  'model.vocab_size=300', 'model.lm_dim=16', 'model.lm_depth=1', 'train.batch_size=2',
                  f'model.lm_dir={tmp_path/"lm"}', f'data.cache={tmp_path/"cache"}', 'train.progress=false',
                  cwd=tmp_path)
    user_error(rc, out, "this checkpoint is from task 'toy'", 'weather-mae')


def test_channel_mismatch_names_both_lists(tmp_path):
    from geoformers.tasks.weather import load_encoder, mae_from_config
    arch = dict(dim=16, depth=1, heads=2, decoder_dim=8, decoder_heads=2)
    m = mae_from_config(arch, 5)
    cfg = {'task': 'weather-mae', 'model': arch, 'data': {'variables': ['u10', 'v10', 'msl', 'tp', 't2m']}}
    torch.save({'config': cfg, 'model': m.state_dict()}, tmp_path/'best.pt')
    with pytest.raises(DataError, match=r"trained on 5 channels \['u10', 'v10', 'msl', 'tp', 't2m'\] but the windows "
                                        r"have 2: \['t2m', 'msl'\]"):
        load_encoder(str(tmp_path/'best.pt'), ['t2m', 'msl'], {})


def test_statistics_of_other_channels(days):
    st = WindowDataset(days, ['msl', 'u10'], normalise=True, **DAY).stats
    with pytest.raises(DataError, match=r"for channels \['msl', 'u10'\] but the data has \['msl', 't2m'\]"):
        WindowDataset(days, ['msl', 't2m'], normalise=st, **DAY)


def test_unknown_variable(days):
    with pytest.raises(DataError, match=r"unknown variable 't2n'; nearest names: \['t2m'"):
        WindowDataset(days, ['t2n'], **DAY)


def test_bad_choice():
    with pytest.raises(ConfigError, match='gaps must be one of raise|skip|index'):
        WindowDataset(synth_cube(), 't2m', gaps='ignore', **KW)


def test_caption_cli_needs_a_date(tmp_path):
    rc, out = cli(*caption_cmd(), '--run', str(tmp_path))
    user_error(rc, out, 'pass --date YYYY-MM-DD')


def caption_cmd():
    return [sys.executable, '-c', 'from geoformers.tasks.weather import caption_cli; caption_cli()']


# round 4: documented values work; every weather key has a declared range (cause 2)
def test_documented_values_accepted(tmp_path, days):
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    for g in ('skip', 'index'):
        assert resolve_config(get_task('weather-text'), None, [f'data.gaps={g}']).data.gaps == g
    days.isel(time=np.r_[0:8, 16:32]).to_netcdf(tmp_path/'gap.nc')
    rc, out = cli('geoformers_train', 'weather-mae', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"gap.nc"}', 'data.gaps=skip', 'data.caption_date_format=%d/%m/%Y',
                  'data.caption_encoding=latin-1', *TINY_MAE)
    assert rc == 0, out[-2000:]
    cfg = __import__('json').loads((tmp_path/'r'/'config.json').read_text())
    assert cfg['data']['caption_date_format'] == '%d/%m/%Y' and cfg['data']['gaps'] == 'skip'


RANGE_CASES = [
    ('weather-mae', 'data.val_frac=0', 'data.val_frac=0.0', '> 0 and < 1'),
    ('weather-text', 'data.val_frac=1', 'data.val_frac=1.0', '> 0 and < 1'),
    ('weather-text', 'model.num_tokens=0', 'model.num_tokens=0', '>= 1'),
    ('weather-text', 'model.vocab_size=0', 'model.vocab_size=0', '>= 259'),
    ('weather-text', 'data.max_len=0', 'data.max_len=0', '>= 2'),
    ('weather-text', 'eval.temperature=-1', 'eval.temperature=-1.0', '>= 0'),
    ('weather-text', 'eval.top_p=2', 'eval.top_p=2.0', '<= 1'),
    ('weather-mae', 'model.mask_ratio=1.0', 'model.mask_ratio=1.0', '> 0 and < 1'),
    ('weather-mae', 'model.mask_ratio=-0.1', 'model.mask_ratio=-0.1', '> 0 and < 1'),
    ('weather-mae', 'model.patch=[2,4]', 'model.patch=[2, 4]', 'of length 3'),
    ('weather-mae', 'data.variables=[]', 'data.variables=[]', 'non-empty list'),
    ('weather-text', 'model.lora_r=-1', 'model.lora_r=-1', '>= 0'),
    ('weather-text', 'model.pool=max', "model.pool='max'", "'mean', 'attn', 'stride'"),
    ('weather-text', 'data.caption_encoding=klingon', "'klingon' is not a text encoding", 'latin-1'),
    ('weather-mae', 'data.caption_date_format=dd/mm/yyyy', 'is not a date format', "'%d/%m/%Y'"),
    ('weather-mae', 'data.gaps=ignore', "data.gaps='ignore'", "'raise', 'skip', 'index'"),
    ('weather-text', 'model.lm_heads=0', 'model.lm_heads=0', '>= 1'),
]


@pytest.mark.parametrize('task,override,w1,w2', RANGE_CASES, ids=[c[1] for c in RANGE_CASES])
def test_range_refused(task, override, w1, w2):
    from geoformers.train.config import resolve_config
    from geoformers.train.tasks import get_task
    with pytest.raises(ConfigError) as e: resolve_config(get_task(task), None, [override])
    for w in (w1, w2): assert w in str(e.value), str(e.value)


def test_range_refused_from_the_command_line(tmp_path):
    rc, out = cli('geoformers_train', 'weather-text', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  'eval.top_p=2')
    user_error(rc, out, 'eval.top_p=2.0', '> 0 and <= 1')


@pytest.mark.parametrize('over,words', [
    (['model.dim=25', 'model.heads=2'], 'model.dim=25 is not divisible by model.heads=2'),
    (['model.decoder_dim=30', 'model.decoder_heads=4'], 'model.decoder_dim=30 is not divisible'),
    (['model.patch=[2,0,4]'], 'model.patch=[2, 0, 4] is not allowed')])
def test_mae_sizes_that_do_not_fit(over, words):
    from geoformers.tasks.weather import WeatherMAETask
    from geoformers.train.config import resolve_config
    t = WeatherMAETask()
    with pytest.raises(ConfigError, match=__import__('re').escape(words)): t.data(resolve_config(t, None, over))


def test_dim_not_divisible_from_the_command_line(tmp_path, days):
    days.to_netcdf(tmp_path/'d.nc')
    rc, out = cli('geoformers_train', 'weather-mae', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"d.nc"}', *TINY_MAE, 'model.dim=25')
    user_error(rc, out, 'model.dim=25', 'model.heads=2', 'multiple of heads')


def test_text_sizes_that_do_not_fit():
    from geoformers.tasks.weather_text import WeatherTextTask
    from geoformers.train.config import resolve_config
    t = WeatherTextTask()
    with pytest.raises(ConfigError, match=r'model.pool_grid=\[1, 4, 4\] holds 16 tokens but model.num_tokens=8'):
        t.data(resolve_config(t, None, ['model.pool=mean', 'model.num_tokens=8']))
    with pytest.raises(ConfigError, match='model.lm_dim=30 is not divisible by model.lm_heads=4'):
        t.data(resolve_config(t, None, ['model.lm_dim=30']))


def test_unknown_lm_named():
    from geoformers.tasks.weather_text import _load_lm
    with pytest.raises(ConfigError, match=r"model.lm='./nonexistent_lm': there is no folder with a config.json"):
        _load_lm('./nonexistent_lm')
    code = ('from geoformers.tasks.weather_text import _load_lm\n'
            'from geoformers.errors import ConfigError\n'
            'try: _load_lm("nonexistent_lm")\n'
            'except ConfigError as e: print("CE", e)\n')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=env)
    assert "CE model.lm='nonexistent_lm' could not be loaded" in r.stdout and 'embedded, hrm' in r.stdout, r


def test_empty_captions_file(tmp_path):
    (tmp_path/'c.csv').write_text('')
    with pytest.raises(DataError, match=r'c\.csv is empty: it needs a header'): load_captions(tmp_path/'c.csv')


def test_caption_cli_impossible_date(tmp_path):
    rc, out = cli(*caption_cmd(), '--date', '2019-02-30', '--run', str(tmp_path))
    user_error(rc, out, "'2019-02-30' is not a date", 'YYYY-MM-DD')


@pytest.mark.parametrize('parts', [[(0, 12), (0, 12)], [(0, 12), (3, 6)], [(0, 8), (0, 12)],
                                   [(0, 5), (4, 9), (8, 12)]], ids=['same', 'inside', 'same-start', 'three'])
def test_overlaps_of_every_kind_named(tmp_path, parts):
    c = synth_cube(time=12, lat=5, lon=6)
    for i, (a, b) in enumerate(parts): c.isel(time=slice(a, b)).to_netcdf(tmp_path/f'f{i}.nc')
    with pytest.raises(DataError, match=r'f0\.nc and .*f1\.nc overlap in time'): open_data(str(tmp_path/'*.nc'))


def test_files_split_by_variable_still_open(tmp_path):
    c = synth_cube(time=12, lat=5, lon=6)
    c[['t2m']].to_netcdf(tmp_path/'a.nc')
    c[[v for v in c.data_vars if v != 't2m']].to_netcdf(tmp_path/'b.nc')
    assert open_data(str(tmp_path/'*.nc')).sizes['time'] == 12


@pytest.mark.parametrize('gaps', ['skip', 'index'])
def test_documented_values_in_weather_text(tmp_path, gaps):
    d = synth_era5(n_days=6, seed=0, res=1.0).isel(time=slice(None, None, 3))
    d.isel(time=np.r_[0:16, 24:48]).to_netcdf(tmp_path/'gap.nc')
    caps = synth_captions(synth_era5(n_days=6, seed=0, res=1.0))
    caps.assign(date=pd.to_datetime(caps.date).dt.strftime('%d/%m/%Y')).to_csv(tmp_path/'c.csv', index=False)
    rc, out = cli('geoformers_train', 'weather-text', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"gap.nc"}', f'data.captions={tmp_path/"c.csv"}', f'data.gaps={gaps}',
                  'data.caption_date_format=%d/%m/%Y', 'model.mae_ckpt=none', 'model.lm_steps=2',
                  'model.vocab_size=300', 'model.lm_dim=16', 'model.lm_depth=1', 'train.batch_size=2',
                  f'model.lm_dir={tmp_path/"lm"}', 'train.progress=false', 'eval.n_generate=2',
                  'eval.max_new_tokens=4')
    assert rc == 0, out[-2000:]
    assert (tmp_path/'r'/'summary.json').exists() and (tmp_path/'r'/'last.pt').exists()


# windows, levels, the prefixer's MLP and the language model: refused before any training
BAD_CLI = [
    ('weather-mae', ['data.window.time=0'], ['data.window.time=0', 'an int >= 1']),
    ('weather-mae', ['data.stride.lon=0'], ['data.stride.lon=0', 'an int >= 1']),
    ('weather-mae', ['data.stride.lat=-2'], ['data.stride.lat=-2', 'an int >= 1']),
    ('weather-mae', ['data.window.lat=100'], ['No windows', '17 lat steps < window 100', 'd.nc',
                                             'data.window']),
    ('weather-mae', ['data.window.time=1'], ["data.window={'time': 1", 'smaller than one patch [2, 4, 4]',
                                            'time 1 < 2']),
    ('weather-text', ['model.act=swish'], ["model.act='swish'", "'gelu', 'silu', 'relu', 'tanh'"]),
    ('weather-text', ['model.layerscale=-1'], ['model.layerscale=-1.0', 'a number >= 0 or null']),
    ('weather-text', ['model.layerscale=big'], ["model.layerscale='big'", 'a number >= 0 or null']),
    ('weather-mae', ['data.levels=[]'], ['data.levels=[]', '[850, 500]', 'null']),
    ('weather-mae', ['data.variables=[t, msl]', 'data.levels=[700]'],
     ['levels [700] are not in', "'t' of", 'd.nc', 'levels [850, 500]', 'data.levels']),
    ('weather-mae', ['data.levels=[850]'], ['levels=[850]', 'none of the variables', 'd.nc', 'null']),
]


@pytest.mark.parametrize('task,over,words', BAD_CLI, ids=[' '.join(c[1]) for c in BAD_CLI])
def test_bad_windows_levels_and_prefixer(tmp_path, days, task, over, words):
    days.to_netcdf(tmp_path/'d.nc')
    rest = TINY_MAE if task == 'weather-mae' else ['model.mae_ckpt=none', 'train.progress=false']
    rc, out = cli('geoformers_train', task, '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                  f'data.paths={tmp_path/"d.nc"}', *rest, *over, cwd=tmp_path)
    user_error(rc, out, *words)
    assert not (tmp_path/'r'/'last.pt').exists()


def test_unknown_hub_lm_fails_fast(tmp_path):
    "An LM name that is neither cached nor reachable is refused in seconds, not after minutes of retries"
    import time
    env = {k: v for k, v in os.environ.items() if k not in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    t0 = time.time()
    r = subprocess.run(['geoformers_train', 'weather-text', '--max_steps', '1', '--out', str(tmp_path/'r'), '--set',
                        'model.mae_ckpt=none', 'model.lm=no-such-org/no-such-lm', 'train.progress=false'],
                       capture_output=True, text=True, timeout=240, env={**env, 'OMP_NUM_THREADS': '1'},
                       cwd=tmp_path)
    took = time.time() - t0
    user_error(r.returncode, r.stdout + r.stderr, "model.lm='no-such-org/no-such-lm' could not be loaded",
               'embedded, hrm')
    assert took < 30, f"took {took:.0f} s"
    assert not (tmp_path/'runs').exists()          # refused before the embedded data was made


def test_cached_hub_lm_read_from_the_cache_when_the_hub_is_unreachable(tmp_path):
    "A hub name in the local cache loads from its cached folder, with no retries against an unreachable hub"
    from geoformers.testing import tiny_llama
    repo = tmp_path/'hub'/'models--tiny-org--tiny-llama'
    snap = repo/'snapshots'/('a' * 40)
    snap.mkdir(parents=True)
    for f in Path(tiny_llama(path=tmp_path/'tl')).iterdir(): (snap/f.name).write_bytes(f.read_bytes())
    (repo/'refs').mkdir()
    (repo/'refs'/'main').write_text('a' * 40)
    code = ('import time\nt = time.time()\n'
            'from geoformers.tasks.weather_text import _check_lm\n'
            'from geoformers.models.prefixer import load_causal_lm\n'
            'src = _check_lm("tiny-org/tiny-llama")\n'
            'print(src, type(load_causal_lm(src)).__name__, time.time() - t)\n')
    env = {k: v for k, v in os.environ.items() if k not in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')}
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env={**env, 'HF_HUB_CACHE': str(tmp_path/'hub'), 'OMP_NUM_THREADS': '1',
                            'HF_ENDPOINT': 'http://127.0.0.1:9'})   # a hub that cannot be reached
    src, cls, took = r.stdout.split()
    assert src == str(snap) and cls == 'LlamaForCausalLM' and float(took) < 20, r.stdout + r.stderr[-2000:]
    assert 'Retry' not in r.stderr, r.stderr[-2000:]
