"""Softmax attention: ``softmax(q k^T / sqrt(d) + position bias) v`` per head, with the
transformer's learned relative-position bias. The core is one latency unit (``attn-softmax``);
the torch half is :mod:`nas.blocks.nn.softmax`."""

from __future__ import annotations

from nas.blocks.registry import AttentionKind, register_attention


@register_attention
class Softmax(AttentionKind):
    name = "softmax"
    position_bias = True
    core = "nas.blocks.nn.softmax:softmax_core"
    example = {
        "kind": "transformer",
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["softmax"],
        "head_dim": 4,
        "v_scales": [1, 2],
        "mlp_ratios": [2],
        "stride": 1,
    }

    def graph(self, b, layer, q: str, k: str, v: str) -> str:
        n, heads, d, dv = layer.hw * layer.hw, layer.heads, layer.head_dim, layer.v_dim
        scores = b.op(
            "attn.scores", "matmul", [q, k], (heads, n, d), (heads, n, n), macs=heads * n * n * d
        )
        if layer.uses_position_bias:
            scores = b.op(
                "attn.pos_bias",
                "add",
                [scores],
                (heads, n, n),
                (heads, n, n),
                params=layer.position_tables * (2 * layer.hw - 1) ** 2,
            )
        probs = b.op("attn.softmax", "softmax", [scores], (heads, n, n), (heads, n, n))
        return b.op(
            "attn.context",
            "matmul",
            [probs, v],
            (heads, n, n),
            (heads, n, dv),
            macs=heads * n * n * dv,
        )
