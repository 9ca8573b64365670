"""The model that ships in pretrained/humanoid_mocap: a workdir that evaluate and predict read as it is."""

import json
import os
import shutil

import numpy as np
import pytest
from test_video_folder import write_video  # pylint: disable=g-bad-import-order

from landmarks_jax import evaluate
from landmarks_jax import predict
from landmarks_jax.configs import default as default_config
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.training import checkpoints

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'pretrained', 'humanoid_mocap')
pytestmark = pytest.mark.skipif(not os.path.isdir(SHIPPED), reason=f'no {SHIPPED}')


@pytest.fixture(scope='module')
def shipped(tmp_path_factory):
  """A copy of the shipped workdir (evaluate and predict write beside the weights)."""
  copy = os.fspath(tmp_path_factory.mktemp('shipped') / 'humanoid_mocap')
  shutil.copytree(SHIPPED, copy)
  return copy


def test_the_shipped_model_is_the_generator_alone_under_20_mb():
  size = sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(SHIPPED) for name in names)
  assert size < 20 * 2**20
  store = checkpoints.Checkpoints(SHIPPED, writer=False)
  state, meta = store.restore_raw()
  assert sorted(state) == ['generator'] and meta['step'] == store.latest_step()
  config = checkpoints.read_config(SHIPPED)
  assert (config.dataset, config.data_dir, config.n_landmarks) == ('humanoid_mocap', '', 16)
  assert os.path.exists(os.path.join(SHIPPED, landmark_eval.EVAL_DIR, landmark_eval.JOINT_MAP_FILE))


def test_every_option_of_the_shipped_run_can_be_overridden():
  """Its config.json predates some options (dataset_seed); evaluate's --config.NAME=VALUE needs each one there."""
  with open(os.path.join(SHIPPED, checkpoints.CONFIG_FILE)) as file:
    saved = json.load(file)
  config = checkpoints.read_config(SHIPPED)
  assert set(default_config.get_config()) <= set(config)
  assert config.dataset_seed == saved.get('dataset_seed', 0) == 0


def test_the_shipped_model_finds_the_body_on_the_tiny_dataset(shipped, tiny_mocap_data_dir):
  """Its Gaussians cover the body: the mask's IoU is well above the all-foreground mask's on every split."""
  config = checkpoints.read_config(shipped)
  config.dataset_variant, config.data_dir = 'tiny', tiny_mocap_data_dir
  metrics = evaluate.run(shipped, config)
  for split in ('validation', 'test'):
    scores = metrics[split]
    assert scores['mask_iou'] > 2 * scores['baseline']['mask_iou'], (split, scores['mask_iou'])


def test_predict_runs_the_shipped_model_on_a_video_with_keypoints(shipped, tmp_path):
  rng = np.random.default_rng(0)
  clip = os.fspath(tmp_path / 'clip.mp4')
  write_video(clip, rng.integers(0, 256, (4, 40, 56, 3), np.uint8), 'libx264')
  results = predict.run(shipped, clip, os.fspath(tmp_path / 'out'), keypoints=True, write_video=False)
  (result,) = results.values()
  assert len(result['frame']) == 4
  rows = (tmp_path / 'out' / 'clip' / 'landmarks.csv').read_text().splitlines()
  assert len(rows) == 1 + 4 * 16
