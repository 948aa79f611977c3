"""A GPU node's check: the fine-tuning phase's training throughput on one GPU and on all of them, in float32
and in mixed precision, and how well it scales.

    python -m benchmarks.gpu [--image-size 299] [--batch-size 32] [--steps 30] [--warmup-steps 5]
                             [--backbone xception] [--json gpu.json]
    python -m benchmarks.gpu --cpu-devices 2 ...    # no GPU: the CPU split into 2 logical devices (the test)

The network is the pipeline's own (`build_model`: image only, class and box heads, `model.weights: none`), its
backbone unfrozen and compiled as the fine-tuning phase compiles it; the devices are chosen as the Trainer
chooses them (`distribution.choose_strategy`: one device -> TensorFlow's default, several -> MirroredStrategy).
`--batch-size` is per replica: N devices train on N x batch-size images a step, each kept as busy as one was.
The data is synthetic (random pixels, labels and boxes held in memory, repeated): nothing is read from disk,
so what is measured is the training step, not storage. Each configuration is built in a fresh strategy scope
and timed (time.perf_counter) over `--steps` steps after `--warmup-steps` (the first traces the step), in a
loop of the model's `train_step`, the step `model.fit` runs: images/s = steps x global batch / seconds.

Scaling efficiency = images/s on N devices / (N x images/s on 1), in the same precision: 1.0 is linear; well
below it, the all-reduce of the gradients (GPUs without NVLink) or the host feeding them is what limits.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import components  # noqa: E402, F401  sets TF_USE_LEGACY_KERAS (components/__init__.py)
from components import names  # noqa: E402

# The sample config's training.finetune.learning_rate; the rate does not change what a step costs.
FINETUNE_LEARNING_RATE = 1e-3
NUM_CLASSES = 10
# Distinct synthetic examples held in memory (as uint8: 17 MB at 299 px); the batches cycle through them.
POOL_SIZE = 64
# `training.mixed_precision` settings measured (distribution.choose_policy names their policies): float16 has
# tensor cores to use on GPUs; a CPU has no float16 units, bfloat16 is its mixed precision.
GPU_SETTINGS = ("off", "float16")
CPU_SETTINGS = ("off", "bfloat16")
NOT_GPU = "These are CPU numbers, not GPU ones."
NO_GPU = (
    "No GPU visible to TensorFlow (on a cluster: the driver, the device plugin or the pod's nvidia.com/gpu "
    f"limit). Measuring the CPU as 1 device. {NOT_GPU}"
)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One configuration's training throughput."""

    devices: int  # The devices asked for.
    precision: str  # The Keras policy: float32, mixed_float16 or mixed_bfloat16.
    num_replicas_in_sync: int  # The replicas the strategy really trained on.
    global_batch: int  # Images a step, over all replicas.
    steps: int  # Timed steps, after the warm-up.
    seconds: float
    images_per_second: float
    per_device_images_per_second: float
    # images/s on N devices / (N x images/s on 1) in the same precision; None for the 1-device rows.
    scaling_efficiency: float | None = None


def measurement(
    devices: int, precision: str, replicas: int, global_batch: int, steps: int, seconds: float
) -> Measurement:
    if seconds <= 0:
        raise ValueError(f"a timed run must take some time, got {seconds} s")
    rate = steps * global_batch / seconds
    return Measurement(devices, precision, replicas, global_batch, steps, seconds, rate, rate / replicas)


def with_efficiency(rows: Sequence[Measurement]) -> list[Measurement]:
    """The rows, those on several devices with their scaling efficiency against the 1-device row of their
    precision (None where there is no such row)."""
    single = {row.precision: row.images_per_second for row in rows if row.num_replicas_in_sync == 1}
    result = []
    for row in rows:
        efficiency = None
        if row.num_replicas_in_sync > 1 and single.get(row.precision):
            efficiency = row.images_per_second / (row.num_replicas_in_sync * single[row.precision])
        result.append(dataclasses.replace(row, scaling_efficiency=efficiency))
    return result


