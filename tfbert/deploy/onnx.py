"""``tools/export.py --format onnx``: the fine-tuned model as ONNX, converted from TensorFlow without torch.

``DIR/model.onnx`` takes ``input_ids``, ``token_type_ids`` (when the model has them) and
``attention_mask`` as int64 ``[batch, sequence]`` (the Hugging Face tokenizers' and
``torch.onnx.export``'s convention, so existing ONNX Runtime code feeds it unchanged) and returns
float32 ``logits`` (``[batch, labels]``, or ``[batch, sequence, labels]`` for NER) or, for QA,
``start_logits`` and ``end_logits`` ``[batch, sequence]``; batch and sequence are dynamic.

Why tf2onnx, and these versions. The ONNX graph comes from the Keras model's own call (a
``tf.function``, `tfbert.deploy.artefact.token_id_function`), so the encoder inside does not
matter and torch is never imported. tf2onnx 1.17.0 is tested upstream on TensorFlow ≤ 2.15
only; with TF 2.21 it converts everything but TF's newer ``Erfc`` GELU, and it leaves
LayerNormalization and Keras' tensordot Dense as dozens of small ops. The rewrites in
`tfbert.deploy.onnx_rewriters` fix both: without them the graph does not load, and with only an
``Erfc`` handler the fine-tuned MiniLM's graph has 360 nodes against 211 with them. Opset 17 is
the first with ``LayerNormalization`` (tf2onnx 1.17 goes up to 18). The pins (tf2onnx 1.17.0, onnx 1.23.2, onnxruntime
1.31.1, in ``requirements-export.txt``) install beside TF 2.21, protobuf 7 and numpy 2 without
changing any of them: tf2onnx bounds them from below only.

By default the file holds standard ONNX ops only and runs on any ONNX runtime; ONNX Runtime fuses
GELU with its bias when it loads the model (its default graph optimizations). ONNX Runtime's
offline transformers optimizer (``model_type="bert"``) finds nothing more to fuse in this graph
(none of its Attention patterns is tfbert's fused-QKV block); ``optimize=True``
(``--optimize``) does that fusion itself (`tfbert.deploy.onnx_fusion`), for ONNX Runtime only.
Every export is checked against the TensorFlow model on two batches (within 1e-4) before it is
written.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tfbert.deploy.artefact import require, token_id_function, write_export

#: ONNX opset of the export: the first with LayerNormalization
OPSET = 17


def export_onnx(model, tokenizer, config, label_names: list[str], directory: str | Path,
                optimize: bool = False) -> Path:
    """Write ``directory/model.onnx`` plus the tokenizer and tfbert's config (atomically).

    Args:
        model: the Keras task model (a dict of int [batch, seq] token ids in, float32 logits out).
        tokenizer: its Hugging Face fast tokenizer.
        config: the experiment config (saved beside the model for `tools/predict.py`).
        label_names: label order of the outputs.
        directory: the export directory (replaced only when the export succeeded).
        optimize: fuse each attention block into ONNX Runtime's ``com.microsoft.Attention``
            (`tfbert.deploy.onnx_fusion`): faster in ONNX Runtime, which the file then requires.

    Returns:
        The path of ``model.onnx``.
    """
    import tensorflow as tf

    tf2onnx = require("tf2onnx", "tf2onnx", "ONNX export")
    onnx = require("onnx", "onnx", "ONNX export")
    require("onnxruntime", "onnxruntime", "checking the ONNX export")
    from tfbert.deploy.onnx_rewriters import REWRITERS, erfc_handler

    input_names = [n for n in tokenizer.model_input_names if n in model.input_names]
    call, specs, outputs = token_id_function(model, input_names, tf.int64)
    # tf2onnx logs every step at INFO and warns about its TF version; errors still raise.
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_function(call, input_signature=specs, opset=OPSET,
                                             custom_rewriter=list(REWRITERS),
                                             custom_op_handlers={"Erfc": (erfc_handler, [])})
    _name_dynamic_axes(proto)
    fields = {"input_dtype": "int64", "outputs": outputs, "opset": OPSET}
    if optimize:
        from tfbert.deploy.onnx_fusion import fuse_attention

        fields["fused_attention_blocks"] = fused = fuse_attention(proto)
        if fused:
            fields["requires"] = "onnxruntime (com.microsoft contrib ops)"
        else:  # transformers' TF encoders (model.backbone: transformers) spell attention differently
            logging.getLogger(__name__).warning("--optimize: no attention block of tfbert's encoder found; "
                                                "the export holds standard ONNX ops only")
    return write_export("onnx", directory, model, tokenizer, config, label_names, input_names,
                        write=lambda path: onnx.save(proto, str(path)), runner=onnx_runner,
                        fields=fields,
                        versions={"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__})


def _name_dynamic_axes(proto) -> None:
    """Call the dynamic dimensions ``batch`` and ``sequence`` (tf2onnx numbers them ``unk__N``)."""
    for value in [*proto.graph.input, *proto.graph.output]:
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if not dim.HasField("dim_value") and i < 2:
                dim.dim_param = ("batch", "sequence")[i]


def onnx_runner(path: str | Path, threads: Optional[int] = None) -> Callable[[dict], dict[str, np.ndarray]]:
    """An ONNX Runtime CPU session on `path` as a function: token ids (name -> array) -> outputs by name.

    Args:
        path: ``model.onnx``.
        threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
    """
    ort = require("onnxruntime", "onnxruntime", "Running an ONNX export")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    dtypes = {i.name: np.int64 if i.type == "tensor(int64)" else np.int32 for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]

    def run(features: dict) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, {n: np.asarray(features[n], dtype=t) for n, t in dtypes.items()})))

    return run
