"""Write nbs/sidebar.yml: the docs sidebar in sections by notebook number, with notebook titles.

    python tools/make_sidebar.py            # write nbs/sidebar.yml
    python tools/make_sidebar.py --check    # exit 1 if nbs/sidebar.yml is not what it would write

The section of a notebook comes from its number (`SECTIONS`); its title is the first `# ` heading
of its first markdown cell (or a `title:` in its front matter). settings.ini has
`custom_sidebar = True`, so nbdev_docs keeps this file instead of writing a flat list of its own.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
OUT = NBS/'sidebar.yml'

# Number of the notebook -> section. 33-39 are task notebooks until they are renumbered 4x.
SECTIONS = [(range(0, 10), 'Core'), (range(10, 20), 'Data'), (range(20, 30), 'Models'),
            (range(30, 33), 'Training'), (range(33, 50), 'Tasks'), (range(50, 60), 'Metrics'),
            (range(60, 70), 'Baselines'), (range(90, 100), 'Designs')]
_NUM = re.compile(r'^(\d+)')


def section_of(name:str)->str:
    "The sidebar section of notebook `name` (e.g. `'22a_models.emberformer.ipynb'` -> `'Models'`)"
    m = _NUM.match(name)
    if not m: raise ValueError(f'{name}: a docs notebook needs a number (NN_name.ipynb)')
    n = int(m.group(1))
    for r, s in SECTIONS:
        if n in r: return s
    raise ValueError(f'{name}: no section for number {n}; add one to tools/make_sidebar.py')


def title_of(path:Path)->str:
    "The page title: front matter `title:`, else the first markdown heading"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            m = re.search(r'^title:\s*["\']?(.*?)["\']?\s*$', src, re.M)
            if m: return m.group(1)
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+?)\s*$', src, re.M)
            if m: return m.group(1)
    raise ValueError(f'{path.name}: no title (a first markdown cell starting with "# Title")')


def notebooks(nbs:Path=NBS)->list:
    "Docs notebooks in sidebar order, the home page first"
    return sorted(p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb')
                  if not any(q.startswith(('.', '_')) for q in p.relative_to(nbs).parts))


def sidebar(nbs:Path=NBS)->str:
    "The text of sidebar.yml"
    names = notebooks(nbs)
    lines = ['# Written by tools/make_sidebar.py from notebook numbers and titles: do not edit.',
             'website:', '  sidebar:', '    contents:']
    if 'index.ipynb' in names: lines.append('      - index.ipynb')
    current = None
    for name in names:
        if name == 'index.ipynb': continue
        sec = section_of(Path(name).name)
        if sec != current:
            lines += [f'      - section: {json.dumps(sec)}', '        contents:']
            current = sec
        text = title_of(nbs/name).replace('`', '')          # the sidebar shows backticks literally
        lines += [f'          - text: {json.dumps(text, ensure_ascii=False)}',
                  f'            href: {name}']
    return '\n'.join(lines) + '\n'


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true', help='only check nbs/sidebar.yml is in step')
    a = ap.parse_args()
    want = sidebar()
    if a.check:
        if OUT.read_text(encoding='utf-8') != want:
            sys.exit('nbs/sidebar.yml is not in step with the notebooks: '
                     'run python tools/make_sidebar.py')
        print(f'nbs/sidebar.yml in step ({want.count("href:")} pages)')
    else:
        OUT.write_text(want, encoding='utf-8')
        print(f'wrote {OUT.relative_to(ROOT)} ({want.count("href:")} pages)')
