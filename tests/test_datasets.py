"""Tests of the dataset registry: choosing, building and opening datasets, and the pipeline on built data."""

import io
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from landmarks_jax.configs import default
from landmarks_jax.data import datasets
from landmarks_jax.data import input_pipeline

import fake_bbc


def make_config(**overrides):
  config = default.get_config()
  config.img_size = 16
  config.batch_size = 2
  config.num_workers = 2
  for key, value in overrides.items():
    config[key] = value
  return config


def check_split(source, videos):
  """The records agree with the video table: count, grouping by video and frame order."""
  assert len(source) == sum(n for _, _, n in videos) > 0
  for video, first, count in videos:
    for frame_index in range(count):
      record = source[first + frame_index]
      assert int(record['video']) == video and int(record['frame_index']) == frame_index
  with Image.open(io.BytesIO(source[0]['image'])) as image:
    assert image.mode == 'RGB' and image.size[0] > 0


def test_unknown_dataset_lists_the_choices():
  for name in ('imagenet', ''):
    with pytest.raises(ValueError, match='bbc_pose, humanoid_mocap'):
      datasets.prepare_dataset(make_config(dataset=name))


def test_bbc_pose_without_dataset_path_says_how_to_set_it(tmp_path):
  with pytest.raises(ValueError, match='--config.dataset_path='):
    datasets.prepare_dataset(make_config(dataset='bbc_pose', dataset_path='', data_dir=str(tmp_path)))
  assert not any(tmp_path.iterdir())  # Nothing was written.


def test_importing_the_registry_pulls_no_tensorflow():
  script = (
    'import sys\nimport landmarks_jax.data.datasets\n'
    'print(sorted(m for m in ("tensorflow", "tensorflow_datasets") if m in sys.modules))\n'
  )
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == '[]'


@pytest.fixture(scope='module')
def built_bbc(tmp_path_factory):
  root = tmp_path_factory.mktemp('bbc')
  fake = fake_bbc.write_fake_bbc(root / 'raw', frames_per_video=2, image_size=(80, 60))
  config = make_config(dataset='bbc_pose', dataset_path=fake.root, data_dir=str(root / 'data'))
  return config, datasets.prepare_dataset(config), fake


def test_bbc_pose_splits_open_and_match_their_video_tables(built_bbc):
  _, builder, fake = built_bbc
  for split in ('train', 'validation', 'test'):
    source, videos = datasets.open_split(builder, split)
    check_split(source, videos)
    assert len(source) == len(fake.records[split])
    assert isinstance(source[0]['image'], bytes) and 'mask' not in source[0]


def test_open_split_unknown_split_lists_the_splits(built_bbc):
  _, builder, _ = built_bbc
  with pytest.raises(ValueError, match='test, train, validation'):
    datasets.open_split(builder, 'val')


def test_bbc_pose_is_reused_once_built_from_the_same_folder_only(built_bbc):
  config, builder, _ = built_bbc
  again = datasets.prepare_dataset(
    make_config(dataset='bbc_pose', dataset_path=config.dataset_path, data_dir=config.data_dir)
  )
  assert again.data_dir == builder.data_dir
  elsewhere = make_config(dataset='bbc_pose', dataset_path='/no/such/folder', data_dir=config.data_dir)
  with pytest.raises(FileNotFoundError, match='/no/such/folder'):
    datasets.prepare_dataset(elsewhere)


def test_pipeline_reads_the_built_bbc_pose(built_bbc):
  config, builder, _ = built_bbc
  source, videos = datasets.open_split(builder, 'train')
  with input_pipeline.train_batches(
    config, source, videos, num_local_devices=2, process_index=0, process_count=1
  ) as batches:
    batch = next(batches)
  assert batch['target'].shape == (2, 2, 16, 16, 3) and batch['joints'].shape == (2, 2, 7, 2)
  for record, partner in zip(batch['index'].ravel(), batch['temporal_index'].ravel()):
    assert source[int(record)]['video'] == source[int(partner)]['video']
  eval_source, eval_videos = datasets.open_split(builder, 'test')
  with input_pipeline.eval_batches(
    config, eval_source, num_local_devices=1, process_index=0, process_count=1, batch_size=4
  ) as batches:
    seen = np.concatenate([b['index'][b['valid']] for b in batches])
  np.testing.assert_array_equal(seen, np.arange(len(eval_source)))
  assert sum(n for _, _, n in eval_videos) == len(eval_source)


def test_humanoid_mocap_tiny_opens_with_masks(tmp_path):
  pytest.importorskip('landmarks_jax.data_pipelines.humanoid_mocap')
  config = make_config(dataset='humanoid_mocap', dataset_variant='tiny', data_dir=str(tmp_path))
  builder = datasets.prepare_dataset(config)
  for split in ('train', 'validation', 'test'):
    source, videos = datasets.open_split(builder, split)
    check_split(source, videos)
    with Image.open(io.BytesIO(source[0]['mask'])) as mask:
      assert mask.mode == 'L'
  source, videos = datasets.open_split(builder, 'train')
  with input_pipeline.train_batches(
    config, source, videos, num_local_devices=2, process_index=0, process_count=1
  ) as batches:
    batch = next(batches)
  assert batch['mask'].shape == (2, 2, 16, 16, 1) and batch['mask'].dtype == np.uint8  # levels of 0..255
  assert batch['mask'].max() > 0  # The body is in the frame.
  for record, partner in zip(batch['index'].ravel(), batch['temporal_index'].ravel()):
    assert source[int(record)]['video'] == source[int(partner)]['video']
