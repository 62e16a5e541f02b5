"""Exports for runtimes other than TensorFlow: ONNX Runtime (`tfbert.deploy.onnx`) and LiteRT
(`tfbert.deploy.litert`).

Both take token ids and return the model's logits, because neither runtime can run tfbert's
in-graph tokenizer (see each module). An export directory therefore holds the model file, the
Hugging Face tokenizer files that give those ids, and tfbert's config and labels, from which
`tfbert.deploy.runtime` rebuilds the task's own tokenization and post-processing around the
runtime (`tools/predict.py`). A deployment without TensorFlow uses the runtime plus the
``tokenizers`` package (README, "Deploy").
"""
