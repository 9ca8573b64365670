"""Training: the loop, its step and state, validation passes, pictures, checkpoints, option checks, the device
layout, several processes, stop signals and the workdir's lock."""
