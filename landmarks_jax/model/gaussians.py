"""From part heatmaps to 2D Gaussians (soft-argmax means, covariances) and back to rendered maps.

Coordinates are in [-1, 1] with -1 at the first pixel, on the original's grids: `arange(-1, 1, 4 / img_size)`
for the half-resolution part maps and `arange(-1, 1, 2 / img_size)` for full-resolution rendering.
"""

import jax
import jax.numpy as jnp
import numpy as np


def coordinate_grid(size: int) -> np.ndarray:
  """The size values -1, -1 + 2 / size, ..., the pixel coordinates of a map `size` pixels wide, in float64.

  Callers cast it to their computation's dtype: at sizes that are not powers of two (48 px: steps of 1/12) the
  float32 values differ from the float64 ones, and a float64 computation needs the float64 grid.
  """
  return -1.0 + np.arange(size, dtype=np.float64) * (2.0 / size)


def estimate_gaussians(logits: jax.Array, fixed_covariance: float | None = None):
  """Softmax-normalises part logits and fits a Gaussian to each part.

  Args:
    logits: (B, h, w, K) shape-encoder outputs.
    fixed_covariance: if given, every covariance is this value times the identity.

  Returns:
    heatmaps (B, h, w, K) summing to 1 over each map, mean x (B, K), mean y (B, K), covariance (B, K, 2, 2).
  """
  b, h, w, k = logits.shape
  # At least float32: a half-precision softmax would quantise the heatmaps; float64 stays float64.
  flat = jax.nn.softmax(logits.reshape(b, h * w, k).astype(jnp.promote_types(logits.dtype, jnp.float32)), axis=1)
  grid_y, grid_x = np.meshgrid(coordinate_grid(h), coordinate_grid(w), indexing='ij')
  coords = jnp.asarray(np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1), flat.dtype)  # (hw, 2)
  precision = jax.lax.Precision.HIGHEST
  means = jnp.einsum('bnk,nd->bkd', flat, coords, precision=precision)
  if fixed_covariance is None:
    second = jnp.einsum('bnk,nd,ne->bkde', flat, coords, coords, precision=precision)
    covariance = second - means[..., :, None] * means[..., None, :]
  else:
    covariance = jnp.broadcast_to(fixed_covariance * jnp.eye(2, dtype=flat.dtype), (b, k, 2, 2))
  return flat.reshape(b, h, w, k), means[..., 0], means[..., 1], covariance


def render_gaussians(mean_x: jax.Array, mean_y: jax.Array, covariance: jax.Array, size: int) -> jax.Array:
  """Renders each Gaussian as 1 / (1 + d^T Sigma^-1 d) on a size x size grid: (B, size, size, K)."""
  a, b_ = covariance[..., 0, 0], covariance[..., 0, 1]
  c, d = covariance[..., 1, 0], covariance[..., 1, 1]
  det = a * d - b_ * c
  inv_a, inv_b, inv_c, inv_d = d / det, -b_ / det, -c / det, a / det
  grid = jnp.asarray(coordinate_grid(size), jnp.promote_types(mean_x.dtype, jnp.float32))
  dx = grid[None, None, :, None] - mean_x[:, None, None, :]  # (B, 1, W, K)
  dy = grid[None, :, None, None] - mean_y[:, None, None, :]  # (B, H, 1, K)
  inv_a, inv_b, inv_c, inv_d = (v[:, None, None, :] for v in (inv_a, inv_b, inv_c, inv_d))
  distance = dx * dx * inv_a + dx * dy * (inv_b + inv_c) + dy * dy * inv_d
  return 1.0 / (1.0 + distance)


def pool_appearance(features: jax.Array, heatmaps: jax.Array) -> jax.Array:
  """Per-part appearance: the spatial mean of features weighted by each heatmap.

  Args:
    features: (B, h, w, C); heatmaps: (B, h, w, K).
  Returns:
    (B, K, C) appearance vectors.
  """
  h, w = features.shape[1:3]
  pooled = jnp.einsum('bhwc,bhwk->bkc', features, heatmaps, precision=jax.lax.Precision.HIGHEST)
  return pooled / (h * w)


def project_appearance(appearance: jax.Array, maps: jax.Array) -> jax.Array:
  """Spreads part appearance over the rendered maps, normalised by 1 + their sum: (B, H, W, C).

  Args:
    appearance: (B, K, C) vectors; maps: (B, H, W, K) rendered Gaussians.
  """
  weights = maps / (1.0 + jnp.sum(maps, axis=-1, keepdims=True))
  return jnp.einsum('bhwk,bkc->bhwc', weights, appearance, precision=jax.lax.Precision.HIGHEST)
