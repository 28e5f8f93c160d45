"""FSA-Net head-pose estimation in PyTorch, numerically the authors' model."""
