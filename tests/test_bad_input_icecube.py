"""Bad input for the icecube task: each case asserts the exit code (2 = a user error) and the key words of the
message, or, for data, that nothing silently changes."""
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from geoformers.data.detectors import graphnet_geometry, icecube86, kaggle_geometry
from geoformers.data.dom_packing import collate_dom_packing
from geoformers.data.graphnet import read_graphnet, read_prometheus, write_graphnet
from geoformers.data.icecube import IceCubeSynth
from geoformers.data.kaggle_write import write_kaggle
from geoformers.errors import DataError
from geoformers.models.events import EventTransformer
from geoformers.models.t1 import DOMTransformer
from geoformers.testing import shared_data
from geoformers.train.cli import train_cli
from geoformers.train.eval import eval_cli
from geoformers.train.predict import predict_cli

from conftest import run_inproc

BIN = Path(sys.executable).parent
TINY = ['model.dim=16', 'model.heads=2', 'model.t1_depth=1', 'model.t2_depth=1', 'train.batch_size=8',
        'train.progress=false']


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "A good synthetic Kaggle folder; each case copies and breaks it"
    d = tmp_path_factory.mktemp('good')
    write_kaggle(d, n_files=2, events_per_file=24, events_per_group=8)
    return d


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    "A tiny trained run on synthetic events"
    out = tmp_path_factory.mktemp('run')/'r'
    r = train('data.n_train=16', 'data.n_val=8', out=out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def broken(src, dst, batch=1, pulses=None, meta=None):
    "Copy of `src` with `pulses(df)` applied to train/batch_<batch>.parquet and `meta(df)` to the meta file"
    shutil.copytree(src, dst)
    if pulses is not None:
        f = dst/'train'/f'batch_{batch}.parquet'
        pulses(df := pd.read_parquet(f))
        df.to_parquet(f)
    if meta is not None:
        f = dst/'train_meta.parquet'
        m = meta(pd.read_parquet(f))
        m.to_parquet(f, index=False)
    return dst


def train(*sets, out=None, steps=1):
    "geoformers_train icecube with `--set sets`, in this process (argument parsing and exit codes as the command)"
    args = ['icecube', '--max_steps', str(steps), '--set', *TINY, *map(str, sets)]
    if out is not None:
        args += ['--out', str(out)]
    return run_inproc(train_cli, *args)


def predict(*args):
    "geoformers_predict in this process"
    return run_inproc(predict_cli, *map(str, args))


def expect(r, code, *words):
    msg = r.stderr + r.stdout
    assert r.returncode == code, f"exit {r.returncode}, expected {code}:\n{msg[-3000:]}"
    for w in words:
        assert w in msg, f"{w!r} not in:\n{msg[-3000:]}"
    if code == 2:
        assert 'Traceback' not in msg, msg[-3000:]


def set_sensor(value):
    def f(df):
        df.loc[df.index[5], 'sensor_id'] = value
    return f


# 3. values outside their code book: sensor ids
def test_sensor_id_minus_one(folder, tmp_path):
    d = broken(folder, tmp_path/'k', pulses=set_sensor(-1))
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'sensor ids -1', 'batch_1.parquet')


def test_sensor_id_7000_at_predict(tiny_run, tmp_path):
    "A test file streamed by geoformers_predict: the bad sensor is named with its file"
    d = tmp_path/'k'
    write_kaggle(d, n_files=1, events_per_file=24, events_per_group=8, split='test', first_batch=661)
    f = d/'test'/'batch_661.parquet'
    df = pd.read_parquet(f)
    df.loc[df.index[20], 'sensor_id'] = 7000
    df.to_parquet(f)
    r = subprocess.run([str(BIN/'geoformers_predict'), str(tiny_run), '--data', str(d), '--out',
                        str(tmp_path/'sub.csv')], capture_output=True, text=True, timeout=300)
    expect(r, 2, 'sensor ids 7000', 'batch_661.parquet')


