"""The report's figures, as plain functions: learning curves, confusion matrix, IoU histogram and IoU by box size,
a grid of boxes, Grad-CAM heatmaps, and the model's summary. The report's parts (`curves`, `eval_plots`,
`network`) feed them a run's outputs.

Figures are built with matplotlib's object API (`Figure`, no pyplot), which renders with Agg and leaves the
process's global backend alone. Each plot function saves a PNG and returns the figure, so tests can check
what was drawn, not only that a file exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras
from matplotlib import patches, ticker
from matplotlib.figure import Figure

from components.trainer import metrics, training
from components.trainer import model as model_lib

IOU_MARK = 0.5
# Candidate stroke colours (RGB 0..255) for each kind of box; the one farthest from the pixels under the box's
# edges is drawn, so a true box stays visible on a green object and a predicted one on a red object. The kind
# is told by the line style (true solid, predicted dashed), not by the colour.
TRUE_COLORS = ((50, 205, 50), (0, 255, 255), (255, 255, 255))
PREDICTED_COLORS = ((255, 0, 0), (255, 0, 255), (255, 255, 0))
# A dark band drawn under each stroke: whatever the colour picked, the box has an edge against bright pixels.
OUTLINE_COLOR = "black"
BOX_LINE_WIDTH = 2.0
OUTLINE_WIDTH = 4.5


def plot_learning_curves(history: Mapping[str, Any], path: str) -> Figure:
    """Loss, accuracy and IoU per epoch, train and val, on the one epoch axis both phases share; a dashed
    line marks where the backbone was unfrozen (between the last frozen and the first fine-tuning epoch)."""
    rows = history["epochs"]
    if not rows:
        raise ValueError("the history has no epochs")
    epochs = [int(row["epoch"]) for row in rows]
    named = [training.tracking_metrics(row) for row in rows]
    unfreeze = int(history["unfreeze_epoch"])
    figure = Figure(figsize=(13, 4), layout="constrained")
    for axes, (metric, title) in zip(
        figure.subplots(1, 3), (("loss", "Loss"), ("accuracy", "Accuracy"), ("iou", "Box IoU")), strict=True
    ):
        for split, style in (("train", "o-"), ("val", "s--")):
            values = [row.get(f"{split}_{metric}", np.nan) for row in named]
            axes.plot(epochs, values, style, label=split)
        if min(epochs) < unfreeze <= max(epochs):
            axes.axvline(unfreeze - 0.5, color="gray", linestyle=":", label=f"unfrozen at epoch {unfreeze}")
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle("Learning curves (frozen backbone, then fine-tuning)")
    figure.savefig(path, dpi=100)
    return figure


def confusion_matrix(labels: Sequence[str], predicted: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class, in the order of `class_names`."""
    index = {name: position for position, name in enumerate(class_names)}
    unknown = sorted({name for name in (*labels, *predicted) if name not in index})
    if unknown:
        raise ValueError(f"labels not among the classes {list(class_names)}: {unknown}")
    matrix = np.zeros((len(class_names), len(class_names)), dtype=np.int64)
    for true_name, predicted_name in zip(labels, predicted, strict=True):
        matrix[index[true_name], index[predicted_name]] += 1
    return matrix


