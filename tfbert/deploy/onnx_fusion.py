"""``tools/export.py --format onnx --optimize``: tfbert's attention blocks as ONNX Runtime's fused ``Attention``.

The plain export (`tfbert.deploy.onnx`) holds standard ONNX ops only and runs on any ONNX runtime.
For ONNX Runtime, which is where most ONNX models are served on CPU, one more rewrite pays: each
self-attention block of tfbert's encoder (fused QKV MatMul + bias, Reshape, Transpose, Split, two
batched MatMuls, scale, mask, Softmax, Transpose back: a dozen nodes per layer) becomes one
``com.microsoft.Attention`` node, ONNX Runtime's contrib kernel that does the QKV projection and the
masked attention in one call. ``optimum``'s ``--optimize`` and ONNX Runtime's offline transformers
optimizer do the same for the graphs ``torch.onnx.export`` writes; neither recognises tf2onnx's
spelling of tfbert's block, hence this pass. The file then needs ONNX Runtime (the contrib ops are
in every CPU build since 1.x), which is why it is opt-in, as in optimum.

Why it matches exactly: tfbert's fused QKV kernel is ``[d, 3d]`` with the query, key and value
columns one after the other and the heads contiguous inside each (`tfbert.modeling.encoder`), which
is the weight layout ``Attention`` takes; the padding mask is the raw ``attention_mask`` (1 keep,
0 mask) with the same additive value (`MASKED`) for masked positions. Each block is matched on the
whole pattern (constant weights of the right shapes, the head split, the key transpose, a constant
scale, the mask that comes from the ``attention_mask`` input); anything else stays as it is, and
the export's check against the Keras model (padded batches included) guards the result.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

#: ONNX Runtime's contrib-op domain
MS_DOMAIN = "com.microsoft"


class _Graph:
    """Producer/consumer indexes over an ONNX GraphProto, for pattern matching."""

    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self._to_array = numpy_helper.to_array
        self.producer = {name: node for node in graph.node for name in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self._sources: dict[str, frozenset[str]] = {}

    def const(self, name: str) -> Optional[np.ndarray]:
        """The value of tensor `name` when it is an initializer or a Constant node's output, else None."""
        if name in self.initializers:
            return self._to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            from onnx import helper
            return self._to_array(helper.get_attribute_value(node.attribute[0]))
        return None

    def op(self, name: str, op_type: str):
        """The producer of tensor `name` when it is an `op_type` node, else None: one step up a pattern."""
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def only_consumer(self, name: str, op_type: str):
        """The single consumer of tensor `name` when it is an `op_type` node, else None: one step down."""
        nodes = self.consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None

    def sources(self, name: str) -> frozenset[str]:
        """The graph inputs and initializers tensor `name` is computed from (cached: every block shares one mask)."""
        if name not in self._sources:
            seen, stack = set(), [name]
            while stack:
                current = stack.pop()
                if current and current not in seen:
                    seen.add(current)
                    stack.extend(self.producer[current].input if current in self.producer else ())
            self._sources[name] = frozenset(n for n in seen if n not in self.producer)
        return self._sources[name]


