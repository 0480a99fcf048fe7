"""Write README.md from nbs/index.ipynb without Quarto, and copy the figures it links to images/.

    python tools/make_readme.py            # write README.md and images/ at the repository root
    python tools/make_readme.py --execute  # first re-execute nbs/index.ipynb (and nbdev_clean it)
    python tools/make_readme.py --check    # exit 1 if README.md or images/ are not in step
    python tools/make_readme.py --out F    # write the README text to F instead

`--execute` is the one command that re-renders the home page and the README after
`python bench/tasks_at_a_glance.py` wrote new figures (about a minute).

The page links figures as `images/NAME` (relative to nbs/, where the docs site finds them). Quarto's
README (`nbdev_docs` rewrites README.md through `nbdev_readme`) keeps those links as they are, so
the figures are copied to `images/` at the root too: the links work in README.md whichever tool
wrote it. Links to other pages (`91_design.wildfire.ipynb`, which Quarto turns into the page's
address) become links to the published docs site in README.md. The README follows Quarto's rules
for cells: `#| hide` and `#| include: false` cells are
left out, `#| echo: false` shows only the output, `text/markdown` outputs are inserted as markdown.
"""
import argparse
import configparser
import filecmp
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ('<!-- Generated from nbs/index.ipynb: edit the notebook, '
          'then run python tools/make_readme.py -->\n')
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+):?\s*(.*)$')
_FIGURE = re.compile(r'(?:\]\(|src=")(images/[^)"\s]+)')
_PAGE_LINK = re.compile(r'\]\((?:\./)?(\d+[a-z]?_)?([\w.-]+)\.ipynb(#[\w.-]*)?\)')


def doc_url(root:Path=ROOT)->str:
    "The address of the published docs (settings.ini: doc_host + doc_baseurl)"
    cfg = configparser.ConfigParser()
    cfg.read(Path(root)/'settings.ini')
    d = cfg['DEFAULT']
    return d.get('doc_host', '').rstrip('/') + '/' + d.get('doc_baseurl', '').strip('/')


def page_links(md:str, base:str)->str:
    "Links to notebooks (`](91_design.wildfire.ipynb)`) as links to their pages on the docs site"
    return _PAGE_LINK.sub(lambda m: f"]({base}/{m.group(2)}.html{m.group(3) or ''})", md)


def _split(src:str)->tuple:
    "Directives `{name: value}` and the remaining source of a code cell"
    d, keep = {}, []
    for line in src.splitlines():
        m = _DIRECTIVE.match(line)
        if m and not keep: d[m.group(1)] = m.group(2).strip().lower()
        else: keep.append(line)
    return d, '\n'.join(keep).strip()


def _outputs(outs:list)->list:
    "Markdown for a cell's outputs: markdown as is, text indented as code"
    res = []
    for o in outs:
        data = o.get('data', {})
        if 'text/markdown' in data: res.append(''.join(data['text/markdown']).strip())
        else:
            txt = ''.join(o.get('text', '') or data.get('text/plain', ''))
            if txt.strip(): res.append('    ' + txt.rstrip('\n').replace('\n', '\n    '))
    return res


def readme(nb_path:Path=ROOT/'nbs'/'index.ipynb')->str:
    "The text of README.md"
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    base = doc_url(Path(nb_path).resolve().parent.parent)
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out.append(src)
        if c['cell_type'] != 'code': continue
        d, code = _split(src)
        if 'hide' in d or d.get('include') == 'false': continue
        if code and d.get('echo') != 'false': out.append(f'```python\n{code}\n```')
        if d.get('output') != 'false': out += _outputs(c.get('outputs', []))
    return HEADER + page_links('\n\n'.join(out), base) + '\n'


def execute(nb:Path=ROOT/'nbs'/'index.ipynb')->int:
    "Re-execute the home page in place (in nbs/, as the docs do), then nbdev_clean it"
    r = subprocess.run([sys.executable, '-m', 'nbconvert', '--to', 'notebook', '--execute',
                        '--inplace', str(nb)], cwd=nb.parent)
    if r.returncode: return r.returncode
    clean = shutil.which('nbdev_clean', path=str(Path(sys.executable).parent)) or 'nbdev_clean'
    return subprocess.run([clean, '--fname', str(nb)], cwd=ROOT).returncode


def figures(text:str)->list:
    "The figures (paths relative to nbs/) that a page links"
    return sorted(set(_FIGURE.findall(text)))


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true', help='only check README.md and images/')
    ap.add_argument('--out', help='write the README text here (figures are not copied)')
    ap.add_argument('--execute', action='store_true',
                    help='re-execute nbs/index.ipynb first (after the bench wrote new figures)')
    a = ap.parse_args(argv)
    if a.execute and execute(): return 1
    text = readme()
    if a.out:
        Path(a.out).write_text(text, encoding='utf-8')
        return 0
    if a.check:
        bad = [] if (ROOT/'README.md').read_text(encoding='utf-8') == text else ['README.md']
        bad += [f for f in figures(text)
                if not (ROOT/f).exists() or not filecmp.cmp(ROOT/'nbs'/f, ROOT/f, shallow=False)]
        if bad:
            print(f"not in step with nbs/index.ipynb: {', '.join(bad)}. Run python "
                  "tools/make_readme.py (nbdev_docs rewrites README.md through Quarto; "
                  "this script's version is the one committed)")
            return 1
        print(f'README.md and {len(figures(text))} figure(s) in step with nbs/index.ipynb')
        return 0
    (ROOT/'README.md').write_text(text, encoding='utf-8')
    for f in figures(text):
        (ROOT/f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT/'nbs'/f, ROOT/f)
    print(f'wrote README.md and {len(figures(text))} figure(s) under images/')
    return 0


if __name__ == '__main__':
    sys.exit(main())
