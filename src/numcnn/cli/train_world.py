"""The MPI side of ``numcnn train --distributed``: the job's communicator, and evaluation loaders split over its
ranks."""

from __future__ import annotations

from ..data import DataLoader
from .errors import CLIError


def init_distributed(args):
    """The communicator of the MPI job (--distributed), else None."""
    from .. import distributed

    if not getattr(args, "distributed", False):
        if getattr(args, "sync_bn", False):
            raise CLIError("--sync-bn applies to --distributed training only")
        n = distributed.launcher_world_size()
        if n > 1:
            raise CLIError(f"started by an MPI launcher as {n} processes but without --distributed: each would train "
                           "alone and overwrite the others' run folder (add --distributed)")
        return None

    try:
        return distributed.init()
    except distributed.DistributedError as e:
        raise CLIError(str(e)) from None


def shard(loader: DataLoader, world) -> DataLoader:
    """An evaluation loader reading this rank's share of the images, each image on exactly one rank."""
    from ..distributed import DistributedSampler

    sampler = DistributedSampler(loader.dataset, world.size, world.rank, shuffle=False, pad=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, transform=loader.transform, sampler=sampler)
