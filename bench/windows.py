"""Throughput of `geoformers.data.windows.WindowDataset` against numpy and xbatcher.

Cube: 7 variables x 744 hourly steps x 181 x 360 float32 (~1.3 GB), windows 8x64x64 with 50% overlap
(stride 4x32x32, 7,400 windows). Reports windows/s for

- numpy `sliding_window_view` + a contiguous copy per window (the in-memory ceiling),
- geoformers in memory, random order,
- xbatcher `BatchGenerator` in memory,
- geoformers lazy (Zarr, time chunks of 24) in `ChunkBatchSampler` order and in random order,
- xbatcher lazy on the same Zarr store,
- a `DataLoader` with 2 workers over the lazy dataset (batches from `ChunkBatchSampler`).

Timings on a shared machine are noisy: compare the ratios, which are measured in the same run.
Run: `python bench/windows.py` (about 2-4 minutes), `--time 96` for a quick check.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from geoformers.data.windows import ChunkBatchSampler, WindowDataset, collate_windows

WIN, STRIDE = (8, 64, 64), (4, 32, 32)
DIMS = ('time', 'latitude', 'longitude')


def make_cube(n_time:int, seed:int=0):
    "Stacked `[C, T, H, W]` float32 array and a Dataset whose variables are views of it"
    rng = np.random.default_rng(seed)
    cube = rng.random((7, n_time, 181, 360), dtype=np.float32)
    ds = xr.Dataset({f'v{c}': (DIMS, cube[c]) for c in range(7)},
                    coords={'time': np.datetime64('2019-03-01T00', 'h') + np.arange(n_time).astype('timedelta64[h]'),
                            'latitude': np.linspace(90, -90, 181), 'longitude': np.arange(0, 360, 1.)})
    return cube, ds


def rate(fn, idx, budget:float=None)->float:
    "Windows per second of `fn(i)` over `idx`, stopping early after `budget` seconds"
    t0, n = time.perf_counter(), 0
    for i in idx:
        fn(i); n += 1
        if budget and time.perf_counter() - t0 > budget: break
    return n/(time.perf_counter() - t0)


def xbatcher_rate(ds, n:int, budget:float)->float:
    import xbatcher
    bg = xbatcher.BatchGenerator(ds, input_dims=dict(zip(DIMS, WIN)), input_overlap={d: w - s for d, w, s in zip(DIMS, WIN, STRIDE)})
    it = iter(range(len(bg)))
    return rate(lambda i: bg[next(it)].to_array().values, range(min(n, len(bg))), budget)


def loader_rate(dsw, batch_size:int, workers:int, n_batches:int)->float:
    dl = torch.utils.data.DataLoader(dsw, batch_sampler=ChunkBatchSampler(dsw, batch_size, seed=0, num_workers=workers),
                                     collate_fn=collate_windows, num_workers=workers, persistent_workers=False)
    it = iter(dl); next(it)                                   # worker start-up is not throughput
    t0, n = time.perf_counter(), 0
    for _ in range(n_batches):
        n += len(next(it)['x'])
    return n/(time.perf_counter() - t0)


def main(n_time:int=744, n:int=1500, seed:int=0):
    t0 = time.perf_counter()
    cube, ds = make_cube(n_time, seed)
    print(f"cube {cube.shape} float32 = {cube.nbytes/2**30:.2f} GiB, made in {time.perf_counter() - t0:.0f} s")
    kw = dict(window=dict(zip(('time', 'lat', 'lon'), WIN)), stride=dict(zip(('time', 'lat', 'lon'), STRIDE)))
    mem = WindowDataset(ds, list(ds.data_vars), **kw)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(mem))[:n]
    sw = sliding_window_view(cube, WIN, axis=(1, 2, 3))[:, ::STRIDE[0], ::STRIDE[1], ::STRIDE[2]]
    rows = mem.index[:, :3]
    res = {}
    res['numpy copy (memory)'] = rate(lambda i: torch.from_numpy(np.ascontiguousarray(sw[:, rows[i, 0], rows[i, 1], rows[i, 2]])), idx)
    res['geoformers (memory)'] = rate(lambda i: mem[i]['x'], idx)
    res['xbatcher (memory)'] = xbatcher_rate(ds, n, budget=20)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)/'cube.zarr'
        t1 = time.perf_counter()
        ds.chunk({'time': 24}).to_zarr(path, zarr_format=2, consolidated=True)
        print(f"wrote Zarr (time chunks of 24) in {time.perf_counter() - t1:.0f} s")
        mem = sw = None                                   # free the in-memory readers
        lz = xr.open_zarr(path)
        lazy = WindowDataset(path, list(lz.data_vars), **kw)
        order = [i for b in ChunkBatchSampler(lazy, 32, seed=seed) for i in b][:n]
        res['geoformers (lazy, chunk batches)'] = rate(lambda i: lazy[i]['x'], order)
        lazy._cache.clear()
        res['geoformers (lazy, random order)'] = rate(lambda i: lazy[i]['x'], idx[:200], budget=30)
        res['xbatcher (lazy)'] = xbatcher_rate(lz, n, budget=20)
        lazy._cache.clear()
        res['DataLoader 2 workers (lazy, batch 32)'] = loader_rate(lazy, 32, 2, max(n//32, 4))
    print(f"\n{'reader':40s} windows/s")
    for k, v in res.items(): print(f"{k:40s} {v:10.0f}")
    r_mem = res['geoformers (memory)']/res['numpy copy (memory)']
    r_lazy = res['geoformers (lazy, chunk batches)']/res['xbatcher (lazy)']
    print(f"\nin memory: geoformers / numpy copy = {r_mem:.2f} (goal >= 0.8)")
    print(f"lazy: geoformers / xbatcher = {r_lazy:.0f}x (goal >= 20x)")
    print(f"memory: geoformers / xbatcher = {res['geoformers (memory)']/res['xbatcher (memory)']:.0f}x")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return res


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--time', type=int, default=744, help='hourly steps in the cube')
    ap.add_argument('--n', type=int, default=1500, help='windows timed per reader')
    a = ap.parse_args()
    main(a.time, a.n)