def plot_confusion_matrix(
    labels: Sequence[str], predicted: Sequence[str], class_names: Sequence[str], path: str
) -> Figure:
    matrix = confusion_matrix(labels, predicted, class_names)
    size = max(4.0, 0.8 * len(class_names) + 2)
    figure = Figure(figsize=(size, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = range(len(class_names))
    axes.set_xticks(ticks, class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for row in ticks:
        for column in ticks:
            count = matrix[row, column]
            axes.text(
                column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black"
            )
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    axes.set_title(f"Confusion matrix (eval, n={matrix.sum()}, accuracy {accuracy:.3f})")
    figure.savefig(path, dpi=100)
    return figure


def plot_iou_histogram(
    ious: Sequence[float], path: str, mean_gate: float | None = None, hit_iou: float = IOU_MARK
) -> Figure:
    """The IoU of every eval box, with the hit threshold (`hit_iou`), the mean, and the gate the mean is held to
    (`mean_gate`, evaluation.min_iou) as vertical lines: how far the boxes are from passing, at a glance."""
    ious = np.asarray(ious, dtype=np.float64)
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.hist(ious, bins=np.linspace(0.0, 1.0, 21), color="steelblue", edgecolor="white")
    axes.axvline(hit_iou, color="grey", linestyle=":", label=f"hit: IoU >= {hit_iou:g}")
    share = float(np.mean(ious >= hit_iou)) if ious.size else 0.0
    mean = float(np.mean(ious)) if ious.size else float("nan")
    if ious.size:
        axes.axvline(mean, color="black", linestyle="-", label=f"mean {mean:.3f}")
    if mean_gate is not None:
        passed = ious.size and mean >= mean_gate
        axes.axvline(
            mean_gate, color="green" if passed else "red", linestyle="--", label=f"gate: mean >= {mean_gate:g}"
        )
    axes.set_title(f"Box IoU on eval (n={ious.size}, mean {mean:.3f}, {share:.0%} at or above {hit_iou:g})")
    axes.set_xlabel("IoU of predicted and true box")
    axes.set_ylabel("images")
    axes.set_xlim(0, 1)
    axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=100)
    return figure


# Box sizes by the share of the image they cover: small below 1/16 (a side under a quarter of the image's),
# large from 1/4 (a side over half). COCO's pixel areas (32^2, 96^2) assume photos of a known size; fractions
# work at any input size.
BOX_SIZES = (("small", 0.0, 1 / 16), ("medium", 1 / 16, 1 / 4), ("large", 1 / 4, float("inf")))


def iou_by_box_size(true_boxes: np.ndarray, ious: Sequence[float]) -> dict[str, tuple[int, float]]:
    """{size: (number of boxes, their mean IoU)} by the true box's area (fractions of the image)."""
    boxes = np.asarray(true_boxes, np.float64).reshape(-1, 4)
    ious = np.asarray(ious, np.float64)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    sizes = {}
    for name, low, high in BOX_SIZES:
        chosen = (areas >= low) & (areas < high)
        sizes[name] = (int(chosen.sum()), float(ious[chosen].mean()) if chosen.any() else float("nan"))
    return sizes


def plot_iou_by_box_size(true_boxes: np.ndarray, ious: Sequence[float], path: str, hit_iou: float = IOU_MARK) -> Figure:
    """Mean IoU for small, medium and large true boxes, with the count of each on its bar."""
    sizes = iou_by_box_size(true_boxes, ious)
    figure = Figure(figsize=(5, 3.5), layout="constrained")
    axes = figure.subplots()
    names = list(sizes)
    means = [0.0 if np.isnan(sizes[name][1]) else sizes[name][1] for name in names]
    bars = axes.bar(names, means, color="steelblue")
    for bar, name in zip(bars, names, strict=True):
        count, mean = sizes[name]
        label = f"n={count}" + ("" if np.isnan(mean) else f"\n{mean:.2f}")
        axes.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.02, label, ha="center", fontsize=8)
    axes.axhline(hit_iou, color="grey", linestyle=":", label=f"hit: IoU >= {hit_iou:g}")
    axes.set_ylim(0, 1.15)
    axes.set_ylabel("mean IoU")
    axes.set_title("Box IoU by true box size (share of the image: < 1/16, < 1/4, larger)", fontsize=9)
    axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=100)
    return figure


def worst_first(ious: Sequence[float], true_names: Sequence[str], pred_names: Sequence[str], count: int) -> list[int]:
    """Indices of the `count` worst eval images: wrong class first, then by lowest IoU."""
    order = sorted(range(len(ious)), key=lambda index: (true_names[index] == pred_names[index], ious[index]))
    return order[:count]


