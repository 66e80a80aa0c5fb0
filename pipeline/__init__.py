"""mriharmony: multisite 3D brain T1 MRI preprocessing, harmonization, synthesis and evaluation."""

from __future__ import annotations

__version__ = "0.1.0"
