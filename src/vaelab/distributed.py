"""Several processes through PyTorch's own distributed engine (``torchrun``).

    torchrun --standalone --nproc-per-node 2 -m vaelab train --model vae --out runs/x
    torchrun --standalone --nproc-per-node 2 -m vaelab evaluate runs/x --nll-samples 5000

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process; ``init_from_env``
joins the process group (gloo on CPU, NCCL on CUDA, one GPU per process).  Everything else asks
``current()`` for a :class:`Dist`, which for a single process is a no-op: the same code path
trains alone and in a group.

What a group computes (docs/scaling.md):

- **Training**: every process draws the same global batch from the same seeded generator (the
  same images and, with dynamic binarization, the same bits as a single process) and trains on
  its contiguous share of it, through ``DistributedDataParallel``.  Each share's loss is
  weighted by its size, so the averaged gradient is the gradient of the global batch's mean
  loss: ``--batch-size`` is the *global* batch and ``--lr`` means what it means for one process.
  Metrics are summed across processes; only rank 0 writes the run folder.
- **Likelihood**: the test images are dealt out one by one, each image's draws seeded by the
  seed, its index and the sample block (``nll.draw_seed``), and the per-image estimates summed
  back together: the same numbers as one process, up to floating-point order.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from .errors import VaelabError


@dataclass(frozen=True)
class Dist:
    """This process's place in the group (rank 0 of 1 when there is no group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the processes, in place; returns it."""
        if not self.active:
            return t
        if torch_dist.get_backend() == "nccl" and t.device.type != "cuda":
            on_gpu = t.to(torch.device("cuda", torch.cuda.current_device()))
            torch_dist.all_reduce(on_gpu, op=torch_dist.ReduceOp.SUM)
            t.copy_(on_gpu)
        else:
            torch_dist.all_reduce(t, op=torch_dist.ReduceOp.SUM)
        return t

    def sum_values(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors of ``sums`` added up over the processes, in one reduction (float64);
        ``sums`` itself when there is no group."""
        if not self.active or not sums:
            return sums
        keys = sorted(sums)
        total = self.sum_(torch.stack([torch.as_tensor(sums[k]).double() for k in keys]))
        return dict(zip(keys, total, strict=True))

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (the same shape in every process) from every process: (world, *t.shape), on
        the CPU."""
        if not self.active:
            return t.unsqueeze(0).cpu()
        nccl = torch_dist.get_backend() == "nccl"
        src = t.to(torch.device("cuda", torch.cuda.current_device())) if nccl else t
        out = [torch.empty_like(src) for _ in range(self.world)]
        torch_dist.all_gather(out, src.contiguous())
        return torch.stack(out).cpu()

    def share(self, n: int) -> slice:
        """This process's contiguous share of ``n`` items (the first ``n % world`` processes
        take one more)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: ``cuda`` becomes ``cuda:LOCAL_RANK``."""
        if self.active and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device


SINGLE = Dist()


def current() -> Dist:
    """The group this process belongs to (``SINGLE`` when none was joined)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return Dist(
            torch_dist.get_rank(),
            torch_dist.get_world_size(),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    return SINGLE


def launched() -> bool:
    """Whether this process was started by ``torchrun`` in a group of more than one."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Dist:
    """Join the group ``torchrun`` set up: NCCL when the processes use CUDA, else gloo."""
    if not launched():
        return SINGLE
    if not torch_dist.is_available():
        raise VaelabError("this PyTorch build has no torch.distributed: run one process")
    if not torch_dist.is_initialized():
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch_dist.init_process_group("nccl" if cuda else "gloo")
    return current()


def shutdown() -> None:
    """Leave the group.  What used it (DistributedDataParallel's reducer sits in reference
    cycles) is collected first, while the group and the interpreter are alive: freed at
    interpreter exit instead, gloo's worker threads can abort the process."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()
