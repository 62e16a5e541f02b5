"""A Hugging Face-style model card: hyperparameters, per-epoch results, evaluation, versions."""
from __future__ import annotations

from importlib import metadata
from typing import Optional

from tfbert.config import ExperimentConfig
from tfbert.training.batch_plan import BatchPlan

_PRECISION_NAMES = {"float32": "float32", "mixed_float16": "Mixed Precision (float16)",
                    "mixed_bfloat16": "Mixed Precision (bfloat16)"}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _title(metric: str) -> str:
    """``val_macro_f1`` -> ``Validation Macro F1``."""
    words = metric.replace("val_", "validation_").split("_")
    return " ".join({"f1": "F1", "em": "EM"}.get(w, w.capitalize()) for w in words)


def hyperparameters(config: ExperimentConfig, plan: BatchPlan) -> dict[str, object]:
    """The seeds' hyperparameter list, from the config and the derived batch plan."""
    o, t = config.optimizer, config.training
    warmup = f"lr_scheduler_warmup_steps: {o.warmup_steps}" if o.warmup_steps else \
        f"lr_scheduler_warmup_ratio: {o.warmup_ratio}"
    optimizer = "AdamW" if o.name == "adamw" else "Adam"
    decay = f", weight_decay={o.weight_decay} (not on LayerNorm and biases)" if o.name == "adamw" else ""
    out = {
        "learning_rate": o.learning_rate,
        "train_batch_size": t.per_device_train_batch_size,
        "eval_batch_size": t.per_device_eval_batch_size,
        "seed": t.seed,
        "distributed_type": f"{plan.num_replicas} replica(s)",
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "total_train_batch_size": plan.effective_batch_size,
        "optimizer": f"{optimizer} with betas=({o.adam_beta1}, {o.adam_beta2}) and epsilon={o.adam_epsilon}{decay}",
        "lr_scheduler_type": o.lr_scheduler_type,
        "warmup": warmup.split(": ", 1)[1],
        "num_epochs": t.num_train_epochs,
        "max_grad_norm": o.max_grad_norm,
        "max_seq_length": config.data.max_seq_length,
        "padding": config.data.padding,
        "freeze": t.freeze if t.freeze != "bottom" else f"embeddings + bottom {t.freeze_layers} layers",
        "training precision": _PRECISION_NAMES[config.precision.policy],
    }
    out[warmup.split(": ", 1)[0]] = out.pop("warmup")
    return out


def render_model_card(config: ExperimentConfig, plan: BatchPlan, history: list[dict],
                      evaluation: Optional[dict], label_names: list[str], model_name: str,
                      evaluated_on: str = "test") -> str:
    """Markdown text of the card."""
    lines = [
        f"# {model_name}",
        "",
        f"This model is a fine-tuned version of `{config.model.name_or_path}` for "
        f"{config.task.type.replace('_', ' ')} with labels {', '.join(f'`{n}`' for n in label_names)}, "
        f"trained with tfbert on `{config.data.train_file}`.",
        "",
    ]
    if evaluation:
        lines += [f"It achieves the following results on the {evaluated_on} set "
                  f"({evaluation['num_examples']} examples):", ""]
        lines += [f"- {_title(k)}: {v:.4f}" for k, v in evaluation["metrics"].items()]
        for name, scores in evaluation.get("per_class", {}).items():
            lines.append(f"- `{name}`: precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, "
                         f"F1 {scores['f1']:.4f} (support {scores['support']})")
        lines.append("")
    lines += ["## Training procedure", "", "### Training hyperparameters", "",
              "The following hyperparameters were used during training:", ""]
    lines += [f"- {k}: {v}" for k, v in hyperparameters(config, plan).items()]
    lines += ["", "### Training results", ""]
    if history:
        columns = [k for k in history[0] if k not in ("epoch", "seconds", "learning_rate", "loss")]
        header = ["Training Loss", "Epoch", "Step"] + [_title(k) for k in columns]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        updates_per_epoch = max(1, plan.dataset_batches_per_epoch // plan.batches_per_update)
        for record in history:
            cells = [f"{record.get('loss', float('nan')):.4f}", str(record["epoch"]),
                     str(record["epoch"] * updates_per_epoch)]
            cells += [f"{record.get(k, float('nan')):.4f}" for k in columns]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No epochs were recorded.")
    lines += ["", "### Framework versions", ""]
    for package in ("tfbert", "tensorflow", "tf-keras", "tensorflow-text", "transformers", "datasets", "tokenizers"):
        lines.append(f"- {package} {_version(package)}")
    return "\n".join(lines) + "\n"
