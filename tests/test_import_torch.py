"""Importing checkpoints of the PyTorch original: files torch wrote become a workdir that reproduces them."""

import collections

import jax
import numpy as np
import pytest

from landmarks_jax import import_torch
from landmarks_jax.model.discriminator import MultiscaleDiscriminator
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.training import checkpoints
from landmarks_jax.weights.original_checkpoints import weight_mapping

from reference_weights import REFERENCE
from reference_weights import float64
from reference_weights import load_reference
from reference_weights import nhwc
from reference_weights import reference_config
from reference_weights import regenerate_weights
from reference_weights import split_prefix

torch = pytest.importorskip('torch')
pytestmark = pytest.mark.skipif(not REFERENCE.exists(), reason=f'no reference file at {REFERENCE}')


@pytest.fixture(scope='module')
def reference():
  return load_reference()


@pytest.fixture(scope='module')
def original_files(reference, tmp_path_factory):
  """The reference weights saved as the original saves them (torch 1.x single-stream format)."""
  weights = regenerate_weights(reference['state_keys'], reference['state_shapes'], reference['seed'])
  folder = tmp_path_factory.mktemp('original')
  paths = {}
  for name, prefix in (('model', 'model/'), ('discriminator', 'discriminator/')):
    state = collections.OrderedDict((k, torch.from_numpy(v)) for k, v in split_prefix(weights, prefix).items())
    paths[name] = str(folder / f'checkpoint_{name}_5.ckpt')
    torch.save(state, paths[name], _use_new_zipfile_serialization=False)
  return paths


def relative_error(ours, ref):
  return np.max(np.abs(np.asarray(ours) - ref)) / np.max(np.abs(ref))


def test_imported_workdir_reproduces_the_original(reference, original_files, tmp_path):
  config = reference_config(reference)
  config.use_gan = True
  workdir = str(tmp_path / 'imported')
  import_torch.import_checkpoint(config, original_files['model'], workdir, original_files['discriminator'])

  state, meta = checkpoints.Checkpoints(workdir).restore_raw()
  assert meta['step'] == 0 and meta['imported_from'] == original_files['model']
  assert checkpoints.read_config(workdir).n_landmarks == config.n_landmarks
  with jax.enable_x64(True):  # float64, as in the parity test, so float32 rounding is not what is measured
    outputs = jax.jit(model_from_config(config).apply)(
      float64(state['generator']), float64(nhwc(reference['input_a'])), float64(nhwc(reference['input_b']))
    )
    logits = jax.jit(MultiscaleDiscriminator(config.ndf, config.n_layers_D, config.num_D).apply)(
      float64(state['discriminator']), float64(nhwc(reference['out/reconstruction']))
    )
  assert relative_error(np.transpose(outputs['reconstruction'], (0, 3, 1, 2)), reference['out/reconstruction']) <= 1e-4
  assert relative_error(np.transpose(logits[0], (0, 3, 1, 2)), reference['out_discriminator/0/0']) <= 1e-4


def test_import_refuses_a_config_that_does_not_fit(reference, original_files, tmp_path):
  config = reference_config(reference)
  config.n_landmarks = 9
  with pytest.raises(weight_mapping.StateDictMismatch, match=r'wrong shape[\s\S]*shape_encoder'):
    import_torch.import_checkpoint(config, original_files['model'], str(tmp_path / 'w'))
  assert not (tmp_path / 'w' / 'checkpoints').exists() or not list((tmp_path / 'w' / 'checkpoints').iterdir())


def test_import_lists_missing_and_unexpected_names(reference, original_files, tmp_path):
  config = reference_config(reference)
  config.use_fg_bg_mask = False  # the file has bg_net and fg_mask_net weights this config does not use
  with pytest.raises(weight_mapping.StateDictMismatch, match=r'unexpected:[\s\S]*bg_net\.'):
    import_torch.import_checkpoint(config, original_files['model'], str(tmp_path / 'a'))
  config = reference_config(reference)
  config.low_res_mask = True  # expects fg_mask_net.0.* names
  with pytest.raises(weight_mapping.StateDictMismatch, match=r'missing:[\s\S]*fg_mask_net\.0\.'):
    import_torch.import_checkpoint(config, original_files['model'], str(tmp_path / 'b'))


def test_import_never_overwrites_a_workdir(reference, original_files, tmp_path):
  config = reference_config(reference)
  workdir = str(tmp_path / 'once')
  import_torch.import_checkpoint(config, original_files['model'], workdir)
  with pytest.raises(FileExistsError, match='already holds checkpoints'):
    import_torch.import_checkpoint(config, original_files['model'], workdir)


def test_torch_names_cover_every_variable_once(reference):
  config = reference_config(reference)
  model = model_from_config(config)
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
  template = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, x), image)
  names = []
  for collection in ('params', 'spectral'):
    flat = jax.tree_util.tree_flatten_with_path(template[collection])[0]
    for path, _ in flat:
      keys = tuple(p.key for p in path)
      names.append(weight_mapping.model_torch_name(collection, keys, template['params']))
  expected = split_prefix(dict.fromkeys(map(str, reference['state_keys'])), 'model/')
  assert sorted(names) == sorted(expected)