# 9. the same Kaggle batch file given twice: duplicate event ids, not "DOM arrived twice"
def test_same_batch_file_twice(folder, tmp_path):
    expect(train(f'data.source={folder}', 'data.batches=[1, 1]', out=tmp_path/'r'), 2,
           'duplicate event ids', 'same files twice', 'batch_1.parquet and')


def test_linked_batch_file_duplicate_event_ids(folder, tmp_path):
    "The same file under two names (a link): both names in the message"
    d = Path(shutil.copytree(folder, tmp_path/'k'))
    (d/'train'/'batch_3.parquet').symlink_to(d/'train'/'batch_2.parquet')
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'duplicate event ids',
           'batch_2.parquet', 'batch_3.parquet')


def test_copied_batch_file_duplicate_event_ids(folder, tmp_path):
    d = Path(shutil.copytree(folder, tmp_path/'k'))
    shutil.copy(d/'train'/'batch_1.parquet', d/'train'/'batch_2.parquet')
    m = pd.read_parquet(d/'train_meta.parquet')
    one = m[m.batch_id == 1]
    pd.concat([one, one.assign(batch_id=2)]).to_parquet(d/'train_meta.parquet', index=False)
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'duplicate event ids',
           'batch_1.parquet', 'batch_2.parquet')


def test_meta_from_another_folder(folder, tmp_path):
    d = broken(folder, tmp_path/'k', meta=lambda m: m.assign(event_id=m.event_id + 7))
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'do not belong to the events')


# 3. validation events without labels must not give NaN metrics
def test_meta_without_labels(folder, tmp_path):
    d = broken(folder, tmp_path/'k', meta=lambda m: m.drop(columns=['azimuth', 'zenith']))
    expect(train(f'data.source={d}', out=tmp_path/'r'), 2, 'no azimuth/zenith labels', 'train_meta.parquet')
    assert not (tmp_path/'r'/'best.pt').exists()


def test_nan_labels_named(folder, tmp_path):
    def nan(m):
        m.loc[2, 'zenith'] = np.nan
        return m
    d = broken(folder, tmp_path/'k', meta=nan)
    expect(train(f'data.source={d}', out=tmp_path/'r'), 2, 'no finite azimuth/zenith', '1000002')


def test_labels_out_of_range(folder, tmp_path):
    def deg(m):
        m['zenith'] = m.zenith * 180 / np.pi            # degrees instead of radians
        return m
    d = broken(folder, tmp_path/'k', meta=deg)
    expect(train(f'data.source={d}', out=tmp_path/'r'), 2, 'out of range', 'radians')


def test_nonfinite_time(folder, tmp_path):
    def inf(df):
        df['charge'] = df.charge.astype(float)
        df.loc[df.index[3], 'charge'] = np.inf
    d = broken(folder, tmp_path/'k', pulses=inf)
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'non-finite', 'batch_1.parquet')


# geometry: indexed by row order, duplicated modules, unknown modules
def test_geometry_without_ids(tmp_path):
    g = tmp_path/'sensor_geometry.csv'
    pd.DataFrame(icecube86().module_pos, columns=list('xyz')).to_csv(g, index=False)
    expect(train(f'data.geometry={g}', 'data.n_train=16', 'data.n_val=8', out=tmp_path/'r'), 2,
           'no sensor_id column', 'never matched by their order')


def test_geometry_duplicated_sensor(tmp_path):
    g = tmp_path/'sensor_geometry.csv'
    df = pd.DataFrame(icecube86().module_pos, columns=list('xyz')).assign(sensor_id=np.arange(5160))
    pd.concat([df, df.iloc[[17]]]).to_csv(g, index=False)
    expect(train(f'data.geometry={g}', 'data.n_train=16', 'data.n_val=8', out=tmp_path/'r'), 2,
           'listed twice', '17')


