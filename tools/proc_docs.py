"""Run the docs build's preprocessing; report a failure in a few lines: notebook, cell, error.

    python tools/proc_docs.py

It calls `nbdev.serve.proc_nbs(n_workers=0, force=True)`, the step `nbdev_docs` runs before Quarto
(it writes `_proc/`). That step runs every cell holding an import on its own, with the exported
cells, to render `show_doc` entries, so a cell that imports and then uses a name from an earlier
cell fails there. nbdev's own warning for such cells is counted, not repeated:
`tools/check_docs.py` names them (check `import-cell`). Exits 1 on failure.
"""
import contextlib
import io
import json
import re
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sidebar import notebooks, title_of  # noqa: E402


def _where(nbs:Path, title:str, source:str)->str:
    "The notebook (by its title) and the cell (by its source) that failed"
    hits = []
    for name in notebooks(nbs):
        p = nbs/name
        try:
            if title and title_of(p) != title: continue
        except ValueError: continue
        cells = json.loads(p.read_text(encoding='utf-8'))['cells']
        idx = [i for i, c in enumerate(cells) if ''.join(c['source']).strip() == source.strip()]
        if idx or title: hits.append(f"{nbs.name}/{name} cell {idx[0] if idx else '?'}")
    return ', '.join(hits) or f'a notebook titled {title!r}'


def main()->int:
    from nbdev.config import get_config
    from nbdev.serve import proc_nbs
    nbs = get_config().nbs_path   # the project of the working directory, as for proc_nbs
    log = io.StringIO()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                proc_nbs(n_workers=0, force=True)
        except Exception as e:
            m = re.match(r'Error(?: in notebook: (.*?))? in cell \d+ :\n(.*)', str(e), re.S)
            title, src = (m.group(1) or '', m.group(2)) if m else ('', '')
            cause = e.__cause__
            print(f'docs preprocessing FAILED in {_where(nbs, title, src) if m else "?"}')
            if src: print('  cell source:\n' + '\n'.join('    ' + l for l in src.splitlines()))
            print(f'  error: {type(cause).__name__}: {cause}' if cause else f'  error: {e}')
            print('  (the preprocessing runs a cell holding an import on its own: '
                  'put imports in cells of their own)')
            return 1
    mixed = [w for w in ws if 'containing imports and other code' in str(w.message)]
    other = [w for w in ws if w not in mixed]
    n = len(notebooks(nbs))
    print(f'docs preprocessing passed: {n} notebooks into _proc/; {len(mixed)} cell(s) mixing '
          'imports with other code (see tools/check_docs.py, import-cell)')
    for w in other[:10]:
        print(f'  warning: {w.category.__name__}: {str(w.message).splitlines()[0][:150]}')
    extra = [l for l in log.getvalue().splitlines() if l.strip() and l.strip() != '---']
    if extra and not mixed: print('  output:\n' + '\n'.join('    ' + l[:150] for l in extra[:20]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
