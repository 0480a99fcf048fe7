"Write README.md (or the path given by --out) from nbs/index.ipynb (nbdev_readme needs Quarto, which these machines cannot install)"
import json, re, sys
from pathlib import Path
root = Path(__file__).resolve().parent.parent
dest = Path(sys.argv[sys.argv.index('--out') + 1]) if '--out' in sys.argv else root/'README.md'
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
out = []
for c in nb['cells']:
    src = ''.join(c['source'])
    if c['cell_type'] == 'markdown':
        out.append(re.sub(r'\]\(images/', '](nbs/images/', src))
    else:
        out.append(f'```python\n{src}\n```')
        for o in c.get('outputs', []):
            txt = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', ''))
            if txt: out.append(f'    {txt}'.replace('\n', '\n    '))
dest.write_text('<!-- Generated from nbs/index.ipynb: edit the notebook, then run python tools/make_readme.py -->\n' + '\n\n'.join(out) + '\n')
