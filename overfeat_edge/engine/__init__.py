"""[no torch; TensorRT only in trt.py] Engines: version dispatch, profiles, cache + manifest, builder."""