def test_shuffled_geometry_changes_nothing(tmp_path):
    p = shared_data('icecube', 'kaggle', 'sensor_geometry.csv')
    if p is None:
        pytest.skip("the shared Kaggle geometry is absent")
    pd.read_csv(p).sample(frac=1, random_state=3).to_csv(tmp_path/'g.csv', index=False)
    np.testing.assert_array_equal(kaggle_geometry(tmp_path/'g.csv').module_pos, kaggle_geometry(p).module_pos)


def test_unknown_module_on_upgrade(tmp_path):
    g = shared_data('icecube', 'graphnet', 'geometry_tables', 'icecube_upgrade.parquet')
    if g is None:
        pytest.skip("the shared Upgrade geometry table is absent")
    up = graphnet_geometry(g)
    write_graphnet([IceCubeSynth(4, seed=2, detector=up)[i] for i in range(4)], up, tmp_path/'u')
    f = next((tmp_path/'u'/'SRTInIcePulses').glob('*.parquet'))
    df = pd.read_parquet(f)
    df.loc[df.index[0], 'string'] = 99
    df.to_parquet(f)
    expect(train(f'data.source={tmp_path/"u"}', f'data.geometry={g}', 'data.val_fraction=0.5',
                 out=tmp_path/'r'), 2, '(99,', 'are not sensors of')


# 9. unclear errors: configs and paths
def test_renamed_key_model_seed(tmp_path):
    expect(train('model.seed=true', out=tmp_path/'r'), 2, "model.linefit_prior")


def test_source_missing(tmp_path):
    expect(train(f'data.source={tmp_path/"nowhere"}', out=tmp_path/'r'), 2, 'does not exist')


def test_batches_select_nothing(folder, tmp_path):
    expect(train(f'data.source={folder}', 'data.batches=7-9', out=tmp_path/'r'), 2, 'selects no batch file')


def test_predict_refuses_unknown_suffix(tiny_run, tmp_path):
    r = subprocess.run([str(BIN/'geoformers_predict'), str(tiny_run), '--out', str(tmp_path/'sub.txt')],
                       capture_output=True, text=True, timeout=300)
    expect(r, 2, '.csv or .parquet')


def test_predict_refuses_existing_output(tiny_run, tmp_path):
    (tmp_path/'sub.csv').write_text('mine')
    r = subprocess.run([str(BIN/'geoformers_predict'), str(tiny_run), '--out', str(tmp_path/'sub.csv')],
                       capture_output=True, text=True, timeout=300)
    expect(r, 2, 'overwrite')
    assert (tmp_path/'sub.csv').read_text() == 'mine'


# models: dtypes and shapes
def test_t1_accepts_float64_and_names_the_layout():
    det = icecube86()
    b = collate_dom_packing([IceCubeSynth(3, seed=0, detector=det)[i] for i in range(3)], det)
    t1 = DOMTransformer(16, 1, 2).eval()
    with torch.no_grad():
        torch.testing.assert_close(t1({**b, 'packed_sequences': b['packed_sequences'].double()}), t1(b))
    with pytest.raises(ValueError, match=r'\[rows, S, 8\]'):
        t1({**b, 'packed_sequences': b['packed_sequences'][..., :5]})
    with pytest.raises(ValueError, match='integer module ids'):
        t1({**b, 'dom_boundaries': b['dom_boundaries'].float()})


def test_t2_names_the_position_layout():
    t2 = EventTransformer(16, 1, 2)
    with pytest.raises(ValueError, match=r'dom_pos must be \[n, 3\]'):
        t2(torch.randn(5, 16), torch.randn(5, 2), torch.zeros(5, dtype=torch.long), 1)


def test_collate_names_duplicate_events():
    det = icecube86()
    ev = IceCubeSynth(2, seed=0, detector=det)[0]
    with pytest.raises(ValueError, match='duplicate event ids'):
        collate_dom_packing([ev, dict(ev)], det)


