"""Where this process stands in a multi-process run, and the Stop that all its processes agree on.

Read by :class:`core.train.job.TrainingJob`; the launcher and the following of such a run are
:mod:`core.train.launch`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dist:
    """This process's place in a multi-process run, from the launcher's environment (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_env() -> Dist:
    env = os.environ
    return Dist(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


class SharedStop:
    """Stop, agreed by every process after each step: the local Stop (a signal, the job's stop()) or ``RUN/.stop``
    on any of them stops all of them at the same step (an all-reduce of one number). Called once per step by every
    rank, in step: the trainer callback's ``on_step_end``."""

    def __init__(self, event, request: Path | None, world_size: int):
        self.event, self.request, self.world_size = event, request, world_size

    def is_set(self) -> bool:
        local = self.event.is_set() or (self.request is not None and self.request.exists())
        if self.world_size > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                device = (torch.device("cuda", torch.cuda.current_device())
                          if dist.get_backend() == "nccl" else torch.device("cpu"))
                flag = torch.tensor([1 if local else 0], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                local = bool(flag.item())
        if local:
            self.event.set()
        return local
