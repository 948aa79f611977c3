"""What TFT's analyzer cache saves: Transform's time with and without it, on unchanged data.

Runs ingest, validation and Transform (no training) on the sample dataset three times in one workspace:
  1. cold: no cache yet;
  2. image.size changed (Transform must rerun, its analyzers are unchanged): the cache from run 1 is reused;
  3. image.size changed again, cache deleted first: the same rerun without the cache.
Prints each Transform execution's wall time (from ML Metadata) and the saving. Usage:
  python -m benchmarks.transform_cache [--images 500] [--workdir /tmp/xfer-transform-cache]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# Sets TF_USE_LEGACY_KERAS before TensorFlow loads (components/__init__.py).
from components import names

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--workdir", default="/tmp/xfer-transform-cache")
    args = parser.parse_args()

    from ml_metadata.metadata_store import metadata_store
    from tfx import v1 as tfx

    from components.ingest import sample_data
    from components.transform import cache as transform_cache
    from pipeline import config as config_lib
    from pipeline import local_runner
    from pipeline import pipeline as pipeline_lib
    from pipeline import workspace as workspace_lib

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    sample_data.write_sample_dataset(workdir / "data", num_images=args.images)
    base = config_lib.load_config(ROOT / "configs" / "sample.yaml", {"data": str(workdir / "data")})
    workspace = workspace_lib.Workspace(workdir / "workspace")

    def run(image_size: int) -> float:
        config = base.replace(image=config_lib.ImageConfig(size=image_size))
        nodes = pipeline_lib.data_validation_nodes(config)
        transform = pipeline_lib.transform_node(config, nodes)
        pipeline = tfx.dsl.Pipeline(
            pipeline_name="transform-cache-bench",
            pipeline_root=str(workspace.pipeline_root),
            components=[*nodes.as_list(), transform],
            enable_cache=True,
            metadata_connection_config=local_runner.metadata_config(workspace),
            beam_pipeline_args=list(config.beam_args),
        )
        with local_runner.program_name_only_argv():
            tfx.orchestration.LocalDagRunner().run(pipeline)
        store = metadata_store.MetadataStore(local_runner.metadata_config(workspace))
        newest = max(
            store.get_executions_by_type("tfx.components.transform.component.Transform")
            or [
                e
                for t in store.get_execution_types()
                if t.name.endswith("CachingTransform")
                for e in store.get_executions_by_type(t.name)
            ],
            key=lambda e: e.id,
        )
        return (newest.last_update_time_since_epoch - newest.create_time_since_epoch) / 1000

    cold = run(71)
    warm = run(72)
    latest = workspace.pipeline_root / names.TRANSFORM / transform_cache.LATEST_DIR
    shutil.rmtree(latest, ignore_errors=True)
    uncached = run(73)
    print(f"images: {args.images}")
    print(f"Transform, first run (no cache):                 {cold:6.1f} s")
    print(f"Transform, image size changed, analyzer cache:   {warm:6.1f} s")
    print(f"Transform, image size changed, no analyzer cache:{uncached:6.1f} s")
    print(f"saved by the cache: {uncached - warm:.1f} s ({(uncached - warm) / uncached:.0%})")


if __name__ == "__main__":
    main()
