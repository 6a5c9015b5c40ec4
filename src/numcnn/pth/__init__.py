"""PyTorch checkpoint files (``.pt``/``.pth``, the zip format ``torch.save`` writes since PyTorch 1.6) without
PyTorch, read through an allow-list unpickler that never runs code, as ``torch.load`` does with
``weights_only=True``.

A ``torch.save`` file is a zip archive of stored (uncompressed) records under one folder, ``archive/``:

- ``data.pkl``: a pickle (protocol 2) of the saved object. Each tensor in it is a call of
  ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)``,
  whose ``storage`` is a persistent id ``('storage', torch.FloatStorage, '0', 'cpu', numel)`` naming a record;
- ``data/0``, ``data/1``...: the raw bytes of each storage, in the order ``byteorder`` names (``little``);
- ``version``, ``.format_version``, ``.storage_alignment``: bookkeeping (numcnn writes what torch 2.13 writes).

Reading is three steps, and nothing is allocated beyond the file's size before every size is checked:

1. the zip's directory: each record must be stored (a compressed record is refused, so no zip bomb) and lie inside
   the file; ``data.pkl``'s opcodes are scanned (``pickletools``) before it is unpickled;
2. the unpickler resolves only the globals in ``_GLOBALS`` (containers, tensor rebuilders, storage types, dtypes)
   to functions that check their arguments and return inert placeholders: every view is checked against the size
   of its storage record, every storage against the record's size;
3. the placeholders become :class:`~numcnn.autograd.tensor.Tensor` views of the storages they name (views that
   share a storage in the file share memory after loading, as in PyTorch).

The package reads in three modules, in the order of the steps: ``formats`` (torch's storage and dtype names, the
limits), ``allowlist`` (the globals a file may name, each a checking function returning an inert placeholder),
``read`` (the archive, the opcode scan, the unpickler, the tensors); ``write`` makes files ``torch.load`` reads.
"""

from .read import is_pth, load_pth, nonfinite
from .write import save_pth

__all__ = ["is_pth", "load_pth", "nonfinite", "save_pth"]
