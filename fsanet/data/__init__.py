"""Pixels in, model inputs out: image decoding with cost caps, face crops, rotation geometry."""
