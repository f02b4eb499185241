"""vaelab: auto-encoders and variational auto-encoders on MNIST.

``vaelab.load_run(path)`` returns a trained model; ``vaelab.Run.load(path)`` the run folder
with its typed configuration.  ``vaelab.save_pretrained(run, dir)`` and
``vaelab.from_pretrained(dir_or_repo_id)`` write and read a model in the Hugging Face convention
(config.json + model.safetensors).  All are imported on first use, so ``import vaelab`` (and
the command line's ``--help``) does not load torch.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["Run", "from_pretrained", "load_run", "push_to_hub", "save_pretrained", "__version__"]

_LAZY = {
    "Run": ".runs",
    "load_run": ".runs",
    "save_pretrained": ".hub",
    "from_pretrained": ".hub",
    "push_to_hub": ".hub",
}


def __getattr__(name: str):
    """The public names, each from its module imported on first use (which loads torch)."""
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(module, __name__), name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
