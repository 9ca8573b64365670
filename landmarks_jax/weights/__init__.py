"""Weights from elsewhere: a trained workdir to start from, the perceptual loss's VGG, and the original's
checkpoints."""
