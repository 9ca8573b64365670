"""The model's structure and building blocks: parameter counts of the original, spectral norm, resizing."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.configs import bbc
from landmarks_jax.configs import humanoid_mocap as humanoid_mocap_config
from landmarks_jax.configs import test as test_config
from landmarks_jax.model import initialization
from landmarks_jax.model import resize
from landmarks_jax.model import spectral_norm
from landmarks_jax.model import vgg
from landmarks_jax.model.discriminator import MultiscaleDiscriminator
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.training import config_checks


def count_params(variables):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables['params']))


@pytest.mark.parametrize(
  'use_fg_bg_mask, low_res_mask, expected',
  [(False, False, 20_589_881), (True, False, 31_636_957), (True, True, 31_587_613)],
)
def test_generator_parameter_counts_equal_the_original(use_fg_bg_mask, low_res_mask, expected):
  config = bbc.get_config()
  config.use_fg_bg_mask, config.low_res_mask = use_fg_bg_mask, low_res_mask
  model = model_from_config(config)
  image = jnp.zeros((1, 128, 128, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, image))
  assert count_params(variables) == expected


def test_discriminator_parameter_count_equals_the_original():
  config = bbc.get_config()
  disc = MultiscaleDiscriminator(config.ndf, config.n_layers_D, config.num_D)
  variables = jax.eval_shape(lambda: disc.init(jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3))))
  assert count_params(variables) == 5_529_474


@pytest.mark.parametrize('identity, low_res', [(False, False), (True, True)])
def test_output_shapes(identity, low_res):
  config = test_config.get_config()
  config.use_identity_covariance, config.low_res_mask = identity, low_res
  model = model_from_config(config)
  a = jax.random.uniform(jax.random.PRNGKey(1), (3, 32, 32, 3), minval=-1, maxval=1)
  variables = initialization.init_variables(model, 0, a, a)
  apply = jax.jit(model.apply)
  out = apply(variables, a, a)
  k = config.n_landmarks
  assert out['reconstruction'].shape == (3, 32, 32, 3)
  assert out['input_a_heatmaps'].shape == (3, 16, 16, k)
  assert out['input_a_gauss_maps'].shape == (3, 32, 32, k)
  assert out['input_a_fg_mask'].shape == (3, 32, 32, 1)
  np.testing.assert_allclose(out['input_a_heatmaps'].sum(axis=(1, 2)), 1.0, rtol=1e-5)
  covariance = out['input_a_gauss_params'][2]
  assert covariance.shape == (3, k, 2, 2)
  if identity:
    np.testing.assert_allclose(covariance, config.fixed_covar * np.eye(2) * np.ones((3, k, 1, 1)))
  else:
    assert np.all(np.linalg.eigvalsh(np.asarray(covariance)) > 0)
  encoded = jax.jit(functools.partial(model.apply, with_mask=True))(variables, a)
  np.testing.assert_allclose(encoded['vis_centers'][0], out['vis_centers'][0], atol=1e-5)
  np.testing.assert_allclose(encoded['input_a_fg_mask'], out['input_a_fg_mask'], atol=1e-4)


def test_host_initialisation_follows_the_declared_rule():
  model = model_from_config(test_config.get_config())
  a = jnp.zeros((1, 32, 32, 3))
  variables = initialization.init_variables(model, 3, a, a)
  declared = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), a, a))
  assert jax.tree_util.tree_structure(variables) == jax.tree_util.tree_structure(declared)
  kernel = variables['params']['image_decoder']['fc']['kernel']  # (3, 3, 8, 32)
  bound = np.sqrt(6.0 / (9 * 8 + 9 * 32))
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound
  np.testing.assert_array_equal(variables['params']['image_decoder']['fc']['bias'], np.float32(0.1))
  u = variables['spectral']['image_decoder']['head_0']['conv_0']['u']
  np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-6)
  again = initialization.init_variables(model, 3, a, a)
  np.testing.assert_array_equal(again['params']['image_decoder']['fc']['kernel'], kernel)


def test_spectral_norm_iterates_only_in_training():
  conv = spectral_norm.SpectralConv(5, 3, padding=1)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 4))
  variables = conv.init(jax.random.PRNGKey(1), x)
  kernel = variables['params']['kernel']
  matrix = np.transpose(np.asarray(kernel), (3, 2, 0, 1)).reshape(5, -1)

  y_eval, updates = conv.apply(variables, x, train=False, mutable=['spectral'])
  np.testing.assert_array_equal(updates['spectral']['u'], variables['spectral']['u'])
  u, v = (np.asarray(variables['spectral'][k]) for k in 'uv')
  sigma = u @ matrix @ v
  expected = jax.lax.conv_general_dilated(
    x, kernel / sigma, (1, 1), ((1, 1), (1, 1)), dimension_numbers=('NHWC', 'HWIO', 'NHWC')
  )
  np.testing.assert_allclose(y_eval, expected + variables['params']['bias'], rtol=1e-5, atol=1e-6)

  state = variables
  for _ in range(200):
    _, updates = conv.apply(state, x, train=True, mutable=['spectral'])
    state = {'params': variables['params'], 'spectral': updates['spectral']}
  u, v = (np.asarray(state['spectral'][k]) for k in 'uv')
  np.testing.assert_allclose(u @ matrix @ v, np.linalg.svd(matrix, compute_uv=False)[0], rtol=1e-4)


def test_bilinear_matrices_follow_torch_rules():
  aligned = resize.bilinear_matrix(4, 8, align_corners=True)
  np.testing.assert_allclose(aligned.sum(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(aligned @ np.arange(4.0), np.linspace(0, 3, 8), rtol=1e-6)
  half_pixel = resize.bilinear_matrix(4, 8, align_corners=False)
  # Output pixel i samples source (i + 0.5) / 2 - 0.5, clamped at 0 and at the last pixel.
  expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
  np.testing.assert_allclose(half_pixel @ np.arange(4.0), expected, rtol=1e-6)
  shrink = resize.bilinear_matrix(8, 2, align_corners=False)  # no antialiasing: two taps per output
  np.testing.assert_allclose(shrink @ np.arange(8.0), [1.5, 5.5])
  assert np.count_nonzero(shrink) == 4
  nearest = resize.nearest_matrix(8, 3)
  np.testing.assert_array_equal(nearest.argmax(axis=1), [0, 2, 5])


def test_avg_pool_excludes_padding():
  x = jnp.ones((1, 5, 5, 1))
  np.testing.assert_allclose(resize.avg_pool_3x3_s2_exclude_pad(x), np.ones((1, 3, 3, 1)))
  ramp = jnp.arange(4.0).reshape(1, 1, 4, 1) * jnp.ones((1, 4, 1, 1))
  pooled = resize.avg_pool_3x3_s2_exclude_pad(ramp)
  np.testing.assert_allclose(pooled[0, 0, :, 0], [0.5, 2.0])


@pytest.mark.parametrize('shape', [(2, 8, 8, 3), (1, 7, 9, 2)])
def test_vgg_max_pool_is_torchs_with_the_same_gradient_after_relu(shape):
  # torch's MaxPool2d(2) drops an odd last row or column and sends a window's gradient to its maximum; after a
  # ReLU, the only ties are zeros, whose gradient the ReLU stops whichever way a pool splits it.
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  x = x.at[0, :2, :2, 0].set(0.0)  # a window of tied zeros
  relu_then_pool = lambda x: vgg._max_pool(jax.nn.relu(x))  # pylint: disable=protected-access
  relu_then_flax_pool = lambda x: nn.max_pool(jax.nn.relu(x), (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(relu_then_pool(x), relu_then_flax_pool(x))
  y, vjp = jax.vjp(relu_then_pool, x)
  grad_y = jax.random.normal(jax.random.PRNGKey(1), y.shape)
  np.testing.assert_array_equal(vjp(grad_y)[0], jax.vjp(relu_then_flax_pool, x)[1](grad_y)[0])


def test_gaussian_mask_is_the_union_of_the_landmark_gaussians_and_has_no_network():
  config = test_config.get_config()
  config.gaussian_fg_mask = True
  model = model_from_config(config)
  a = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 3), minval=-1, maxval=1)
  b = jax.random.uniform(jax.random.PRNGKey(2), (2, 32, 32, 3), minval=-1, maxval=1)
  variables = initialization.init_variables(model, 0, a, b)
  assert 'fg_mask_net' not in variables['params'] and 'bg_net' in variables['params']
  out = jax.jit(model.apply)(variables, a, b)  # jitted: four times faster than op by op on the CPU
  union = np.max(np.asarray(out['input_a_gauss_maps']), axis=-1, keepdims=True)
  np.testing.assert_allclose(out['input_a_fg_mask'], union, rtol=1e-6)
  assert union.max() - union.min() > 0.3  # the mask varies over the image, so the check has teeth
  blend = np.asarray(out['background_recon']) * (1 - union) + np.asarray(out['decoded_foreground']) * union
  np.testing.assert_allclose(out['reconstruction'], blend, atol=1e-5)
  encoded = jax.jit(lambda v, x: model.apply(v, x, with_mask=True))(variables, a)
  np.testing.assert_allclose(encoded['input_a_fg_mask'], union, atol=1e-5)


@pytest.mark.parametrize(
  'name, value, message',
  [
    ('img_size', 72, 'multiple of 16'),
    ('img_size', 0, 'multiple of 16'),
    ('n_landmarks', 0, 'n_landmarks'),
    ('dataset', 'imagenet', 'dataset must be one of'),
    ('vgg', 'resnet', 'vgg must be one of'),
    ('shape_decoder_widths', (8, 8), 'shape_decoder_widths'),
    ('tps_margin', 16.0, 'tps_margin'),
    ('tps_perturb', -1.0, 'tps_perturb'),
    ('low_res_mask', True, 'gaussian_fg_mask'),
    ('use_fg_bg_mask', False, 'gaussian_fg_mask'),
    ('time_limit_minutes', -1.0, 'time_limit_minutes'),
    ('model', 'UNet', 'model must be one of'),
  ],
)
def test_config_checks_name_the_problem(name, value, message):
  config = test_config.get_config()
  config.gaussian_fg_mask = name in ('low_res_mask', 'use_fg_bg_mask')
  config[name] = value
  with pytest.raises(config_checks.ConfigError, match=message):
    config_checks.validate_training_config(config)


def test_training_needs_temporal_or_warped():
  config = test_config.get_config()
  config.use_temporal = config.use_warped = False
  with pytest.raises(config_checks.ConfigError, match='use_temporal'):
    config_checks.validate_training_config(config)
  config_checks.validate_model_config(config)  # the model alone is fine


def test_the_embedded_dataset_config_is_valid_and_builds():
  config = humanoid_mocap_config.get_config()
  config_checks.validate_training_config(config)
  model = model_from_config(config)
  image = jnp.zeros((1, config.img_size, config.img_size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, image))
  assert 0 < count_params(variables) < 31_636_957 // 5  # Far narrower than configs/bbc.py with masks.
