"""``numcnn.backends.cudnn``: not available. ``benchmark`` and ``deterministic`` can be set (scripts set them) and
change nothing: numcnn's kernels are deterministic for any thread count, and its own autotune is
``numcnn.runtime.autotune``."""

benchmark = False
deterministic = False
enabled = True


def is_available() -> bool:
    return False
