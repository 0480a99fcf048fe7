"""Run the slow cells (`#| slow`) of every notebook that has them: CI's slow stage.

    python tools/run_slow.py [--n_workers 2] [--debt tools/docs_debt.txt]

Runs `nbdev_test --flags slow` on the notebooks that hold a slow cell, except those listed
`<notebook> slow` in the debt list (its comment says why). Prints which run and which are skipped,
and nbdev_test's timing per notebook. Run it in the project folder (nbdev's settings.ini). Exits
with nbdev_test's code (1 when a slow cell fails).
"""
import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_docs import DEBT, has_slow_cells, name_of, read_debt  # noqa: E402


def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n_workers', type=int, default=2)
    ap.add_argument('--debt', default=str(DEBT), help='debt list (default: tools/docs_debt.txt)')
    a = ap.parse_args(argv)
    from nbdev.config import get_config
    nbs = Path(get_config().nbs_path)
    skip = {nm for nm, check in read_debt(Path(a.debt)) if check == 'slow'}
    have = [p for p in sorted(nbs.rglob('*.ipynb'))
            if not any(q.startswith(('.', '_')) for q in p.relative_to(nbs).parts)
            and has_slow_cells(p)]
    run = [p.name for p in have if name_of(p) not in skip]
    print(f"running: {' '.join(run) or 'none'}")
    print(f"skipped: {' '.join(p.name for p in have if name_of(p) in skip) or 'none'}", flush=True)
    if not run: return 0
    file_re = '^(' + '|'.join(re.escape(n) for n in run) + ')$'
    exe = shutil.which('nbdev_test', path=str(Path(sys.executable).parent)) or 'nbdev_test'
    cmd = [exe, '--n_workers', str(a.n_workers), '--flags', 'slow', '--timing',
           '--file_re', file_re]
    return subprocess.run(cmd).returncode


if __name__ == '__main__':
    sys.exit(main())
