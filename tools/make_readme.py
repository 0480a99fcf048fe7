"""Write README.md from nbs/index.ipynb without Quarto, and copy the figures it links to images/.

    python tools/make_readme.py            # write README.md and images/ at the repository root
    python tools/make_readme.py --check    # exit 1 if README.md or images/ are not in step
    python tools/make_readme.py --out F    # write the README text to F instead

The page links figures as `images/NAME` (relative to nbs/, where the docs site finds them). Quarto's
README (`nbdev_docs` rewrites README.md through `nbdev_readme`) keeps those links as they are, so
the figures are copied to `images/` at the root too: the links work in README.md whichever tool
wrote it. The README follows Quarto's rules for cells: `#| hide` and `#| include: false` cells are
left out, `#| echo: false` shows only the output, `text/markdown` outputs are inserted as markdown.
"""
import argparse
import filecmp
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = ('<!-- Generated from nbs/index.ipynb: edit the notebook, '
          'then run python tools/make_readme.py -->\n')
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+):?\s*(.*)$')
_FIGURE = re.compile(r'(?:\]\(|src=")(images/[^)"\s]+)')


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
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out.append(src)
        if c['cell_type'] != 'code': continue
        d, code = _split(src)
        if 'hide' in d or d.get('include') == 'false': continue
        if code and d.get('echo') != 'false': out.append(f'```python\n{code}\n```')
        if d.get('output') != 'false': out += _outputs(c.get('outputs', []))
    return HEADER + '\n\n'.join(out) + '\n'


def figures(text:str)->list:
    "The figures (paths relative to nbs/) that a page links"
    return sorted(set(_FIGURE.findall(text)))


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--check', action='store_true', help='only check README.md and images/')
    ap.add_argument('--out', help='write the README text here (figures are not copied)')
    a = ap.parse_args(argv)
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
