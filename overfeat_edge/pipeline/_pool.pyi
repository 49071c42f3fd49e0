# The C extension (_pool.c), through the buffer protocol; preprocess.adaptive_normalized prepares the arrays.
import numpy as np

def pool(
    sums: np.ndarray,
    h: int,
    w: int,
    c: int,
    regions: np.ndarray,
    oh: int,
    ow: int,
    mean: np.ndarray,
    inv: np.ndarray,
    swap: bool,
    out: np.ndarray,
    /,
) -> None: ...
