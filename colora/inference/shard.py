"""A folder split across processes and machines (`torchrun ... -m colora.cli restore ...`).

Each rank takes a fixed share of the file list: the outputs a run would write are sorted and dealt
out round-robin, so the split is the same on every run over the same folder (a rerun with
--skip-existing finishes only what is missing), every file belongs to exactly one rank, and inputs
that would collide on one output land on the same rank (where batch.py refuses the collision). Each
rank writes only its own outputs; the counts are summed over ranks (gloo all-reduce) and rank 0
prints the summary. No process group is needed to shard, only for that sum.
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.distributed as dist


def shard_files(files: Sequence[Tuple], key: Callable, rank: int, world_size: int) -> List[Tuple]:
    """The files of `rank` among `world_size`, dealt round-robin over the sorted keys (outputs)."""
    if world_size <= 1:
        return list(files)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    keys = sorted({str(key(*f)) for f in files})
    owner = {k: i % world_size for i, k in enumerate(keys)}
    return [f for f in files if owner[str(key(*f))] == rank]


@dataclass
class Shard:
    """This process's place in a torchrun job (rank 0 of 1 outside one)."""

    rank: int = 0
    world_size: int = 1
    joined: bool = False

    @classmethod
    def from_env(cls) -> "Shard":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        shard = cls(int(os.environ.get("RANK", "0")), world)
        if world > 1 and dist.is_available() and not dist.is_initialized():
            dist.init_process_group(backend="gloo")  # counts only: the CPU backend serves GPUs too
            shard.joined = True
        return shard

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def total(self, counts: Dict[str, int]) -> Dict[str, int]:
        """`counts` summed over every rank (each rank gets the total)."""
        if self.world_size <= 1 or not dist.is_initialized():
            return dict(counts)
        keys = sorted(counts)
        t = torch.tensor([counts[k] for k in keys], dtype=torch.int64)
        dist.all_reduce(t)
        return dict(zip(keys, t.tolist()))

    def close(self):
        """Leave the job together: a rank that tore its gloo group down while a peer was still
        talking to it once aborted at exit (SIGABRT, "terminate called without an active
        exception") after finishing its work; a barrier first is the usual cure."""
        if self.joined and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
