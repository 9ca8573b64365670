"""Colour jitter of image batches: random brightness, contrast, saturation and hue in a random order.

Matches torchvision's ColorJitter(0.4, 0.4, 0.4, 0.3) that the PyTorch original applies to `input_a`:
per image, factors b, c, s ~ U[max(0, 1 - strength), 1 + strength], a hue shift ~ U[-hue, hue], and the four
operations in a random order. The operations follow torchvision's functional definitions on [0, 1] images;
the grayscale weights are 0.299, 0.587, 0.114 (ITU-R 601, as PIL uses). Images at the API are NHWC in [-1, 1].
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

NUM_OPS = 4  # brightness, contrast, saturation, hue; the column order of JitterParams.factors.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(NUM_OPS)
IDENTITY_FACTORS = (1.0, 1.0, 1.0, 0.0)
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)


class JitterParams(NamedTuple):
  """Random parameters of a batch of colour jitters.

  Attributes:
    factors: (B, 4) brightness, contrast and saturation factors and the hue shift (in turns).
    order: (B, 4) int32, a permutation per image: order[k] is the operation applied k-th.
  """

  factors: jax.Array
  order: jax.Array


def _per_image(factor: jax.Array) -> jax.Array:
  """Broadcasts (...,) factors against (..., H, W, C) images."""
  return jnp.asarray(factor)[..., None, None, None]


def grayscale(images: jax.Array) -> jax.Array:
  """Luma of (..., H, W, 3) images in [0, 1], (..., H, W, 1)."""
  # Slices rather than a reduction over the 3-wide channel axis, which vectorises poorly on CPU.
  red, green, blue = images[..., 0:1], images[..., 1:2], images[..., 2:3]
  return _GRAY_WEIGHTS[0] * red + _GRAY_WEIGHTS[1] * green + _GRAY_WEIGHTS[2] * blue


def _blend(images: jax.Array, other: jax.Array, factor: jax.Array) -> jax.Array:
  factor = _per_image(factor)
  return jnp.clip(factor * images + (1 - factor) * other, 0.0, 1.0)


def adjust_brightness(images: jax.Array, factor: jax.Array) -> jax.Array:
  """clip(images * factor) for (..., H, W, 3) images in [0, 1] and (...,) factors."""
  return jnp.clip(images * _per_image(factor), 0.0, 1.0)


def adjust_contrast(images: jax.Array, factor: jax.Array) -> jax.Array:
  """Blends each image with the mean of its grayscale version, then clips."""
  # The mean of the grayscale image, taken as the luma of the channel means (the same number, faster).
  mean = grayscale(jnp.mean(images, axis=(-3, -2), keepdims=True))
  return _blend(images, mean, factor)


def adjust_saturation(images: jax.Array, factor: jax.Array) -> jax.Array:
  """Blends each image with its grayscale version, then clips; factor 0 gives gray."""
  return _blend(images, grayscale(images), factor)


def rgb_to_hsv(images: jax.Array) -> jax.Array:
  """(..., 3) RGB in [0, 1] to HSV in [0, 1], hue in turns; gray pixels get hue 0 and saturation 0."""
  red, green, blue = images[..., 0], images[..., 1], images[..., 2]
  value = jnp.maximum(jnp.maximum(red, green), blue)
  chroma = value - jnp.minimum(jnp.minimum(red, green), blue)
  colourful = chroma > 0
  saturation = jnp.where(colourful, chroma / jnp.where(colourful, value, 1.0), 0.0)
  safe_chroma = jnp.where(colourful, chroma, 1.0)
  red_c, green_c, blue_c = [(value - channel) / safe_chroma for channel in (red, green, blue)]
  # The largest channel by comparisons of the channels themselves, not by equality with `value`: inside a fused
  # step XLA may compute a channel twice with different rounding, and then no equality would hold.
  red_largest = (red >= green) & (red >= blue)
  green_largest = ~red_largest & (green >= blue)
  sector = jnp.where(
    red_largest, blue_c - green_c, jnp.where(green_largest, 2.0 + red_c - blue_c, 4.0 + green_c - red_c)
  )
  hue = jnp.where(colourful, jnp.mod(sector / 6.0, 1.0), 0.0)
  return jnp.stack([hue, saturation, value], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
  """(..., 3) HSV in [0, 1] (hue in turns) to RGB in [0, 1]."""
  hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  scaled = hue * 6.0
  sector_floor = jnp.floor(scaled)
  fraction = scaled - sector_floor
  sector = jnp.mod(sector_floor.astype(jnp.int32), 6)
  p = jnp.clip(value * (1.0 - saturation), 0.0, 1.0)
  q = jnp.clip(value * (1.0 - saturation * fraction), 0.0, 1.0)
  t = jnp.clip(value * (1.0 - saturation * (1.0 - fraction)), 0.0, 1.0)

  def by_sector(*candidates):
    """The candidate of each pixel's hue sector, by a chain of selects (cheaper than a gather)."""
    result = candidates[5]
    for index in range(4, -1, -1):
      result = jnp.where(sector == index, candidates[index], result)
    return result

  return jnp.stack(
    [by_sector(value, q, p, p, t, value), by_sector(t, value, value, q, p, p), by_sector(p, p, t, value, value, q)],
    axis=-1,
  )


