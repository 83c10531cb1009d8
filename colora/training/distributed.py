"""Many processes and machines: torchrun's environment, DDP setup and the per-rank sampler.

Under `torchrun --nproc_per_node=N` (or multi-node torchrun) the environment carries RANK,
WORLD_SIZE and LOCAL_RANK; we then join a process group (gloo on CPU, nccl on GPU) and wrap the
model in DistributedDataParallel. Without them everything runs in one process.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0


def setup_distributed():
    """Join the process group torchrun describes (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(rank, world, local, device)


def cleanup_distributed():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_flags(flags, info):
    """Each flag True on every rank if it is True on any rank (one all-reduce for all of them)."""
    if info.world_size == 1:
        return tuple(bool(f) for f in flags)
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in t.tolist())


class IterationSampler(torch.utils.data.Sampler):
    """An endless stream of (epoch, index) keys, a pure function of (seed, iteration).

    Global sample g = iteration * global_batch + k walks through epochs of a seeded permutation;
    rank r takes k in [r*B, (r+1)*B). So a run resumed at iteration i sees exactly the samples an
    uninterrupted run would, and N processes with batch B see the samples of one process with
    batch N*B.
    """

    def __init__(self, length, batch_size, seed=0, start_iter=0, rank=0, world_size=1, shuffle=True):
        self.length, self.batch, self.seed = length, batch_size, seed
        self.start_iter, self.rank, self.world = start_iter, rank, world_size
        self.shuffle = shuffle
        self._perm_epoch, self._perm = None, None

    def _permutation(self, epoch):
        if self._perm_epoch != epoch:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
                self._perm = torch.randperm(self.length, generator=g).tolist()
            else:
                self._perm = list(range(self.length))
            self._perm_epoch = epoch
        return self._perm

    def __iter__(self):
        it = self.start_iter
        global_batch = self.batch * self.world
        while True:
            for k in range(self.rank * self.batch, (self.rank + 1) * self.batch):
                g = it * global_batch + k
                epoch, pos = divmod(g, self.length)
                yield (epoch, self._permutation(epoch)[pos])
            it += 1

    def __len__(self):  # endless; DataLoader only needs it for len(loader), which we never call
        return 2 ** 62