# unreadable files and missing columns: one DataError naming the file
def graphnet_db(tmp_path, pulses=True, truth=True, drop=()):
    "A GraphNeT SQLite file of synthetic events, with tables or columns left out"
    g = write_graphnet([IceCubeSynth(8, seed=2)[i] for i in range(8)], icecube86(), tmp_path/'g')
    p = pd.read_parquet(g/'SRTInIcePulses'/'SRTInIcePulses_0.parquet').reset_index()
    t = pd.read_parquet(g/'truth'/'truth_0.parquet').reset_index()
    db = tmp_path/'events.db'
    with sqlite3.connect(db) as con:
        if pulses is not None:
            (p if pulses is True else pulses(p)).drop(columns=list(drop)).to_sql('SRTInIcePulses', con)
        if truth:
            t.to_sql('truth', con)
    return db


def test_corrupt_batch_file(folder, tmp_path):
    d = Path(shutil.copytree(folder, tmp_path/'k'))
    f = d/'train'/'batch_2.parquet'
    f.write_bytes(f.read_bytes()[:500])
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'batch_2.parquet',
           'cannot be read as Parquet')


def test_graphnet_db_without_truth(tmp_path):
    db = graphnet_db(tmp_path, truth=False)
    expect(train(f'data.source={db}', out=tmp_path/'r'), 2, 'events.db', "no tables ['truth']")


def test_zero_byte_db(tmp_path):
    (tmp_path/'events.db').write_bytes(b'')
    expect(train(f'data.source={tmp_path/"events.db"}', out=tmp_path/'r'), 2, 'events.db',
           'holds no tables')


def test_graphnet_missing_columns(tmp_path):
    db = graphnet_db(tmp_path, drop=['dom_time'])
    expect(train(f'data.source={db}', out=tmp_path/'r'), 2, 'events.db', "lacks the columns ['dom_time']",
           "'charge'")


def test_kaggle_missing_columns(folder, tmp_path):
    d = broken(folder, tmp_path/'k', pulses=lambda df: df.pop('charge'))
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'batch_1.parquet',
           "lacks the columns ['charge']", "'sensor_id'")


def test_predict_graphnet_folder_lacking_columns(tiny_run, tmp_path):
    g = write_graphnet([IceCubeSynth(4, seed=3)[i] for i in range(4)], icecube86(), tmp_path/'g')
    f = g/'SRTInIcePulses'/'SRTInIcePulses_0.parquet'
    pd.read_parquet(f).drop(columns=['hlc', 'string']).to_parquet(f)
    r = predict(tiny_run, '--data', g, '--out', tmp_path/'sub.csv')
    expect(r, 2, "lacks the columns ['string', 'hlc']", 'SRTInIcePulses')
    assert not (tmp_path/'sub.csv').exists()


# codes and ranges of the pulses
def test_buffer_negative(tmp_path):
    expect(train('data.buffer=-1', out=tmp_path/'r'), 2, 'data.buffer', '>= 0')


def test_auxiliary_coded_2(folder, tmp_path):
    def aux(df):
        df['auxiliary'] = df.auxiliary.astype(int)
        df.loc[df.index[4], 'auxiliary'] = 2
    d = broken(folder, tmp_path/'k', pulses=aux)
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'auxiliary coded 2',
           '0/1', 'batch_1.parquet')


def test_negative_charge(folder, tmp_path):
    def neg(df):
        df.loc[df.index[4], 'charge'] = -1.0
    d = broken(folder, tmp_path/'k', pulses=neg)
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'negative charge',
           'batch_1.parquet')


def test_graphnet_inf_time_is_non_finite(tmp_path):
    def inf(p):
        p.loc[3, 'dom_time'] = np.inf
        return p
    db = graphnet_db(tmp_path, pulses=inf)
    expect(train(f'data.source={db}', out=tmp_path/'r'), 2, 'non-finite', 'events.db')


