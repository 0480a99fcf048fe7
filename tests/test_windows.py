"Integration tests of the ERA5 windows: files on disk opened lazily, a DataLoader with 2 workers, the public API."
import numpy as np
import pandas as pd
import pytest
import torch

from geoformers.data.chunks import ChunkBatchSampler
from geoformers.data.era5_captions import synth_captions
from geoformers.data.era5_synth import synth_era5
from geoformers.data.window_reads import collate_windows
from geoformers.data.windows import WindowDataset

KW = dict(window={'time': 6, 'lat': 16, 'lon': 16}, stride={'time': 3, 'lat': 8, 'lon': 8})


@pytest.fixture(scope='module')
def era5():
    return synth_era5(n_days=2, seed=0)


@pytest.mark.parametrize('suffix', ['.nc', '.zarr'])
def test_files_match_memory(era5, tmp_path, suffix):
    "Windows read lazily from NetCDF or Zarr equal the in-memory ones, and the stats file round-trips"
    path = tmp_path/f'era5{suffix}'
    synth_era5(n_days=2, seed=0, path=path)
    mem = WindowDataset(era5, ['t2m', 'z'], **KW)
    lazy = WindowDataset(path, ['t2m', 'z'], **KW)
    assert lazy.lazy and not mem.lazy and lazy.channels == ['t2m', 'z_850', 'z_500']
    for i in (0, 7, len(mem) - 1): torch.testing.assert_close(lazy[i]['x'], mem[i]['x'])
    st = lazy.compute_stats(tmp_path/'stats.json')
    again = WindowDataset(path, ['t2m', 'z'], normalise=tmp_path/'stats.json', **KW)
    np.testing.assert_allclose(again.stats.mean, st.mean)


def test_dataloader_two_workers(era5):
    "Lazy windows through 2 forked workers with chunk batches: every sample once, captions attached"
    caps = synth_captions(era5)
    dsw = WindowDataset(era5.chunk({'time': 12}), ['u10', 'v10', 'msl'], captions=caps, **KW)
    dl = torch.utils.data.DataLoader(dsw, batch_sampler=ChunkBatchSampler(dsw, 8, num_workers=2), collate_fn=collate_windows, num_workers=2)
    seen, n = [], 0
    for b in dl:
        assert b['x'].shape[1:] == (3, 6, 16, 16) and b['x'].dtype == torch.float32
        assert all(isinstance(c, str) and c for c in b['caption'])
        seen += b['index']; n += 1
    assert sorted(seen) == list(range(len(dsw))) and n == len(dl)


def test_dates_cover_all_windows(era5):
    dsw = WindowDataset(era5, ['t2m'], **KW)
    dates = pd.date_range('2019-03-01', periods=2).strftime('%Y-%m-%d')
    assert sum(len(dsw.windows_for_date(d)) for d in dates) == len(dsw)


def test_http_store_like_the_cloud(tmp_path):
    "A store laid out like the analysis-ready ERA5 one, served over HTTP: the same windows as read locally, also in 2 workers"
    from geoformers.data.era5_synth import arco_like
    from geoformers.data.sources import serve_folder
    arco_like(tmp_path/'era5.zarr', n_time=12, res=5.0)
    kw = dict(window={'time': 4, 'lat': 16, 'lon': 16}, stride={'time': 2, 'lat': 8, 'lon': 8}, levels=[500, 850],
              wrap_lon=True)
    local = WindowDataset(tmp_path/'era5.zarr', ['2m_temperature', 'temperature'], **kw)
    with serve_folder(tmp_path) as srv:
        remote = WindowDataset(f'{srv.url}/era5.zarr', ['2m_temperature', 'temperature'], **kw)
        assert remote.channels == ['2m_temperature', 'temperature_500', 'temperature_850']
        for i in (0, 7, len(local) - 1): torch.testing.assert_close(remote[i]['x'], local[i]['x'])
        remote.reader.clear()
        dl = torch.utils.data.DataLoader(remote, batch_sampler=ChunkBatchSampler(remote, 8, num_workers=2),
                                         collate_fn=collate_windows, num_workers=2)
        seen = [i for b in dl for i in b['index']]
        assert sorted(seen) == list(range(len(remote))) and srv.bytes_sent > 0


