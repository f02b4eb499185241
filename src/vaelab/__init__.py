"""vaelab: auto-encoders and variational auto-encoders on MNIST.

``vaelab.load_run(path)`` returns a trained model; ``vaelab.Run.load(path)`` the run folder
with its typed configuration.  Both are imported on first use, so ``import vaelab`` (and the
command line's ``--help``) does not load torch.
"""

__version__ = "0.1.0"

__all__ = ["Run", "load_run", "__version__"]


def __getattr__(name: str):
    if name in ("Run", "load_run"):
        from . import runs

        return getattr(runs, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
