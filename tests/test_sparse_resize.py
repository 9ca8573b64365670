"""The CPU resizes' custom call against the dense interpolation matrices it replaces: values and gradients of
every resize the networks use, bfloat16, vmap, what stays dense, and bad matrices."""

import platform

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.cpu import native_calls
from landmarks_jax.cpu import sparse_resize
from landmarks_jax.model import resize

needs_call = pytest.mark.skipif(
  not sparse_resize.handles(jnp.zeros((1, 2, 2, 1))), reason='the sparse resize call is not built here'
)

# (input shape, the resize): the networks' (SPADE's shrinking of the landmark maps, the generator's nearest
# shrinking and doubling, the U-Nets' align_corners doubling, the mask's quadrupling), then odd sizes.
CASES = [
  ((2, 16, 16, 5), lambda x: resize.resize_bilinear(x, (8, 8), align_corners=False)),
  ((2, 16, 16, 5), lambda x: resize.resize_bilinear(x, (2, 2), align_corners=False)),
  ((2, 32, 32, 4), lambda x: resize.resize_nearest(x, (2, 2))),
  ((2, 8, 8, 6), lambda x: resize.upsample_bilinear(x, 2, align_corners=False)),
  ((2, 8, 8, 6), lambda x: resize.upsample_bilinear(x, 2, align_corners=True)),
  ((2, 4, 4, 3), lambda x: resize.upsample_bilinear(x, 4, align_corners=False)),
  ((3, 7, 5, 3), lambda x: resize.resize_bilinear(x, (11, 4), align_corners=True)),
  ((1, 9, 6, 2), lambda x: resize.resize_bilinear(x, (5, 13), align_corners=False)),
  ((1, 9, 6, 2), lambda x: resize.resize_nearest(x, (4, 11))),
]


def custom_call_in(fn, x) -> bool:
  return sparse_resize.TARGET in jax.jit(fn).lower(x).as_text()


def test_the_call_is_built_on_linux():
  if platform.system() != 'Linux':
    pytest.skip('built and tested on Linux')
  assert sparse_resize.handles(jnp.zeros((1, 2, 2, 1)))


@needs_call
@pytest.mark.parametrize('shape, fn', CASES)
def test_values_and_gradient_equal_the_dense_products(shape, fn):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  assert custom_call_in(fn, x)
  y, vjp = jax.vjp(fn, x)
  grad_y = jax.random.normal(jax.random.PRNGKey(1), y.shape)
  with jax.enable_x64(True):
    y_dense, vjp_dense = jax.vjp(fn, jnp.asarray(x, jnp.float64))
    assert not custom_call_in(fn, jnp.asarray(x, jnp.float64))
    (grad_dense,) = vjp_dense(jnp.asarray(grad_y, jnp.float64))
  np.testing.assert_allclose(y, y_dense, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(vjp(grad_y)[0], grad_dense, rtol=1e-5, atol=1e-5)


@needs_call
def test_bfloat16_is_close_to_float32():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4))
  fn = lambda x: resize.upsample_bilinear(x, 2, align_corners=True)
  y16 = fn(x.astype(jnp.bfloat16))
  assert y16.dtype == jnp.bfloat16 and custom_call_in(fn, x.astype(jnp.bfloat16))
  np.testing.assert_allclose(np.asarray(y16, np.float32), fn(x), rtol=1e-2, atol=1e-2)


@needs_call
def test_vmap_equals_one_call_per_example():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 6, 6, 4))
  fn = lambda x: resize.resize_bilinear(x, (9, 4), align_corners=False)
  batched = jax.vmap(fn)(x)
  np.testing.assert_array_equal(batched, jnp.stack([fn(example) for example in x]))
  grads = jax.grad(lambda x: jnp.sum(jax.vmap(fn)(x) ** 2))(x)
  np.testing.assert_allclose(grads, jnp.stack([jax.grad(lambda e: jnp.sum(fn(e) ** 2))(e) for e in x]), rtol=1e-6)


def test_a_resize_to_the_same_size_returns_its_input():
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 7, 2))
  for fn in (
    lambda x: resize.resize_bilinear(x, (5, 7), True),
    lambda x: resize.resize_bilinear(x, (5, 7), False),
    lambda x: resize.resize_nearest(x, (5, 7)),
  ):
    assert fn(x) is x


def test_taps_keep_the_nonzero_entries_and_transpose():
  matrix = resize.bilinear_matrix(5, 9, align_corners=True)
  taps = sparse_resize.Taps.of(matrix)
  assert len(taps.indices) == np.count_nonzero(matrix)
  np.testing.assert_allclose(taps.dense(), matrix, rtol=1e-7)
  np.testing.assert_allclose(taps.transposed().dense(), matrix.T, rtol=1e-7)


@needs_call
def test_matrices_that_do_not_fit_the_input_are_refused():
  rows = sparse_resize.Taps.of(resize.bilinear_matrix(4, 8, False))  # for 4 rows, not 6
  cols = sparse_resize.Taps.of(resize.bilinear_matrix(6, 8, False))
  with pytest.raises(ValueError, match='resize matrices for 4 x 6 pixels given an image of 6 x 6'):
    sparse_resize.resize(jnp.ones((1, 6, 6, 1)), rows, cols)
  # The call checks its matrices itself: here one that says it is for 6 rows but reads row 7.
  reads_past_the_end = sparse_resize.Taps(6, (0, 1), (7,), (1.0,))
  with pytest.raises(Exception, match='the matrices do not match the input and output shapes'):
    jax.block_until_ready(sparse_resize.resize(jnp.ones((1, 6, 6, 1)), reads_past_the_end, cols))


def test_an_extension_that_was_not_built_is_reported_and_not_registered(caplog):
  caplog.set_level('INFO')
  assert not native_calls.register('landmarks_jax.model._never_built', {'unused': 'Unused'}, 'no such calls')
  assert 'no such calls: landmarks_jax.model._never_built was not built' in caplog.text
