"""How fast the Trainer's input pipeline reads Transform's output, and how many bytes an example takes.

    python -m benchmarks.input_pipeline [--images 256] [--size 299] [--batch-size 32] [--epochs 3]

Generates sample images (`xfer sample-data`'s generator), resizes them with Transform's own functions
(`features.decode_and_resize`, then `features.store_images` in each layout) and writes GZIP TFRecords of
transformed examples in 4 shards, as Transform does. Then, for each layout, it reads them through the Trainer's
input pipeline (`training.make_dataset`, the function the Trainer calls) for `--epochs` passes, and prints
images/s (after the first pass, which pays for start-up), images/s per core and bytes per example on disk:

- `pixels`: int64 pixels 0..255, the layout before the compact one;
- `jpeg`: JPEG at the target size, decoded in the input pipeline (`image.stored_as: jpeg`, the default);
- `jpeg, cached`: the same with the in-memory cache the Trainer uses for small datasets;
- `plain tf.data`: the same JPEG records read by a plain tf.data reader (parse, decode, batch), the
  reference for what the pipeline adds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from components import names  # Sets TF_USE_LEGACY_KERAS before TensorFlow loads (components/__init__.py).


def write_layouts(image_dir: Path, out_dir: Path, size: int, quality: int, shards: int = 4) -> dict[str, list[str]]:
    """The sample images as Transform would store them, in both layouts: {layout: [tfrecord.gz files]}."""
    import tensorflow as tf

    from components.transform import features

    paths = sorted(image_dir.glob("*.jpg"))
    files: dict[str, list[str]] = {}
    for layout in ("pixels", "jpeg"):
        settings = features.TransformSettings(image_size=size, features=(), stored_as=layout, jpeg_quality=quality)
        files[layout] = [str(out_dir / f"{layout}-{shard:02d}-of-{shards:02d}.gz") for shard in range(shards)]
        writers = [tf.io.TFRecordWriter(path, options="GZIP") for path in files[layout]]
        for start in range(0, len(paths), 32):
            chunk = paths[start : start + 32]
            encoded = tf.constant([path.read_bytes() for path in chunk])
            pixels, _ = features.decode_and_resize(encoded, size)
            stored = features.store_images(pixels, settings).numpy()
            for offset, value in enumerate(stored):
                feature = (
                    tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                    if layout == "jpeg"
                    else tf.train.Feature(int64_list=tf.train.Int64List(value=value.reshape(-1)))
                )
                label = tf.train.Feature(int64_list=tf.train.Int64List(value=[(start + offset) % 5]))
                columns = {names.IMAGE: feature, "label_id": label}
                example = tf.train.Example(features=tf.train.Features(feature=columns))
                writers[(start + offset) % shards].write(example.SerializeToString())
        for writer in writers:
            writer.close()
    return files


def feature_spec(layout: str, size: int) -> dict:
    import tensorflow as tf

    image = (
        tf.io.FixedLenFeature([], tf.string) if layout == "jpeg" else tf.io.FixedLenFeature([size, size, 3], tf.int64)
    )
    return {names.IMAGE: image, "label_id": tf.io.FixedLenFeature([], tf.int64)}


def plain_reader(files: list[str], size: int, batch_size: int):
    """A plain tf.data reader of the JPEG records: what any training on these files would do at least."""
    import tensorflow as tf

    def parse(record):
        parsed = tf.io.parse_single_example(record, feature_spec("jpeg", size))
        return tf.io.decode_jpeg(parsed[names.IMAGE], channels=3), parsed["label_id"]

    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def images_per_second(dataset, epochs: int) -> float:
    """Steady-state images/s: every pass after the first, each batch's images forced into host memory."""
    seconds, images = 0.0, 0
    for epoch in range(epochs):
        started, count = time.perf_counter(), 0
        for batch in dataset:
            image = batch[0][names.IMAGE] if isinstance(batch[0], dict) else batch[0]
            count += int(image.numpy().shape[0])
        if epoch:  # The first pass pays for graph tracing and thread start-up.
            seconds += time.perf_counter() - started
            images += count
    return images / seconds


def measure(files: dict[str, list[str]], count: int, size: int, batch_size: int, epochs: int) -> list[dict]:
    from components.trainer import training

    cores = len(os.sched_getaffinity(0))
    rows = []
    cases = [
        ("pixels", "pixels", 0),
        ("jpeg", "jpeg", 0),
        ("jpeg, cached", "jpeg", 1 << 40),
    ]
    for name, layout, cache in cases:
        dataset = training.make_dataset(
            files[layout],
            feature_spec(layout, size),
            [names.IMAGE],
            batch_size,
            shuffle=True,
            seed=0,
            image_size=size,
            shuffle_buffer=256,
            cache_max_bytes=cache,
        )
        rows.append({"reader": name, "layout": layout, "images_per_s": images_per_second(dataset, epochs)})
    rows.append(
        {
            "reader": "plain tf.data",
            "layout": "jpeg",
            "images_per_s": images_per_second(plain_reader(files["jpeg"], size, batch_size), epochs),
        }
    )
    for row in rows:
        layout_files = files[row["layout"]]
        row["cores"] = cores
        row["images_per_s_per_core"] = row["images_per_s"] / cores
        row["bytes_per_example"] = sum(os.path.getsize(path) for path in layout_files) / count
    return rows


def format_rows(rows: list[dict], size: int) -> str:
    lines = [f"{'reader':<16}{'images/s':>10}{'per core':>10}{'KiB/example':>13}   ({size} px)"]
    for row in rows:
        lines.append(
            f"{row['reader']:<16}{row['images_per_s']:>10.0f}{row['images_per_s_per_core']:>10.0f}"
            f"{row['bytes_per_example'] / 1024:>13.1f}"
        )
    base = next(row for row in rows if row["reader"] == "pixels")
    compact = next(row for row in rows if row["reader"] == "jpeg")
    lines.append(
        f"jpeg / pixels: {compact['images_per_s'] / base['images_per_s']:.2f}x the images/s, "
        f"{compact['bytes_per_example'] / base['bytes_per_example']:.2f} of the bytes"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=299)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data; the first is not timed")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument("--workdir", help="keep the images and records here (default: a temporary folder)")
    parser.add_argument("--json", help="write the numbers here too")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the first pass is not timed)")

    from components.ingest import sample_data

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xfer-input-"))
    sample_data.write_sample_dataset(workdir / "images", num_images=args.images)
    files = write_layouts(workdir / "images", workdir, args.size, args.jpeg_quality)
    rows = measure(files, args.images, args.size, args.batch_size, args.epochs)
    print(format_rows(rows, args.size))
    if args.json:
        Path(args.json).write_text(json.dumps({"size": args.size, "images": args.images, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
