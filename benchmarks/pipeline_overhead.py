"""What the pipeline costs around training: `xfer run` side by side with a plain tf_keras script.

    python -m benchmarks.pipeline_overhead [--config configs/sample.yaml] [--num-images 500]

In one sitting, on the same freshly generated sample images, it measures and prints:
- `xfer run` (first run, empty workspace): wall time, and each node's time from ML Metadata (an execution's
  registration to its publication, as TFX's launcher records them);
- `benchmarks/plain_keras.py`: the same network, the same epochs on the same train/eval split in a
  plain `model.fit`; the ratio pipeline wall / plain wall is the pipeline's overhead;
- `xfer run` again, unchanged, twice: the first rerun evaluates against the champion the first run pushed
  (Champion, Evaluator and Pusher rerun), the second is served from the cache entirely; their ratios to the
  first run;
- `xfer run` with a config error: the time to the error;
- the pushed SavedModel's variables against 4 bytes x the network's parameter count.

Each step runs in its own process, imports included, so the two sides pay for the same things.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.workspace import Workspace

_ROOT = Path(__file__).resolve().parent.parent


def _timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[float, int]:
    started = time.perf_counter()
    with log.open("w") as handle:
        returncode = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, cwd=_ROOT, env=env)
    return time.perf_counter() - started, returncode


def node_seconds(metadata_path: Path) -> dict[str, float]:
    """Seconds from registration to publication of each node's newest execution."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    store = metadata_store.MetadataStore(config)
    node_type = store.get_context_type("node")
    seconds: dict[str, float] = {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        contexts = [c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type.id]
        if contexts:
            name = contexts[0].name.split(".", 1)[-1]
            seconds[name] = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
    return seconds


_EPOCH_LINE = re.compile(r"\[(frozen|finetune)\] epoch (\d+)/\d+ .* in ([0-9.]+)s")


def trainer_epoch_seconds(log_text: str) -> dict[str, list[float]]:
    """{phase: [seconds of each epoch]} from the Trainer's epoch lines (components/trainer/training.EpochLog)."""
    seconds: dict[str, list[float]] = {}
    for phase, _, value in _EPOCH_LINE.findall(log_text):
        seconds.setdefault(phase, []).append(float(value))
    return seconds


def steady_epoch(seconds: list[float]) -> float | None:
    """The median epoch of a phase after its first (which traces the graph): the per-epoch cost that grows
    with the epochs."""
    rest = sorted(seconds[1:])
    return rest[len(rest) // 2] if rest else None


def saved_model_report(serving_dir: Path) -> dict[str, float]:
    """The pushed model's variables in bytes, and 4 bytes x the parameter count of the weights it holds."""
    import tensorflow as tf

    versions = sorted(p for p in serving_dir.iterdir() if p.is_dir()) if serving_dir.is_dir() else []
    if not versions:
        return {}
    variables = versions[-1] / "variables"
    size = sum(f.stat().st_size for f in variables.iterdir())
    reader = tf.train.load_checkpoint(str(variables / "variables"))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    float_values = sum(
        int(tf.TensorShape(shape).num_elements() or 0)
        for name, shape in shapes.items()
        if dtypes[name] == tf.float32 and "optimizer" not in name.lower() and not name.startswith("_CHECKPOINTABLE")
    )
    return {"variables_bytes": size, "four_bytes_per_weight": 4 * float_values}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sample.yaml")
    parser.add_argument("--num-images", type=int, default=500)
    parser.add_argument("--workdir", help="keep everything here (default: a temporary folder)")
    parser.add_argument("--json", help="write the numbers here too")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xfer-overhead-"))
    workdir.mkdir(parents=True, exist_ok=True)
    xfer = [sys.executable, "-m", "pipeline.cli"]
    env = dict(os.environ)  # The CLI sets TF_USE_LEGACY_KERAS itself (components/__init__.py).
    data, workspace = workdir / "data", workdir / "workspace"
    if not (data / "annotations.csv").exists():
        subprocess.check_call(
            [*xfer, "sample-data", "--out", str(data), "--num-images", str(args.num_images)], cwd=_ROOT, env=env
        )
    run = [*xfer, "run", "--config", args.config, "--data", str(data), "--workspace", str(workspace)]
    results: dict[str, object] = {"images": args.num_images, "workdir": str(workdir)}

    first, code = _timed(run, workdir / "first_run.log", env)
    if code not in (0, 3):
        raise SystemExit(f"xfer run failed ({code}); see {workdir / 'first_run.log'}")
    results["pipeline_wall_s"] = first
    results["trainer_epoch_s"] = trainer_epoch_seconds((workdir / "first_run.log").read_text())
    results["nodes_s"] = node_seconds(Workspace(workspace).metadata_db)
    results["saved_model"] = saved_model_report(Workspace(workspace).serving_dir)

    plain_json = workdir / "plain.json"
    plain, code = _timed(
        [
            sys.executable,
            "-m",
            "benchmarks.plain_keras",
            "--config",
            args.config,
            "--data",
            str(data),
            "--json",
            str(plain_json),
        ],
        workdir / "plain.log",
        env,
    )
    if code:
        raise SystemExit(f"plain_keras failed ({code}); see {workdir / 'plain.log'}")
    results["plain_wall_s"] = plain
    results["plain"] = json.loads(plain_json.read_text())

    champion_only, code = _timed(run, workdir / "champion_rerun.log", env)
    results["champion_rerun_s"] = champion_only
    cached, code = _timed(run, workdir / "cached_run.log", env)
    results["cached_rerun_s"] = cached

    bad = workdir / "bad.yaml"
    bad.write_text(re.sub(r"finetune: \{epochs: \d+", "finetune: {epochs: twelve", (_ROOT / args.config).read_text()))
    error_s, code = _timed([*xfer, "run", "--config", str(bad), "--data", str(data)], workdir / "bad.log", env)
    results["config_error_s"] = error_s
    results["config_error_exit"] = code

    print(f"\n{args.num_images} sample images, {args.config}")
    print(f"{'node (first run)':<22}{'seconds':>9}")
    for name, seconds in results["nodes_s"].items():
        print(f"{name:<22}{seconds:>9.1f}")
    nodes_total = sum(results["nodes_s"].values())
    print(f"{'(outside the nodes)':<22}{first - nodes_total:>9.1f}")
    print(f"\nxfer run (first)      {first:8.1f} s")
    print(
        f"plain tf_keras        {plain:8.1f} s  (imports {results['plain']['imports_s']:.1f}, images "
        f"{results['plain']['load_images_s']:.1f}, training {results['plain']['train_s']:.1f})"
    )
    print(f"pipeline / plain      {first / plain:8.2f}")
    frozen_epochs = len(results["trainer_epoch_s"].get("frozen", []))
    trainer_epoch = steady_epoch(results["trainer_epoch_s"].get("finetune", []))
    plain_epoch = steady_epoch(results["plain"]["epoch_s"][frozen_epochs:])
    if trainer_epoch and plain_epoch:
        results["finetune_epoch_ratio"] = trainer_epoch / plain_epoch
        print(
            f"fine-tuning epoch     {trainer_epoch:8.2f} s in the Trainer, {plain_epoch:.2f} s plain "
            f"(median after the first; ratio {trainer_epoch / plain_epoch:.3f})"
        )
    # Each phase's first epoch traces the training graph; the Trainer traces without autograph, plain Keras with.
    trainer_first = [seconds[0] for seconds in results["trainer_epoch_s"].values() if seconds]
    plain_epochs = results["plain"]["epoch_s"]
    plain_first = [plain_epochs[0], plain_epochs[frozen_epochs]] if len(plain_epochs) > frozen_epochs else []
    if len(trainer_first) == 2 and plain_first:
        results["first_epochs_s"] = {"trainer": trainer_first, "plain": plain_first}
        print(
            f"phases' first epochs  {sum(trainer_first):8.1f} s in the Trainer ({trainer_first[0]:.1f} + "
            f"{trainer_first[1]:.1f}), {sum(plain_first):.1f} s plain ({plain_first[0]:.1f} + {plain_first[1]:.1f})"
        )
    print(f"champion-only rerun   {champion_only:8.1f} s  ({champion_only / first:.3f} of the first run)")
    print(f"fully cached rerun    {cached:8.1f} s  ({cached / first:.3f} of the first run)")
    print(f"config error          {error_s:8.1f} s  (exit {code})")
    if results["saved_model"]:
        model = results["saved_model"]
        print(
            f"pushed variables      {model['variables_bytes'] / 1e6:8.1f} MB  (4 B x weights: "
            f"{model['four_bytes_per_weight'] / 1e6:.1f} MB, ratio "
            f"{model['variables_bytes'] / model['four_bytes_per_weight']:.2f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
