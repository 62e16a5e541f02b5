"""A Hugging Face-style model card: the Hub's metadata block, hyperparameters, results, versions.

The card starts with YAML front matter (``library_name``, ``pipeline_tag``, ``base_model``, ``tags``,
``datasets``, ``metrics`` and a ``model-index`` with the evaluation results), written with
`huggingface_hub.ModelCardData`, so the Hub renders it as it renders a Trainer-made card.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from tfbert.config import ExperimentConfig
from tfbert.tasks.registry import get_task_class

if TYPE_CHECKING:  # pragma: no cover - the plan is only read; importing it would load training/
    from tfbert.training.batch_plan import BatchPlan

#: Hub model ids of the bundled models (for ``base_model``)
_BUNDLED_HUB_IDS = {"all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
#: Hub dataset ids of the folders in ../shared/data and data/
_HUB_DATASETS = {"wnut17": "wnut_17", "squad_v1.1": "squad", "goemotions": "go_emotions"}

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


def base_model_id(name_or_path: str) -> Optional[str]:
    """The Hub id of the pretrained model, or None for a local directory (the Hub wants ids)."""
    spec = str(name_or_path)
    key = spec.split(":", 1)[1] if spec.startswith("bundled:") else spec
    if key.lower() in _BUNDLED_HUB_IDS:
        return _BUNDLED_HUB_IDS[key.lower()]
    if spec.startswith((".", "/", "~")) or Path(spec).expanduser().exists() or spec.count("/") > 1:
        return None
    return spec


def dataset_id(config: ExperimentConfig) -> Optional[str]:
    """A name for the training data: its folder (``data/sms_spam/...`` -> ``sms_spam``)."""
    source = (config.data.train_files() or [config.data.tfrecords])[0]
    if not source:
        return None
    folder = Path(str(source)).parent.name or Path(str(source)).stem
    return _HUB_DATASETS.get(folder, folder)


def front_matter(config: ExperimentConfig, evaluation: Optional[dict], model_name: str,
                 evaluated_on: str) -> str:
    """The Hub's YAML metadata block (between ``---`` lines)."""
    from huggingface_hub import EvalResult, ModelCardData

    task = get_task_class(config.task.type)
    pipeline_tag, task_name = task.pipeline_tag
    dataset = dataset_id(config)
    results = []
    for key, value in (evaluation or {}).get("metrics", {}).items():
        # The task names each metric's Hub type, or None to keep it out (losses); a metric it does
        # not name is listed under its own name rather than dropped.
        hub = task.hub_metrics.get(key, (key, _title(key)))
        if hub is not None and dataset:
            metric_type, metric_name = hub
            results.append(EvalResult(task_type=pipeline_tag, task_name=task_name, dataset_type=dataset,
                                      dataset_name=dataset, dataset_split=evaluated_on or None,
                                      metric_type=metric_type, metric_name=metric_name,
                                      metric_value=round(float(value), 4)))
    data = ModelCardData(
        library_name="transformers", pipeline_tag=pipeline_tag, base_model=base_model_id(config.model.name_or_path),
        tags=["tfbert", "tensorflow", "tf-keras", "generated_from_keras_callback"],
        datasets=[dataset] if dataset else None,
        metrics=sorted({r.metric_type for r in results}) or None,
        model_name=model_name, eval_results=results or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def hyperparameters(config: ExperimentConfig, plan: Optional[BatchPlan]) -> dict[str, object]:
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
        "distributed_type": f"{plan.num_replicas} replica(s)" if plan else None,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "total_train_batch_size": plan.effective_batch_size if plan else None,
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
    if o.layerwise_lr_decay != 1.0:
        out["layerwise_lr_decay"] = f"{o.layerwise_lr_decay} (head at learning_rate, each encoder layer below one factor more)"
    if o.head_learning_rate is not None:
        out["head_learning_rate"] = f"{o.head_learning_rate} (classifier head and pooler)"
    return {k: v for k, v in out.items() if v is not None}  # plan-derived items need the batch plan


def render_model_card(config: ExperimentConfig, plan: Optional[BatchPlan], history: list[dict],
                      evaluation: Optional[dict], label_names: list[str], model_name: str,
                      evaluated_on: str = "test", head_note: Optional[str] = None) -> str:
    """Markdown text of the card, front matter first.

    `plan` may be None (a card written from a saved model alone): the items derived from the batch
    plan are left out. `head_note` explains a head transformers has no class for.
    """
    sources = config.data.train_files() or [str(config.data.tfrecords)]
    lines = [
        front_matter(config, evaluation, model_name, evaluated_on),
        f"# {model_name}",
        "",
        f"This model is a fine-tuned version of `{config.model.name_or_path}` for "
        f"{config.task.type.replace('_', ' ')} with labels {', '.join(f'`{n}`' for n in label_names)}, "
        f"trained with tfbert on {' + '.join(f'`{source}`' for source in sources)}.",
        "",
    ]
    if head_note:
        lines += [f"**Note:** {head_note}", ""]
    if evaluation:
        lines += [f"It achieves the following results on the {evaluated_on} set "
                  f"({evaluation['num_examples']} examples):", ""]
        lines += [f"- {_title(k)}: {v:.4f}" for k, v in evaluation["metrics"].items()]
        for name, scores in evaluation.get("per_class", {}).items():
            lines.append(f"- `{name}`: precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, "
                         f"F1 {scores['f1']:.4f} (support {scores['support']})")
        lines.append("")
    lines += get_task_class(config.task.type).card_section(config, label_names)
    lines += ["## Training procedure", "", "### Training hyperparameters", "",
              "The following hyperparameters were used during training:", ""]
    lines += [f"- {k}: {v}" for k, v in hyperparameters(config, plan).items()]
    lines += ["", "### Training results", ""]
    if history:
        columns = [k for k in history[0] if k not in ("epoch", "seconds", "learning_rate", "loss")]
        header = ["Training Loss", "Epoch", "Step"] + [_title(k) for k in columns]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        updates_per_epoch = max(1, plan.dataset_batches_per_epoch // plan.batches_per_update) if plan else 0
        for record in history:
            cells = [f"{record.get('loss', float('nan')):.4f}", str(record["epoch"]),
                     str(record["epoch"] * updates_per_epoch) if plan else "-"]
            cells += [f"{record.get(k, float('nan')):.4f}" for k in columns]
            lines.append("| " + " | ".join(cells) + " |")
    else:
        lines.append("No epochs were recorded.")
    lines += ["", "### Framework versions", ""]
    for package in ("tfbert", "tensorflow", "tf-keras", "tensorflow-text", "transformers", "datasets", "tokenizers"):
        lines.append(f"- {package} {_version(package)}")
    return "\n".join(lines) + "\n"