def format_table(rows: Sequence[Measurement], device_kind: str) -> str:
    """A Markdown table, aligned, so that it reads in a terminal and pastes into a document."""
    header = (f"{device_kind}s", "precision", "global batch", "images/s", "per-device images/s", "scaling efficiency")
    cells = [
        (
            str(row.num_replicas_in_sync),
            row.precision,
            str(row.global_batch),
            f"{row.images_per_second:.1f}",
            f"{row.per_device_images_per_second:.1f}",
            "-" if row.scaling_efficiency is None else f"{row.scaling_efficiency:.2f}",
        )
        for row in rows
    ]
    widths = [max(len(line[column]) for line in [header, *cells]) for column in range(len(header))]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.ljust(width) if column == 1 else value.rjust(width)
            for column, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join("-" * width for width in widths) + " |"
    return "\n".join([line(header), rule, *(line(values) for values in cells)])


def notes(gpus: Sequence[str], cpus: int, without_tensor_cores: bool) -> list[str]:
    """What to know before reading the numbers: which devices they are of, and what they cannot show."""
    if not gpus:
        if cpus > 1:
            return [f"No GPU visible to TensorFlow: the CPU split into {cpus} logical devices stands in. {NOT_GPU}"]
        return [NO_GPU]
    found = list(gpus)
    if len(gpus) == 1:
        found.append("One GPU visible: scaling needs two or more (the pod's nvidia.com/gpu limit).")
    if without_tensor_cores:
        found.append(
            "A GPU without tensor cores (compute capability below 7.0): mixed_float16 is not expected to be faster "
            "there, and training.mixed_precision: auto keeps float32 on it."
        )
    return found


def device_counts(visible: int) -> list[int]:
    """1, and every visible device when there are several."""
    return [1] if visible <= 1 else [1, visible]


def synthetic_dataset(image_size: int, global_batch: int, seed: int = 0):
    """Random pixels, labels and boxes from memory, repeated forever, batched to the global batch."""
    import numpy as np
    import tensorflow as tf

    from components.trainer import model as model_lib

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (POOL_SIZE, image_size, image_size, 3), dtype=np.uint8)
    corners = rng.uniform(0.0, 0.5, (POOL_SIZE, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.1, 0.5, (POOL_SIZE, 2))], axis=1).astype(np.float32)
    targets = {
        model_lib.PROBABILITIES: rng.integers(0, NUM_CLASSES, POOL_SIZE).astype(np.int64),
        model_lib.BOX: boxes,
    }
    # uint8 pixels, the network's image input (as the Trainer's input pipeline decodes them).
    dataset = tf.data.Dataset.from_tensor_slices(({names.IMAGE: images}, targets)).repeat()
    return dataset.batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def timed_steps(strategy, network, dataset, warmup_steps: int, steps: int) -> float:
    """Seconds that `steps` training steps take after `warmup_steps` (the first one traces)."""
    import tensorflow as tf

    # `train_step` is what `model.fit` runs each step: the forward pass, the compiled losses, the gradients
    # (scaled and unscaled in float16), the optimizer and the metrics. Traced without autograph: it only
    # rewrites Python control flow on tensors, which neither the network nor Keras's step has, so the graph
    # is the same, traced faster (Xception, 71 px, here: a first step of 9 s against 34 s in `model.fit` on
    # one device, 27 s against 41 s on two; paid per configuration).
    @tf.function(autograph=False)
    def train_step(iterator):
        logs = strategy.run(network.train_step, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, logs["loss"], axis=None)

    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    for _ in range(warmup_steps):
        loss = train_step(iterator)
    float(loss)  # Waits for the device: the steps are queued asynchronously.
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(iterator)
    float(loss)
    return time.perf_counter() - start


