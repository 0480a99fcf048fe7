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
  api-entry    a rendered `show_doc` entry has no real signature (`*args, **kwargs`), a
               docstring inherited from the library (`nn.Module`'s, an exception's) or markdown
               inside its signature block (nbdev turns a backticked name in a docment into a link,
               which shows as raw `[...](https://...)` text there: name it without backticks). It
               is read from `_proc/`, so run `python tools/proc_docs.py` first (pages whose
               `_proc/` copy is missing or older than the notebook are not checked for it)
  method-entry a public method of an exported class has no `show_doc(Class.method)` entry in its
               notebook (the rule, with its exemptions, is in METHOD_RULE below and DEVELOPING.md)
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

# Rendered `show_doc` entries (in `_proc/`): signatures and docstrings that are not the class's own.
INHERITED_DOCS = ('Base class for all neural network modules', 'Floating point operation failed',
                  'Common base class for all', 'Initialize self.', 'Inappropriate argument value')
_ENTRY = re.compile(r'^#{2,4} (\S+)\s*$', re.M)
_SIG_BLOCK = re.compile(r'^```python\n(.*?)^```', re.M | re.S)   # the signature of an entry
_REPR = re.compile(r'<[^<>\n]*>')                                   # <function f at 0x..>
_MD_LINK = re.compile(r'\[`?([^\]\n`]*)`?\]\([^)\s]*\)')           # [`name`](url)

# Public methods and their entries. nbdev renders an entry by itself for every function and class of
# an export cell and for every `@patch` method there, but not for a method written in a class body:
# that one needs `show_doc(Class.method)` in the notebook, with these exemptions. An override of a
# method that is documented elsewhere (nn.Module's hooks; a method of a geoformers base class, such
# as a Task's `data` or `loss`, whose own entry states the contract) needs no entry of its own as
# long as it carries no documentation of its own: once it has a docstring or docments, they must
# render, so it gets its entry. Properties are left to the class's docstring.
METHOD_RULE = 'DEVELOPING.md, "API entries"'
MODULE_HOOKS = {'forward', 'extra_repr', 'reset_parameters'}   # nn.Module's, documented by torch

CHECKS = ('path', 'warning', 'progress', 'traceback', 'big-output', 'citation', 'import-cell',
          'description', 'api-entry', 'method-entry', 'slow')
# A page's description is the `> ` line under its title; nbdev keeps its first line only.
_DESCRIPTION = re.compile(r'\A# [^\n]*\n>[^\n]*\n>')


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


def check_description(src:str)->list:
    "A finding when the description under a title goes on over several `> ` lines"
    if not _DESCRIPTION.match(src): return []
    return [('description', f'{_short(src)}: write the description on one line (nbdev keeps the '
                            'first line only)')]


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


def _src(c)->str: return ''.join(c['source']) if isinstance(c['source'], list) else c['source']


def _export_trees(cells:list):
    "`(index, tree, code)` of the export cells (`export`, `exports`) of a notebook's cells"
    for i, c in enumerate(cells):
        src = _src(c)
        if not _is_code(c) or not _directives(src).keys() & {'export', 'exports'}: continue
        code = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!')))
        try: yield i, ast.parse(code), code
        except SyntaxError: continue


def _patched_classes(f:ast.FunctionDef)->list:
    "The classes a `@patch` function is patched into (from its `self` annotation), else []"
    if not any(ast.unparse(d).split('(')[0] in ('patch', 'fastcore.basics.patch')
               for d in f.decorator_list): return []
    a = f.args.args[0].annotation if f.args.args else None
    return re.findall(r'\w+', ast.unparse(a)) if a is not None else []


_CLASS_INDEX = {}
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def class_index(nbs:Path)->dict:
    "`{class: (base names, method names)}` over the export cells of every notebook in `nbs`"
    nbs = Path(nbs).resolve()
    if nbs in _CLASS_INDEX: return _CLASS_INDEX[nbs]
    idx = {}
    for p in sorted(nbs.glob('*.ipynb')):
        try: cells = json.loads(p.read_text(encoding='utf-8'))['cells']
        except (OSError, ValueError, KeyError): continue
        for _, tree, _ in _export_trees(cells):
            for n in tree.body:
                if isinstance(n, ast.ClassDef):
                    bases, meths = idx.setdefault(n.name, (set(), set()))
                    bases |= {ast.unparse(b).split('.')[-1].split('[')[0] for b in n.bases}
                    meths |= {f.name for f in n.body if isinstance(f, _FUNCS)}
                elif isinstance(n, _FUNCS):
                    for cls in _patched_classes(n):
                        idx.setdefault(cls, (set(), set()))[1].add(n.name)
    _CLASS_INDEX[nbs] = idx
    return idx


def _inherits(idx:dict, cls:str, meth:str, seen=())->bool:
    "Whether a geoformers base class of `cls` defines `meth`"
    for b in idx.get(cls, ((), ()))[0]:
        if b in seen or b not in idx: continue
        if meth in idx[b][1] or _inherits(idx, b, meth, seen + (b,)): return True
    return False


