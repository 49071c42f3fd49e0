# The C extension (_greedy.c): arrays are passed through the buffer protocol; merge._compiled_pass prepares them.
import numpy as np

def merge_pass(
    acc: np.ndarray,
    order: np.ndarray,
    rx: np.ndarray,
    ry: np.ndarray,
    cls: np.ndarray,
    t: float,
    gone: np.ndarray,
    cells: int,
    /,
) -> int: ...
def nms_sorted(boxes: np.ndarray, t: float, over_min: bool, keep: np.ndarray, /) -> int: ...
