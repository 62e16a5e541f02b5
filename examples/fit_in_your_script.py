"""Use tfbert as a library: it builds the model and the tf.data datasets, you call `model.fit`.

    python examples/fit_in_your_script.py                       # the SMS spam recipe, 1 epoch
    python examples/fit_in_your_script.py --set training.per_device_train_batch_size=16

The model is a compiled Functional Keras model (gradient accumulation, clipping, the warmup +
decay schedule and the precision policy already applied), so any Keras callback works with it.

It writes to its own directory, ``runs/fit_in_your_script`` (``--set training.output_dir=...``
to change it), never into the recipe's run: `tfbert.export_saved_model` refuses to replace a
finished run's files (one ``error:`` line) unless given ``overwrite=True``.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tf_keras  # noqa: E402  (transformers' TF models are Keras 2 models: use tf_keras, not keras 3)

import tfbert  # noqa: E402


#: Where this example writes its model and SavedModel (relative to the working directory).
OUTPUT_DIR = "runs/fit_in_your_script"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/sms_spam_minilm.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    # Its own output directory: the recipe's (runs/sms_spam_minilm) may hold the demo's finished run.
    config = tfbert.load_config(args.config, ["training.num_train_epochs=1", f"training.output_dir={OUTPUT_DIR}",
                                              *args.overrides])
    experiment = tfbert.build_experiment(config)  # tokenizer, tokenized splits, compiled model
    print(experiment.plan.describe())

    model = experiment.model
    model.fit(
        experiment.train_dataset,  # the stream experiment.fit() reads: every planned epoch, back to back
        validation_data=experiment.validation_dataset,
        epochs=experiment.plan.epochs,
        steps_per_epoch=experiment.steps_per_epoch,
        callbacks=[tf_keras.callbacks.EarlyStopping(monitor="val_loss", patience=1)],
        verbose=2,
    )
    report = experiment.evaluate_split("test" if "test" in experiment.data.splits else "validation")
    print(f"held-out accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f}")

    out = experiment.output_dir
    tfbert.save_pretrained(out / "model", model, experiment.tokenizer, config, experiment.label_names)
    saved_model = tfbert.export_saved_model(model, experiment.tokenizer, experiment.label_names, out / "saved_model",
                                            max_seq_length=config.data.max_seq_length)
    print(f"model: {out / 'model'}  SavedModel: {saved_model}")


if __name__ == "__main__":
    try:
        main()
    except tfbert.TfbertError as exc:  # a config key, data row or output to fix: one line, exit code 2
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
