"""``python -m pipeline.run``: print the run-folder layout documented in docs/usage.md."""

from __future__ import annotations

from pipeline.run.layout import RunLayout

if __name__ == "__main__":
    print(RunLayout("mriharmony-demo").tree())
