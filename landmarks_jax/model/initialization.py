"""Draws initial variables on the host, by the rule the modules declare, without compiling an init program.

Flax's `init` traces the whole forward pass and compiles one random-number program per parameter, which takes
tens of seconds on a CPU. The original's initialisation is simple enough to draw directly: Xavier-uniform
kernels, biases of 0.1, and random unit vectors for spectral norm's u and v.
"""

from typing import Any

import flax
import jax
import numpy as np

from landmarks_jax.model import layers


def _xavier_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
  receptive = int(np.prod(shape[:-2]))
  fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
  bound = np.sqrt(6.0 / (fan_in + fan_out))
  return rng.uniform(-bound, bound, shape)


def _unit_vector(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
  x = rng.standard_normal(shape)
  return x / np.linalg.norm(x)


def init_variables(module: flax.linen.Module, seed: int, *args: Any, **kwargs: Any) -> dict:
  """Variables for `module.apply(variables, *args, **kwargs)`, drawn with numpy from `seed`.

  `args` may be arrays or `jax.ShapeDtypeStruct`s: only their shapes matter.
  """
  shapes = jax.eval_shape(lambda *a: module.init(jax.random.PRNGKey(0), *a, **kwargs), *args)
  rng = np.random.default_rng(seed)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))
  values = {}
  for path in sorted(flat):
    shape, leaf = tuple(flat[path].shape), path[-1]
    if path[0] == 'spectral':
      value = _unit_vector(rng, shape)
    elif leaf == 'kernel':
      value = _xavier_uniform(rng, shape)
    elif leaf == 'bias':
      value = np.full(shape, layers.BIAS_INIT_VALUE)
    else:
      raise ValueError(f'No initialisation rule for variable {"/".join(path)}')
    values[path] = value.astype(np.float32)
  return flax.traverse_util.unflatten_dict(values)
