"""Throughput of `geoformers.data.windows.WindowDataset`: in memory, lazily from Zarr, in DataLoader workers, over HTTP.

Part 1, a cube of 7 variables x 744 hourly steps x 181 x 360 float32 (~1.3 GB), windows 8x64x64 with 50% overlap
(stride 4x32x32, 7,400 windows). Windows/s for
- numpy `sliding_window_view` + a contiguous copy per window (the in-memory ceiling),
- geoformers in memory, random order, and xbatcher `BatchGenerator` in memory,
- geoformers lazy (Zarr, time chunks of 24): `ChunkBatchSampler` order in one process, random order, xbatcher lazy,
- a `DataLoader` with 0 and 2 workers over the lazy dataset, batches of 32 from `ChunkBatchSampler`,
with CPU seconds per window (all processes: the loader's workers are counted when they exit).
The lazy readers in `ChunkBatchSampler` order and the loaders read a whole epoch (all 7,400
windows; the loaders' first batch is not timed): a loader's workers start afresh every epoch and
grow their memory (chunk caches, shared batch buffers) at the start, so an epoch is the fair unit
of their throughput. A slice of 1,500 windows (about a second) measured mostly that start-up, whose
cost depends on the state of the machine's memory rather than on the reader: pages touched for the
first time cost far more on a virtual machine that backs its memory lazily than on a warm one.

Part 2, a store laid out like the analysis-ready ERA5 one (`arco_like`: global 1 deg grid, 37 levels, one time step
per chunk), channels `2m_temperature` + `temperature` at 500 and 850 hPa, windows 8x64x64 stride 4x32x32, wrapped
in longitude: windows/s read locally and over HTTP from a server on 127.0.0.1 (`serve_folder`, in its own
process), and the read
amplification: bytes read from storage per window over the window's own bytes (local: the process's `rchar`; HTTP:
the bytes the server sent).

Timings on a shared machine are noisy: compare the ratios, which are measured in the same run.
Run: `python bench/windows.py` (about 3-5 minutes on 2 cores, nothing else running), `--quick` for a check
(96 steps; under a minute). Prints a table and one JSON line.
"""
import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from geoformers.data.chunks import ChunkBatchSampler
from geoformers.data.era5_synth import arco_like
from geoformers.data.sources import serve_folder
from geoformers.data.window_reads import collate_windows
from geoformers.data.windows import WindowDataset

WIN, STRIDE = (8, 64, 64), (4, 32, 32)
DIMS = ('time', 'latitude', 'longitude')
KW = dict(window=dict(zip(('time', 'lat', 'lon'), WIN)), stride=dict(zip(('time', 'lat', 'lon'), STRIDE)))


def make_cube(n_time:int, seed:int=0):
    "Stacked `[C, T, H, W]` float32 array and a Dataset whose variables are views of it"
    rng = np.random.default_rng(seed)
    cube = rng.random((7, n_time, 181, 360), dtype=np.float32)
    t = np.datetime64('2019-03-01T00', 'h') + np.arange(n_time).astype('timedelta64[h]')
    ds = xr.Dataset({f'v{c}': (DIMS, cube[c]) for c in range(7)},
                    coords={'time': t, 'latitude': np.linspace(90, -90, 181), 'longitude': np.arange(0, 360, 1.)})
    return cube, ds


def cpu_s()->float:
    "CPU seconds of this process and of its children that have exited"
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def rchar()->int:
    "Bytes this process has read through system calls (Linux), page cache included"
    return int(next(l for l in Path('/proc/self/io').read_text().splitlines() if l.startswith('rchar')).split()[1])


def rate(fn, idx, budget:float=None)->dict:
    "Windows/s and CPU s per window of `fn(i)` over `idx`, stopping early after `budget` seconds"
    t0, c0, n = time.perf_counter(), cpu_s(), 0
    for i in idx:
        fn(i)
        n += 1
        if budget and time.perf_counter() - t0 > budget: break
    return dict(wps=n/(time.perf_counter() - t0), cpu_ms=(cpu_s() - c0)/n*1000)


