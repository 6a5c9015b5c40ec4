"""One rank of the MPI tests: ``mpirun -np N python _worker.py SCENARIO JSON``.

The tests also import this file (conftest's ``worker`` fixture) to compute their references in one process
with the very same model, data and training routine.

Scenarios:
  train  fit a small CNN on every rank; checks the replicas are equal bit for bit, rank 0 saves the weights
  die    the same, with rank 1 failing in epoch 2 (raise, SIGKILL, or hang)
  cli    ``numcnn train`` with an audit hook recording every file write under a folder
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np

N_TRAIN, N_VAL = 72, 26


def build_model(kind: str, seed: int):
    import numcnn as nc
    import numcnn.distributed as dist
    import numcnn.nn as nn

    nc.manual_seed(seed)
    if kind == "syncbn":
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
        return dist.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))


def make_data():
    from numcnn.data import TensorDataset

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N_TRAIN + N_VAL, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, N_TRAIN + N_VAL)
    x[np.arange(len(y)), 0, y, y] += 3.0  # learnable: a bright pixel on the diagonal tells the class
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])


def train(comm, *, kind: str = "syncbn", optimizer: str = "sgd", global_batch: int = 12, epochs: int = 2,
          ckpt: str | None = None, resume: bool = False, loss_fn=None):
    """Train on ``comm``'s ranks with ``global_batch`` split over them; returns (model, optimizer, history)."""
    import numcnn.distributed as dist
    from numcnn import optim
    from numcnn.data import DataLoader
    from numcnn.nn import functional as F
    from numcnn.training import Checkpoint, fit
    from numcnn.training import resume as resume_from

    model = build_model(kind, seed=100 + comm.rank)  # different on every rank: the broadcast must fix that
    if optimizer == "sgd":
        base = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    else:
        base = optim.Adam(model.parameters(), lr=3e-3)
    opt = dist.DistributedOptimizer(base, model=model, comm=comm)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train_set, val_set = make_data()
    loader = DataLoader(train_set, batch_size=global_batch // comm.size,
                        sampler=dist.DistributedSampler(train_set, comm.size, comm.rank, seed=7))
    val_loader = DataLoader(val_set, batch_size=5, sampler=dist.DistributedSampler(
        val_set, comm.size, comm.rank, shuffle=False, pad=False))
    history = None
    if resume:
        history = resume_from(ckpt, model=model, optimizer=opt, scheduler=sched, train_loader=loader)
    writers = [Checkpoint(ckpt)] if ckpt else []
    history = fit(model, loader, val_loader, epochs=epochs, optimizer=opt, scheduler=sched,
                  loss_fn=loss_fn or F.cross_entropy, callbacks=[dist.DistributedTraining(comm, rank_zero=writers)],
                  history=history, verbose=False)
    return model, opt, history


def _save(path: str, model, history) -> None:
    np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})
    with open(path + ".json", "w") as f:
        json.dump(history.records, f)


def scenario_train(a: dict) -> None:
    import numcnn.distributed as dist

    comm = dist.init()
    model, opt, history = train(comm, kind=a["kind"], optimizer=a["optimizer"], global_batch=a["global_batch"],
                                epochs=a["epochs"], ckpt=a.get("ckpt"), resume=a.get("resume", False))
    dist.check_replicas(model, opt, comm)  # raises on every rank unless all replicas are equal bit for bit
    if comm.rank == 0:
        _save(a["out"], model, history)
    print(f"rank {comm.rank}: done", flush=True)


def scenario_die(a: dict) -> None:
    import numcnn.distributed as dist
    from numcnn import is_grad_enabled
    from numcnn.nn import functional as F

    comm = dist.init(timeout=None)
    comm.barrier()  # every rank has started: from here on a collective waits for a peer, not for Python to load
    comm.timeout = a.get("timeout")
    calls = [0]

    def loss_fn(out, y):
        calls[0] += is_grad_enabled()  # training steps only, not validation batches
        if comm.rank == 1 and calls[0] == a["at_call"]:
            if a["mode"] == "raise":
                raise RuntimeError("rank 1 fails on purpose")
            if a["mode"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(120)  # "hang": alive, but never joins the next Allreduce
        return F.cross_entropy(out, y)

    train(comm, kind="syncbn", optimizer="sgd", global_batch=12, epochs=3, ckpt=a["ckpt"], loss_fn=loss_fn)
    print(f"rank {comm.rank}: finished, which it should not have", flush=True)


def scenario_cli(a: dict) -> None:
    """Records every write-like operation under a["watch"] (Python's audit events: open for writing, os.open with
    write flags, rename/replace, remove, mkdir, rmdir, rmtree), then runs ``numcnn`` with a["argv"]."""
    watch = os.path.realpath(a["watch"])
    writes: list = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def under(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(watch)
        except (TypeError, ValueError):
            return False

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & write_flags)
            if writing and under(path):
                writes.append(["open", os.fsdecode(path)])
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate"):
            if args and under(args[0]):
                writes.append([event, os.fsdecode(args[0])])

    sys.addaudithook(hook)
    from numcnn.cli.main import main

    code = main(a["argv"])
    import numcnn.distributed as dist

    print(f"WRITES {dist.get_rank()} {json.dumps(writes)}", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    {"train": scenario_train, "die": scenario_die, "cli": scenario_cli}[sys.argv[1]](json.loads(sys.argv[2]))