def edge_pixels(image: np.ndarray, box: Sequence[float], band: int = 2) -> np.ndarray:
    """The RGB pixels (N x 3) within `band` pixels of the box's four edges; the box is in fractions."""
    height, width = image.shape[:2]
    xmin, ymin, xmax, ymax = (
        int(round(box[0] * width)),
        int(round(box[1] * height)),
        int(round(box[2] * width)),
        int(round(box[3] * height)),
    )
    mask = np.zeros((height, width), bool)
    rows, columns = np.ogrid[:height, :width]
    inside_x = (columns >= xmin - band) & (columns <= xmax + band)
    inside_y = (rows >= ymin - band) & (rows <= ymax + band)
    near_vertical = (np.abs(columns - xmin) <= band) | (np.abs(columns - xmax) <= band)
    near_horizontal = (np.abs(rows - ymin) <= band) | (np.abs(rows - ymax) <= band)
    mask |= inside_y & near_vertical
    mask |= inside_x & near_horizontal
    pixels = image[..., :3].reshape(-1, 3)[mask.ravel()]
    return pixels if len(pixels) else image[..., :3].reshape(-1, 3)


def contrasting_color(image: np.ndarray, box: Sequence[float], candidates: Sequence[Sequence[int]]) -> tuple:
    """The candidate colour whose median distance (RGB) to the pixels under the box's edges is largest."""
    pixels = edge_pixels(image, box).astype(np.float64)
    distances = [
        float(np.median(np.linalg.norm(pixels - np.asarray(color, np.float64), axis=1))) for color in candidates
    ]
    return tuple(candidates[int(np.argmax(distances))])


