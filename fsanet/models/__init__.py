"""Pose networks: the families, their catalogue, identities, weights (original files, cache, Hub)."""
