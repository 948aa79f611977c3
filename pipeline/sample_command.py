"""`xfer sample-data`: the deterministic sample dataset, in xfer's CSV layout or as a COCO Camera Traps export,
optionally with images that hold no object. The work is components/ingest/sample_data.py; this module reads the
command line and prints. It loads no TensorFlow."""

from __future__ import annotations

import argparse

from components.ingest.settings import SAMPLE_LAYOUTS


def add_parser(commands) -> None:
    sample = commands.add_parser("sample-data", help="write the deterministic sample dataset")
    sample.add_argument("--out", required=True, help="folder to write the images and annotations.csv into")
    sample.add_argument("--num-images", type=int, default=500, help="number of images (default 500)")
    sample.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same files")
    sample.add_argument(
        "--empty-fraction",
        type=float,
        default=0.0,
        help="share of images with no object, labelled `empty` with empty box cells (read with ingest.no_object: keep)",
    )
    sample.add_argument(
        "--layout",
        choices=SAMPLE_LAYOUTS,
        default="csv",
        help="annotations.csv (default), or a COCO Camera Traps export (annotations.json, images/)",
    )


def run(args: argparse.Namespace) -> int:
    from components.ingest import sample_data

    records = sample_data.write_sample_dataset(
        args.out, num_images=args.num_images, seed=args.seed, empty_fraction=args.empty_fraction, layout=args.layout
    )
    empty = sum(record.box is None for record in records)
    annotations = "annotations.csv" if args.layout == "csv" else "annotations.json"
    print(f"wrote {len(records)} images ({empty} with no object) and {annotations} to {args.out}")
    return 0
