"""The allreduce of one flat buffer, in place (``data <- sum over ranks of data``), three ways:

- :class:`MPIAllreduce` on host (NumPy) arrays: ``MPI_Allreduce(MPI_IN_PLACE, ..., MPI_SUM)``;
- the same on GPU (CuPy) arrays: given to MPI as they are when the MPI is CUDA-aware (``MINICNN_MPI_CUDA_AWARE=1``
  says so: MPI has no portable way to ask), else through a host copy (device -> host, allreduce, host -> device);
- :class:`NCCLAllreduce` on GPU arrays: NCCL through CuPy's bindings (``cupy.cuda.nccl``), the communicator's
  unique id sent from rank 0 to the others over MPI. Chosen when every rank has a GPU and CuPy has NCCL.
"""

from __future__ import annotations

import os

import numpy as np


class MPIAllreduce:
    """Sum a buffer across the ranks of ``comm`` with MPI (host copies for GPU arrays unless ``cuda_aware``)."""

    def __init__(self, comm, on_gpu: bool = False, cuda_aware: bool = False):
        from mpi4py import MPI

        self.MPI, self.comm, self.on_gpu, self.cuda_aware = MPI, comm, on_gpu, cuda_aware
        self.name = "mpi" + ("-cuda-aware" if on_gpu and cuda_aware else "-host-copy" if on_gpu else "")
        self._host = None

    def __call__(self, data) -> None:
        if not self.on_gpu:
            self.comm.Allreduce(self.MPI.IN_PLACE, data, op=self.MPI.SUM)
            return
        import cupy

        if self.cuda_aware:  # MPI reads the device memory itself: the kernels that wrote it must have finished
            cupy.cuda.get_current_stream().synchronize()
            self.comm.Allreduce(self.MPI.IN_PLACE, data, op=self.MPI.SUM)
            return
        if self._host is None or self._host.shape != data.shape or self._host.dtype != data.dtype:
            pinned = cupy.cuda.alloc_pinned_memory(data.nbytes)  # pinned host memory: faster copies both ways
            self._host = np.frombuffer(pinned, data.dtype, data.size)
        data.get(out=self._host)
        self.comm.Allreduce(self.MPI.IN_PLACE, self._host, op=self.MPI.SUM)
        data.set(self._host)


class NCCLAllreduce:
    """Sum a GPU buffer across the ranks of ``comm`` with NCCL (one NCCL communicator, built once)."""

    name = "nccl"

    def __init__(self, comm):
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = nccl.get_unique_id() if comm.Get_rank() == 0 else None
        uid = comm.bcast(uid, root=0)
        self.communicator = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
        self.types = {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def __call__(self, data) -> None:
        import cupy

        stream = cupy.cuda.get_current_stream()
        self.communicator.allReduce(
            data.data.ptr, data.data.ptr, data.size, self.types[data.dtype.name], self.nccl.NCCL_SUM, stream.ptr
        )


def nccl_available() -> bool:
    """Whether CuPy is installed with its NCCL bindings."""
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return hasattr(nccl, "NcclCommunicator")


def make_allreduce(comm, backend):
    """The allreduce for ``backend``'s arrays: NCCL when every rank runs on a GPU and has NCCL, else MPI."""
    on_gpu = backend.name == "cupy"
    if all(comm.allgather(on_gpu and nccl_available())):
        return NCCLAllreduce(comm)
    return MPIAllreduce(comm, on_gpu=on_gpu, cuda_aware=os.environ.get("MINICNN_MPI_CUDA_AWARE") == "1")