def _documented(f:ast.FunctionDef, code:str)->bool:
    "A docstring, or a docment (a comment) in the signature"
    if ast.get_docstring(f): return True
    ends = [n.end_lineno for n in ast.walk(f.args) if hasattr(n, 'end_lineno')]
    if f.returns is not None: ends.append(f.returns.end_lineno)
    last = max(ends + [f.lineno])
    if f.body and f.body[0].lineno == f.lineno: return False         # `def f(x): return x  # ...`
    sig = code.splitlines()[f.lineno - 1:last]
    return any('#' in l.split('"')[0].split("'")[0] for l in sig)


def method_entries(cells:list, idx:dict)->list:
    "`(cell, [Class.method, ...])`: public methods of exported classes without a `show_doc` entry"
    shown = '\n'.join(_src(c) for c in cells if _is_code(c))
    out = []
    for i, tree, code in _export_trees(cells):
        missing = []
        for n in tree.body:
            if not isinstance(n, ast.ClassDef) or n.name.startswith('_'): continue
            for f in n.body:
                if not isinstance(f, _FUNCS) or f.name.startswith('_'): continue
                decos = [ast.unparse(d) for d in f.decorator_list]
                if any(d.endswith(('property', '.setter', '.getter', '.deleter')) for d in decos):
                    continue
                if re.search(rf'show_doc\(\s*{n.name}\.{f.name}\b', shown): continue
                override = f.name in MODULE_HOOKS or _inherits(idx, n.name, f.name)
                if override and not _documented(f, code): continue
                missing.append(f'{n.name}.{f.name}')
        if missing: out.append((i, missing))
    return out


def check_notebook(path:Path)->list:
    "Findings `(cell, check, text)` in one notebook, one per cell and check"
    nb = json.loads(Path(path).read_text(encoding='utf-8'))
    found = {}
    for i, missing in method_entries(nb['cells'], class_index(Path(path).parent)):
        found[(i, 'method-entry')] = [f"no entry for {', '.join(missing)}: add "
                                      f"show_doc({missing[0]}) under it ({METHOD_RULE})"]
    for i, c in enumerate(nb['cells']):
        src = _src(c)
        hits = check_source(src)
        if not _is_code(c): hits += check_description(src)
        if _is_code(c):
            hits += check_import_cell(src)
            for o in c.get('outputs', []): hits += check_outputs(_output_texts(o))
        for k, t in hits: found.setdefault((i, k), []).append(t)
    return [(i, k, ts[0] + (f' (and {len(ts) - 1} more)' if len(ts) > 1 else ''))
            for (i, k), ts in sorted(found.items())]


def check_entries(proc_path:Path)->list:
    "Findings `(None, 'api-entry', text)` in the rendered `show_doc` entries of a `_proc/` notebook"
    nb = json.loads(Path(proc_path).read_text(encoding='utf-8'))
    found = []
    for c in nb['cells']:
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown', '')
            md = ''.join(md) if isinstance(md, list) else md
            m = _ENTRY.search(md)
            if not m: continue
            name = m.group(1)
            exc = name.endswith(('Error', 'Exception', 'Warning'))   # exceptions take *args
            bad = ['signature (*args, **kwargs)'] if '*args, **kwargs' in md and not exc else []
            bad += [f'inherited docstring {d!r}' for d in INHERITED_DOCS if d in md]
            links = [l for sig in _SIG_BLOCK.findall(md) for l in _MD_LINK.findall(sig)]
            if links:
                bad.append(f"markdown inside the signature: {', '.join(dict.fromkeys(links))} "
                           '(a backticked name in a docment: write it without backticks)')
            reprs = [r for sig in _SIG_BLOCK.findall(md) for line in sig.splitlines()
                     for r in _REPR.findall(line.split(' # ')[0])]
            if reprs:
                bad.append(f"an object's repr inside the signature: {', '.join(reprs)} (e.g. a "
                           "fastcore Param annotation: document the argument with a docment)")
            f = (None, 'api-entry', f"entry {name}: {', '.join(bad)}")
            if bad and f not in found: found.append(f)
    return found


def _proc_of(path:Path)->Path:
    "The `_proc/` copy of a notebook when it is there and not older than the notebook, else None"
    path = Path(path).resolve()
    nbs = next((q for q in path.parents if q.name == 'nbs'), None)
    if nbs is None: return None
    proc = nbs.parent/'_proc'/path.relative_to(nbs)
    return proc if proc.exists() and proc.stat().st_mtime >= path.stat().st_mtime else None


def check_markdown(path:Path)->list:
    "Findings in a markdown file such as README.md: outputs outside fenced code, citations anywhere"
    text = Path(path).read_text(encoding='utf-8')
    prose = re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)
    found = check_source(text) + check_outputs([prose])
    return [(None, k, t) for k, t in found if k != 'big-output']   # a page is no output


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
    seen, bad, unchecked = set(), 0, set()
    for p in paths:
        found = check_notebook(p) if p.suffix == '.ipynb' else check_markdown(p)
        if p.suffix == '.ipynb':
            proc = _proc_of(p)
            if proc: found += check_entries(proc)
            else: unchecked.add(name_of(p))
        for cell, check, text in found:
            seen.add((name_of(p), check))
            if (name_of(p), check) in debt: continue
            bad += 1
            out(f"{p.name}{'' if cell is None else f' cell {cell}'} [{check}] {text}")
        if (name_of(p), 'slow') in debt and has_slow_cells(p): seen.add((name_of(p), 'slow'))
    stale = sorted(d for d in debt if (full or d[0] in names) and d not in seen
                   and not (d[1] == 'api-entry' and d[0] in unchecked))
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
