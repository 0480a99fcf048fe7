"""The docs guards fail on planted defects and pass on clean notebooks.

Tiny notebooks are built with nbformat in a temporary folder; each check of tools/check_docs.py,
the debt list, the docs build preprocessing (tools/proc_docs.py), the sidebar, the README and the
ruff debt list are tried on them. Runs in about 15 s (the preprocessing starts two kernels).
"""
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat as nbf
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
check_docs = importlib.import_module('check_docs')
make_sidebar = importlib.import_module('make_sidebar')
make_readme = importlib.import_module('make_readme')
check_ruff_debt = importlib.import_module('check_ruff_debt')
render_html = importlib.import_module('render_html')


def stream(text, name='stdout'): return nbf.v4.new_output('stream', name=name, text=text)
def result(text): return nbf.v4.new_output('execute_result', data={'text/plain': text})


def notebook(path, *cells):
    "Write a notebook: strings starting with '# ' are markdown cells, tuples (code, outputs)"
    nb = nbf.v4.new_notebook()
    for c in cells:
        if isinstance(c, str) and c.startswith('# '): nb.cells.append(nbf.v4.new_markdown_cell(c))
        else:
            src, outs = c if isinstance(c, tuple) else (c, [])
            cell = nbf.v4.new_code_cell(src)
            cell.outputs = outs
            nb.cells.append(cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbf.write(nb, str(path))
    return path


def clean_cells():
    return ['# Clean page\n> A lesson with a seeded example.',
            ('import torch', []),
            ('torch.manual_seed(0)  # the seed for torch\nx = torch.ones(2)\nx.sum()',
             [result('tensor(2.)')]),
            '# Notes\nThe output is deterministic under the same seed; `seed=1` draws another.',
            ('print("epoch 1: loss 0.31 (12.5 s)")', [stream('epoch 1: loss 0.31 (12.5 s)\n')])]


def run_check(tmp_path, nb, debt=''):
    (tmp_path/'debt.txt').write_text(debt)
    lines = []
    rc = check_docs.run([nb], tmp_path/'debt.txt', out=lines.append)
    return rc, '\n'.join(lines)


def test_clean_notebook_passes(tmp_path):
    rc, out = run_check(tmp_path, notebook(tmp_path/'nbs'/'00_clean.ipynb', *clean_cells()))
    assert rc == 0, out
    assert out == ''


DEFECTS = {  # check -> a cell that carries it
    'path': ('p', [stream('saved to /home/ana/runs/wf/best.pt\n')]),
    'warning': ('m(x)', [stream('/x.py:3: UserWarning: Converting a tensor\n  warnings.warn(\n',
                                'stderr')]),
    'progress': ('fit()', [stream('Loading weights: 100%|██████████| 43/43 [00:00<00:00, 99.1it/s]',
                                  'stderr')]),
    'traceback': ('1/0', [nbf.v4.new_output('error', ename='ZeroDivisionError', evalue='by zero',
                                            traceback=['Traceback (most recent call last)'])]),
    'big-output': ('t', [result('tensor([' + '0.1234, ' * 4000 + '])')]),
    'import-cell': ('from math import sqrt\nsqrt(y)', []),
    'citation': '# Notes\nAs `../shared/seeds/README.md` says, the blocks come from write-ups.',
    'description': '# A page\n> A description that goes on\n> over a second line.',
}


@pytest.mark.parametrize('check', list(DEFECTS))
def test_each_defect_fails_and_is_named(tmp_path, check):
    nb = notebook(tmp_path/'nbs'/'10_bad.ipynb', *clean_cells(), DEFECTS[check])
    rc, out = run_check(tmp_path, nb)
    assert rc == 1
    assert f'10_bad.ipynb cell 5 [{check}]' in out, out
    rc, out = run_check(tmp_path, nb, debt=f'10_bad {check}\n')   # known debt: exempt
    assert rc == 0, out


def test_traceback_in_printed_text(tmp_path):
    tb = 'Traceback (most recent call last):\n  File "<stdin>", line 1\nValueError: no\n'
    rc, out = run_check(tmp_path, notebook(tmp_path/'a.ipynb', ('f()', [stream(tb, 'stderr')])))
    assert rc == 1 and '[traceback]' in out


@pytest.mark.parametrize('text', ['run folder /tmp/tmpi15kzilz/cli', r'C:\Users\ana\data.nc',
                                  'see .venv/lib/python3.11/site-packages/tqdm/auto.py',
                                  'wrote /data/era5/cache/2019.nc'])
def test_machine_paths(text):
    assert [c for c, _ in check_docs.check_outputs([text])] == ['path']


@pytest.mark.parametrize('text', ['0.5 m/s', 'dims (time, y, x)', "ids ['fire_017.nc day 12']",
                                  'lr 3e-4, loss 0.2, 12.5 it over 3 s'])
def test_ordinary_outputs_pass(text):
    assert check_docs.check_outputs([text]) == []


def test_xarray_html_counts_visible_text():
    html = '<style>' + 'x' * 30_000 + '</style><div>Dimensions: (time: 8)</div>'
    o = {'output_type': 'execute_result', 'data': {'text/html': html, 'text/plain': 'Dataset'}}
    assert check_docs.check_outputs(check_docs._output_texts(o)) == []


@pytest.mark.parametrize('src, bad', [
    ('The seed design encodes every date with DINOv2.', True),
    ("Like the seed's 110K-pulse event.", True),
    ('The vision backbone (seed §4).', True),
    ("So the issue's target holds.", True),
    ('Timed on the shared 2-core machine beside other jobs.', True),
    ('no hub on these\nmachines', True),
    ('See the design documents for details.', True),
    ('Read `/work/shared/data/era5` first.', True),
    ('seed_everything(seed)  # the seed for python, numpy and torch', False),
    ('deterministic under the seed', False),
    ('two forward passes under the same seed give identical outputs', False),
    ('`seed=1` draws another initialisation; over two seeds both average 0.656', False),
    ('`IceCubeSynth` builds event `i` from seed `(seed, i)`', False),
])
def test_citations_and_random_seeds(src, bad):
    assert bool(check_docs.check_source(src)) == bad


@pytest.mark.parametrize('src, bad', [
    ('import numpy as np', False),
    ('import numpy as np\nfrom torch import nn', False),
    ('#| export\nimport os\nX = os.sep', False),
    ('#| hide\nimport nbdev; nbdev.nbdev_export()', False),
    ("import warnings; warnings.filterwarnings('ignore')", True),
    ('#| hide\nfrom fastcore.test import test_eq\ntest_eq(f(1), 2)', True),
    ('x = 1\nprint(x)', False),
])
def test_import_cells(src, bad):
    assert bool(check_docs.check_import_cell(src)) == bad


def test_stale_debt_fails(tmp_path):
    nb = notebook(tmp_path/'nbs'/'00_clean.ipynb', *clean_cells())
    rc, out = run_check(tmp_path, nb, debt='# fixed already\n00_clean path\n')
    assert rc == 1
    assert "stale debt: '00_clean path'" in out


def test_slow_debt_needs_slow_cells(tmp_path):
    nb = notebook(tmp_path/'nbs'/'00_clean.ipynb', *clean_cells())
    assert run_check(tmp_path, nb, debt='00_clean slow\n')[0] == 1       # no slow cell: stale
    slow = notebook(tmp_path/'nbs'/'01_slow.ipynb', *clean_cells(), '#| slow\nfit()')
    assert run_check(tmp_path, slow, debt='01_slow slow\n')[0] == 0
    (tmp_path/'debt.txt').write_text('01_slow slow\n')
    assert check_docs.main([str(slow), '--list-slow', '--debt', str(tmp_path/'debt.txt')]) == 0


def test_unknown_check_in_debt_is_an_error(tmp_path):
    (tmp_path/'debt.txt').write_text('00_clean paths\n')
    with pytest.raises(SystemExit, match='expected'): check_docs.read_debt(tmp_path/'debt.txt')


def test_readme_is_checked(tmp_path):
    md = tmp_path/'README.md'
    md.write_text('# x\n```python\nimport geoformers\n```\n\n    /work/main/.venv/lib/x.py:1: '
                  'TqdmWarning: IProgress not found\n\n```bash\npip install -e .\n```\n')
    rc, out = run_check(tmp_path, md)
    assert rc == 1 and 'README.md [path]' in out and 'README.md [warning]' in out


SETTINGS = """[DEFAULT]
repo = tproj
lib_name = tproj
version = 0.0.1
lib_path = tproj
nbs_path = nbs
doc_path = _docs
recursive = True
branch = main
title = tproj
user = u
author = a
author_email = a@example.com
copyright = 2026
description = a test project
keywords = x
language = English
status = 1
min_python = 3.10
license = apache2
git_url = https://github.com/u/tproj
doc_host = https://u.github.io
doc_baseurl = /tproj
"""


def proc_docs(tmp_path, *cells):
    "Run tools/proc_docs.py on a one-notebook nbdev project"
    (tmp_path/'settings.ini').write_text(SETTINGS)
    notebook(tmp_path/'nbs'/'00_a.ipynb', '# Page A\n> summary', '#| default_exp a',
             '#| export\ndef f(x): return x', *cells)
    return subprocess.run([sys.executable, str(ROOT/'tools'/'proc_docs.py')], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_proc_nbs_fails_on_import_cell_using_earlier_variable(tmp_path):
    r = proc_docs(tmp_path, 'y = 4', 'from math import sqrt\nprint(sqrt(y))')
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'nbs/00_a.ipynb cell 4' in r.stdout and "NameError: name 'y' is not defined" in r.stdout


def test_proc_nbs_passes_with_imports_in_their_own_cells(tmp_path):
    r = proc_docs(tmp_path, 'y = 4', 'from math import sqrt', 'print(sqrt(y))')
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'docs preprocessing passed' in r.stdout and r.stderr == ''


def test_sidebar_sections_and_titles(tmp_path):
    for name, title in [('index', 'home'), ('00_core', 'Core'), ('10_data.a', 'Data `A`'),
                        ('33_tasks.x', 'Task X'), ('40a_tasks.x_experiments', 'X experiments'),
                        ('91_design.wildfire', 'Wildfire design')]:
        notebook(tmp_path/f'{name}.ipynb', f'# {title}\n> summary')
    y = make_sidebar.sidebar(tmp_path)
    assert y.index('- index.ipynb') < y.index('section: "Core"') < y.index('section: "Data"')
    assert y.count('section: "Tasks"') == 1 and 'text: "Data A"' in y   # backticks dropped
    assert 'section: "Designs"' in y and 'href: 91_design.wildfire.ipynb' in y
    notebook(tmp_path/'75_odd.ipynb', '# Odd\n> x')
    with pytest.raises(ValueError, match='no section'): make_sidebar.sidebar(tmp_path)


def test_sidebar_in_step():
    assert (ROOT/'nbs'/'sidebar.yml').read_text() == make_sidebar.sidebar()


def test_readme_cells_and_figures(tmp_path):
    nb = notebook(tmp_path/'index.ipynb', '# Home\n![blocks](images/blocks.png)',
                  ('#| hide\nimport secret', []),
                  ('#| echo: false\ntable()', [nbf.v4.new_output(
                      'display_data', data={'text/markdown': '| a |\n|---|\n| 1 |',
                                            'text/plain': '<Markdown>'})]),
                  ('1 + 1', [result('2')]))
    text = make_readme.readme(nb)
    assert 'import secret' not in text and 'table()' not in text and '| a |\n|---|' in text
    assert '```python\n1 + 1\n```\n\n    2' in text
    assert make_readme.figures(text) == ['images/blocks.png']


def test_readme_page_links():
    "Links to other pages work in README.md too: they point at the published docs site"
    base = 'https://u.github.io/tproj'
    md = '[wildfire](91_design.wildfire.ipynb), [loop](30_train.loop.ipynb#fit), [x](https://a.b/c.ipynb)'
    assert make_readme.page_links(md, base) == (f'[wildfire]({base}/design.wildfire.html), '
                                                f'[loop]({base}/train.loop.html#fit), '
                                                '[x](https://a.b/c.ipynb)')


def test_readme_in_step():
    assert make_readme.main(['--check']) == 0


def test_ruff_debt_line_goes_stale(tmp_path):
    (tmp_path/'ok.py').write_text('x = 1\n')
    (tmp_path/'long.py').write_text('x = "' + 'a' * 120 + '"\n')
    (tmp_path/'ruff.toml').write_text(textwrap.dedent('''
        line-length = 100
        [lint]
        select = ["E501", "E702"]
        [lint.per-file-ignores]
        "**/gen_*.py" = ["E501"]
        "long.py" = ["E501"]
        "ok.py" = ["E702"]
        "gone.py" = ["E501"]
        '''))
    assert check_ruff_debt.stale_lines(tmp_path) == [('ok.py', 'E702'), ('gone.py', 'E501')]


def test_debt_list_is_current():
    "The repository's own debt list has no stale line and covers every finding"
    lines = []
    assert check_docs.run(out=lines.append) == 0, '\n'.join(lines)


def test_module_map_lists_every_module():
    "The home page's module map (its stored output) names every module of the package"
    import pkgutil

    import geoformers
    mods = [m.name for m in pkgutil.walk_packages(geoformers.__path__, 'geoformers.')
            if not m.ispkg and not m.name.rsplit('.', 1)[-1].startswith('_')]
    nb = json.loads((ROOT/'nbs'/'index.ipynb').read_text())
    shown = ''.join(''.join(o.get('data', {}).get('text/markdown', ''))
                    for c in nb['cells'] for o in c.get('outputs', []))
    missing = [m for m in mods if f'[`{m}`]' not in shown and f'| `{m}` |' not in shown]
    assert not missing, f'the module map of nbs/index.ipynb misses {missing}: re-run the notebook'


def test_html_render_imitates_quarto_options():
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_raw_cell('---\ntitle: Page A\ndescription: what it holds\n---\n'),
                nbf.v4.new_code_cell('#| echo: false\n#| output: asis\nshow_doc(f)'),
                nbf.v4.new_code_cell('#| eval: false\nx = 1'),
                nbf.v4.new_markdown_cell('[source](https://x.org/a.py#L1){target="_blank"}')]
    out = render_html.quartoish(nb)
    assert out.cells[0].cell_type == 'markdown' and out.cells[0].source.startswith('# Page A')
    assert 'remove-input' in out.cells[1].metadata.tags and out.cells[2].source == 'x = 1'
    assert out.cells[3].source == '[source](https://x.org/a.py#L1)'


def entry(name, sig, doc):
    md = f'---\n\n### {name}\n\n```python\ndef {name}(\n    {sig}\n):\n```\n\n*{doc}*'
    return nbf.v4.new_output('display_data', data={'text/markdown': md, 'text/plain': '<...>'})


def test_api_entries_from_proc(tmp_path):
    nb = notebook(tmp_path/'nbs'/'20_m.ipynb', *clean_cells())
    proc = tmp_path/'_proc'/'20_m.ipynb'
    good = [('show_doc(Block)', [entry('Block', 'dim:int, heads:int=8', 'A pre-norm block')]),
            ('show_doc(ShapeError)', [entry('ShapeError', '*args, **kwargs', 'A wrong shape')])]
    notebook(proc, *clean_cells(), *good)
    assert run_check(tmp_path, nb) == (0, '')
    notebook(proc, *clean_cells(), *good,
             ('show_doc(Task)', [entry('Task', '*args, **kwargs', 'A trainable problem')]),
             ('show_doc(DOMBlock)', [entry('DOMBlock', 'dim:int', 'Base class for all neural '
                                                                  'network modules.')]))
    rc, out = run_check(tmp_path, nb)
    assert rc == 1
    assert '20_m.ipynb [api-entry] entry Task: signature (*args, **kwargs)' in out
    assert "entry DOMBlock: inherited docstring 'Base class for all neural network modules'" in out
    # a _proc copy older than the notebook is not read, and its debt line is not called stale
    os.utime(proc, (0, 0))
    assert run_check(tmp_path, nb, debt='20_m api-entry\n')[0] == 0


def test_signature_links_from_proc(tmp_path):
    "A backticked name in a docment becomes a markdown link inside the signature block: a finding"
    nb = notebook(tmp_path/'nbs'/'21_s.ipynb', *clean_cells())
    linked = entry('caption_report', 'caps:DataFrame, # from [`load_captions`](https://x.io/c.html)',
                   'Report on a captions table')
    notebook(tmp_path/'_proc'/'21_s.ipynb', *clean_cells(), ('show_doc(caption_report)', [linked]))
    rc, out = run_check(tmp_path, nb)
    assert rc == 1 and 'entry caption_report: markdown inside the signature: load_captions' in out
    param = entry('train_cli', 'task:str <task name (see --list)>=None, # runs/<task>', 'Train')
    notebook(tmp_path/'_proc'/'21_s.ipynb', *clean_cells(), ('show_doc(train_cli)', [param]))
    rc, out = run_check(tmp_path, nb)
    assert rc == 1 and "repr inside the signature: <task name (see --list)> (e.g." in out, out
    plain = entry('caption_report', 'caps:DataFrame, # from load_captions', 'Report on a table')
    notebook(tmp_path/'_proc'/'21_s.ipynb', *clean_cells(), ('show_doc(caption_report)', [plain]))
    assert run_check(tmp_path, nb) == (0, '')


CLASSES = '''#| export
class Base:
    "A base class"
    def data(self, cfg): return []
    def fit(self, x): return x

class Model(nn.Module):
    "A model"
    def forward(self, x): return x
    def encode(self, x): return x
    @property
    def size(self): return 1
    def _helper(self): pass

class Sub(Base):
    "A subclass"
    def data(self, cfg): return [1]
    def fit(self,
            x:int,   # documented: its docments must render
           ): return x
'''


@pytest.mark.parametrize('shown, missing', [
    ('', ['Base.data', 'Base.fit', 'Model.encode', 'Sub.fit']),
    ('show_doc(Base.data)\nshow_doc(Base.fit)\nshow_doc(Model.encode)', ['Sub.fit']),
    ('show_doc(Base.data)\nshow_doc(Base.fit)\nshow_doc(Model.encode)\nshow_doc(Sub.fit)', [])])
def test_method_entries(tmp_path, shown, missing):
    """Public methods of exported classes need show_doc; undocumented overrides (forward, a base's
    method) and properties do not; documented overrides do"""
    cells = [*clean_cells(), CLASSES] + ([shown] if shown else [])
    nb = notebook(tmp_path/'nbs'/'22_m.ipynb', *cells)
    rc, out = run_check(tmp_path, nb)
    assert rc == (1 if missing else 0), out
    if missing: assert f"22_m.ipynb cell 5 [method-entry] no entry for {', '.join(missing)}" in out
    if missing: assert run_check(tmp_path, nb, debt='22_m method-entry\n')[0] == 0


def test_patched_methods_need_no_show_doc(tmp_path):
    "nbdev renders `@patch` methods of export cells by itself; a patched base method counts as one"
    src = ('#| export\nclass Task:\n    "A task"\n    def __init__(self): pass\n\n'
           '@patch\ndef loss(self:Task, batch): return 0\n\n'
           'class Toy(Task):\n    "A toy task"\n    def loss(self, batch): return 1\n')
    nb = notebook(tmp_path/'nbs'/'23_p.ipynb', *clean_cells(), src)
    assert run_check(tmp_path, nb) == (0, '')


def test_slow_stage_fails_on_a_rotten_slow_cell(tmp_path):
    """CI's slow stage (tools/run_slow.py) runs `#| slow` cells, which the normal tests skip: a slow
    cell calling a helper that no longer exists fails it, unless the notebook is listed as debt"""
    (tmp_path/'settings.ini').write_text(SETTINGS + 'tst_flags = notest slow\n')
    notebook(tmp_path/'nbs'/'00_a.ipynb', '# Page A\n> summary', 'x = 1',
             '#| slow\n_Pix(x)  # a helper removed in an earlier change')
    notebook(tmp_path/'nbs'/'01_b.ipynb', '# Page B\n> summary', 'y = 2')
    run = lambda *a: subprocess.run([sys.executable, str(ROOT/'tools'/'run_slow.py'), *a],
                                    cwd=tmp_path, capture_output=True, text=True, timeout=300)
    normal = subprocess.run([str(Path(sys.executable).parent/'nbdev_test'), '--n_workers', '0'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert normal.returncode == 0, normal.stdout + normal.stderr   # the normal stage cannot see it
    r = run('--n_workers', '0', '--debt', str(tmp_path/'none.txt'))
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'running: 00_a.ipynb' in r.stdout and "NameError: name '_Pix'" in r.stdout + r.stderr
    (tmp_path/'debt.txt').write_text('00_a slow\n')
    r = run('--n_workers', '0', '--debt', str(tmp_path/'debt.txt'))
    assert r.returncode == 0 and 'skipped: 00_a.ipynb' in r.stdout, r.stdout + r.stderr
