"""What making the embedded weather data costs, as quoted in nbs/10a, 10c and 34.

- `synth_era5` in its 64-day blocks against one block for the whole run (what it did before the blocks): wall time
  and peak memory, each in a fresh process.
- On the 3-hourly fields the tasks use: `channel_stats` with its default blocks (~4M values) against blocks of 64
  time steps (its old default), and `synth_captions` (facts of every day, 3 phrasings).
- Writing and reading the `data.cache` NetCDF (uncompressed) against `write_era5` (zlib), which the cache does not use.

Run: `python bench/era5_synth.py [--days 9600]`; about 4 minutes for 9600 days on 2 cores, nothing else running.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geoformers.data.era5_synth as es
from geoformers.data.era5_captions import synth_captions
from geoformers.data.normalise import channel_stats

def timed(f):
    t = time.perf_counter(); out = f(); return out, time.perf_counter() - t

def generator(days:int, block_days:int)->dict:
    es._CHUNK_DAYS = block_days
    _, s = timed(lambda: es.synth_era5(n_days=days, seed=0, res=1.0))
    return dict(seconds=s, peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)

def data_prep(days:int)->dict:
    import xarray as xr
    ds = es.synth_era5(n_days=days, seed=0, res=1.0)
    _, caps_s = timed(lambda: synth_captions(ds, n_phrasings=3))
    ds = ds.isel(time=slice(None, None, 3)).copy(deep=True)
    arrays = [ds[v].values for v in ('u10', 'v10', 'msl', 'tp', 't2m')]
    out = dict(captions_s=caps_s, fields_gb=sum(a.nbytes for a in arrays) / 1e9)
    _, out['stats_default_s'] = timed(lambda: channel_stats(arrays, list('abcde')))
    _, out['stats_64_steps_s'] = timed(lambda: channel_stats(arrays, list('abcde'), chunk=64))
    with tempfile.TemporaryDirectory() as tmp:
        _, out['netcdf_write_s'] = timed(lambda: ds.to_netcdf(Path(tmp)/'a.nc'))
        _, out['netcdf_read_s'] = timed(lambda: xr.open_dataset(Path(tmp)/'a.nc').load())
        out['netcdf_gb'] = (Path(tmp)/'a.nc').stat().st_size / 1e9
        _, out['write_era5_zlib_s'] = timed(lambda: es.write_era5(ds, Path(tmp)/'b.nc'))
        out['write_era5_zlib_gb'] = (Path(tmp)/'b.nc').stat().st_size / 1e9
    return out

def child(*args)->dict:
    r = subprocess.run([sys.executable, __file__, '--child', *map(str, args)], capture_output=True, text=True)
    if r.returncode: sys.exit(r.stderr[-3000:])
    return json.loads(r.stdout.splitlines()[-1])

def main(days:int):
    half = days // 2
    for blocks in (64, half):
        g = child('generator', half, blocks)
        print(f"synth_era5, {half} days, blocks of {blocks:5d} days: {g['seconds']:5.1f} s, peak {g['peak_gb']:.1f} GB")
    p = child('data_prep', days)
    print(f"{days} days, 3-hourly, 5 channels ({p['fields_gb']:.2f} GB):")
    print(f"  synth_captions                      {p['captions_s']:5.1f} s")
    print(f"  channel_stats, default blocks       {p['stats_default_s']:5.1f} s")
    print(f"  channel_stats, blocks of 64 steps   {p['stats_64_steps_s']:5.1f} s")
    print(f"  cache NetCDF: write {p['netcdf_write_s']:.1f} s, read {p['netcdf_read_s']:.1f} s, {p['netcdf_gb']:.2f} GB; "
          f"write_era5 (zlib): write {p['write_era5_zlib_s']:.1f} s, {p['write_era5_zlib_gb']:.2f} GB")

if __name__ == '__main__':
    if sys.argv[1:2] == ['--child']:
        kind, *args = sys.argv[2:]
        print(json.dumps({'generator': generator, 'data_prep': data_prep}[kind](*map(int, args))))
    else:
        ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        ap.add_argument('--days', type=int, default=9600, help='days of the data-preparation part (the generator part uses half)')
        main(**vars(ap.parse_args()))
