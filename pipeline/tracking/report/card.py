"""The report's model card (Markdown): what the model is, what it was trained and judged on, where not to use it.

The registry puts it on each version it registers (pipeline/tracking/registry.py)."""

from __future__ import annotations

import os

import numpy as np

from components.evaluator import scores as eval_scores
from pipeline import config as config_lib
from pipeline.tracking import result as result_lib
from pipeline.tracking.report import plots
from pipeline.tracking.report.files import CARD_FILE
from pipeline.tracking.report.inputs import RunForReport


def card(run: RunForReport, out: str) -> list[str]:
    scored = run.scored_eval_if_any()
    text = model_card(run.config, run.result, scored.scores if scored else None, run.config.registered_model_name)
    with open(os.path.join(out, CARD_FILE), "w") as handle:
        handle.write(text)
    return [CARD_FILE]


def model_card(
    config: config_lib.Config,
    result: result_lib.RunResult,
    scores: eval_scores.EvalScores | None,
    registered_model: str = "",
) -> str:
    """The card's text. `registered_model`: the registry name a push goes to ("" to leave it out)."""
    lines = [
        f"# Model card: {config.pipeline_name}",
        *_model(config),
        *_training(config),
        *_data(config, result, scores),
        *_evaluation(config, result, scores),
        *_gates_and_push(result, registered_model),
        *_use_and_limits(config),
    ]
    return "\n".join(lines) + "\n"


def _model(config: config_lib.Config) -> list[str]:
    model_config = config.model
    return [
        "",
        "## Model",
        f"- Backbone: {model_config.backbone}, weights `{model_config.weights}`; a class head and a box head "
        f"({model_config.head_units} units each, dropout {model_config.dropout_rate}) and a metadata tower.",
        f"- Input: one image ({config.image.size}x{config.image.size} px after `{config.image.resize}` resizing) "
        f"and the metadata features {', '.join(f'`{f.name}` ({f.kind})' for f in config.features) or '(none)'}.",
        "- Output: class probabilities, the predicted class and one box (xmin, ymin, xmax, ymax as fractions of "
        "the image sent).",
    ]


def _training(config: config_lib.Config) -> list[str]:
    training = config.training
    return [
        "",
        "## Training",
        f"- Phase 1, frozen backbone: {_epochs(training.frozen.epochs)} at learning rate "
        f"{training.frozen.learning_rate:g} ({training.frozen.schedule}).",
        f"- Phase 2, unfrozen: {_epochs(training.finetune.epochs)} at learning rate "
        f"{training.finetune.learning_rate:g} ({training.finetune.schedule}).",
        f"- Batch size {training.batch_size}, seed {training.seed}.",
    ]


def _data(config: config_lib.Config, result: result_lib.RunResult, scores: eval_scores.EvalScores | None) -> list[str]:
    lines = [
        "",
        "## Data",
        f"- Source: `{config.data}`; train/val/eval split by a hash of the filename "
        f"({config.split.train}:{config.split.val}:{config.split.eval}); the Trainer validates on val, the gates "
        "judge eval.",
    ]
    ingest_summary = result.ingest or {}
    if ingest_summary:
        lines.append(
            f"- Records: {ingest_summary.get('records')} read, {ingest_summary.get('accepted')} accepted, "
            f"{ingest_summary.get('rejected')} rejected."
        )
    if scores is not None:
        lines += [f"- Classes: {', '.join(scores.class_names)}.", f"- Eval images scored: {len(scores.true_labels)}."]
    return lines


def _evaluation(
    config: config_lib.Config, result: result_lib.RunResult, scores: eval_scores.EvalScores | None
) -> list[str]:
    gates = config.evaluation
    lines = ["", "## Evaluation (eval split)", "", "| metric | value | gate |", "| --- | --- | --- |"]
    accuracy, iou = (result.evaluation.metrics.get(name, "n/a") for name in ("eval_accuracy", "eval_iou"))
    lines.append(f"| accuracy (TFMA) | {_fmt(accuracy)} | >= {gates.min_accuracy:g} |")
    lines.append(f"| mean box IoU (TFMA) | {_fmt(iou)} | >= {gates.min_iou:g} |")
    if scores is None:
        return lines
    boxed = scores.boxed
    hits = float(np.mean(scores.ious[boxed] >= plots.IOU_MARK)) if boxed.any() else float("nan")
    lines.append(f"| share of boxes with IoU >= {plots.IOU_MARK} | {hits:.4f} | |")
    if config.ingest.no_object == "keep":
        empty = config.ingest.no_object_class
        errors = scores.no_object_errors(empty)
        for key, words in (
            ("missed_object", f"said `{empty}` on an image with an object"),
            ("false_object", f"said a class on a `{empty}` image"),
        ):
            wrong, total = errors[key]
            rate = f"{wrong / total:.4f} ({wrong} of {total})" if total else "n/a (no such image)"
            lines.append(f"| {words} | {rate} | |")
    lines += ["", "| class | eval images | accuracy |", "| --- | --- | --- |"]
    for name, (count, class_accuracy) in scores.per_class_accuracy().items():
        lines.append(f"| {name} | {count} | {'n/a' if count == 0 else f'{class_accuracy:.4f}'} |")
    return lines


def _gates_and_push(result: result_lib.RunResult, registered_model: str) -> list[str]:
    evaluation = result.evaluation
    lines = ["", "## Gates and blessing"]
    if evaluation.blessed:
        lines.append("- **Blessed**: every gate passed.")
    else:
        failures = evaluation.gate_failures
        lines.append("- **Not blessed**: " + ("; ".join(failures) if failures else "a gate failed."))
    if evaluation.champion_note:
        lines.append(f"- Champion: {evaluation.champion_note}.")
    for row in evaluation.gates:
        if row.kind == "change":
            lines.append(
                f"- {row.metric} against the champion: {_fmt(row.value)} vs {_fmt(row.champion)}, "
                f"change {_fmt(row.change, '+')} ({row.threshold}): {'pass' if row.passed else 'FAIL'}."
            )
    if result.pushed_path is not None:
        registered = f"; registered in MLflow as `{registered_model}`, alias `champion`" if registered_model else ""
        lines.append(f"- Pushed to `{result.pushed_path}`{registered}.")
    elif evaluation.outcome == "already_champion":
        lines.append("- Not pushed: this model is already the champion.")
    else:
        lines.append("- Not pushed: the serving folder and the registry's `champion` keep the previous model.")
    return lines


def _use_and_limits(config: config_lib.Config) -> list[str]:
    lines = [
        "",
        "## Intended use",
        "- Classify an image into one of the classes above and locate the one object in it, given the metadata "
        "the training data carried; for images like the training data (same cameras, subjects and framing).",
        "- As a decision aid with a person reviewing low-probability predictions, not as an unattended decision maker.",
        "",
        "## Limitations",
        "- One box per image: images with several objects get one box, those with none still get a box.",
        "- Only the classes above; anything else is forced into one of them (there is no 'other' class).",
        "- Metadata carries signal: a camera, hour or place unlike the training data (OOV bucket, defaults for "
        "missing values) can shift predictions even when the image is clear.",
        "- Judged on the eval split only, a hash of the same source as training: no measure of performance on "
        "other cameras, places or times.",
    ]
    if config.model.weights.lower() == "none":
        lines.append("- Trained from random weights (no ImageNet pretraining): expect little beyond the training data.")
    return lines


def _epochs(count: int) -> str:
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _fmt(value: float | str | None, sign: str = "") -> str:
    return f"{value:{sign}.4f}" if isinstance(value, float) else str(value)
