"""The networks' 2D convolution (NHWC, HWIO, symmetric padding).

XLA's own, as GPUs run it; on a CPU with `config.cpu_kernels='auto'` it comes from the CPU kernels
(`landmarks_jax/cpu/kernels.py`), which compute the same thing faster there.
"""

import jax

from landmarks_jax.cpu import kernels

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: int = 0) -> jax.Array:
  """torch's Conv2d(stride, padding) on NHWC `x` with an HWIO `kernel` of x's dtype."""
  if kernels.enabled():
    return kernels.conv2d(x, kernel, stride, padding)
  return jax.lax.conv_general_dilated(
    x, kernel, (stride, stride), ((padding, padding), (padding, padding)), dimension_numbers=DIMENSIONS
  )