def test_db_path_with_odd_characters_reads(tmp_path):
    "Read-only SQLite by URI: a path with a space, '#' or '?' still reads (and is never created)"
    db = graphnet_db(tmp_path)
    odd = tmp_path/'a b#1?x'
    odd.mkdir()
    assert len(read_graphnet(shutil.copy(db, odd/'events.db'))) == 8
    with pytest.raises(DataError, match='cannot be read'):
        read_graphnet(odd/'missing.db')
    assert not (odd/'missing.db').exists()


def test_zero_byte_meta_file(folder, tmp_path):
    d = Path(shutil.copytree(folder, tmp_path/'k'))
    (d/'train_meta.parquet').write_bytes(b'')
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'train_meta.parquet',
           'cannot be read as Parquet')


# a GraphNeT folder of pulses without truth/: predict reads it, training and eval name what is missing
def pulses_only(tmp_path, n=6, seed=3):
    "A GraphNeT merged folder of synthetic events, its truth/ removed"
    g = write_graphnet([IceCubeSynth(n, seed=seed)[i] for i in range(n)], icecube86(), tmp_path/'pulses_only')
    shutil.rmtree(g/'truth')
    return g


def test_predict_graphnet_folder_without_truth(tiny_run, tmp_path):
    g = pulses_only(tmp_path)
    r = predict(tiny_run, '--data', g, '--out', tmp_path/'sub.csv')
    expect(r, 0)
    sub = pd.read_csv(tmp_path/'sub.csv')
    assert sorted(sub.event_id) == [3 * 10**7 + i for i in range(6)]
    assert np.isfinite(sub[['azimuth', 'zenith']].values).all()


def test_train_graphnet_folder_without_truth(tmp_path):
    g = pulses_only(tmp_path)
    expect(train(f'data.source={g}', out=tmp_path/'r'), 2, str(g), 'no truth tables',
           'training and evaluation need')
    assert not (tmp_path/'r'/'best.pt').exists()


def test_eval_graphnet_folder_without_truth(tiny_run, tmp_path):
    g = pulses_only(tmp_path)
    expect(run_inproc(eval_cli, tiny_run, '--data', g), 2, str(g), 'no truth tables',
           'training and evaluation need')


def test_predict_real_graphnet_pulses_without_truth(tiny_run, tmp_path):
    "GraphNeT's own merged sample, its truth tables left out"
    src = shared_data('icecube', 'graphnet', 'oscNext_genie_level7_v02', 'merged')
    if src is None:
        pytest.skip("the shared GraphNeT merged sample is absent")
    g = tmp_path/'merged'
    shutil.copytree(src/'SRTInIcePulses', g/'SRTInIcePulses')
    expect(predict(tiny_run, '--data', g, '--out', tmp_path/'sub.csv'), 0)
    assert len(pd.read_csv(tmp_path/'sub.csv')) == 5
    expect(train(f'data.source={g}', out=tmp_path/'r'), 2, 'merged', 'no truth tables')


# text in a number column: refused where the table enters, naming the file, the column and the dtype
def test_kaggle_text_charge(folder, tmp_path):
    def text(df):
        df['charge'] = df.charge.astype(str)
    d = broken(folder, tmp_path/'k', pulses=text)
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'batch_1.parquet',
           "column 'charge'", 'string', 'not numbers')


def test_kaggle_meta_text_zenith(folder, tmp_path):
    d = broken(folder, tmp_path/'k', meta=lambda m: m.astype({'zenith': str}))
    expect(train(f'data.source={d}', 'data.n_val=4', out=tmp_path/'r'), 2, 'train_meta.parquet',
           "column 'zenith'", 'string')


def test_kaggle_text_sensor_id_at_predict(tiny_run, tmp_path):
    d = tmp_path/'k'
    write_kaggle(d, n_files=1, events_per_file=12, events_per_group=4, split='test', first_batch=661)
    f = d/'test'/'batch_661.parquet'
    pd.read_parquet(f).astype({'sensor_id': str}).to_parquet(f)
    expect(predict(tiny_run, '--data', d, '--out', tmp_path/'sub.csv'), 2, 'batch_661.parquet',
           "column 'sensor_id'", 'string')
    assert not (tmp_path/'sub.csv').exists()


