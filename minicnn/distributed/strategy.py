"""``MPIStrategy``: data-parallel training over MPI ranks, with the semantics of tf.distribute and Horovod.

Every rank holds the whole model and the whole data set. For each step of ``fit``:

1. the global batch (``batch_size`` samples of the epoch's shuffled order, the same order on every rank: it is
   seeded by (seed, epoch)) is cut into ``size`` contiguous shards; rank ``r`` runs forward and backward on shard
   ``r`` only. Dropout layers draw the masks of the WHOLE global batch from their (identically seeded) streams and
   keep their shard's rows, so the masks are those one process would draw;
2. the gradients, weighted ``n_r / B`` (see :mod:`.buffer`), and the shard's loss and accuracy are packed into one
   flat buffer and summed with ONE allreduce: every rank now holds the gradient of the mean loss over the global
   batch, and applies the same optimizer update (the learning rate is not rescaled);
3. evaluation (validation, test) is sharded the same way and its sums are reduced.

The result equals one process training on the same global batch, up to the summation order of the allreduce.
BatchNormalization is the exception: its batch statistics are the shard's (as in Keras and Horovod without
SyncBatchNorm), and its moving statistics are averaged across ranks before every evaluation.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from .buffer import FlatBuffer, shard_bounds
from .reducers import make_allreduce


class MPIStrategy:
    """Data parallelism over the ranks of an MPI communicator (``MPI.COMM_WORLD`` by default).

    ``rank``, ``size``, ``local_rank`` (the rank among those on this machine), ``is_root`` (rank 0: the one that
    prints and writes). Pass it to ``model.fit(..., distributed=strategy)``; see
    :func:`minicnn.distributed.get_strategy`.
    With the CuPy backend, call :meth:`use_backend` before building the model: it picks this rank's GPU.
    """

    def __init__(self, comm=None):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self.is_root = self.rank == 0
        self.allreduce = None
        self.device = None
        self._buffer = None
        self._step = None  # (n_local, n_global) of the step in progress
        self._sliced = []  # layers told to draw the global batch's randoms this step

    def __repr__(self):
        return f"MPIStrategy(rank={self.rank}, size={self.size}, allreduce={getattr(self.allreduce, 'name', None)})"

    # --- setting up ---------------------------------------------------------------------------------
    def use_backend(self, backend):
        """Bind to ``backend``: with CuPy, rank -> GPU ``local_rank % device count`` (one rank per GPU), and NCCL
        for the allreduce when every rank has a GPU and CuPy has NCCL; MPI otherwise (host copies of the buffer
        unless ``MINICNN_MPI_CUDA_AWARE=1`` says the MPI takes GPU memory). Returns ``backend``."""
        if backend.name == "cupy":
            import cupy

            self.device = self.local_rank % cupy.cuda.runtime.getDeviceCount()
            cupy.cuda.Device(self.device).use()
        self.allreduce = make_allreduce(self.comm, backend)
        return backend

    def begin_fit(self, model, n_samples: int, batch_size: int, verbose: int) -> int:
        """Checks made once per ``fit`` on every rank; returns the verbosity this rank uses (0 but on rank 0)."""
        if batch_size % self.size:
            raise ValueError(
                f"--batch-size {batch_size} is the global batch and must divide evenly across "
                f"{self.size} ranks (try {batch_size - batch_size % self.size or self.size})"
            )
        if n_samples < self.size:
            raise ValueError(f"{n_samples} training samples cannot be shared by {self.size} ranks")
        if self.allreduce is None:
            self.use_backend(model.backend)
        seen = self.comm.allgather((model.seed, n_samples, batch_size))
        if any(s != seen[0] for s in seen):
            raise ValueError(
                f"the ranks disagree on (model seed, training samples, batch size): {seen}; build the "
                "model with the same seed= and give every rank the same data"
            )
        return verbose if self.is_root else 0

    # --- one training step --------------------------------------------------------------------------
    def shard(self, model, idx):
        """This rank's slice of the global batch ``idx`` (sample indices); the model's random layers are told to
        draw for the whole batch and keep this slice."""
        n_global = int(idx.shape[0])
        lo, hi = shard_bounds(n_global, self.size, self.rank)
        self._step = (hi - lo, n_global)
        self._sliced = [layer for layer in getattr(model, "layers", []) if hasattr(layer, "batch_slice")]
        for layer in self._sliced:
            layer.batch_slice = (lo, hi, n_global)
        return idx[lo:hi]

    def average_gradients(self, model, loss, acc):
        """Between backward and the update: every rank's gradients become ``sum_r (n_r / B) g_r``, the gradient of
        the mean loss over the global batch, in ONE allreduce of a flat buffer that also carries the loss and the
        accuracy. ``loss`` None: this rank's shard was empty (it adds nothing). Returns the global batch's (loss,
        accuracy) as backend 0-d arrays."""
        for layer in self._sliced:
            layer.batch_slice = None
        n_local, n_global = self._step
        grads = model.gradients
        buf = self._flat_buffer(model.backend.xp, grads, model.dtype)
        if loss is None:
            buf.data[...] = 0
        else:
            buf.pack(grads, extras=(loss, acc), scale=n_local / n_global)
        self.allreduce(buf.data)
        buf.unpack(grads)
        return buf.extras[0].copy(), buf.extras[1].copy()

    def _flat_buffer(self, xp, grads, dtype):
        if self._buffer is None or not self._buffer.matches(grads, dtype):
            self._buffer = FlatBuffer(xp, [g.shape for g in grads], dtype, extra=2)
        return self._buffer

    # --- evaluation ---------------------------------------------------------------------------------
    def sum_over_ranks(self, values) -> np.ndarray:
        """``sum_r values_r`` on every rank (float64 host numbers; a small MPI allreduce)."""
        data = np.asarray(values, dtype=np.float64).copy()
        self.comm.Allreduce(self.MPI.IN_PLACE, data, op=self.MPI.SUM)
        return data

    def sync_moving_statistics(self, model) -> None:
        """Average the state weights of trainable layers (BatchNormalization's moving mean and variance), which
        each rank updated from its own shards, so that every rank evaluates (and rank 0 saves) the same model."""
        state = [
            layer.params[k]
            for layer in getattr(model, "layers", [])
            if layer.trainable
            for k in layer.weight_names(False)
        ]
        if not state or self.size == 1:
            return
        buf = FlatBuffer(model.backend.xp, [w.shape for w in state], model.dtype)
        buf.pack(state, scale=1.0 / self.size)
        self.allreduce(buf.data)
        buf.unpack(state)

    def evaluate(self, model, xb, yb, batch_size: int, sharded: bool = False, n_total: int | None = None):
        """Mean loss and accuracy over backend arrays ``(xb, yb)``, sharded: each rank evaluates its contiguous
        slice (``sharded``: the arrays are that slice already, of ``n_total`` in all) and the sums
        ``n_r * mean_r`` are reduced. Returns host float64 scalars, the same on every rank."""
        from ..training import evaluate_arrays

        self.sync_moving_statistics(model)
        lo, hi = (0, xb.shape[0]) if sharded else shard_bounds(xb.shape[0], self.size, self.rank)
        sums = [0.0, 0.0]
        if hi > lo:
            loss, acc = evaluate_arrays(model, xb[lo:hi], yb[lo:hi], batch_size)
            sums = [float(loss) * (hi - lo), float(acc) * (hi - lo)]
        total = self.sum_over_ranks(sums) / (xb.shape[0] if n_total is None else n_total)
        return float(total[0]), float(total[1])

    def predict_classes(self, model, x, batch_size: int = 32) -> np.ndarray:
        """``model.predict_classes(x)``, sharded: every rank predicts its slice; all get the whole answer."""
        lo, hi = shard_bounds(len(x), self.size, self.rank)
        mine = model.predict_classes(x[lo:hi], batch_size=batch_size) if hi > lo else np.zeros(0, dtype=np.int64)
        return np.concatenate(self.comm.allgather(mine))

    def evaluate_and_predict(self, model, x, y, batch_size: int):
        """``(loss, accuracy, predicted classes)`` on host arrays ``(x, y)``, sharded and reduced (the test set)."""
        lo, hi = shard_bounds(len(x), self.size, self.rank)
        xb = model.prepare_inputs(x[lo:hi])
        yb = model.prepare_targets(y[lo:hi], xb.shape[0])
        loss, acc = self.evaluate(model, xb, yb, batch_size, sharded=True, n_total=len(x))
        return loss, acc, self.predict_classes(model, x, batch_size)

    # --- faults -------------------------------------------------------------------------------------
    def abort(self, message: str, code: int = 1) -> None:
        """Print ``rank K of N: message`` on this rank's real stderr, then end EVERY rank of the job now
        (``MPI_Abort``): a rank that fails must not leave the others waiting in an allreduce."""
        print(f"rank {self.rank} of {self.size}: {message}", file=sys.__stderr__, flush=True)
        time.sleep(0.5)  # let mpiexec forward that line: MPI_Abort tears down the output forwarding (seen lost in CI)
        self.comm.Abort(code)
        os._exit(code)  # should MPI_Abort return (it may once a peer is gone), end this rank anyway