def xbatcher_rate(ds, n:int, budget:float)->dict:
    import xbatcher
    bg = xbatcher.BatchGenerator(ds, input_dims=dict(zip(DIMS, WIN)),
                                 input_overlap={d: w - s for d, w, s in zip(DIMS, WIN, STRIDE)})
    it = iter(range(len(bg)))
    return rate(lambda i: bg[next(it)].to_array().values, range(min(n, len(bg))), budget)


def loader_rate(dsw, batch_size:int, workers:int, max_windows:int)->dict:
    "A DataLoader over `dsw` with chunk batches: windows/s after the first batch, CPU s per window in all processes"
    dsw.reader.clear()
    sampler = ChunkBatchSampler(dsw, batch_size, seed=0, num_workers=workers)
    dl = torch.utils.data.DataLoader(dsw, batch_sampler=sampler, collate_fn=collate_windows, num_workers=workers)
    c0 = cpu_s()
    it = iter(dl)
    next(it)                                                  # worker start-up is not throughput
    t0, n = time.perf_counter(), 0
    for b in it:                                              # to the end: the loader stops when the data does
        n += len(b['x'])
        if n >= max_windows: break
    dt = time.perf_counter() - t0
    del it                                                    # workers exit, so their CPU time is counted
    return dict(wps=n/dt, cpu_ms=(cpu_s() - c0)/(n + batch_size)*1000)


def part1(n_time:int, n:int, seed:int)->dict:
    cube, ds = make_cube(n_time, seed)
    print(f"part 1: cube {cube.shape} float32 = {cube.nbytes/2**30:.2f} GiB")
    mem = WindowDataset(ds, list(ds.data_vars), **KW)
    idx = np.random.default_rng(seed).permutation(len(mem))[:n]
    sw = sliding_window_view(cube, WIN, axis=(1, 2, 3))[:, ::STRIDE[0], ::STRIDE[1], ::STRIDE[2]]
    rows = mem.index[:, :3]
    res = {}
    res['numpy copy (memory)'] = rate(lambda i: np.ascontiguousarray(sw[:, rows[i, 0], rows[i, 1], rows[i, 2]]), idx)
    res['geoformers (memory)'] = rate(lambda i: mem[i]['x'], idx)
    res['xbatcher (memory)'] = xbatcher_rate(ds, n, budget=20)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d)/'cube.zarr'
        ds.chunk({'time': 24}).to_zarr(path, zarr_format=2, consolidated=True)
        mem = sw = cube = None                                       # free the in-memory readers
        lazy = WindowDataset(path, list(ds.data_vars), **KW)
        order = [i for b in ChunkBatchSampler(lazy, 32, seed=seed) for i in b]   # an epoch
        res['geoformers (lazy, chunk batches)'] = rate(lambda i: lazy[i]['x'], order)
        lazy.reader.clear()
        res['geoformers (lazy, random order)'] = rate(lambda i: lazy[i]['x'], idx[:200], budget=30)
        res['xbatcher (lazy)'] = xbatcher_rate(xr.open_zarr(path), n, budget=20)
        res['DataLoader 0 workers (lazy, batch 32)'] = loader_rate(lazy, 32, 0, len(order))
        res['DataLoader 2 workers (lazy, batch 32)'] = loader_rate(lazy, 32, 2, len(order))
    return res


class Server:
    "`serve_folder` in its own process (so that serving does not take the reader's GIL); `.url`, `.bytes_sent`"
    def __init__(self, folder):
        ctx = multiprocessing.get_context('fork')
        self.q, self.stop, self.sent = ctx.Queue(), ctx.Event(), ctx.Value('q', 0)
        self.p = ctx.Process(target=self._run, args=(str(folder),), daemon=True)

    def _run(self, folder):
        with serve_folder(folder) as srv:
            self.q.put(srv.url)
            while not self.stop.wait(0.02): self.sent.value = srv.bytes_sent
            self.sent.value = srv.bytes_sent

    def __enter__(self):
        self.p.start()
        self.url = self.q.get(timeout=60)
        return self

    @property
    def bytes_sent(self)->int:
        time.sleep(0.1)                                        # the server updates the count every 20 ms
        return self.sent.value

    def __exit__(self, *exc):
        self.stop.set()
        self.p.join(10)


