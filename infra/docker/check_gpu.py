"""Does TensorFlow in this image find the CUDA and cuDNN it was built against? Exits 1 with the reason if not.

    python infra/docker/check_gpu.py                   # at image build time (the GPU Dockerfile runs it)
    python /app/check_gpu.py --require-device          # in a running pod on a GPU node

A build has no GPU and no driver (libcuda.so.1 comes from the node through the NVIDIA container toolkit), so
the build-time check is what the image itself must bring: a CUDA build of TensorFlow, and the CUDA runtime,
cuBLAS and cuDNN of the major versions that build names (tf.sysconfig.get_build_info()), loadable by the
dynamic linker the way TensorFlow loads them (dlopen by soname). A CUDA 13 runtime next to a TensorFlow built
for CUDA 12 fails here, not in the Trainer's first epoch on the CPU. In a pod, --require-device also asks
TensorFlow for a GPU device, which needs the driver and the device plugin.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def required_libraries(build_info: dict) -> list[str]:
    cuda_major = str(build_info.get("cuda_version", "")).split(".")[0]
    cudnn_major = str(build_info.get("cudnn_version", "")).split(".")[0]
    return [f"libcudart.so.{cuda_major}", f"libcublas.so.{cuda_major}", f"libcudnn.so.{cudnn_major}"]


def problems(require_device: bool) -> list[str]:
    import tensorflow as tf

    build_info = dict(tf.sysconfig.get_build_info())
    if not build_info.get("is_cuda_build"):
        return [f"TensorFlow {tf.__version__} is not a CUDA build"]
    found = []
    for library in required_libraries(build_info):
        try:
            ctypes.CDLL(library)
        except OSError as error:
            found.append(
                f"{library} (TensorFlow {tf.__version__} is built for CUDA "
                f"{build_info['cuda_version']}, cuDNN {build_info['cudnn_version']}): {error}"
            )
    if require_device and not found and not tf.config.list_physical_devices("GPU"):
        found.append("TensorFlow sees no GPU device (driver, device plugin or the pod's nvidia.com/gpu limit)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_gpu")
    parser.add_argument("--require-device", action="store_true", help="also need a visible GPU (in a pod)")
    args = parser.parse_args(argv)
    found = problems(args.require_device)
    for problem in found:
        print(
            f"check_gpu: cannot load {problem}" if problem.startswith("lib") else f"check_gpu: {problem}",
            file=sys.stderr,
        )
    if not found:
        print("check_gpu: TensorFlow can load CUDA and cuDNN" + (" and sees a GPU" if args.require_device else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
