"""The trainer: the published recipe (SGD + poly LR, auxiliary loss), exact resume, DDP, its log and checkpoints."""
