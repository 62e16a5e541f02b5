"""SavedModel for extractive QA: (question, context) strings in, answer text and offsets out.

`serving_default` takes ``question`` and ``context`` (tf.string [batch]) and returns ``answer``
(string), ``answer_start`` / ``answer_end`` (int32 code-point offsets into the context, end
exclusive; -1 when no valid span exists) and ``score`` (float32, start logit + end logit; -inf
when no valid span exists, as the Python decoder's no-answer prediction).

Offsets count code points of the context decoded as UTF-8, ill-formed bytes replaced by U+FFFD as
Python's ``bytes.decode("utf-8", errors="replace")`` does; ``answer`` is cut from that text.

All in the graph: the context is split into overlapping windows exactly like training
(`GraphBertTokenizer.encode_qa_windows`, HF's ``truncation="only_second"`` with ``stride``), the
model scores every window, and decoding follows `tfbert.evaluation.qa_decoding`: the n-best start
and end tokens of each window, spans that end before they start, leave the context or exceed
``max_answer_length`` dropped, the best score across all windows of a question wins.
"""
from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.modeling.span_head import END, START
from tfbert.serving.export import call_model, save_serving_module, token_id_specs
from tfbert.serving.graph_tokenizer import GraphBertTokenizer, valid_utf8

_NEG_INF = float("-inf")


class QAServingModule(tf.Module):
    """Windows -> start/end logits -> best valid span per question -> context substring."""

    def __init__(self, model, tokenizer: GraphBertTokenizer, input_names: list[str], doc_stride: int,
                 max_query_length: int, n_best_size: int, max_answer_length: int):
        super().__init__(name="tfbert_qa")
        self.model = model
        self.tokenizer = tokenizer
        self.input_names = list(input_names)
        self.doc_stride = doc_stride
        self.max_query_length = max_query_length
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length

    def _logits(self, features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        out = call_model(self.model, {n: features[n] for n in self.input_names}, per_token=True)
        return tf.cast(out[START], tf.float32), tf.cast(out[END], tf.float32)

    def answer(self, question: tf.Tensor, context: tf.Tensor) -> dict[str, tf.Tensor]:
        # Offsets count code points of the decoded context, so the answer is cut from it too.
        context = valid_utf8(context)
        enc = self.tokenizer.encode_qa_windows(question, context, self.doc_stride, self.max_query_length)
        start_logits, end_logits = self._logits(enc)
        real = tf.cast(enc["attention_mask"], tf.bool)
        # Padding never competes for the n-best, as in the Python decoder that reads only real tokens.
        start_logits = tf.where(real, start_logits, _NEG_INF)
        end_logits = tf.where(real, end_logits, _NEG_INF)
        k = tf.minimum(self.n_best_size, tf.shape(start_logits)[1])
        top_start = tf.math.top_k(start_logits, k)  # ties: the lower index first
        top_end = tf.math.top_k(end_logits, k)
        starts = top_start.indices[:, :, None]
        ends = top_end.indices[:, None, :]
        in_context = enc["offsets_start"] >= 0
        valid = ((ends >= starts) & (ends - starts + 1 <= self.max_answer_length)
                 & tf.gather(in_context, top_start.indices, batch_dims=1)[:, :, None]
                 & tf.gather(in_context, top_end.indices, batch_dims=1)[:, None, :])
        scores = tf.where(valid, top_start.values[:, :, None] + top_end.values[:, None, :], _NEG_INF)
        windows = tf.shape(scores)[0]
        flat = tf.reshape(scores, [windows, -1])
        best_pair = tf.argmax(flat, axis=1, output_type=tf.int32)
        best_score = tf.reduce_max(flat, axis=1)
        start_token = tf.gather(top_start.indices, best_pair // k, batch_dims=1)
        end_token = tf.gather(top_end.indices, best_pair % k, batch_dims=1)

        example = tf.cast(enc["window_to_example"], tf.int32)
        num_examples = tf.shape(question)[0]
        example_best = tf.math.unsorted_segment_max(best_score, example, num_examples)
        # The first window reaching its question's best score (lowest window index) answers it.
        is_best = tf.equal(best_score, tf.gather(example_best, example))
        window_index = tf.range(windows)
        chosen = tf.math.unsorted_segment_min(tf.where(is_best, window_index, windows), example, num_examples)
        chosen = tf.minimum(chosen, windows - 1)
        char_start = tf.gather_nd(enc["offsets_start"], tf.stack([chosen, tf.gather(start_token, chosen)], axis=1))
        char_end = tf.gather_nd(enc["offsets_end"], tf.stack([chosen, tf.gather(end_token, chosen)], axis=1))
        # Not is_finite(example_best): a segment max starts from the lowest float, not -inf, and an
        # example without a valid span would then take another example's window below.
        has_span = tf.cast(tf.reduce_any(valid, axis=[1, 2]), tf.int32)
        found = tf.math.unsorted_segment_max(has_span, example, num_examples) > 0
        char_start = tf.where(found, char_start, -1)
        char_end = tf.where(found, char_end, -1)
        text = tf.strings.substr(context, tf.maximum(char_start, 0), tf.maximum(char_end - char_start, 0),
                                 unit="UTF8_CHAR")
        return {"answer": tf.where(found, text, ""), "answer_start": char_start, "answer_end": char_end,
                "score": tf.where(found, example_best, _NEG_INF)}

    def span_logits(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        start_logits, end_logits = self._logits(features)
        return {START: start_logits, END: end_logits}


def export_qa_saved_model(model, hf_tokenizer, directory: str | Path, config: ExperimentConfig) -> Path:
    """Write the QA SavedModel atomically."""
    d = config.data
    graph_tokenizer = GraphBertTokenizer.from_hf_tokenizer(hf_tokenizer, d.max_seq_length)
    input_names = [n for n in hf_tokenizer.model_input_names if n in model.input_names]
    module = QAServingModule(model, graph_tokenizer, input_names, d.doc_stride, d.max_query_length,
                             config.task.n_best_size, config.task.max_answer_length)
    serve_text = tf.function(
        lambda question, context: module.answer(question, context),
        input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                         tf.TensorSpec([None], tf.string, name="context")])
    serve_ids = tf.function(lambda features: module.span_logits(features), input_signature=[token_id_specs(input_names)])
    return save_serving_module(module, directory, serve_text, serve_ids)
