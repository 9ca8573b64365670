"""Maps PyTorch state dicts of the original (numpy arrays by torch name) onto our Flax variables.

Each Flax variable has exactly one torch name, derived from its path; the import fills a template of the
variables (from `jax.eval_shape` of the module's init) and fails with one message listing every missing name,
unexpected name and shape that does not fit the configuration.
"""

import re
from typing import Mapping

import flax
import numpy as np

from landmarks_jax import user_errors
from landmarks_jax.model import vgg

# torchvision's `features` indices of the convolutions we use.
VGG_TORCH_INDICES = {'vgg19': (0, 2, 5, 7, 10, 12, 14, 16, 19, 21), 'vgg16': (0, 2, 5, 7, 10, 12, 14, 17, 19)}


class StateDictMismatch(user_errors.UserError, ValueError):
  """A state dict does not fit the configuration's networks."""


def _unet_layer(path: tuple[str, ...], num_upsamples: int) -> str:
  """torch module path inside the original's Unet for our U-Net submodule path."""
  head = path[0]
  if head in ('stem_0', 'stem_1'):
    return f'encoder_layers.0.{head[-1]}.0'
  if m := re.fullmatch(r'encoder_(\d+)', head):
    i = int(m.group(1))
    inner = {'down': '0', 'conv': '1'}[path[1]]
    return f'encoder_layers.0.2.{inner}.0' if i == 0 else f'encoder_layers.{i}.{inner}.0'
  if head == 'bottleneck':
    return 'decoder_layers.0.0'
  if m := re.fullmatch(r'skip_(\d+)', head):
    return f'skip_convs.{m.group(1)}.0'
  if m := re.fullmatch(r'decoder_(\d+)', head):
    i = int(m.group(1)) + 1
    inner = {'conv_in': '0', 'conv_out': '2'}[path[1]]
    return f'decoder_layers.{i}.0.{inner}.0' if i == num_upsamples else f'decoder_layers.{i}.{inner}.0'
  if head == 'output':
    return f'decoder_layers.{num_upsamples}.1'
  raise KeyError(path)


def _leaf_suffix(collection: str, leaf: str, spectral: bool) -> str:
  if collection == 'spectral':
    return {'u': 'weight_u', 'v': 'weight_v'}[leaf]
  if leaf == 'kernel':
    return 'weight_orig' if spectral else 'weight'
  return leaf


def _num_upsamples(tree: Mapping) -> int:
  return sum(1 for name in tree if name.startswith('decoder_'))


def model_torch_name(collection: str, path: tuple[str, ...], params: Mapping) -> str:
  """The original's state-dict name of the LandmarkModel variable at (collection, path)."""
  net, inner, leaf = path[0], path[1:-1], path[-1]
  if net == 'image_decoder':
    spectral = len(inner) == 2 and re.fullmatch(r'conv_[01s]', inner[1]) is not None
    modules = list(inner)
    if modules[-1] == 'mlp_shared':
      modules.append('0')
    return '.'.join([net] + modules + [_leaf_suffix(collection, leaf, spectral)])
  prefix = 'fg_mask_net.0' if net == 'fg_mask_net' and _num_upsamples(params[net]) == 1 else net
  layer = _unet_layer(inner, _num_upsamples(params[net]))
  return f'{prefix}.{layer}.{_leaf_suffix(collection, leaf, False)}'


def discriminator_torch_name(path: tuple[str, ...], num_scales: int) -> str:
  """The original's name of a MultiscaleDiscriminator parameter: scale i is torch's layer{num_D - 1 - i}."""
  scale, conv_name, leaf = path
  i, j = int(scale.split('_')[1]), int(conv_name.split('_')[1])
  index = 0 if j == 0 else 3 * j - 1
  return f'layer{num_scales - 1 - i}.{index}.{_leaf_suffix("params", leaf, False)}'


def vgg_torch_name(path: tuple[str, ...], layout: str) -> str:
  """torchvision's `features.N.weight|bias` name of one of our VGG parameters."""
  conv_name, leaf = path
  index = VGG_TORCH_INDICES[layout][vgg.conv_names(layout).index(conv_name)]
  return f'features.{index}.{_leaf_suffix("params", leaf, False)}'


def _to_flax(array: np.ndarray, leaf: str) -> np.ndarray:
  array = np.asarray(array, np.float32)
  if leaf == 'kernel':
    return np.transpose(array, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)
  return array


def _fill(
  template: Mapping, state_dict: Mapping[str, np.ndarray], name_of, what: str, allow_unused: bool = False
) -> dict:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(template))
  filled, missing, wrong_shape, used = {}, [], [], set()
  for key, leaf_template in flat.items():
    name = name_of(key)
    if name not in state_dict:
      missing.append(name)
      continue
    used.add(name)
    value = _to_flax(state_dict[name], key[-1])
    if value.shape != tuple(leaf_template.shape):
      wrong_shape.append(
        f'{name}: file {tuple(np.shape(state_dict[name]))}, config needs {_torch_shape(leaf_template.shape, key[-1])}'
      )
      continue
    filled[key] = value
  unexpected = [] if allow_unused else sorted(set(state_dict) - used)
  if missing or unexpected or wrong_shape:
    lines = [f'The {what} weights do not fit this configuration.']
    for title, names in (('missing', missing), ('unexpected', unexpected), ('wrong shape', wrong_shape)):
      if names:
        lines.append(f'{len(names)} {title}:\n  ' + '\n  '.join(sorted(names)))
    lines.append(
      'Check that the config (n_landmarks, img_size, use_fg_bg_mask, low_res_mask, nsf, naf, ngc, '
      'n_filters, widths, num_D, n_layers_D, ndf) matches the run that wrote the checkpoint.'
    )
    raise StateDictMismatch('\n'.join(lines))
  return flax.traverse_util.unflatten_dict(filled)


def _torch_shape(shape, leaf):
  return (shape[3], shape[2], shape[0], shape[1]) if leaf == 'kernel' else tuple(shape)


def model_variables_from_torch(state_dict: Mapping[str, np.ndarray], template: Mapping) -> dict:
  """LandmarkModel variables ({'params', 'spectral'}) from the original PartFactorizedModel's state dict."""
  params = template['params']
  return _fill(template, state_dict, lambda key: model_torch_name(key[0], key[1:], params), 'model')


def discriminator_variables_from_torch(state_dict: Mapping[str, np.ndarray], template: Mapping) -> dict:
  """MultiscaleDiscriminator variables from the original discriminator's state dict."""
  num_scales = len(template['params'])
  return _fill(template, state_dict, lambda key: discriminator_torch_name(key[1:], num_scales), 'discriminator')


def vgg_variables_from_torch(state_dict: Mapping[str, np.ndarray], template: Mapping, layout: str) -> dict:
  """VGGFeatures variables from a torchvision VGG state dict (`features.N.*`; other entries are ignored)."""
  return _fill(template, state_dict, lambda key: vgg_torch_name(key[1:], layout), f'{layout} VGG', allow_unused=True)
