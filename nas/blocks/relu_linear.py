"""ReLU linear attention: ``relu(q) (relu(k)^T v) / (relu(q) sum(relu(k)))`` per head, linear in
the number of tokens. The core is one latency unit (``attn-relu_linear``); the torch half is
:mod:`nas.blocks.nn.relu_linear`."""

from __future__ import annotations

from nas.blocks.registry import AttentionKind, register_attention


@register_attention
class ReluLinear(AttentionKind):
    name = "relu_linear"
    core = "nas.blocks.nn.relu_linear:relu_linear_core"
    example = {
        "kind": "transformer",
        "depths": [1, 2],
        "widths": [8, 16],
        "attentions": ["relu_linear"],
        "heads": [1, 2],
        "head_dim": 4,
        "v_scales": [1, 2],
        "mlp_ratios": [2, 3],
        "per_layer": ["mlp_ratio"],
        "stride": 2,
    }

    def graph(self, b, layer, q: str, k: str, v: str) -> str:
        n, heads, d, dv = layer.hw * layer.hw, layer.heads, layer.head_dim, layer.v_dim
        q = b.op("attn.q_relu", "relu", [q], (heads, n, d), (heads, n, d))
        k = b.op("attn.k_relu", "relu", [k], (heads, n, d), (heads, n, d))
        kv = b.op(
            "attn.kv", "matmul", [k, v], (heads, n, d), (heads, d, dv), macs=heads * d * n * dv
        )
        num = b.op(
            "attn.numerator",
            "matmul",
            [q, kv],
            (heads, n, d),
            (heads, n, dv),
            macs=heads * n * d * dv,
        )
        ksum = b.op("attn.k_sum", "reduce_sum", [k], (heads, n, d), (heads, 1, d))
        den = b.op(
            "attn.denominator",
            "matmul",
            [q, ksum],
            (heads, n, d),
            (heads, n, 1),
            macs=heads * n * d,
        )
        return b.op("attn.normalize", "div", [num, den], (heads, n, dv), (heads, n, dv))
