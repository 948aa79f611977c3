"""The `model:` and `training:` config sections, and what the config checks of each backbone before TF loads."""

from __future__ import annotations

import dataclasses
from typing import Literal

MixedPrecision = Literal["auto", "off", "float16", "bfloat16"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    backbone: Literal["xception", "resnet50", "mobilenet_v2", "efficientnet_b0"] = "xception"
    # "imagenet" (downloaded by Keras), "none" (random init) or a path to a local weights file.
    weights: str = "none"
    dropout_rate: float = 0.2
    head_units: int = 128
    class_loss_weight: float = 1.0
    box_loss_weight: float = 1.0
    # The box head's size parameterisation: "linear" predicts (cx, cy, w, h) and regresses on the corners;
    # "sqrt" predicts (cx, cy, sqrt w, sqrt h) and regresses there, so the same error in width costs more on a
    # small box than on a large one (as in YOLO). The model outputs corners either way.
    box_size: Literal["linear", "sqrt"] = "linear"
    # The box head: "dense" flattens the two feature maps into a dense layer (each position learnt on its own);
    # "spatial" scores every cell of the stride-16 map, takes the softmax-weighted centre, offset and size
    # (a soft argmax, the same convolution at every place). benchmarks/box_settings.py compares them.
    box_head: Literal["dense", "spatial"] = "dense"
    # The IoU-family term of the box loss, beside the smooth L1: "iou", "giou" (Rezatofighi et al. 2019) or
    # "diou" (Zheng et al. 2020), both of which keep a gradient when the boxes do not overlap.
    box_iou_loss: Literal["iou", "giou", "diou"] = "iou"


@dataclasses.dataclass(frozen=True)
class PhaseConfig:
    epochs: int
    learning_rate: float
    # "constant", or "cosine": decays from learning_rate towards 0 over the phase's epochs.
    schedule: Literal["constant", "cosine"] = "constant"
    # Fine-tuning only: 0 unfreezes the whole backbone, N > 0 only its last N layers, or its last N blocks
    # (BACKBONE_BLOCKS below: Xception has 14, block1..block14). Set one of the two.
    unfreeze_top_layers: int = 0
    unfreeze_top_blocks: int = 0


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Train-split augmentation; the box moves with the image. All off by default."""

    flip: bool = False  # Horizontal flip with probability 1/2.
    zoom: float = 0.0  # Random square window of side 1 - zoom .. 1 of the image, resized back.
    brightness: float = 0.0  # Uniform shift of up to +-brightness pixel levels (0..255 scale).


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    frozen: PhaseConfig
    finetune: PhaseConfig
    batch_size: int = 16
    seed: int = 42
    shuffle_buffer: int = 1000
    augment: AugmentConfig = AugmentConfig()
    # Stop a phase after this many epochs without a better val_loss, keeping its best weights; 0 = off.
    early_stopping_patience: int = 0
    # auto: float16 on GPUs with tensor cores, bfloat16 on CPUs with AMX, float32 otherwise; or off | float16 |
    # bfloat16 (components/trainer/distribution.py). The heads' outputs and the losses stay float32.
    mixed_precision: MixedPrecision = "auto"
    # The transformed examples are kept in memory after the first epoch when their files take at most this many
    # MB on disk (the sample: a few MB); larger datasets stream from disk every epoch. 0 = never.
    cache_max_mb: int = 1024


# Smallest input each keras.applications backbone accepts: the config checks it before TF loads, and
# model.py's Backbone reads it.
BACKBONE_MIN_SIZE = {"xception": 71, "resnet50": 32, "mobilenet_v2": 32, "efficientnet_b0": 32}
# How many blocks each backbone has (components/trainer/model.py finds them by layer name; a test checks the counts).
BACKBONE_BLOCKS = {"xception": 14, "resnet50": 16, "mobilenet_v2": 16, "efficientnet_b0": 16}


# What `model.weights` may name besides none and imagenet: Keras HDF5 files (components/trainer/model.py loads them).
WEIGHTS_SUFFIXES = (".h5", ".hdf5")