def test_graphnet_parquet_text_time_at_predict(tiny_run, tmp_path):
    g = pulses_only(tmp_path)
    f = g/'SRTInIcePulses'/'SRTInIcePulses_0.parquet'
    pd.read_parquet(f).astype({'dom_time': str}).to_parquet(f)
    expect(predict(tiny_run, '--data', g, '--out', tmp_path/'sub.csv'), 2, 'SRTInIcePulses_0.parquet',
           "column 'dom_time'", 'dtype str', 'not numbers')


def test_graphnet_sqlite_text_charge(tmp_path):
    def text(p):
        p['charge'] = p.charge.astype(object)
        p.loc[3, 'charge'] = 'n/a'
        return p
    db = graphnet_db(tmp_path, pulses=text)
    expect(train(f'data.source={db}', out=tmp_path/'r'), 2, 'events.db', "column 'charge'", 'dtype',
           "'n/a'")


def test_graphnet_geometry_pulses_text_position(tmp_path):
    "data.geometry='pulses' reads positions from the pulse map: text there is named too"
    def text(p):
        p['dom_x'] = p.dom_x.astype(str)
        return p
    db = graphnet_db(tmp_path, pulses=text)
    expect(train(f'data.source={db}', 'data.geometry=pulses', out=tmp_path/'r'), 2, 'events.db',
           "column 'dom_x'")


def prometheus_db(path, hits=None):
    "A tiny Prometheus file: two events of three photon hits on three sensors"
    h = pd.DataFrame(dict(sensor_id=[0, 1, 2, 0, 1, 2], sensor_pos_x=[0., 10, 20] * 2,
                          sensor_pos_y=[0.] * 6, sensor_pos_z=[0., -10, -20] * 2,
                          sensor_string_id=[0, 0, 1] * 2, t=[1., 5, 9, 2, 4, 8],
                          event_no=[0, 0, 0, 1, 1, 1]))
    t = pd.DataFrame(dict(event_no=[0, 1], injection_azimuth=[1., 2.], injection_zenith=[0.5, 1.5]))
    with sqlite3.connect(path) as con:
        (h if hits is None else hits(h)).to_sql('total', con, index=False)
        t.to_sql('mc_truth', con, index=False)
    return path


def test_prometheus_text_time(tmp_path):
    assert len(read_prometheus(prometheus_db(tmp_path/'good.db'))) == 2
    db = prometheus_db(tmp_path/'hits.db', hits=lambda h: h.astype({'t': str}))
    expect(train(f'data.source={db}', 'data.val_fraction=0.5', out=tmp_path/'r'), 2, 'hits.db',
           "column 't'", 'table total')


def test_geometry_csv_text_position(tmp_path):
    g = tmp_path/'sensor_geometry.csv'
    df = pd.DataFrame(icecube86().module_pos, columns=list('xyz')).assign(sensor_id=np.arange(5160))
    df['z'] = df.z.astype(object)
    df.loc[7, 'z'] = 'deep'
    df.to_csv(g, index=False)
    expect(train(f'data.geometry={g}', 'data.n_train=16', 'data.n_val=8', out=tmp_path/'r'), 2,
           'sensor_geometry.csv', "column 'z'", "'deep'")


def test_graphnet_geometry_table_text_depth(tmp_path):
    s = icecube86().sensors
    g = pd.DataFrame(dict(string=s.string, dom_number=s.module, pmt_number=s.pmt, dom_x=s.x, dom_y=s.y,
                          dom_z=s.z.astype(str)))
    g.to_parquet(tmp_path/'table.parquet')
    expect(train(f'data.geometry={tmp_path/"table.parquet"}', 'data.n_train=16', 'data.n_val=8',
                 out=tmp_path/'r'), 2, 'table.parquet', "column 'dom_z'", 'numbers written as text')
