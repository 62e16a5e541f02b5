"""Running an ONNX or LiteRT export as the SavedModel runs: `tools/predict.py` and the tests.

The task's serving module, the one the SavedModel is built from, is constructed around
`RuntimeModel`, a stand-in for the Keras model that calls ONNX Runtime or LiteRT instead. Its
``serve_text`` then runs eagerly with the same in-graph tokenizer and the same post-processing
(labels, NER entities, QA spans) as ``serving_default``, so the outputs can be compared field by
field with the SavedModel's, and no task needs code of its own here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tfbert.deploy.artefact import MODEL_FILES, detect, read_info
from tfbert.errors import ModelError


class RuntimeModel:
    """Stands in for the Keras task model inside a serving module: the same call, run by ONNX Runtime
    or LiteRT.

    Args:
        run: token ids (name -> int array) -> outputs (name -> float32 array).
        input_names: the export's inputs.
        outputs: the export's output names; one named ``logits`` is returned as a tensor, several as a
            dict, as the Keras model returns them.
    """

    #: no TensorFlow variables: the weights live in the ONNX or LiteRT file (a serving module tracks a model's variables)
    variables: tuple = ()

    def __init__(self, run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], input_names: list[str],
                 outputs: list[str]):
        self.run = run
        self.input_names = list(input_names)
        self.outputs = list(outputs)

    def __call__(self, inputs, training: bool = False):
        import tensorflow as tf

        result = self.run({name: np.asarray(inputs[name]) for name in self.input_names})
        result = {k: tf.constant(v, dtype=tf.float32) for k, v in result.items()}
        return result["logits"] if self.outputs == ["logits"] else result


def open_serving_module(path: str | Path, threads: Optional[int] = None):
    """The task's serving module around an ONNX or LiteRT export (`detect`), ready for eager ``serve_text``.

    Args:
        path: the export directory or its model file.
        threads: the runtime's intra-op threads (None: its default).
    """
    from tfbert.modeling.saving import read_config, read_label_names
    from tfbert.pretrained import load_tokenizer
    from tfbert.tasks import get_task

    found = detect(path)
    if found is None:
        raise ModelError(f"{path}: not an ONNX or LiteRT export (no {' or '.join(MODEL_FILES.values())})")
    fmt, directory = found
    info = read_info(directory)
    if fmt == "onnx":
        from tfbert.deploy.onnx import onnx_runner

        run = onnx_runner(directory / MODEL_FILES["onnx"], threads)
    else:
        from tfbert.deploy.litert import litert_runner

        run = litert_runner(directory / MODEL_FILES["litert"], threads)
    config = read_config(directory)
    model = RuntimeModel(run, info["inputs"], info["outputs"])
    module_class = get_task(config.task.type).serving_module_class()
    return module_class(model, load_tokenizer(str(directory)), read_label_names(directory), config)
