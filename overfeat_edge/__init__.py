"""overfeat-edge: OverFeat-style fully convolutional detectors on the edge.

The data's way: source -> preprocess -> pyramid -> backend -> decode -> merge -> sink
(``stream.sources``, ``pipeline``, ``runtime``, ``stream.sinks``). The edge runtime imports no torch.
"""

__version__ = "0.1.0"
