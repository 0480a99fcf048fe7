"""Draws blocks.png, the figure of geoformers' blocks and data flow (index.ipynb, README.md).

Run `python nbs/images/blocks.py`, then `python tools/make_readme.py` (it copies the figure)."""
from pathlib import Path

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

rows = [  # (data, blocks..., task); each row is one data flow, left to right
    ('ERA5 / NetCDF, Zarr\n+ caption CSV',
     ['WindowDataset\n[C,T,H,W]', '3D Swin MAE\n(75% masked)', 'pool → M tokens\n+ Prefixer MLP',
      'causal LM\n(Llama / HRM)'], 'weather-mae\nweather-text'),
    ('fire histories\n+ terrain + wind',
     ['DINOv2 encoder\npatch tokens', 'Fusion\nconcat | x-attn', 'Temporal\ntransformer',
      'UNet decoder\n→ pixels'], 'wildfire'),
    ('Sentinel-2 / Landsat\nbandsets',
     ['per-bandset\npatch tokens', 'BandsetMerge\nn → 1 token', 'ViT encoder\n+ predictor',
      'LatentMIM\n(EMA target)'], 'bandset'),
    ('IceCube pulses\n(Parquet, SQLite)',
     ['DOM packing\nrows of 512', 'T1: FlexAttention\nper DOM', 'Event\nAccumulator',
      'T2 event\ntransformer'], 'icecube'),
]
colors = ['#4c72b0', '#dd8452', '#55a868', '#8172b3']
fig, ax = plt.subplots(figsize=(11, 4.6))
ax.set_xlim(0, 11)
ax.set_ylim(-0.6, len(rows))
ax.axis('off')


def box(x, y, text, fc, w=1.55, h=0.7, tc='white'):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle='round,pad=0.03', fc=fc, ec='none'))
    ax.text(x + w/2, y + h/2, text, ha='center', va='center', fontsize=7.5, color=tc)


for i, (src, blocks, task) in enumerate(rows):
    y = len(rows) - 1 - i
    box(0.05, y, src, '#eeeeee', tc='black')
    for j, b in enumerate(blocks): box(1.85 + 1.8*j, y, b, colors[i])
    box(9.2, y, task, 'white', tc=colors[i])
    for j in range(5):
        ax.annotate('', (1.85 + 1.8*j, y + 0.35), (1.62 + 1.8*j, y + 0.35),
                    arrowprops=dict(arrowstyle='->', color='gray'))
ax.text(5.5, -0.45, 'shared: core layers · testing fixtures · one training loop '
        '(AMP, checkpoints, resume, DDP) · geoformers_train',
        ha='center', fontsize=8, color='dimgray')
fig.savefig(Path(__file__).parent/'blocks.png', dpi=90, bbox_inches='tight')
