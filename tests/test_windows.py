"Integration tests of the ERA5 windows: files on disk opened lazily, a DataLoader with 2 workers, the public API."
import numpy as np
import pandas as pd
import pytest
import torch

from geoformers.data.era5_synth import synth_captions, synth_era5
from geoformers.data.windows import ChunkBatchSampler, WindowDataset, collate_windows

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
