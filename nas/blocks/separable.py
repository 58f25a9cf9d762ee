"""Separable self-attention (MobileViTv2): one score per token, a softmax over the tokens, a
context vector (the score-weighted sum of the keys) and ReLU values scaled by it element-wise;
linear in the number of tokens, with no token-by-token matrix. Each head's score is its one query
channel (MobileViTv2's one-channel projection: the query projection has one output per head);
with ``v_scale`` above 1 the context is repeated across the value channels. The core is one latency
unit (``attn-separable``); the torch half is :mod:`nas.blocks.nn.separable`."""

from __future__ import annotations

from nas.blocks.registry import AttentionKind, register_attention


@register_attention
class Separable(AttentionKind):
    name = "separable"
    score_dim = 1
    core = "nas.blocks.nn.separable:separable_core"
    example = {
        "kind": "transformer",
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["separable", "softmax"],
        "per_layer": ["attention"],
        "head_dim": 4,
        "v_scales": [1, 2],
        "mlp_ratios": [2],
        "stride": 2,
    }

    def graph(self, b, layer, q: str, k: str, v: str) -> str:
        n, heads, d, dv = layer.hw * layer.hw, layer.heads, layer.head_dim, layer.v_dim
        probs = b.op("attn.softmax", "softmax", [q], (heads, n, 1), (heads, n, 1))
        context = b.op(
            "attn.context", "matmul", [probs, k], (heads, n, d), (heads, 1, d), macs=heads * n * d
        )
        values = b.op("attn.v_relu", "relu", [v], (heads, n, dv), (heads, n, dv))
        return b.op("attn.scale", "mul", [values, context], (heads, n, dv), (heads, n, dv))
