"""Checkpoints written before the shared layers (`geoformers.layers`) load into today's
models and give the same outputs. `fixtures/old_checkpoints.pt` holds tiny seeded models, inputs
and outputs saved by the older code with `fixtures/make_old_checkpoints.py`."""
from pathlib import Path

import torch

from geoformers.layers import unpatchify
from geoformers.models.bandset import BandsetEncoder, BandsetPredictor
from geoformers.models.hrm import HRMForCausalLM
from geoformers.models.latentmim import LatentMIM
from geoformers.models.prefixer import TokenPool
from geoformers.models.swin_mae import SatSwinMAE

OLD = torch.load(Path(__file__).parent/'fixtures'/'old_checkpoints.pt', weights_only=True)


def close(a, b, eps=1e-5): return (a - b).abs().max().item() < eps


def test_old_keys_are_the_old_layout():
    "The fixture really is the older layout: fused or separate projections, no `to_q`"
    swin = OLD['swin_mae']['state']
    assert 'blocks.0.attn.to_qkv.weight' in swin and 'to_pixels.weight' in swin
    assert 'H.layers.0.attn.q_proj.weight' in OLD['hrm']['state']
    assert 'attn.in_proj_weight' in OLD['token_pool']['state']
    assert 'blocks.0.to_qkv.weight' in OLD['latentmim']['enc_state']
    keys = [k for d in OLD.values() for s in ('state', 'enc_state') for k in d.get(s, {})]
    assert not any('to_q.' in k for k in keys)


def test_swin_mae():
    "Fused `to_qkv` and the `(pt ph pw c)` head `to_pixels`: same latents, loss and reconstruction"
    d = OLD['swin_mae']
    m = SatSwinMAE(**d['kwargs']).eval()
    m.load_state_dict(d['state'])
    with torch.no_grad():
        out = m(d['x'], d['mask'])
        assert close(m.encode_tokens(d['x']), d['tokens'])
        assert close(out['loss'], d['loss'])
        assert close(unpatchify(out['pred'], m.patch, m.grid(d['x'])), d['image'])


def test_hrm():
    "Llama-style `q_proj`/`k_proj`/`v_proj`/`o_proj`: same logits and halting steps, with padding"
    d = OLD['hrm']
    m = HRMForCausalLM(**d['kwargs']).eval()
    m.load_state_dict(d['state'])
    with torch.no_grad():
        out = m(d['ids'], attention_mask=d['attention_mask'])
    assert close(out.logits, d['logits'], 1e-6)
    assert torch.equal(out.steps, d['steps'])


def test_hrm_init_unchanged():
    "Fresh HRM weights under a seed are the same as before (the projections draw the same numbers)"
    d = OLD['hrm']
    torch.manual_seed(0)
    sd = HRMForCausalLM(**d['kwargs']).state_dict()
    old = d['state']
    assert torch.equal(sd['H.layers.0.attn.to_q.weight'], old['H.layers.0.attn.q_proj.weight'])
    kv = torch.cat([old['L.layers.0.attn.k_proj.weight'], old['L.layers.0.attn.v_proj.weight']])
    assert torch.equal(sd['L.layers.0.attn.to_kv.weight'], kv)


def test_token_pool():
    "`nn.MultiheadAttention` pooling (`in_proj_*`, `out_proj`): same prompts"
    d = OLD['token_pool']
    m = TokenPool(**d['kwargs']).eval()
    m.load_state_dict(d['state'])
    with torch.no_grad():
        assert close(m(d['z']), d['out'])


def test_bandset_latentmim():
    "The bandset blocks' own attention (`blocks.i.to_qkv`): encoder, predictor and target agree"
    d = OLD['latentmim']
    enc = BandsetEncoder(**d['kwargs'])
    pred = BandsetPredictor(enc, **d['pred_kwargs'])
    enc.load_state_dict(d['enc_state'])
    pred.load_state_dict(d['pred_state'])
    lm = LatentMIM(enc, pred).eval()
    with torch.no_grad():
        e = lm.encoder(d['batch'], d['masks'])
        p = lm.predictor(e, d['batch']['months'])
        assert close(e['pooled'], d['pooled'])
        assert all(close(e['tokens'][m], d['enc_tokens'][m]) for m in e['tokens'])
        assert all(close(p[m], d['pred'][m]) for m in p)
        assert close(lm.target_encoder(d['batch'])['pooled'], d['target_pooled'])


def test_latentmim_state_dict_with_old_keys():
    "A whole LatentMIM checkpoint (online, target, predictor) with the old keys loads strictly"
    d = OLD['latentmim']
    parts = (('encoder', d['enc_state']), ('target_encoder', d['enc_state']),
             ('predictor', d['pred_state']))
    old = {f'{p}.{k}': v for p, sd in parts for k, v in sd.items()}
    enc = BandsetEncoder(**d['kwargs'])
    lm = LatentMIM(enc, BandsetPredictor(enc, **d['pred_kwargs']))
    lm.load_state_dict(old)
    with torch.no_grad():
        assert close(lm.eval().embed(d['batch']), d['target_pooled'])