def plot_box_grid(
    images: Sequence[np.ndarray],
    true_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    true_names: Sequence[str],
    pred_names: Sequence[str],
    path: str,
    columns: int = 4,
    title: str = "Eval images",
) -> Figure:
    """Each image with its true box (solid) and predicted box (dashed), each a bright stroke over a dark
    outline, its colour picked against the pixels under it; boxes are (xmin, ymin, xmax, ymax) fractions of the
    image, as in the examples and the served `box`."""
    count = len(images)
    if not count:
        raise ValueError("no images to draw")
    rows = -(-count // columns)
    figure = Figure(figsize=(3 * min(count, columns), 3.2 * rows), layout="constrained")
    grid = np.atleast_1d(figure.subplots(rows, min(count, columns), squeeze=False).ravel())
    ious = metrics.box_iou_numpy(true_boxes, pred_boxes)
    for index, axes in enumerate(grid):
        axes.axis("off")
        if index >= count:
            continue
        image = images[index]
        height, width = image.shape[:2]
        axes.imshow(image)
        for box, candidates, style in (
            (true_boxes[index], TRUE_COLORS, "-"),
            (pred_boxes[index], PREDICTED_COLORS, "--"),
        ):
            if not np.all(np.isfinite(box)):
                continue  # No box to draw: an image with no object in it, or an answer that says so.
            xmin, ymin, xmax, ymax = box
            color = np.asarray(contrasting_color(_as_uint8(image), box, candidates)) / 255.0
            corner = (xmin * width, ymin * height)
            size = ((xmax - xmin) * width, (ymax - ymin) * height)
            # The outline is solid under a dashed stroke too, so the gaps between the dashes still show an edge.
            axes.add_patch(
                patches.Rectangle(corner, *size, fill=False, edgecolor=OUTLINE_COLOR, linewidth=OUTLINE_WIDTH)
            )
            axes.add_patch(
                patches.Rectangle(corner, *size, fill=False, edgecolor=color, linestyle=style, linewidth=BOX_LINE_WIDTH)
            )
        correct = true_names[index] == pred_names[index]
        iou = (
            f"IoU {ious[index]:.2f}"
            if np.isfinite(ious[index]) and np.all(np.isfinite(true_boxes[index]))
            else "no box"
        )
        axes.set_title(
            f"true {true_names[index]} / pred {pred_names[index]}\n{iou}",
            fontsize=9,
            color="black" if correct else "red",
        )
    figure.suptitle(f"{title}: true box solid, predicted box dashed")
    figure.savefig(path, dpi=100)
    return figure


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """Pixels on the 0..255 scale, for images given as 0..1 floats (as imshow accepts) or as integers."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if np.issubdtype(image.dtype, np.floating) and image.max(initial=0.0) <= 1.0:
        return (image * 255).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def _outer_output(layer: tf_keras.layers.Layer) -> Any:
    """What a nested layer (the backbone sub-model) produces inside the enclosing model: its last call's
    output. `layer.output` would be the sub-model's own graph, which the outer inputs do not reach."""
    return layer.get_output_at(len(layer.inbound_nodes) - 1)


def grad_cam(
    model: tf_keras.Model,
    inputs: Mapping[str, tf.Tensor],
    class_indices: Sequence[int] | None = None,
    backbone_name: str = model_lib.BACKBONE_NAME,
    head_name: str = model_lib.PROBABILITIES,
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM on the backbone's last feature map: the map's channels weighted by the mean gradient of a
    class score, summed, ReLU'd and scaled to 0..1 per image. Returns (heatmaps [N, h, w] at feature-map
    resolution, the class index explained for each image: `class_indices`, or else the predicted class).

    The score is the class's logit, recomputed from the softmax head's input and weights: the probability
    itself saturates, and its gradient vanishes for confident predictions (as in the Grad-CAM paper).
    """
    backbone = model.get_layer(backbone_name)
    head = model.get_layer(head_name)
    feature_map = tf.nest.flatten(_outer_output(backbone))[-1]  # The last map: the one the class head pools.
    explained = tf_keras.Model(model.inputs, [feature_map, head.input, _outer_output(head)])
    with tf.GradientTape() as tape:
        maps, head_input, probabilities = explained(dict(inputs), training=False)
        logits = tf.matmul(head_input, head.kernel) + head.bias
        if class_indices is None:
            class_indices = tf.argmax(probabilities, axis=1).numpy().tolist()
        chosen = tf.gather(logits, tf.constant(class_indices, tf.int32), axis=1, batch_dims=1)
    gradients = tape.gradient(chosen, maps)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    heatmaps = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1)).numpy()
    peaks = heatmaps.max(axis=(1, 2), keepdims=True)
    heatmaps = np.divide(heatmaps, peaks, out=np.zeros_like(heatmaps), where=peaks > 0)
    return heatmaps, np.asarray(class_indices)


def plot_grad_cam(images: Sequence[np.ndarray], heatmaps: np.ndarray, titles: Sequence[str], path: str) -> Figure:
    """Each image beside itself with the heatmap, upsampled bilinearly to the image, laid over it."""
    count = len(images)
    figure = Figure(figsize=(5, 2.6 * count), layout="constrained")
    grid = figure.subplots(count, 2, squeeze=False)
    for index in range(count):
        image = np.asarray(images[index])
        height, width = image.shape[:2]
        upsampled = tf.image.resize(heatmaps[index][..., np.newaxis], (height, width), method="bilinear")
        plain, overlaid = grid[index]
        plain.imshow(image)
        plain.set_title(titles[index], fontsize=9)
        overlaid.imshow(image)
        overlaid.imshow(upsampled.numpy()[..., 0], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        # An all-zero map means no channel of the last feature map speaks for the class (often an untrained
        # or collapsed network); say so rather than show a uniform tint that looks like a result.
        overlaid.set_title("Grad-CAM" if heatmaps[index].max() > 0 else "Grad-CAM: no positive evidence", fontsize=9)
        plain.axis("off")
        overlaid.axis("off")
    figure.savefig(path, dpi=100)
    return figure


def decode_images(serialized: Sequence[bytes], feature_name: str = "image") -> list[np.ndarray]:
    images = []
    for record in serialized:
        data = tf.train.Example.FromString(record).features.feature[feature_name].bytes_list.value[0]
        images.append(tf.io.decode_image(data, channels=3, expand_animations=False).numpy())
    return images


def model_summary(model: tf_keras.Model) -> str:
    """Keras's layer table; the backbone, one row there, gets a line of its own (its 100+ layers would
    drown the heads in an expanded table)."""
    lines: list[str] = []
    model.summary(print_fn=lines.append, line_length=120, expand_nested=False)
    for layer in model.layers:
        if layer.name == model_lib.BACKBONE_NAME:
            lines += ["", f"{layer.name}: {len(layer.layers)} layers, {layer.count_params():,} parameters"]
    return "\n".join(lines) + "\n"
