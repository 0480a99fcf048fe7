"""Render the docs pages to HTML without Quarto, to look at them and check that every page renders.

    python tools/proc_docs.py                             # first: nbdev's preprocessing into _proc/
    python tools/render_html.py [--out DIR] [NAME ...]    # default: every page, into _html/

Quarto is what `nbdev_docs` uses; where it cannot be installed, this renders each preprocessed
notebook with `jupyter nbconvert --to html` after a light imitation of what Quarto does with nbdev's
cell options: the front matter becomes the title and summary, `#| echo: false` hides a cell's
source, and option lines (`#| ...`) and Quarto's `{target=...}` link attributes are removed. Layout
and styling differ from the real site; content, outputs, plots and `show_doc` entries are the same.
Exits 1 if a page fails to render.
"""
import argparse
import re
import sys
from pathlib import Path

import nbformat
import yaml
from nbconvert import HTMLExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
_OPT = re.compile(r'^\s*#\s*\|.*$\n?', re.M)
_ATTR = re.compile(r'\{(?:target|style|\.)[^}\n]*\}')


def quartoish(nb):
    "The notebook as Quarto would show it, roughly"
    cells = []
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            fm = yaml.safe_load(c.source.strip().strip('-')) or {}
            head = f"# {fm.get('title', '')}\n\n*{fm.get('description', '')}*"
            c = nbformat.v4.new_markdown_cell(head)
        elif c.cell_type == 'code':
            echo_off = re.search(r'^\s*#\s*\|\s*echo:\s*false', c.source, re.M)
            c.source = _OPT.sub('', c.source)
            if echo_off: c.metadata.setdefault('tags', []).append('remove-input')
            for o in c.get('outputs', []):
                for k in ('text/markdown', 'text/html'):
                    if k in o.get('data', {}): o['data'][k] = _ATTR.sub('', o['data'][k])
        elif c.cell_type == 'markdown':
            c.source = _ATTR.sub('', c.source)
        cells.append(c)
    nb.cells = cells
    return nb


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('names', nargs='*', help='page names (index, 22_models.temporal); default all')
    ap.add_argument('--out', default=str(ROOT/'_html'), help='output folder (default _html/)')
    a = ap.parse_args(argv)
    proc, out = ROOT/'_proc', Path(a.out)
    if not proc.exists(): sys.exit('no _proc/: run python tools/proc_docs.py first')
    out.mkdir(parents=True, exist_ok=True)
    pages = sorted(proc.glob('*.ipynb')) if not a.names else [proc/f'{n}.ipynb' for n in a.names]
    cfg = Config({'TagRemovePreprocessor': {'enabled': True,
                                            'remove_input_tags': {'remove-input'}}})
    exporter, bad = HTMLExporter(template_name='lab', config=cfg), []
    for p in pages:
        try:
            body, _ = exporter.from_notebook_node(quartoish(nbformat.read(p, as_version=4)))
            (out/f'{p.stem}.html').write_text(body, encoding='utf-8')
        except Exception as e:
            bad.append(p.name)
            print(f'{p.name}: {type(e).__name__}: {e}')
    if (proc/'images').exists():
        (out/'images').mkdir(exist_ok=True)
        for f in (proc/'images').iterdir(): (out/'images'/f.name).write_bytes(f.read_bytes())
    print(f'{len(pages) - len(bad)} of {len(pages)} pages rendered into {out}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
