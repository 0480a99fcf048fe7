"""Check what the rendered docs show: stored outputs, citations and import cells.

    python tools/check_docs.py [PATH ...]   # default: every notebook under nbs/ and README.md
    python tools/check_docs.py --list-slow  # the notebooks whose slow cells CI runs

Checks (the names used in `tools/docs_debt.txt`):

  path         a stored output holds an absolute path of a machine (/home, /work, /tmp, .venv, ...)
  warning      a stored output holds a Python warning (`SomeWarning:` or `warnings.warn` residue)
  progress     a stored output holds progress-bar residue (tqdm or Hugging Face bars)
  traceback    a stored output holds a traceback (or the cell stored an error)
  big-output   one stored output holds more than 20 KB of text
  citation     a source or markdown cell cites something outside the repository (see CITATIONS)
  import-cell  a code cell mixes imports with other statements (the docs build runs it alone)
  slow         (debt only) the notebook's slow cells are left out of the CI slow stage

`tools/docs_debt.txt` lists known findings, one `<notebook> <check>` per line (`#` starts a
comment), so that CI passes while owners fix them. A listed pair exempts every finding of that
check in that notebook. A line that matches nothing any more is *stale debt* and fails the check:
delete your line when you fix the notebook. Prints `notebook cell N [check] text` per finding and
exits 1 on findings or stale debt, 0 otherwise.
"""
import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEBT = ROOT/'tools'/'docs_debt.txt'
MAX_OUTPUT = 20_000  # characters of text in one output

# Stored outputs: machine paths, warnings, progress bars, tracebacks.
_ROOTS = r'home|work|tmp|Users|root|private|var/folders|mnt|opt/conda|usr/lib/python|usr/local/lib'
OUTPUT_PATTERNS = {
    'path': re.compile(rf'(?<![\w.~-])/(?:{_ROOTS})/'       # /home/..., /tmp/...
                       r'|(?<![\w])[A-Za-z]:\\\\?[\w.-]'      # C:\...
                       r'|site-packages|dist-packages|(?<![\w-])\.venv\b'
                       r'|(?<![\w:/.~])/(?:[A-Za-z_][\w.-]*/){3,}'),  # any /a/b/c/
    'warning': re.compile(r'\b[A-Z]\w*Warning: |warnings\.warn\(|^\s*warn\(', re.M),
    'progress': re.compile(r'\d+(?:\.\d+)?\s*(?:it/s|s/it|B/s)\]|\d+%\|'),
    'traceback': re.compile(r'Traceback \(most recent call last\)'),
}
_TEXT_MIMES = ('text/plain', 'text/html', 'text/markdown', 'text/latex', 'application/javascript')

# Sources (markdown and code): what a reader cannot see. Check text -> pattern. "seed" as a random
# seed stays allowed ("seed=0", "under the same seed", "the seed for numpy"); the sense of a design
# document the project started from does not.
CITATIONS = {
    '../shared': re.compile(r'\.\./shared\b'),
    '/work/': re.compile(r'(?<![\w.])/work/'),
    'the seed': re.compile(r"(?<!under )\b[Tt]he\s+seed\b"
                           r"(?!\s+(?:for|value|of\s+the\s+run)\b|\s*=)"),
    'seed §': re.compile(r'\bseed\s*(?:\(\s*)?§|\bseed\s+(?:design|document|project)s?\b'),
    'the issue': re.compile(r"\b[Tt]he\s+issue(?:'s)?\b"),
    'design document': re.compile(r'\bdesign\s+doc(?:ument)?s?\b', re.I),
    'these machines': re.compile(r'\bthese\s+machines\b|\bdevelopment\s+machines?\b'
                                 r'|\b(?:this|these|the\s+shared)\s+\d+-core\s+machines?', re.I),
    'the data README': re.compile(r'\bthe\s+data\s+README\b'),
}

CHECKS = ('path', 'warning', 'progress', 'traceback', 'big-output', 'citation', 'import-cell',
          'slow')


def _short(s:str, m:re.Match=None, width:int=100)->str:
    "The text around a match on one line"
    a, b = (max(0, m.start() - 40), m.end() + 40) if m else (0, width)
    return ' '.join(s[a:b].split())[:width]


_HTML_HIDDEN = re.compile(r'<(style|script|svg)\b.*?</\1>|<[^>]+>', re.S | re.I)


def _output_texts(o:dict)->list:
    """The texts of one stored output. HTML counts by what a reader sees: an xarray `Dataset`
    repr carries ~25 KB of style sheet and icons around a few hundred characters of text."""
    if o.get('output_type') == 'error':
        tb = '\n'.join(o.get('traceback', []))
        return [tb or 'Traceback (most recent call last) ' + o.get('ename', '')]
    txt = [''.join(o['text']) if isinstance(o.get('text'), list) else o.get('text', '')]
    for k, v in o.get('data', {}).items():
        if not (k in _TEXT_MIMES or k.startswith('text/')): continue
        v = ''.join(v) if isinstance(v, list) else str(v)
        txt.append(_HTML_HIDDEN.sub(' ', v) if k == 'text/html' else v)
    return [t for t in txt if t]


def check_outputs(texts)->list:
    "Findings `(check, text)` in the texts of one output (its mime types), at most one per check"
    out = {}
    for t in texts:
        if len(t) > MAX_OUTPUT:
            out.setdefault('big-output', f'{len(t)/1000:.0f} KB of text in one output')
        for name, pat in OUTPUT_PATTERNS.items():
            m = pat.search(t)
            if m: out.setdefault(name, _short(t, m))
    return list(out.items())


