"""Throughput of data-parallel training steps, and the time they spend in Allreduce.

    python -m numcnn.distributed.bench --threads 2                     # 1 process x 2 BLAS threads
    mpirun -np 2 python -m numcnn.distributed.bench --threads 1        # 2 processes x 1 thread each

Each rank trains ``--model`` (Adam, DistributedOptimizer with buffer broadcast) on random 28x28 images with the
global batch split over the ranks, runs ``--warmup`` steps, then times ``--steps`` steps between two barriers.
Rank 0 prints one JSON line: images/s of the job, ms per step, ms per step inside the gradient Allreduce (as
measured in training: it includes waiting for the slowest rank), and ms of one Allreduce of the same buffer with
the ranks already in step (the transfer alone).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m numcnn.distributed.bench", description=__doc__.split("\n")[0])
    p.add_argument("--model", default="convnet")
    p.add_argument("--global-batch", type=int, default=100, help="split over the ranks (strong scaling)")
    p.add_argument("--per-rank-batch", type=int, default=None,
                   help="instead of --global-batch: each rank's batch, the global one growing with the ranks "
                        "(weak scaling)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    p.add_argument("--sync-bn", action="store_true")
    args = p.parse_args(argv)

    import numcnn as nc
    from numcnn import distributed as dist
    from numcnn import models, optim
    from numcnn.nn import functional as F

    comm = dist.init()
    nc.set_num_threads(args.threads)
    if args.per_rank_batch is not None:
        args.global_batch = args.per_rank_batch * comm.size
    if args.global_batch % comm.size:
        raise SystemExit(f"--global-batch {args.global_batch} does not split over {comm.size} ranks")
    batch = args.global_batch // comm.size
    nc.manual_seed(0)
    model = models.get(args.model, in_channels=1, num_classes=10)
    if args.sync_bn:
        model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
    opt = dist.DistributedOptimizer(optim.Adam(model.parameters(), lr=1e-3), model=model, comm=comm)
    rng = np.random.default_rng(comm.rank)
    pool = [(nc.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)),
             nc.tensor(rng.integers(0, 10, batch))) for _ in range(4)]

    def step(i: int) -> None:
        x, y = pool[i % len(pool)]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    comm.barrier()
    a0, c0 = opt.averager.seconds, opt.averager.calls
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    comm.barrier()
    elapsed = time.perf_counter() - t0
    allreduce_s = opt.averager.seconds - a0
    calls = opt.averager.calls - c0

    # The transfer alone: the same buffers, the ranks already in step.
    pure = []
    for _ in range(20):
        comm.barrier()
        t = time.perf_counter()
        for bucket in opt.averager.buckets:
            comm.allreduce_(bucket.buf)
        pure.append(time.perf_counter() - t)
    grad_bytes = sum(bucket.buf.nbytes for bucket in opt.averager.buckets)
    every = comm.allgather(np.array([allreduce_s], dtype=np.float64))
    result = {
        "model": args.model, "processes": comm.size, "threads": args.threads, "global_batch": args.global_batch,
        "per_rank_batch": batch, "steps": args.steps, "images_per_s": args.global_batch * args.steps / elapsed,
        "ms_per_step": 1e3 * elapsed / args.steps,
        "allreduce_ms_per_step": [1e3 * v / args.steps for v in every[:, 0]] if comm.size > 1 else 0.0,
        "allreduce_calls_per_step": calls / args.steps,
        "allreduce_alone_ms": 1e3 * float(np.median(pure)) if comm.size > 1 else 0.0,
        "allreduce_bytes": grad_bytes,
    }
    if comm.rank == 0:
        print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
