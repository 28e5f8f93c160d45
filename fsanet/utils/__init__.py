"""Plumbing with no model knowledge: cache and checked downloads, atomic files, NMS, torchvision shim."""