def check_source(src:str)->list:
    "Findings `(check, text)` of citations in a cell's source"
    return [('citation', f'{name!r}: {_short(src, m)}') for name, pat in CITATIONS.items()
            for m in [pat.search(src)] if m]


_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*([\w-]+:?)\s*(.*)$', re.M)
_EXPORTS = {'export', 'exports', 'exporti', 'exec_doc'}


def _directives(src:str)->dict:
    return {k.rstrip(':'): v.strip() for k, v in _DIRECTIVE.findall(src)}


def check_import_cell(src:str)->list:
    """`import-cell` when a cell the docs build runs alone (it holds an import and is not an
    export cell) also holds other statements, which may use names of earlier cells."""
    d = _directives(src)
    if d.keys() & _EXPORTS or d.get('eval', '').lower() == 'false': return []
    if 'nbdev_export()' in src: return []      # nbdev skips the export cell at the end
    code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
    try: tree = ast.parse(code)
    except SyntaxError: return []
    imports = (ast.Import, ast.ImportFrom)
    if not any(isinstance(n, imports) for n in ast.walk(tree)): return []
    other = [n for n in tree.body if not isinstance(n, imports)]
    if not other: return []
    line = code.splitlines()[other[0].lineno - 1]
    return [('import-cell', f'line {other[0].lineno}: ' + _short(line))]


def _is_code(c): return c['cell_type'] == 'code'


def check_notebook(path:Path)->list:
    "Findings `(cell, check, text)` in one notebook, one per cell and check"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    found = {}
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        hits = check_source(src)
        if _is_code(c):
            hits += check_import_cell(src)
            for o in c.get('outputs', []): hits += check_outputs(_output_texts(o))
        for k, t in hits: found.setdefault((i, k), []).append(t)
    return [(i, k, ts[0] + (f' (and {len(ts) - 1} more)' if len(ts) > 1 else ''))
            for (i, k), ts in found.items()]


def check_markdown(path:Path)->list:
    "Findings in a markdown file such as README.md: outputs outside fenced code, citations anywhere"
    text = Path(path).read_text(encoding='utf-8')
    prose = re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)
    return [(None, k, t) for k, t in check_source(text) + check_outputs([prose])]


def has_slow_cells(path:Path)->bool:
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    return any(_is_code(c) and 'slow' in _directives(''.join(c['source'])) for c in nb['cells'])


def name_of(path:Path)->str:
    "The name in a debt line: a notebook's stem (`22a_models.emberformer`), else the file name"
    path = Path(path)
    return path.stem if path.suffix == '.ipynb' else path.name


def read_debt(path:Path=DEBT)->set:
    "`{(name, check)}` from a debt file; unknown checks are errors"
    debt = set()
    if not Path(path).exists(): return debt
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.split('#', 1)[0].strip()
        if not line: continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in CHECKS:
            sys.exit(f'{path}:{n}: expected "<notebook> <check>", a check among {CHECKS}; '
                     f'got {line!r}')
        debt.add((parts[0].removesuffix('.ipynb'), parts[1]))
    return debt


def default_paths(root:Path=ROOT)->list:
    "Every docs notebook under nbs/ (not `_proc`, checkpoints or hidden folders), then README.md"
    nbs = sorted(p for p in (root/'nbs').rglob('*.ipynb')
                 if not any(q.startswith(('.', '_')) for q in p.relative_to(root/'nbs').parts))
    return nbs + [root/'README.md']


def run(paths=None, debt_file:Path=DEBT, out=print)->int:
    "Check `paths` against the debt list; print findings and stale debt; return the exit code"
    full = not paths
    paths = [Path(p) for p in (paths or default_paths())]
    debt = read_debt(debt_file)
    names = {name_of(p) for p in paths}
    seen, bad = set(), 0
    for p in paths:
        found = check_notebook(p) if p.suffix == '.ipynb' else check_markdown(p)
        for cell, check, text in found:
            seen.add((name_of(p), check))
            if (name_of(p), check) in debt: continue
            bad += 1
            out(f"{p.name}{'' if cell is None else f' cell {cell}'} [{check}] {text}")
        if (name_of(p), 'slow') in debt and has_slow_cells(p): seen.add((name_of(p), 'slow'))
    stale = sorted(d for d in debt if (full or d[0] in names) and d not in seen)
    for nm, check in stale:
        out(f"stale debt: '{nm} {check}' in {debt_file.name} matches nothing any more: "
            "delete the line")
    if bad:
        out(f"{bad} finding(s). Fix them at the source (DEVELOPING.md, 'Docs checks'), or, for a "
            f"known problem its owner is fixing, add '<notebook> <check>' to {debt_file.name}.")
    return 1 if bad or stale else 0


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('paths', nargs='*', help='notebooks or markdown files (default: nbs/, README)')
    ap.add_argument('--debt', default=str(DEBT), help='debt list (default: tools/docs_debt.txt)')
    ap.add_argument('--list-slow', action='store_true',
                    help="print the notebooks whose slow cells CI runs (not listed '<nb> slow')")
    a = ap.parse_args(argv)
    if a.list_slow:
        skip = {nm for nm, check in read_debt(Path(a.debt)) if check == 'slow'}
        paths = [Path(p) for p in a.paths] or default_paths()[:-1]
        print('\n'.join(p.name for p in paths if has_slow_cells(p) and name_of(p) not in skip))
        return 0
    return run(a.paths, Path(a.debt))


if __name__ == '__main__':
    sys.exit(main())
