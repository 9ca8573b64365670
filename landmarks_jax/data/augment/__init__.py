"""On-device augmentations of training pairs: thin-plate-spline warps and colour jitter."""