def test_weather_mae_trains_from_http(tmp_path):
    "weather-mae trains a few steps from a Zarr store served over HTTP (data.paths is the URL)"
    import json
    import os
    import subprocess
    from geoformers.data.era5_synth import arco_like
    from geoformers.data.sources import serve_folder
    arco_like(tmp_path/'era5.zarr', n_time=48, res=5.0)
    with serve_folder(tmp_path) as srv:
        r = subprocess.run(['geoformers_train', 'weather-mae', '--max_steps', '3', '--out', str(tmp_path/'run'), '--set',
                            f'data.paths={srv.url}/era5.zarr', 'data.variables=[2m_temperature, temperature]',
                            'data.levels=[500, 850]', 'data.window={time: 8, lat: 16, lon: 24}',
                            'data.stride={time: 8, lat: 16, lon: 24}', 'model.dim=16', 'model.depth=1', 'model.heads=2',
                            'model.decoder_dim=8', 'model.decoder_heads=2', 'train.batch_size=2',
                            'train.progress=false'], capture_output=True, text=True, timeout=300,
                           env={**os.environ, 'OMP_NUM_THREADS': '1'})
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert s['steps'] == 3 and s['channels'] == ['2m_temperature', 'temperature_500', 'temperature_850']


def test_real_pressure_levels():
    "The real ERA5 sample on 20 pressure levels (one NetCDF per variable) runs through the windows"
    from geoformers.testing import shared_data
    pl = shared_data('era5', 'era5_pl_2020-01-01')
    if pl is None: pytest.skip('the real pressure-level sample is not here')
    dsw = WindowDataset(str(pl/'*.nc'), ['u', 'v', 'q', 'sp'], normalise=True,
                        window={'time': 6, 'lat': 32, 'lon': 32}, stride={'time': 6, 'lat': 8, 'lon': 8})
    assert len(dsw.channels) == 61 and dsw.channels[0] == 'u_100' and dsw.channels[-1] == 'sp'
    b = collate_windows(dsw.__getitems__(list(range(4))))
    assert b['x'].shape == (4, 61, 6, 32, 32) and torch.isfinite(b['x']).all()


def test_weather_mae_lazy_chunk_batches_resume(tmp_path):
    "weather-mae over a lazy store trains on chunk batches (no random-order warning) and resumes bit for bit"
    import warnings
    from geoformers.data.chunks import ChunkBatchSampler
    from geoformers.data.era5_synth import arco_like
    from geoformers.train.config import resolve_config
    from geoformers.train.loop import fit
    from geoformers.train.tasks import get_task
    arco_like(tmp_path/'era5.zarr', n_time=48, res=5.0)
    over = [f'data.paths={tmp_path}/era5.zarr', 'data.variables=[2m_temperature, temperature]', 'data.levels=[500]',
            'data.window={time: 4, lat: 8, lon: 8}', 'data.stride={time: 2, lat: 8, lon: 8}', 'model.dim=16',
            'model.depth=1', 'model.heads=2', 'model.patch=[2, 4, 4]', 'model.window=[1, 2, 2]',
            'model.decoder_dim=8', 'model.decoder_heads=2', 'train.batch_size=4', 'train.max_steps=6',
            'train.val_every=null', 'train.progress=false', 'train.previews=false']
    task = get_task('weather-mae')
    cfg = resolve_config(task, None, over)
    data = task.data(cfg)
    assert isinstance(data['batch_sampler'], ChunkBatchSampler) and len(data['batch_sampler']) > 6
    with warnings.catch_warnings():
        warnings.filterwarnings('error', message='.*ChunkBatchSampler')
        fit(task, cfg, tmp_path/'straight')
        assert fit(get_task('weather-mae'), cfg, tmp_path/'resumed', stop_at=3)['stopped_at'] == 3
        fit(get_task('weather-mae'), cfg, tmp_path/'resumed', resume=True)
    a, b = (torch.load(tmp_path/r/'last.pt', weights_only=True)['model'] for r in ('straight', 'resumed'))
    assert all(torch.equal(v, b[k]) for k, v in a.items())
