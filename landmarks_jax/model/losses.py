"""The perceptual (VGG) loss and the GAN losses of the original."""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

UNIFORM_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
REDUCED_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
# torch's BCELoss clamps each log term at -100.
BCE_LOG_FLOOR = -100.0


def perceptual_loss(
  features_fn: Callable[[jax.Array], Sequence[jax.Array]],
  prediction: jax.Array,
  target: jax.Array,
  reduced_weights: bool = False,
) -> jax.Array:
  """Weighted sum of the MSE between VGG taps of prediction and target, plus the MSE of the pixels.

  As in the original, the prediction is zeroed wherever the target is exactly 0 before either is compared.
  The target's features are constants: no gradient flows into them, so none is computed.
  """
  prediction = jnp.where(target == 0, 0.0, prediction)
  target_features = jax.lax.stop_gradient(features_fn(target))
  pairs = list(zip(features_fn(prediction), target_features)) + [(prediction, target)]
  weights = REDUCED_WEIGHTS if reduced_weights else UNIFORM_WEIGHTS
  return sum(w * jnp.mean(jnp.square(p - t)) for w, (p, t) in zip(weights, pairs))


def lsgan_loss(logits: Sequence[jax.Array], real: bool) -> jax.Array:
  """Least-squares GAN loss against 1 (real) or 0 (fake), summed over the discriminator scales."""
  target = 1.0 if real else 0.0
  return sum(jnp.mean(jnp.square(x - target)) for x in logits)


def bce_gan_loss(logits: Sequence[jax.Array], real: bool) -> jax.Array:
  """Binary cross-entropy of sigmoid(logits) against 1 or 0, summed over the discriminator scales."""
  total = 0.0
  for x in logits:
    log_p = jax.nn.log_sigmoid(x) if real else jax.nn.log_sigmoid(-x)
    total = total - jnp.mean(jnp.maximum(log_p, BCE_LOG_FLOOR))
  return total


def gan_loss(logits: Sequence[jax.Array], real: bool, lsgan: bool = True) -> jax.Array:
  """The original's GANLoss: least squares unless `no_lsgan`, then binary cross-entropy."""
  return lsgan_loss(logits, real) if lsgan else bce_gan_loss(logits, real)
