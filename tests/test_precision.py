"""bfloat16 compute (config.compute_dtype): convolutions in bfloat16, statistics and parameters in float32, and
landmarks close to float32's (training in bfloat16: test_train.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.cpu import kernels
from landmarks_jax.model import gaussians
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.weights.original_checkpoints import weight_mapping

from reference_weights import REFERENCE
from reference_weights import load_reference
from reference_weights import nhwc
from reference_weights import reference_config
from reference_weights import regenerate_weights
from reference_weights import split_prefix


def _conv_dtypes(fn, *args):
  """The operand dtypes of every convolution in fn's program (traced as XLA's convolutions, not oneDNN's calls)."""
  with kernels.plain_xla():
    jaxpr = jax.make_jaxpr(fn)(*args)
  found = []

  def walk(eqns):
    for eqn in eqns:
      if eqn.primitive.name == 'conv_general_dilated':
        found.append(str(eqn.invars[0].aval.dtype))
      for param in eqn.params.values():
        inner = getattr(param, 'jaxpr', None)
        if inner is not None:
          walk(getattr(inner, 'eqns', []) or getattr(getattr(inner, 'jaxpr', None), 'eqns', []))

  walk(jaxpr.jaxpr.eqns)
  return found


def _explained_by_the_logits(heatmaps_32, heatmaps_16):
  """Per landmark, how far the bfloat16 means can be from float32's given only the two runs' part maps.

  The means are soft-argmaxes: mean = sum_i p_i x_i, p = softmax(logits). A change d of the logits moves the
  mean by Cov_p(d, x) along the path between the two runs (first order), at most std_p(d) std_p(x) by
  Cauchy-Schwarz. d = log p16 - log p32 up to a constant, which the covariance ignores. The bound, the larger
  at the two ends of the path, is what bfloat16's rounding of the networks explains; a mean further off than
  that was lost after the part maps (a statistic or the softmax computed in low precision).
  """
  p32, p16 = (np.asarray(h, np.float64) for h in (heatmaps_32, heatmaps_16))  # (B, h, w, K)
  _, h, w, _ = p32.shape
  grid_y, grid_x = np.meshgrid(gaussians.coordinate_grid(h), gaussians.coordinate_grid(w), indexing='ij')
  delta = np.log(np.maximum(p16, 1e-300)) - np.log(np.maximum(p32, 1e-300))
  bounds = []
  for coordinate in (grid_x, grid_y):
    x = coordinate[None, :, :, None]
    ends = []
    for p in (p32, p16):
      mean_d, mean_x = (np.sum(p * v, axis=(1, 2), keepdims=True) for v in (delta, x))
      std_d = np.sqrt(np.sum(p * (delta - mean_d) ** 2, axis=(1, 2)))
      std_x = np.sqrt(np.sum(p * (x - mean_x) ** 2, axis=(1, 2)))
      ends.append(std_d * std_x)
    bounds.append(np.maximum(*ends))
  return bounds  # for mean x and mean y, (B, K) each


@pytest.fixture(scope='module')
def programs():
  """Per compute dtype: the model's jitted apply (traced once for every weight draw), its variables' template and
  its convolutions' operand dtypes, on the reference file's config and inputs."""
  reference = load_reference()
  a, b = nhwc(reference['input_a']).astype(np.float32), nhwc(reference['input_b']).astype(np.float32)
  found = {}
  for dtype in ('float32', 'bfloat16'):
    config = reference_config(reference)
    config.compute_dtype = dtype
    model = model_from_config(config)
    template = jax.eval_shape(lambda model=model: model.init(jax.random.PRNGKey(0), a, b))
    apply = lambda v, model=model: model.apply(v, a, b)
    found[dtype] = (jax.jit(apply), template, _conv_dtypes(apply, template))
  return reference, found


@pytest.mark.skipif(not REFERENCE.exists(), reason=f'no reference file at {REFERENCE}')
@pytest.mark.parametrize('weight_seed', [None, 1, 2])
def test_bfloat16_landmarks_stay_as_close_to_float32_as_the_rounding_of_the_networks_explains(programs, weight_seed):
  """On the reference weights and two other draws of them: each landmark mean within 1.5 times the bound that
  the part maps' own difference explains (plus 1e-4 for what the first-order bound leaves out)."""
  reference, compiled = programs
  seed = reference['seed'] if weight_seed is None else weight_seed
  weights = split_prefix(regenerate_weights(reference['state_keys'], reference['state_shapes'], seed), 'model/')
  outputs = {}
  for dtype, (apply, template, conv_dtypes) in compiled.items():
    assert conv_dtypes and set(conv_dtypes) == {dtype}
    outputs[dtype] = apply(weight_mapping.model_variables_from_torch(weights, template))
  bounds = _explained_by_the_logits(outputs['float32']['input_a_heatmaps'], outputs['bfloat16']['input_a_heatmaps'])
  for precise, low, bound in zip(outputs['float32']['vis_centers'], outputs['bfloat16']['vis_centers'], bounds):
    assert low.dtype == jnp.float32
    error = np.abs(np.asarray(precise, np.float64) - np.asarray(low, np.float64))
    assert np.all(error <= 1.5 * bound + 1e-4), (error.max(), bound.max())
    assert np.any(error > 0)  # bfloat16 did change the networks' results
  assert outputs['bfloat16']['reconstruction'].dtype == jnp.float32
