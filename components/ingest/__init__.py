"""Step 1, ingest: a folder of images and annotations (any supported format) to GZIP TFRecords of tf.Example.

The node is `example_gen.ImageExampleGen`; it runs `beam.py`, the Beam pipeline over the plain readers
(`formats`), the image checks (`image_io`) and the Record-to-Example conversion (`examples`).
`sample_data` writes the small learnable dataset the README and the tests use.
"""
