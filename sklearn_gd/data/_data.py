"""Devices, dtypes and conversions between numpy and torch.

Rules:

* ``device=None`` follows the data: a torch tensor trains where it lives,
  anything else on the CPU. ``"auto"`` takes CUDA, else the CPU. An explicit
  device always wins.
* Apple's MPS is refused with a clear message: training keeps float64
  statistics (the Gram matrix, the objective of each epoch), and MPS has no
  float64.
* float32 stays float32, float64 stays float64 (the estimator's validation
  has already turned any other numeric input into float64).
* numpy arrays become tensors without a copy where torch allows it (a
  C-contiguous, writeable array on the CPU); read-only buffers are copied,
  since ``torch.from_numpy`` would otherwise warn and share memory it may
  not write.
"""

from __future__ import annotations

import re

import numpy as np
import torch

# Rows per chunk when a pass over X builds a statistic or streams X from the
# host, and bytes of X per chunk at most (a wide X takes fewer rows): bounds
# temporaries and staging buffers to min(CHUNK_ROWS rows, CHUNK_BYTES).
CHUNK_ROWS = 16384
CHUNK_BYTES = 64 * 2**20

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ROWS",
    "resolve_device",
    "to_numpy",
    "to_tensor",
    "validate_device_string",
]

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?|mps|auto)$")


def validate_device_string(device) -> None:
    """Raise ValueError for a device string the estimator does not know."""
    if device is not None and not _DEVICE_RE.match(str(device)):
        raise ValueError(
            f"device={device!r} is not one of None, 'cpu', 'cuda', 'cuda:N', "
            "'mps', 'auto'."
        )


def resolve_device(device, data=None) -> torch.device:
    """The torch device to train or predict on.

    Raises
    ------
    ValueError
        If the requested accelerator is absent.
    """
    validate_device_string(device)
    if device is None:
        if isinstance(data, torch.Tensor):
            return _refuse_mps(data.device, "the data is on")
        return torch.device("cpu")
    if device == "auto":
        # MPS is never chosen: see _refuse_mps
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = _refuse_mps(torch.device(device), "device=")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on "
                "this machine (torch.cuda.is_available() is False). Use "
                "device='cpu' or device='auto'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    return dev


def _refuse_mps(dev: torch.device, where: str) -> torch.device:
    if dev.type != "mps":
        return dev
    raise ValueError(
        f"MPS is not supported ({where} {str(dev)!r}): training keeps float64 "
        "statistics (the Gram matrix, each epoch's objective) and MPS has no "
        "float64. Use device='cpu' (or 'auto', which never picks MPS); tensors "
        "on MPS can be moved with .cpu()."
    )


def to_tensor(a, device: torch.device, dtype: torch.dtype | None = None):
    """A tensor on ``device`` viewing ``a`` where possible, else a copy."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype or a.dtype)
    arr = np.asarray(a)
    if not (arr.flags.c_contiguous and arr.flags.writeable):
        arr = np.array(arr, order="C", copy=True)
    t = torch.from_numpy(arr)
    return t.to(device=device, dtype=dtype or t.dtype)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy copy of ``t`` (always on the host, detached)."""
    return t.detach().cpu().numpy().copy()