def fine_tuning_seconds(strategy, args: argparse.Namespace, global_batch: int) -> float:
    """The fine-tuning phase's network (backbone unfrozen), built and compiled in `strategy`'s scope, timed."""
    from components.trainer import model as model_lib
    from components.trainer.settings import ModelConfig

    model_config = ModelConfig(backbone=args.backbone, weights="none")
    image_only = model_lib.ModelInputs(categorical={}, numeric=(), embedding_dims={})
    with strategy.scope():
        network = model_lib.build_model(model_config, args.image_size, image_only, NUM_CLASSES)
        model_lib.set_backbone_trainable(network, True)
        model_lib.compile_model(network, model_config, FINETUNE_LEARNING_RATE)
        dataset = synthetic_dataset(args.image_size, global_batch)
        return timed_steps(strategy, network, dataset, args.warmup_steps, args.steps)


def measure(
    devices: int, setting: str, args: argparse.Namespace, gpus: Sequence[str], cpus: Sequence[str]
) -> Measurement:
    """One configuration on `devices` devices, in a fresh strategy scope; its memory freed after."""
    import tf_keras

    from components.trainer import distribution

    policy = distribution.choose_policy(setting, [], [])  # A forced setting: the hardware is not consulted.
    strategy = distribution.choose_strategy(gpus[:devices], cpus[:devices])
    replicas = strategy.num_replicas_in_sync
    global_batch = args.batch_size * replicas
    tf_keras.utils.set_random_seed(0)
    tf_keras.mixed_precision.set_global_policy(policy)  # Before the layers are built: they take it then.
    try:
        seconds = fine_tuning_seconds(strategy, args, global_batch)
    finally:
        # The network is out of scope here, so these free it before the next configuration is built.
        tf_keras.mixed_precision.set_global_policy("float32")
        tf_keras.backend.clear_session()
        gc.collect()
    return measurement(devices, policy, replicas, global_batch, args.steps, seconds)


def gpu_descriptions() -> list[str]:
    import tensorflow as tf

    described = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = ".".join(str(part) for part in details.get("compute_capability", ()))
        described.append(f"{gpu.name}: {details.get('device_name', 'GPU')} (compute capability {capability or '?'})")
    return described


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=32, help="per replica")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps first (the first one traces)")
    parser.add_argument("--backbone", default="xception")
    parser.add_argument("--cpu-devices", type=int, default=0, help="split the CPU into N logical devices")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args(argv)
    for name in ("image_size", "batch_size", "steps", "warmup_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import tensorflow as tf

    from components.trainer import distribution

    if args.cpu_devices > 1:
        distribution.split_cpu(args.cpu_devices)

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
    device_kind = "GPU" if gpus else "CPU"
    described = gpu_descriptions()
    print(f"TensorFlow {tf.__version__}; {args.backbone}, {args.image_size} px, {args.batch_size} images per replica")
    capabilities = distribution.gpu_capabilities()
    without_tensor_cores = any(capability < distribution.TENSOR_CORE_CAPABILITY for capability in capabilities)
    for note in notes(described, len(cpus), without_tensor_cores):
        print(note)
    rows = []
    for setting in GPU_SETTINGS if gpus else CPU_SETTINGS:
        for devices in device_counts(len(gpus or cpus)):
            rows.append(measure(devices, setting, args, gpus, cpus))
            row = rows[-1]
            print(
                f"{row.num_replicas_in_sync} {device_kind}(s), {row.precision}: {row.images_per_second:.1f} images/s",
                flush=True,
            )
    rows = with_efficiency(rows)
    print()
    print(format_table(rows, device_kind))
    if args.json:
        report = {
            "device_kind": device_kind,
            "devices": gpus or cpus,
            "gpus": described,
            "backbone": args.backbone,
            "image_size": args.image_size,
            "batch_size_per_replica": args.batch_size,
            "warmup_steps": args.warmup_steps,
            "rows": [dataclasses.asdict(row) for row in rows],
        }
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