def adjust_hue(images: jax.Array, shift: jax.Array) -> jax.Array:
  """Rotates the hue of (..., H, W, 3) images in [0, 1] by (...,) shifts in turns (mod 1)."""
  hsv = rgb_to_hsv(images)
  hue = jnp.mod(hsv[..., 0] + jnp.asarray(shift)[..., None, None], 1.0)
  return hsv_to_rgb(jnp.concatenate([hue[..., None], hsv[..., 1:]], axis=-1))


def _check_strength(value: float, name: str, upper: float = float('inf')) -> float:
  if not 0 <= value <= upper:
    raise ValueError(f'colour-jitter {name} strength must lie in [0, {upper}], got {value}.')
  return value


def sample_jitter_params(
  rng: jax.Array,
  batch_size: int,
  brightness: float = 0.4,
  contrast: float = 0.4,
  saturation: float = 0.4,
  hue: float = 0.3,
) -> JitterParams:
  """Samples per-image factors and operation orders; strength 0 gives the identity factor.

  Args:
    rng: PRNG key.
    batch_size: number of images B.
    brightness, contrast, saturation: factors are uniform in [max(0, 1 - strength), 1 + strength].
    hue: the shift is uniform in [-hue, hue] turns, hue at most 0.5.

  Returns:
    JitterParams.
  """
  strengths = (
    _check_strength(brightness, 'brightness'),
    _check_strength(contrast, 'contrast'),
    _check_strength(saturation, 'saturation'),
    _check_strength(hue, 'hue', 0.5),
  )
  factor_key, order_key = jax.random.split(rng)
  low = jnp.asarray([max(0.0, 1.0 - s) for s in strengths[:3]] + [-hue], jnp.float32)
  high = jnp.asarray([1.0 + s for s in strengths[:3]] + [hue], jnp.float32)
  factors = jax.random.uniform(factor_key, (batch_size, NUM_OPS), minval=low, maxval=high)
  order_keys = jax.random.split(order_key, batch_size)
  order = jax.vmap(lambda key: jax.random.permutation(key, NUM_OPS))(order_keys).astype(jnp.int32)
  return JitterParams(factors=factors, order=order)


