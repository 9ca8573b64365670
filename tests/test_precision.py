"""bfloat16 compute (config.compute_dtype): convolutions in bfloat16, statistics and parameters in float32, and
landmarks close to float32's (training in bfloat16: test_train.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.original_checkpoints import weight_mapping
from landmarks_jax.model import convolution
from landmarks_jax.model.landmark_model import model_from_config
from reference_weights import REFERENCE
from reference_weights import load_reference
from reference_weights import nhwc
from reference_weights import reference_config
from reference_weights import regenerate_weights
from reference_weights import split_prefix

MEAN_TOLERANCE = 2e-2  # landmark means, in [-1, 1] units


def _conv_dtypes(fn, *args):
  """The operand dtypes of every convolution in fn's program (traced as XLA's convolutions, not oneDNN's calls)."""
  with convolution.xla_convolutions():
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


@pytest.mark.skipif(not REFERENCE.exists(), reason=f'no reference file at {REFERENCE}')
def test_bfloat16_landmarks_stay_close_to_float32_on_the_reference_weights():
  reference = load_reference()
  config = reference_config(reference)
  weights = regenerate_weights(reference['state_keys'], reference['state_shapes'], reference['seed'])
  a, b = nhwc(reference['input_a']).astype(np.float32), nhwc(reference['input_b']).astype(np.float32)
  outputs, programs = {}, {}
  for dtype in ('float32', 'bfloat16'):
    config.compute_dtype = dtype
    model = model_from_config(config)
    template = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), a, b))
    variables = weight_mapping.model_variables_from_torch(split_prefix(weights, 'model/'), template)
    apply = lambda v, model=model: model.apply(v, a, b)
    outputs[dtype] = jax.jit(apply)(variables)
    programs[dtype] = _conv_dtypes(apply, variables)
  assert programs['float32'] and set(programs['float32']) == {'float32'}
  assert programs['bfloat16'] and set(programs['bfloat16']) == {'bfloat16'}
  for precise, low in zip(outputs['float32']['vis_centers'], outputs['bfloat16']['vis_centers']):
    assert low.dtype == jnp.float32
    assert np.max(np.abs(np.asarray(precise) - np.asarray(low))) <= MEAN_TOLERANCE
  assert outputs['bfloat16']['reconstruction'].dtype == jnp.float32
