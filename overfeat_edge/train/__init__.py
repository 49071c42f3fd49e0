"""Datasets (COCO JSON, YOLO txt), the synthetic scene generator; training lands here too [torch]."""
