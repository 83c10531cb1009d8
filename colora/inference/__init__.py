"""Inference beyond the torch eager forward: precision choice per machine, export of the merged
network (safetensors / .pth / ONNX), the ONNX Runtime backend, folder sharding across ranks, and
the degradation estimator (what is wrong with a photo, for `--adapter auto`).

`colora.inference.restorer.Restorer` runs a network through one of these runners; see README "Restore photos".
"""