def _blend_step(image: jax.Array, factors: jax.Array, op: jax.Array, active: jax.Array) -> jax.Array:
  """Applies brightness, contrast or saturation (op) to one image if active, else leaves it unchanged.

  All three are clip(alpha * x + beta * gray(x) + gamma) with per-op coefficients, so one pass serves any op;
  inactive steps use the identity coefficients (1, 0, 0), exact on [0, 1] images.
  """
  factor = factors[op]
  gray = grayscale(image)
  mean = jnp.mean(gray)
  alpha = jnp.where(active, factor, 1.0)
  beta = jnp.where(active & (op == SATURATION), 1.0 - factor, 0.0)
  gamma = jnp.where(active & (op == CONTRAST), (1.0 - factor) * mean, 0.0)
  return jnp.clip(alpha * image + beta * gray + gamma, 0.0, 1.0)


def _jitter_one(image: jax.Array, factors: jax.Array, order: jax.Array) -> jax.Array:
  """Applies the four operations to one (H, W, 3) image in [0, 1] in the given order.

  The expensive hue rotation runs once, at its place in the order: the blend operations before it take
  positions 0..2 and those after it positions 1..3, each step inactive where the order puts hue or the other
  side there. Selecting coefficients instead of whole images keeps every step a single pass.
  """
  hue_position = jnp.argmax(order == HUE)
  for position in range(NUM_OPS - 1):
    image = _blend_step(image, factors, order[position], position < hue_position)
  image = adjust_hue(image, factors[HUE])
  for position in range(1, NUM_OPS):
    image = _blend_step(image, factors, order[position], position > hue_position)
  return image


def apply_jitter(images: jax.Array, params: JitterParams) -> jax.Array:
  """Jitters (B, H, W, 3) images in [-1, 1] with per-image parameters; identity factors leave an image as is.

  Images whose four factors are all the identity come back bit for bit, which makes strength 0 exact.
  """
  _check_images(images)
  unit = images * 0.5 + 0.5
  jittered = jax.vmap(_jitter_one)(unit, params.factors, params.order) * 2.0 - 1.0
  unchanged = jnp.all(params.factors == jnp.asarray(IDENTITY_FACTORS, params.factors.dtype), axis=-1)
  return jnp.where(_per_image(unchanged), images, jittered.astype(images.dtype))


def apply_paired_jitter(images_a: jax.Array, images_b: jax.Array, params: JitterParams) -> tuple[jax.Array, jax.Array]:
  """Applies the same per-image parameters to two (B, H, W, 3) batches in [-1, 1]."""
  if images_a.shape != images_b.shape:
    raise ValueError(f'paired colour jitter needs two batches of one shape, got {images_a.shape} and {images_b.shape}.')
  both = apply_jitter(jnp.concatenate([images_a, images_b]), _repeat_params(params))
  return both[: images_a.shape[0]], both[images_a.shape[0] :]


def _repeat_params(params: JitterParams) -> JitterParams:
  return JitterParams(*(jnp.concatenate([leaf, leaf]) for leaf in params))


def _check_images(images: jax.Array) -> None:
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'colour jitter expects (batch, height, width, 3) RGB images, got shape {images.shape}.')


def color_jitter(
  rng: jax.Array,
  images: jax.Array,
  brightness: float = 0.4,
  contrast: float = 0.4,
  saturation: float = 0.4,
  hue: float = 0.3,
) -> jax.Array:
  """Jitters each image of a (B, H, W, 3) batch in [-1, 1] by its own random parameters."""
  _check_images(images)
  params = sample_jitter_params(rng, images.shape[0], brightness, contrast, saturation, hue)
  return apply_jitter(images, params)


def paired_color_jitter(
  rng: jax.Array,
  images_a: jax.Array,
  images_b: jax.Array,
  brightness: float = 0.4,
  contrast: float = 0.4,
  saturation: float = 0.4,
  hue: float = 0.3,
) -> tuple[jax.Array, jax.Array]:
  """Jitters images_a[i] and images_b[i] by the same random parameters, as the original's PairedColorJitter."""
  _check_images(images_a)
  params = sample_jitter_params(rng, images_a.shape[0], brightness, contrast, saturation, hue)
  return apply_paired_jitter(images_a, images_b, params)
