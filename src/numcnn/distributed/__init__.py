"""Data-parallel training over MPI: from one machine's cores to a cluster's nodes.

Each rank (process) holds the whole model and trains on its own shard of every batch; gradients are averaged
over the ranks before each update, so the replicas stay identical and N ranks with per-rank batch B train like
one process with batch N*B. MPI (through ``mpi4py``; ``pip install 'numcnn[mpi]'``) is the transport::

    import numcnn.distributed as dist
    comm = dist.init()                                   # rank and world size from mpirun / srun
    model = dist.SyncBatchNorm.convert_sync_batchnorm(model)          # optional: global-batch statistics
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1), model=model)
    loader = DataLoader(train_set, batch_size=64, sampler=dist.DistributedSampler(train_set, seed=0))
    fit(model, loader, val_loader, epochs=5, optimizer=opt,
        callbacks=[dist.DistributedTraining(rank_zero=[Checkpoint("ckpt")])], verbose=dist.is_main_process())

and ``mpirun -np 4 python train.py``. Without a launcher the same script runs as a world of one.
"""

from .comm import (
    DEFAULT_TIMEOUT,
    Communicator,
    DistributedError,
    SelfCommunicator,
    barrier,
    get_comm,
    get_rank,
    get_world_size,
    init,
    is_initialized,
    is_main_process,
    launched_by_mpi,
    launcher_world_size,
)
from .data_parallel import (
    DEFAULT_BUCKET_BYTES,
    DistributedOptimizer,
    GradientAverager,
    broadcast_parameters,
    broadcast_tensors_,
)
from .sampler import DistributedSampler
from .sync_batchnorm import SyncBatchNorm
from .training import DistributedTraining, check_replicas, reduce_eval_result, reduce_record, replica_checksum

__all__ = [
    "DEFAULT_BUCKET_BYTES", "DEFAULT_TIMEOUT", "Communicator", "DistributedError", "DistributedOptimizer",
    "DistributedSampler", "DistributedTraining", "GradientAverager", "SelfCommunicator", "SyncBatchNorm", "barrier",
    "broadcast_parameters", "broadcast_tensors_", "check_replicas", "get_comm", "get_rank", "get_world_size", "init",
    "is_initialized", "is_main_process", "launched_by_mpi", "launcher_world_size", "reduce_eval_result",
    "reduce_record", "replica_checksum",
]
