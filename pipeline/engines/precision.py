"""Mixed precision of the GAN trainers: autocast for the forward passes, one gradient scaler per optimizer.

float16 autocast needs gradient scalers on CUDA; bfloat16 (CPU or CUDA) and fp32 need none, so there the
scalers are disabled and pass losses and steps through unchanged.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer

__all__ = ["GANPrecision"]


class GANPrecision:
    """Autocast settings and the generator's and discriminator's gradient scalers of one trainer.

    Args:
        device: the trainer's device.
        amp: autocast the forward passes.
        amp_dtype: ``"float16"`` (with gradient scalers on CUDA) or ``"bfloat16"``.

    Examples:
        >>> precision = GANPrecision("cpu", amp=True, amp_dtype="bfloat16")
        >>> with precision.autocast():
        ...     torch.ones(2, 2) @ torch.ones(2, 2)
        tensor([[2., 2.],
                [2., 2.]], dtype=torch.bfloat16)
        >>> precision.g_scaler.is_enabled()
        False
    """

    def __init__(self, device: str | torch.device, *, amp: bool, amp_dtype: str):
        if amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"amp_dtype must be 'float16' or 'bfloat16', got {amp_dtype!r}")
        self.enabled, self.dtype = bool(amp), getattr(torch, amp_dtype)
        self.device_type = torch.device(device).type
        use_scaler = self.enabled and amp_dtype == "float16" and self.device_type == "cuda"
        self.g_scaler = torch.amp.GradScaler(self.device_type, enabled=use_scaler)
        self.d_scaler = torch.amp.GradScaler(self.device_type, enabled=use_scaler)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    @staticmethod
    def step(scaler: torch.amp.GradScaler, optimizer: Optimizer, loss: torch.Tensor) -> None:
        """Backward pass of ``loss`` and one optimizer step through ``scaler`` (gradients zeroed first)."""
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
