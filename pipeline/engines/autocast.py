"""An inferer that runs the network under ``torch.autocast`` on the input's device.

MONAI's engines autocast on CUDA only; this inferer also gives CPUs with bfloat16 kernels (AVX-512 BF16,
AMX) their faster path, for any bundle's inference or validation. Outputs keep the autocast dtype: the
configs' postprocessing casts predictions back to float32.

Example:
    >>> import torch
    >>> net = torch.nn.Conv3d(1, 1, 3, padding=1)
    >>> out = AutocastInferer(dtype="bfloat16")(torch.rand(1, 1, 8, 8, 8), net)
    >>> out.dtype
    torch.bfloat16
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer

__all__ = ["AutocastInferer", "AMP_CHOICES", "cpu_has_bf16", "resolve_amp"]

log = logging.getLogger("mriharmony.autocast")
AMP_CHOICES = ("auto", "float32", "bfloat16", "float16")
#: the largest in-mask MAE between bfloat16 and fp32 outputs accepted for bfloat16 by default
BF16_MAX_ERROR = 1e-3


class AutocastInferer(Inferer):
    """``network(inputs)`` under ``torch.autocast(inputs.device.type, dtype)``; fp32 when ``dtype`` is None.

    Args:
        dtype: None (fp32: MONAI's SimpleInferer), ``"bfloat16"`` (CPU or CUDA) or ``"float16"`` (CUDA); the
            configs pass ``resolve_amp(amp, device)``.
    """

    def __init__(self, *, dtype: str | None = None):
        super().__init__()
        if dtype not in (None, "bfloat16", "float16"):
            raise ValueError(f"dtype must be None, 'bfloat16' or 'float16', got {dtype!r}")
        self.dtype = getattr(torch, dtype) if dtype else None

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(inputs.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None):
            return network(inputs, *args, **kwargs)


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 instructions (AVX512-BF16 or AMX-BF16; Linux ``/proc/cpuinfo``)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(amp: str | None, device: str | torch.device = "cpu") -> str | None:
    """The autocast dtype name to run inference in, or None for fp32.

    ``auto`` is bfloat16 on a CPU with native bfloat16 instructions (the harmonization generator's in-mask
    error against fp32 was measured below ``BF16_MAX_ERROR``; see ``python -m pipeline.performance.cyclegan``)
    and fp32 elsewhere, said in a log line; ``float32`` (or None) is fp32; ``bfloat16`` and ``float16``
    are taken as asked.
    """
    if amp in (None, "float32", "none"):
        return None
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {AMP_CHOICES}, got {amp!r}")
    if amp != "auto":
        return amp
    if torch.device(device).type == "cpu" and cpu_has_bf16():
        log.info("bfloat16 autocast: this CPU has native bfloat16 instructions (--amp float32 for fp32)")
        return "bfloat16"
    log.info("fp32: no native bfloat16 on this %s (--amp bfloat16 to autocast anyway)", torch.device(device).type)
    return None
