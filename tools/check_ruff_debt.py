"""Fail on stale lines of ruff.toml's debt list (`per-file-ignores`), so the list only shrinks.

    python tools/check_ruff_debt.py

A line is stale when its file no longer exists or no longer breaks a code it exempts. Runs ruff
once without the debt list (`--isolated`, the same rules and line length) and compares. Lines with
a glob (`geoformers/**`) are policy and are left alone.
"""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stale_lines(root:Path=ROOT)->list:
    "`(file, code)` pairs of the debt list that ruff no longer reports"
    cfg = tomllib.loads((root/'ruff.toml').read_text())
    debt = {f: c for f, c in cfg['lint'].get('per-file-ignores', {}).items()
            if not set(f) & set('*?[')}           # globs are policy, not debt
    if not debt: return []
    files = [f for f in debt if (root/f).exists()]
    found = set()
    if files:
        cmd = ['ruff', 'check', '--isolated', '--exit-zero', '--output-format', 'json',
               '--line-length', str(cfg.get('line-length', 88)),
               '--select', ','.join(cfg['lint']['select']), *files]
        res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True)
        found = {(os.path.relpath(r['filename'], root), r['code']) for r in json.loads(res.stdout)}
    return [(f, c) for f, codes in debt.items() for c in codes
            if not any(ff == f and fc.startswith(c) for ff, fc in found)]


if __name__ == '__main__':
    stale = stale_lines()
    for f, c in stale:
        print(f'stale ruff debt: {f} no longer breaks {c}: remove {c} from its line in ruff.toml')
    if not stale: print('ruff debt list: every line still needed')
    sys.exit(1 if stale else 0)
