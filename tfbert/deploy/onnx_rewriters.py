"""tf2onnx graph rewrites that turn TensorFlow's spelling of BERT into the ops ONNX Runtime runs fast.

tf2onnx converts TensorFlow op by op. For a tf_keras BERT that gives a correct but slow ONNX graph
(`tfbert.deploy.onnx` measures both; see docs/benchmarks.md):

* **LayerNormalization**: tf_keras computes it with ``tf.nn.moments`` + ``tf.nn.batch_normalization``
  when epsilon is below the fused kernel's 1.001e-5 floor (BERT's is 1e-12). tf2onnx converts that
  op by op (two means, a squared difference, sqrt, reciprocal and five element-wise ops; on rank-3
  inputs its optimizer also wraps each mean in Transpose + GlobalAveragePool) where ONNX has one
  ``LayerNormalization`` kernel.
* **GELU**: TensorFlow 2.21's exact ``tf.nn.gelu`` is ``0.5 x erfc(-x/√2)``, and ONNX has no
  ``Erfc`` (tf2onnx, tested upstream on TF ≤ 2.15, has no handler for it: the graph does not even
  load). The rewrite writes ``0.5 x (1 + erf(x/√2))`` in exactly the form ``torch.onnx.export``
  emits, which ONNX Runtime's graph optimizer fuses into one ``Gelu`` (``BiasGelu`` with the dense
  bias). `erfc_handler` converts any other ``Erfc`` as ``1 - erf``.
* **Dense on a sequence**: Keras 2's ``Dense`` on a rank-3 input (transformers' TF encoder, a
  per-token head) is ``tf.tensordot``: Shape, Gather, Prod, Pack, Reshape to 2-D, MatMul, Reshape
  back. ONNX ``MatMul`` broadcasts over the leading axes, so one ``MatMul`` does the same, and ONNX
  Runtime can then fuse the bias into it.

Each rewrite checks the whole pattern (axes, constants, shapes) and leaves anything else to
tf2onnx's own conversion, so a graph that does not match is converted as before, only slower.
The functions follow tf2onnx's rewriter protocol: ``rewrite(g, ops) -> ops`` on the graph of
TensorFlow ops, before the op-by-op conversion.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def _source(g, name: str) -> str:
    """Tensor `name` with Identity and StopGradient looked through."""
    node = g.get_node_by_output(name)
    while node is not None and node.type in ("Identity", "StopGradient"):
        name = node.input[0]
        node = g.get_node_by_output(name)
    return name


def _producer(g, name: str):
    """The node that outputs tensor `name`, looking through Identity and StopGradient."""
    return g.get_node_by_output(_source(g, name))


def _op(g, name: str, *types: str):
    """The producer of tensor `name` (`_producer`) when it is one of `types`, else None: one pattern step."""
    node = _producer(g, name)
    return node if node is not None and node.type in types else None


def _const(g, name: str) -> Optional[np.ndarray]:
    """The value of tensor `name` when it is a constant, else None."""
    node = _producer(g, name)
    if node is None or not node.is_const():
        return None
    return np.asarray(node.get_tensor_value(as_list=False))


def _is_scalar(value: Optional[np.ndarray], expected: float, tolerance: float = 1e-6) -> bool:
    return value is not None and value.size == 1 and abs(float(value.reshape(())) - expected) <= tolerance


def _split(g, node, op_type: str) -> Optional[tuple[Any, str]]:
    """For a two-input `node`: (the input produced by an `op_type` node, the other input's name)."""
    for i in (0, 1):
        producer = _op(g, node.input[i], op_type)
        if producer is not None:
            return producer, _source(g, node.input[1 - i])
    return None


def _last_axis(g, axes_name: str, rank: Optional[int]) -> bool:
    axes = _const(g, axes_name)
    if axes is None or axes.size != 1 or rank is None:
        return False
    return int(axes.reshape(())) in (-1, rank - 1)


def _replace(g, old_output: str, new_output: str, like: str) -> None:
    """Point every consumer of `old_output` at `new_output` (which takes `like`'s shape and dtype)."""
    g.set_shape(new_output, g.get_shape(like))
    g.set_dtype(new_output, g.get_dtype(like))
    g.replace_all_inputs(old_output, new_output)


def rewrite_layer_norm(g, ops):
    """``tf.nn.moments`` + ``tf.nn.batch_normalization`` over the last axis -> ``LayerNormalization``.

    Matches ``out = x * m + (beta - mean * m)`` (or ``- mean * m`` when beta is zero) with
    ``m = rsqrt(var + eps) * gamma``,
    ``mean = Mean(x, -1)`` and ``var = Mean((x - mean)², -1)`` (tf_keras' unfused LayerNormalization).
    """
    if g.opset < 17:
        return ops
    for node in list(ops):
        if node.type not in ("AddV2", "Add"):
            continue
        sub = _split(g, node, "Sub") or _split(g, node, "Neg")
        if sub is None:
            continue
        sub_node, scaled = sub
        scaled_node = _op(g, scaled, "Mul")
        if scaled_node is None:
            continue
        # Grappler folds ``0 - y`` to ``Neg(y)`` when beta is all zeros (a fresh LayerNorm).
        beta = _const(g, sub_node.input[0]) if sub_node.type == "Sub" else np.zeros(0, np.float32)
        shifted = _op(g, sub_node.input[-1], "Mul")
        if beta is None or beta.ndim != 1 or shifted is None:
            continue
        # scaled = x * m, shifted = mean * m: m is the input they share.
        x_and_m = [_source(g, n) for n in scaled_node.input]
        mean_and_m = [_source(g, n) for n in shifted.input]
        shared = set(x_and_m) & set(mean_and_m)
        if len(shared) != 1:
            continue
        m = shared.pop()
        x = next(n for n in x_and_m if n != m)
        mean = next(n for n in mean_and_m if n != m)
        m_node, mean_node = _op(g, m, "Mul"), _op(g, mean, "Mean")
        if m_node is None or mean_node is None:
            continue
        rsqrt = _split(g, m_node, "Rsqrt")
        if rsqrt is None:
            continue
        rsqrt_node, gamma_name = rsqrt
        gamma = _const(g, gamma_name)
        add_eps = _op(g, rsqrt_node.input[0], "AddV2", "Add")
        if sub_node.type == "Neg" and gamma is not None:
            beta = np.zeros_like(gamma)
        if gamma is None or gamma.shape != beta.shape or add_eps is None:
            continue
        eps_split = _split(g, add_eps, "Mean")
        if eps_split is None:
            continue
        var_node, eps_name = eps_split
        eps = _const(g, eps_name)
        sq = _op(g, var_node.input[0], "SquaredDifference")
        rank = g.get_rank(x)
        if (eps is None or eps.size != 1 or sq is None
                or _source(g, mean_node.input[0]) != x
                or sorted(_source(g, n) for n in sq.input) != sorted([x, mean])
                or not _last_axis(g, mean_node.input[1], rank) or not _last_axis(g, var_node.input[1], rank)
                or gamma.shape[0] != (g.get_shape(x) or [None])[-1]):
            continue
        gamma_const = g.make_const(_unique("ln_gamma"), gamma.astype(np.float32))
        beta_const = g.make_const(_unique("ln_beta"), beta.astype(np.float32))
        norm = g.make_node("LayerNormalization", [x, gamma_const.output[0], beta_const.output[0]],
                           attr={"axis": -1, "epsilon": float(eps.reshape(()))}, op_name_scope=node.name)
        _replace(g, node.output[0], norm.output[0], like=node.output[0])
    return g.get_nodes()


def rewrite_gelu(g, ops):
    """TensorFlow's exact GELU ``(0.5 * x) * erfc((-x) * (1/√2))`` -> ``((x / √2).erf() + 1) * x * 0.5``."""
    for node in list(ops):
        if node.type != "Mul":
            continue
        erfc = _split(g, node, "Erfc")
        if erfc is None:
            continue
        erfc_node, half_x = erfc
        half_node, scaled = _op(g, half_x, "Mul"), _op(g, erfc_node.input[0], "Mul")
        if half_node is None or scaled is None:
            continue
        neg = _split(g, scaled, "Neg")
        if neg is None or not _is_scalar(_const(g, neg[1]), _SQRT_HALF):
            continue
        x = _source(g, neg[0].input[0])
        operands = [_source(g, n) for n in half_node.input]
        if x not in operands or not _is_scalar(_const(g, operands[1 - operands.index(x)]), 0.5):
            continue
        dtype = np.float32
        sqrt2 = g.make_const(_unique("gelu_sqrt2"), np.array(math.sqrt(2.0), dtype))
        one = g.make_const(_unique("gelu_one"), np.array(1.0, dtype))
        half = g.make_const(_unique("gelu_half"), np.array(0.5, dtype))
        scope = node.name
        div = g.make_node("Div", [x, sqrt2.output[0]], op_name_scope=scope)
        erf = g.make_node("Erf", [div.output[0]], op_name_scope=scope)
        add = g.make_node("Add", [erf.output[0], one.output[0]], op_name_scope=scope)
        mul = g.make_node("Mul", [x, add.output[0]], op_name_scope=scope)
        out = g.make_node("Mul", [mul.output[0], half.output[0]], op_name_scope=scope)
        for made in (div, erf, add, mul):
            g.set_shape(made.output[0], g.get_shape(x))
            g.set_dtype(made.output[0], g.get_dtype(x))
        _replace(g, node.output[0], out.output[0], like=node.output[0])
    return g.get_nodes()


def rewrite_tensordot(g, ops):
    """``tf.tensordot(x, W, [[last], [0]])`` (Keras 2 Dense on rank ≥ 3) -> ``MatMul(x, W)``.

    Matches ``Reshape(MatMul(Reshape(x, [prod(free), K]), W), concat(shape(x)[free], [N]))`` where the
    free axes are all but the last, so the contraction is over x's last axis and MatMul's broadcast
    over the leading axes computes the same thing.
    """
    for node in list(ops):
        if node.type != "Reshape":
            continue
        matmul = _op(g, node.input[0], "MatMul")
        if matmul is None or matmul.get_attr_value("transpose_a", 0) or matmul.get_attr_value("transpose_b", 0):
            continue
        weight = _const(g, matmul.input[1])
        flatten = _op(g, matmul.input[0], "Reshape")
        concat = _op(g, node.input[1], "ConcatV2")
        if weight is None or weight.ndim != 2 or flatten is None or concat is None:
            continue
        x = _source(g, flatten.input[0])
        shape = g.get_shape(x)
        if shape is None or len(shape) < 3 or shape[-1] != weight.shape[0]:
            continue
        gather = _op(g, concat.input[0], "GatherV2")
        tail = _const(g, concat.input[1])
        if gather is None or tail is None or tail.tolist() != [weight.shape[1]]:
            continue
        shape_op = _op(g, gather.input[0], "Shape")
        free = _const(g, gather.input[1])
        if (shape_op is None or _source(g, shape_op.input[0]) != x
                or free is None or free.tolist() != list(range(len(shape) - 1))):
            continue
        product = g.make_node("MatMul", [x, matmul.input[1]], op_name_scope=node.name)
        _replace(g, node.output[0], product.output[0], like=node.output[0])
    return g.get_nodes()


def erfc_handler(ctx, node, name, args):
    """tf2onnx handler (old-style ``custom_op_handlers`` API) for an ``Erfc`` no rewrite matched: ``1 - erf(x)``."""
    consumers = ctx.find_output_consumers(node.output[0])
    node.type = "Erf"
    one = ctx.make_const(_unique("erfc_one"), np.array(1.0, dtype=np.float32))
    sub = ctx.make_node("Sub", [one.output[0], node.output[0]], op_name_scope=node.name,
                        shapes=[ctx.get_shape(node.output[0])], dtypes=[ctx.get_dtype(node.output[0])])
    ctx.replace_all_inputs(node.output[0], sub.output[0], ops=consumers)


def _unique(prefix: str) -> str:
    """A node name tf2onnx has not used yet."""
    from tf2onnx import utils

    return utils.make_name(prefix)


#: in the order they run: GELU and LayerNorm first, so Tensordot sees their rewritten outputs' shapes
REWRITERS = (rewrite_gelu, rewrite_layer_norm, rewrite_tensordot)
