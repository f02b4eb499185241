"""vaelab: auto-encoders and variational auto-encoders on MNIST."""

__version__ = "0.1.0"

from .runs import load_run  # noqa: E402

__all__ = ["load_run", "__version__"]
