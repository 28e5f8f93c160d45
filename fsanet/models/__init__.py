"""Pose networks: layers, architectures, timm heads, the named registry, Keras conversion, save/load."""
