"""The reference outputs of the PyTorch original and the rule that regenerates their weights.

The file is tests/data/torch_original_fgbg_img64.npz (tests/data/README.md says what it holds), or
$LANDMARKS_JAX_REFERENCE when set.
"""

import ast
import os
import pathlib

import jax
import numpy as np

from landmarks_jax.configs import default

DEFAULT_REFERENCE = pathlib.Path(__file__).resolve().parent / 'data' / 'torch_original_fgbg_img64.npz'
REFERENCE = pathlib.Path(os.environ.get('LANDMARKS_JAX_REFERENCE', DEFAULT_REFERENCE))


def load_reference():
  data = np.load(REFERENCE, allow_pickle=False)
  return {k: data[k] for k in data.files}


def regenerate_weights(keys, shapes, seed):
  """The reference README's rule: walk the sorted keys with one generator, drawing float64, cast to float32."""
  rng = np.random.default_rng(int(seed))
  weights = {}
  for key, shape_text in zip(keys, shapes):
    shape = tuple(int(s) for s in str(shape_text).split(',')) if str(shape_text) else ()
    if key.endswith('weight_u') or key.endswith('weight_v'):
      x = rng.standard_normal(shape)
      x /= np.linalg.norm(x)
    elif key.endswith('bias'):
      x = rng.uniform(-0.1, 0.1, shape)
    else:
      x = rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))
    weights[str(key)] = x.astype(np.float32)
  return weights


def split_prefix(weights, prefix):
  return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def reference_config(reference):
  """The default config with the reference file's model options, on XLA's own operations (the plain path GPUs
  run: the comparisons in float64 are of the mathematics)."""
  config = default.get_config()
  config.cpu_kernels = 'xla'
  for name, value in ast.literal_eval(str(reference['config'])).items():
    config[name] = value
  return config


def nhwc(x):
  return np.transpose(np.asarray(x), (0, 2, 3, 1))


def float64(tree):
  """Every array of tree in float64; run under jax.enable_x64 so that JAX keeps it so."""
  return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)
