"""vaelab: auto-encoders and variational auto-encoders on MNIST.

``vaelab.load_run(path)`` returns a trained model; ``vaelab.Run.load(path)`` the run folder
with its typed configuration.  ``vaelab.save_pretrained(run, dir)`` and
``vaelab.from_pretrained(dir_or_repo_id)`` write and read a model in the Hugging Face convention
(config.json + model.safetensors).  All are imported on first use, so ``import vaelab`` (and
the command line's ``--help``) does not load torch.
"""

__version__ = "0.1.0"

__all__ = ["Run", "from_pretrained", "load_run", "push_to_hub", "save_pretrained", "__version__"]


def __getattr__(name: str):
    if name in ("Run", "load_run"):
        from . import runs

        return getattr(runs, name)
    if name in ("save_pretrained", "from_pretrained", "push_to_hub"):
        from . import hub

        return getattr(hub, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