def _attribute(node, name: str) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _match_block(g: _Graph, split, mask_input: str) -> Optional[dict[str, Any]]:
    """The pieces of one attention block whose head split is `split`, or None when it is not tfbert's block."""
    if len(split.output) != 3 or _attribute(split, "axis") != 1:
        return None
    transpose = g.op(split.input[0], "Transpose")
    if transpose is None or list(_attribute(transpose, "perm") or []) != [0, 2, 1, 3]:
        return None
    reshape = g.op(transpose.input[0], "Reshape")
    # tf2onnx folds away a bias that is all zeros (a fresh checkpoint's), leaving the MatMul alone.
    bias_add = reshape and g.op(reshape.input[0], "Add")
    matmul = g.op(bias_add.input[0], "MatMul") if bias_add else reshape and g.op(reshape.input[0], "MatMul")
    if matmul is None:
        return None
    weights = g.const(matmul.input[1])
    bias = g.const(bias_add.input[1]) if bias_add else None
    if weights is None or weights.ndim != 2 or weights.shape[1] != 3 * weights.shape[0] \
            or (bias_add and (bias is None or bias.shape != (weights.shape[1],))):
        return None
    hidden = weights.shape[0]
    # Q, K^T, scale, mask, softmax, ·V, heads back: each step the only user of the step before.
    key_t = g.only_consumer(split.output[1], "Transpose")
    scores = g.only_consumer(split.output[0], "MatMul")
    if key_t is None or scores is None or list(_attribute(key_t, "perm") or []) != [0, 1, 3, 2] \
            or list(scores.input) != [split.output[0], key_t.output[0]]:
        return None
    scaled = g.only_consumer(scores.output[0], "Mul")
    scale = scaled and g.const(scaled.input[1])
    masked = scaled and g.only_consumer(scaled.output[0], "Add")
    if scale is None or scale.size != 1 or masked is None or masked.input[0] != scaled.output[0]:
        return None
    # The additive mask must come from the attention_mask input alone (a padding mask, not packing).
    mask_sources = g.sources(masked.input[1])
    if mask_input not in mask_sources or any(name != mask_input and g.const(name) is None for name in mask_sources):
        return None
    softmax = g.only_consumer(masked.output[0], "Softmax")
    context = softmax and g.only_consumer(softmax.output[0], "MatMul")
    if context is None or list(context.input) != [softmax.output[0], split.output[2]] \
            or _attribute(softmax, "axis") not in (None, -1, 3):
        return None
    merge = g.only_consumer(context.output[0], "Transpose")
    if merge is None or list(_attribute(merge, "perm") or []) != [0, 2, 1, 3]:
        return None
    out = g.only_consumer(merge.output[0], "Reshape")
    head_size = int(round(1.0 / float(scale.reshape(())) ** 2))
    if out is None or head_size <= 0 or hidden % head_size:
        return None
    return {"input": matmul.input[0], "weights": matmul.input[1], "bias": bias_add.input[1] if bias_add else None,
            "hidden": hidden, "heads": hidden // head_size, "scale": float(scale.reshape(())), "output": out}


def fuse_attention(model, mask_input: str = "attention_mask", masked_value: Optional[float] = None) -> int:
    """Replace every tfbert self-attention block of ONNX `model` (a ModelProto, changed in place) by
    ``com.microsoft.Attention``; return how many were replaced.

    Args:
        model: the exported ModelProto (flattened ``[tokens, d]`` activations, as tfbert's encoder has).
        mask_input: the graph input holding the padding mask (1 keep, 0 mask).
        masked_value: what the encoder adds to masked scores (default: the encoder's own,
            `tfbert.modeling.encoder.layers.MASKED`).
    """
    from onnx import TensorProto, helper, numpy_helper

    if masked_value is None:
        from tfbert.modeling.encoder.layers import MASKED as masked_value

    graph = model.graph
    if mask_input not in {value.name for value in graph.input}:
        return 0
    g = _Graph(graph)
    blocks = [b for b in (_match_block(g, node, mask_input) for node in graph.node if node.op_type == "Split") if b]
    if not blocks:
        return 0
    prefix = "tfbert_fused_attention"
    # From the mask input alone, so first in the graph: the int32 mask and [batch, sequence, d] (Attention
    # takes rank-3 input where tfbert's encoder has [tokens, d]).
    for node in reversed([
        helper.make_node("Cast", [mask_input], [f"{prefix}/mask_index"], to=TensorProto.INT32),
        helper.make_node("Shape", [mask_input], [f"{prefix}/batch_sequence"]),
        helper.make_node("Concat", [f"{prefix}/batch_sequence", f"{prefix}/hidden"], [f"{prefix}/bsd"], axis=0),
    ]):
        graph.node.insert(0, node)
    graph.initializer.append(numpy_helper.from_array(np.array([blocks[0]["hidden"]], np.int64), f"{prefix}/hidden"))
    for i, block in enumerate(blocks):
        name = f"{prefix}/layer_{i}"
        if block["bias"] is None:
            block["bias"] = f"{name}/zero_bias"
            graph.initializer.append(numpy_helper.from_array(np.zeros(3 * block["hidden"], np.float32), block["bias"]))
        # Just before the block's final Reshape ([batch, sequence, d] -> [tokens, d]), which now reads the
        # fused context: the graph stays in topological order, and the replaced nodes lose their users.
        at = list(graph.node).index(block["output"])
        graph.node.insert(at, helper.make_node(
            "Attention", [f"{name}/input", block["weights"], block["bias"], f"{prefix}/mask_index"],
            [f"{name}/context"], name=f"{name}/Attention", domain=MS_DOMAIN,
            num_heads=block["heads"], scale=block["scale"], mask_filter_value=masked_value))
        graph.node.insert(at, helper.make_node("Reshape", [block["input"], f"{prefix}/bsd"], [f"{name}/input"],
                                               name=f"{name}/Reshape"))
        block["output"].input[0] = f"{name}/context"
    _remove_unused(graph)
    if not any(opset.domain == MS_DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return len(blocks)


def _remove_unused(graph) -> None:
    """Drop the nodes and initializers no graph output needs (one backward sweep: nodes are in topological order)."""
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    initializers = [t for t in graph.initializer if t.name in needed]
    del graph.node[:]
    graph.node.extend(reversed(kept))
    del graph.initializer[:]
    graph.initializer.extend(initializers)