def part2(n_time:int, n:int, seed:int)->dict:
    res = {}
    with tempfile.TemporaryDirectory() as d:
        store = arco_like(Path(d)/'era5.zarr', n_time=n_time, res=1.0, seed=seed)
        kw = dict(KW, levels=[500, 850], wrap_lon=True)
        variables = ['2m_temperature', 'temperature']
        local = WindowDataset(store, variables, **kw)
        order = [i for b in ChunkBatchSampler(local, 32, seed=seed) for i in b][:n]
        win_bytes = 4*len(local.channels)*int(np.prod(WIN))
        print(f"part 2: store of {len(local.times)} steps, 1 deg global, 37 levels, one step per chunk; "
              f"{len(local)} windows of {win_bytes/2**20:.2f} MiB")
        r0 = rchar()
        res['local Zarr (chunk batches)'] = rate(lambda i: local[i]['x'], order)
        res['local Zarr (chunk batches)']['amplification'] = (rchar() - r0)/(len(order)*win_bytes)
        with Server(d) as srv:
            remote = WindowDataset(f'{srv.url}/era5.zarr', variables, **kw)
            b0 = srv.bytes_sent
            res['HTTP Zarr (chunk batches)'] = rate(lambda i: remote[i]['x'], order)
            res['HTTP Zarr (chunk batches)']['amplification'] = (srv.bytes_sent - b0)/(len(order)*win_bytes)
            res['HTTP Zarr, DataLoader 2 workers'] = loader_rate(remote, 32, 2, n)
    return res


def main(n_time:int=744, n:int=1500, store_time:int=48, seed:int=0):
    t0 = time.perf_counter()
    res = {**part1(n_time, n, seed), **part2(store_time, n, seed)}
    print(f"\n{'reader':42s} {'windows/s':>10s} {'CPU ms/window':>14s} {'amplification':>14s}")
    for k, v in res.items():
        amp = f"{v['amplification']:14.2f}" if 'amplification' in v else ''
        print(f"{k:42s} {v['wps']:10.0f} {v['cpu_ms']:14.2f} {amp}")
    w = lambda k: res[k]['wps']
    ratios = {'memory: geoformers / numpy copy': w('geoformers (memory)')/w('numpy copy (memory)'),
              'lazy: geoformers / xbatcher': w('geoformers (lazy, chunk batches)')/w('xbatcher (lazy)'),
              'lazy: 2 workers / one process (chunk batches)':
                  w('DataLoader 2 workers (lazy, batch 32)')/w('geoformers (lazy, chunk batches)'),
              'lazy: random order / chunk batches':
                  w('geoformers (lazy, random order)')/w('geoformers (lazy, chunk batches)'),
              'cloud layout: HTTP / local': w('HTTP Zarr (chunk batches)')/w('local Zarr (chunk batches)')}
    goals = {'memory: geoformers / numpy copy': 0.8, 'lazy: geoformers / xbatcher': 20,
             'lazy: 2 workers / one process (chunk batches)': 1.0, 'cloud layout: HTTP / local': 0.5}
    print()
    for k, v in ratios.items(): print(f"{k:48s} {v:7.2f}" + (f"   (goal >= {goals[k]:g})" if k in goals else ''))
    print(f"total {time.perf_counter() - t0:.0f} s, load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps(dict(results=res, ratios=ratios, n_time=n_time, store_time=store_time,
                          loadavg=os.getloadavg()[0]), default=float))
    return res, ratios


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--time', type=int, default=744, help='hourly steps in the part-1 cube')
    ap.add_argument('--n', type=int, default=1500,
                    help='windows per reader (not those timed over an epoch)')
    ap.add_argument('--store_time', type=int, default=48, help='hourly steps in the part-2 store')
    ap.add_argument('--quick', action='store_true', help='96 steps, 400 windows, a 16-step store')
    a = ap.parse_args()
    if a.quick: main(96, 400, 16)
    else: main(a.time, a.n, a.store_time)
