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

from typing import Any

import tensorflow as tf

from tfbert.config import ExperimentConfig
from tfbert.modeling.span_extractor import END, START
from tfbert.serving.base import ServingModule
from tfbert.serving.graph_tokenizer import valid_utf8

_NEG_INF = float("-inf")


class QAServingModule(ServingModule):
    """Windows -> start/end logits -> best valid span per question -> context substring."""

    def __init__(self, model, hf_tokenizer, label_names: list[str], config: ExperimentConfig):
        super().__init__(model, hf_tokenizer, label_names, config)
        self.doc_stride = config.data.doc_stride
        self.max_query_length = config.data.max_query_length
        self.n_best_size = config.task.n_best_size
        self.max_answer_length = config.task.max_answer_length

    def text_specs(self) -> list[tf.TensorSpec]:
        return [tf.TensorSpec([None], tf.string, name="question"), tf.TensorSpec([None], tf.string, name="context")]

    def _logits(self, features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        out = self.logits(features, per_token=True)
        return out[START], out[END]

    def serve_text(self, question: tf.Tensor, context: tf.Tensor) -> dict[str, tf.Tensor]:
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

    def serve_token_ids(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        start_logits, end_logits = self._logits(features)
        return {START: start_logits, END: end_logits}

    @classmethod
    def cli_inputs(cls, args, read_lines, input_names: set[str]) -> dict[str, list[str]]:
        from tfbert.errors import DataError

        questions, contexts = (read_qa_pairs(args.file, read_lines) if args.file
                               else (list(args.question), list(args.context)))
        if not questions or len(questions) != len(contexts):
            raise DataError(f"this model answers questions: give one --context per --question "
                            f"({len(questions)} questions, {len(contexts)} contexts) or a JSONL --file")
        return {"question": questions, "context": contexts}

    @classmethod
    def cli_record(cls, inputs: dict[str, Any], out: dict[str, Any], i: int) -> tuple[dict, str]:
        record = {k: v[i] for k, v in inputs.items()}
        record.update(answer=out["answer"][i].decode("utf-8"), start=int(out["answer_start"][i]),
                      end=int(out["answer_end"][i]), score=float(out["score"][i]))
        return record, (f"{record['answer']!r}\t[{record['start']}:{record['end']}]\t{record['score']:.3f}\t"
                        f"{record['question']}")

    @classmethod
    def recognizes(cls, inputs: set[str], outputs: set[str]) -> bool:
        return "question" in inputs and "context" in inputs


def read_qa_pairs(path: str, read_lines) -> tuple[list[str], list[str]]:
    """(questions, contexts) from a JSONL file, naming the line of a bad record."""
    import json

    from tfbert.errors import DataError

    questions, contexts = [], []
    for number, line in enumerate(read_lines(path), start=1):
        try:
            record = json.loads(line)
            questions.append(str(record["question"]))
            contexts.append(str(record["context"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}, line {number}: expected a JSON object with 'question' and 'context'") from None
    return questions, contexts
