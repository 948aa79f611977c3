"""Ingest benchmark: wall time and peak memory of the ingest Beam pipeline for N images, 1 vs 2 workers.

    python -m benchmarks.ingest --sizes 1000 4000 16000 --workers 1 2

`--scale 6` enlarges every sample image (and its box) six times, to photo sizes around 800x800: the per-image
work of real datasets, where the sample's thumbnails are decoded too fast for a second worker to pay off.

Each measurement runs in a fresh process (so one run's memory cannot hide in another's), and its memory is the
peak of the summed resident memory of that process and all its children: with
`--direct_running_mode=multi_processing` the Beam workers are child processes. Datasets come from
`xfer sample-data` and are kept in --data-root between runs, since generating 16k images takes minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from components import names

_BEAM_ARGS = {
    1: ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    2: ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
}


def dataset(data_root: Path, num_images: int, scale: int = 1) -> Path:
    from components.ingest import sample_data

    folder = data_root / f"sample_{num_images}"
    if not (folder / "annotations.csv").exists():
        sample_data.write_sample_dataset(folder, num_images=num_images, seed=7)
    if scale == 1:
        return folder
    scaled = data_root / f"sample_{num_images}_x{scale}"
    if not (scaled / "annotations.csv").exists():
        _enlarge(folder, scaled, scale)
    return scaled


def _enlarge(source: Path, target: Path, scale: int) -> None:
    import csv

    from PIL import Image

    target.mkdir(parents=True, exist_ok=True)
    with open(source / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        with Image.open(source / row["filename"]) as image:
            large = image.resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
        large.save(target / row["filename"], format="JPEG", quality=90)
        for key in names.BOX_CORNERS:
            row[key] = str(int(row[key]) * scale)
    # Written last, so an interrupted run is redone rather than half-used.
    with open(target / "annotations.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def measure(data_dir: Path, workers: int) -> dict[str, float]:
    """Runs one ingest in a child process; returns its ingest time, total time and peak memory."""
    with tempfile.TemporaryDirectory(prefix="xfer-bench-") as out_dir:
        command = [sys.executable, "-m", "benchmarks.ingest", "--one", str(data_dir), out_dir, str(workers)]
        started = time.monotonic()
        process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = _watch_peak_rss(process)
        stdout, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"ingest of {data_dir} with {workers} worker(s) failed (exit {process.returncode})")
        result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, "total_seconds": time.monotonic() - started, "peak_rss_mb": peak / 2**20}


def _watch_peak_rss(process: psutil.Popen) -> int:
    peak = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(_rss(member) for member in tree))
            except psutil.NoSuchProcess:
                pass
            stop.wait(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    process.wait()
    stop.set()
    watcher.join()
    return peak


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def run_one(data_dir: str, out_dir: str, workers: int) -> None:
    """The measured child: imports first (not timed), then the ingest alone, timed; prints one JSON line."""
    from components.ingest import beam as ingest_beam

    started = time.monotonic()
    summary = ingest_beam.ingest_to_tfrecords(data_dir, ingest_beam.IngestSettings(), out_dir, _BEAM_ARGS[workers])
    print(json.dumps({"ingest_seconds": time.monotonic() - started, "accepted": summary["accepted"]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000], help="numbers of images")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], choices=sorted(_BEAM_ARGS))
    parser.add_argument("--scale", type=int, default=1, help="enlarge the sample images this many times")
    parser.add_argument("--data-root", default="/tmp/xfer-bench-data", help="where generated datasets are kept")
    parser.add_argument("--one", nargs=3, metavar=("DATA", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one[0], args.one[1], int(args.one[2]))
        return 0
    data_root = Path(args.data_root)
    print(f"{'images':>7} {'workers':>7} {'ingest s':>9} {'total s':>8} {'images/s':>9} {'peak MB':>8}", flush=True)
    for num_images in args.sizes:
        data_dir = dataset(data_root, num_images, args.scale)
        for workers in args.workers:
            result = measure(data_dir, workers)
            if result["accepted"] != num_images:
                raise RuntimeError(f"expected {num_images} accepted examples, got {result['accepted']}")
            rate = num_images / result["ingest_seconds"]
            print(
                f"{num_images:>7} {workers:>7} {result['ingest_seconds']:>9.1f} {result['total_seconds']:>8.1f} "
                f"{rate:>9.0f} {result['peak_rss_mb']:>8.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
