"""The original and ours trained on the same pairs for two steps of the tiny dataset, and scored alike.

Needs the `torch` extra and a checkout of the original named by $LANDMARKS_JAX_ORIGINAL; skipped without them
(it trains and evaluates both sides, about a minute on 2 cores). What is checked: the original was fed exactly
the records and partners our step trained on, at our parameter count; its weights moved; both runs' scores are
in range and tabulated.
"""

import json
import os

import numpy as np
import pytest

from landmarks_jax.bench import original_step
from landmarks_jax.bench import peer_training
from landmarks_jax.configs import test as test_config
from landmarks_jax.training import train_step

torch = pytest.importorskip('torch')

CHECKOUT = os.environ.get('LANDMARKS_JAX_ORIGINAL', '')
NUM_STEPS = 2


@pytest.fixture(scope='module')
def checkout():
  if not CHECKOUT:
    pytest.skip('set LANDMARKS_JAX_ORIGINAL to a checkout of the original to train it beside ours')
  try:
    original_step.models_folder(CHECKOUT)
  except FileNotFoundError as error:
    pytest.skip(str(error))
  return CHECKOUT


@pytest.fixture(scope='module')
def comparison(checkout, tiny_mocap_data_dir, tmp_path_factory):
  """The comparison's report and the (index, temporal_index) of every batch our step trained on."""
  config = test_config.get_config()
  config.data_dir = tiny_mocap_data_dir
  trained_on = []
  make = train_step.make_p_train_step

  def recording_step(*args, **kwargs):
    step = make(*args, **kwargs)

    def run(state, batch, *rest):
      trained_on.append({name: np.asarray(batch[name]).reshape(-1) for name in ('index', 'temporal_index')})
      return step(state, batch, *rest)

    return run

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(train_step, 'make_p_train_step', recording_step)
    workdir = str(tmp_path_factory.mktemp('peer'))
    report = peer_training.compare(config, checkout, workdir, NUM_STEPS, seeds=[0], original_seeds=[0], pictures=False)
  return config, workdir, report, trained_on


def test_the_original_is_fed_the_pairs_ours_trained_on(comparison):
  _, workdir, _, trained_on = comparison
  assert len(trained_on) == NUM_STEPS
  with np.load(os.path.join(workdir, 'original_seed0', peer_training.PAIRS_FILE)) as fed:
    for name in ('index', 'temporal_index'):
      np.testing.assert_array_equal(fed[name], np.stack([batch[name] for batch in trained_on]))
    assert not np.array_equal(fed['index'], fed['temporal_index'])


def test_the_original_has_our_size_and_its_weights_moved(comparison, checkout):
  config, workdir, report, _ = comparison
  ours, original = report['runs']
  assert original['parameters'] == ours['parameters']
  start, _ = peer_training.build_original(checkout, peer_training.run_config(config, 0, NUM_STEPS), seed=0)
  trained = torch.load(os.path.join(workdir, 'original_seed0', f'model_step{NUM_STEPS}.pt'))
  moved = [name for name, value in start.model.state_dict().items() if not torch.equal(value, trained[name])]
  assert any(name.startswith('shape_encoder') for name in moved)
  assert any(name.startswith('image_decoder') for name in moved)


def test_both_are_scored_by_our_evaluation(comparison):
  _, workdir, report, _ = comparison
  assert [run['name'] for run in report['runs']] == ['ours seed 0', 'original seed 0']
  for run in report['summary']['runs']:
    for split in ('test', 'validation'):
      scores = run[split]
      assert 0 < scores['error_ratio'] < 10 and 0 <= scores['pck_0.1'] <= 1 and 0 <= scores['mask_iou'] <= 1
      assert set(scores['per_joint_pixel_error']) == set(report['summary']['mean_pose'][split]['per_joint_pixel_error'])
  with open(os.path.join(workdir, 'original_seed0', 'eval', 'metrics.json'), encoding='utf-8') as f:
    assert json.load(f)['step'] == NUM_STEPS
  with open(os.path.join(workdir, peer_training.REPORT_FILE), encoding='utf-8') as f:
    assert json.load(f)['summary'] == report['summary']
  text = peer_training.table(report)
  assert 'original seed 0' in text and 'mean pose' in text and 'against ours' in text


def test_the_embedded_defaults_widths_and_gaussian_mask_are_built_from_the_originals_classes(checkout):
  from landmarks_jax.configs import humanoid_mocap  # pylint: disable=g-import-not-at-top

  config = humanoid_mocap.get_config()
  config.use_vgg = False  # the perceptual network plays no part in the sizes
  training, replaced = peer_training.build_original(checkout, config, seed=0)
  assert "fg_mask_net (the Gaussians' maximum)" in replaced and 'shape_encoder' in replaced
  assert sum(p.numel() for p in training.model.parameters()) == peer_training.our_parameter_count(config)
  maps = torch.rand(2, config.n_landmarks, 8, 8)
  mask = training.model.sigmoid(training.model.fg_mask_net(maps))
  assert torch.equal(mask, maps.amax(dim=1, keepdim=True))
