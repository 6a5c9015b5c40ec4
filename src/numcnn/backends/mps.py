"""``numcnn.backends.mps``: Apple's Metal backend, not built into numcnn."""


def is_available() -> bool:
    return False


def is_built() -> bool:
    return False
