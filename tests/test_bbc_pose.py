"""Tests of the BBC Pose TFDS builder against a fake download written by fake_bbc."""

import io
import os
import shutil

import numpy as np
from PIL import Image
import pytest
import scipy.io
import tensorflow_datasets as tfds

from landmarks_jax.data_pipelines import bbc_pose

import fake_bbc

SPLITS = ('train', 'validation', 'test')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """The fake download (2 frames per train/validation video, 3 per test video) and its prepared builder."""
  root = tmp_path_factory.mktemp('bbc')
  fake = fake_bbc.write_fake_bbc(root / 'raw', frames_per_video=2, test_frames_per_video=3)
  builder = bbc_pose.prepare(fake.root, os.fspath(root / 'data'))
  return fake, builder


def _records(builder, split):
  """Every record of a split, images left as the stored bytes."""
  source = builder.as_data_source(split, decoders={'image': tfds.decode.SkipDecoding()})
  return [source[i] for i in range(len(source))]


def _expected_boxes(joints, width, height):
  """Both crops of the original, written independently of the builder: (train_box, eval_box)."""
  low, high = joints.min(axis=0), joints.max(axis=0)
  limit = np.array([width, height], np.float64)
  train = np.concatenate([np.maximum(low - 60, 0), np.minimum(high + 60, limit)])
  centre = (low + high) / 2
  evaluation = np.concatenate([np.maximum(centre - 150, 0), np.minimum(centre + 150, limit)])
  return train, evaluation


def _small_fake(tmp_path, **kwargs):
  return fake_bbc.write_fake_bbc(tmp_path / 'raw', frames_per_video=1, image_size=(40, 30), **kwargs)


def _assert_nothing_built(data_dir):
  dataset_dir = data_dir / 'bbc_pose'
  assert not (dataset_dir / '1.0.0').exists()
  if dataset_dir.exists():
    assert not [name for name in os.listdir(dataset_dir) if name.startswith('incomplete')]


def test_split_counts(built):
  fake, builder = built
  assert set(builder.info.splits.keys()) == set(SPLITS)
  assert builder.info.splits['train'].num_examples == 10 * 2
  assert builder.info.splits['validation'].num_examples == 5 * 2
  assert builder.info.splits['test'].num_examples == 5 * 3
  for split in SPLITS:
    assert len(builder.as_data_source(split)) == len(fake.records[split])


def test_metadata(built):
  fake, builder = built
  assert builder.info.metadata['joint_names'] == [
    'head',
    'right_wrist',
    'left_wrist',
    'right_elbow',
    'left_elbow',
    'right_shoulder',
    'left_shoulder',
  ]
  for split in SPLITS:
    table = builder.info.metadata['videos'][split]
    expected_videos = list(dict.fromkeys(record.video for record in fake.records[split]))
    assert [row[0] for row in table] == expected_videos
    records = _records(builder, split)
    next_record = 0
    for video, first_record, num_frames in table:
      assert first_record == next_record
      next_record += num_frames
      assert [int(r['video']) for r in records[first_record:next_record]] == [video] * num_frames
      assert [int(r['frame_index']) for r in records[first_record:next_record]] == list(range(num_frames))
    assert next_record == len(records)


def test_test_split_keeps_results_mat_order(built):
  fake, builder = built
  results = scipy.io.loadmat(os.path.join(fake.root, 'code', 'results.mat'))['results'][0][0]
  records = _records(builder, 'test')
  assert [int(r['video']) for r in records] == results[2][0].astype(int).tolist()
  assert [int(r['frame']) for r in records] == results[1][0].astype(int).tolist()
  joints = np.stack([r['joints'] for r in records], axis=-1)  # (7, 2, N)
  np.testing.assert_allclose(np.transpose(joints, (1, 0, 2)), results[0], rtol=1e-6)
  # The fake lists the test videos out of numerical order, so sorting would have been caught.
  assert [int(r['video']) for r in records] != sorted(int(r['video']) for r in records)


@pytest.mark.parametrize('split', SPLITS)
def test_records_match_annotations(built, split):
  fake, builder = built
  records = _records(builder, split)
  for record, expected in zip(records, fake.records[split], strict=True):
    assert int(record['video']) == expected.video
    assert int(record['frame']) == expected.frame
    assert int(record['frame_index']) == expected.frame_index
    assert record['joints'].dtype == np.float32
    np.testing.assert_allclose(record['joints'], expected.joints, rtol=1e-6)


@pytest.mark.parametrize('split', SPLITS)
def test_boxes(built, split):
  fake, builder = built
  width, height = fake.image_size
  clipped, unclipped = 0, 0
  for record, expected in zip(_records(builder, split), fake.records[split], strict=True):
    train, evaluation = _expected_boxes(expected.joints, width, height)
    np.testing.assert_allclose(record['train_box'], train, rtol=1e-6)
    np.testing.assert_allclose(record['eval_box'], evaluation, rtol=1e-6)
    grown = np.concatenate([expected.joints.min(0) - 60, expected.joints.max(0) + 60])
    if np.allclose(train, grown):
      unclipped += 1
    else:
      clipped += 1
  assert clipped and unclipped  # The fake's joints exercise both cases.


def test_box_values():
  joints = np.zeros((7, 2))
  joints[:, 0] = [10, 20, 30, 40, 50, 25.5, 35]
  joints[:, 1] = [100, 130.25, 110, 120, 105.25, 115, 125]
  np.testing.assert_allclose(bbc_pose.train_box(joints, 320, 240), [0, 40, 110, 190.25])
  # Centre (30, 115.125): x clipped at 0, y clipped at both ends.
  np.testing.assert_allclose(bbc_pose.eval_box(joints, 320, 240), [0, 0, 180, 240])
  np.testing.assert_allclose(bbc_pose.eval_box(joints + [200, 0], 1000, 1000), [80, 0, 380, 265.125])
  np.testing.assert_allclose(bbc_pose.train_box(joints + 100, 1000, 1000), [50, 140, 210, 290.25])


@pytest.mark.parametrize('split', SPLITS)
def test_images_are_the_original_jpegs(built, split):
  fake, builder = built
  decoded = builder.as_data_source(split)
  for index, (record, expected) in enumerate(zip(_records(builder, split), fake.records[split], strict=True)):
    with open(expected.path, 'rb') as f:
      jpeg = f.read()
    assert record['image'] == jpeg  # Stored as is, not re-encoded.
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert('RGB'))
    assert pixels.shape == (fake.image_size[1], fake.image_size[0], 3)
    np.testing.assert_array_equal(decoded[index]['image'], pixels)


def test_prepare_reuses_built_data(built):
  fake, builder = built
  again = bbc_pose.prepare(fake.root, builder.data_dir_root)
  assert again.info.splits['test'].num_examples == builder.info.splits['test'].num_examples
  assert again.info.metadata['videos'] == builder.info.metadata['videos']
  assert again.info.metadata[bbc_pose.SOURCE_KEY] == os.path.realpath(fake.root)


def test_a_build_from_another_folder_is_not_reused(built, tmp_path):
  fake, builder = built
  with pytest.raises(FileNotFoundError, match=r'no/such/bbc/folder.*does not exist'):
    bbc_pose.prepare('/no/such/bbc/folder', builder.data_dir_root)
  other = tmp_path / 'other_download'
  other.mkdir()
  with pytest.raises(ValueError, match=rf'was made from {os.path.realpath(fake.root)}, not from {other}.*data_dir'):
    bbc_pose.prepare(other, builder.data_dir_root)


def test_missing_dataset_folder(tmp_path):
  with pytest.raises(FileNotFoundError, match=r'(?s)no_bbc.*does not exist.*bbcpose_data_1\.0\.zip'):
    bbc_pose.prepare(tmp_path / 'no_bbc', tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


@pytest.mark.parametrize('name', ['bbcpose.mat', 'results.mat'])
def test_missing_mat_file(tmp_path, name):
  fake = _small_fake(tmp_path)
  os.remove(os.path.join(fake.root, 'code', name))
  with pytest.raises(FileNotFoundError, match=rf'code/{name} is missing.*bbcpose_extbbcpose_code_1\.0\.tgz'):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


def _rewrite_bbcpose(root, change):
  path = os.path.join(root, 'code', 'bbcpose.mat')
  entries = scipy.io.loadmat(path)['bbcpose']
  change(entries)
  scipy.io.savemat(path, {'bbcpose': entries})


def _rewrite_results(root, change):
  path = os.path.join(root, 'code', 'results.mat')
  results = scipy.io.loadmat(path)['results']
  change(results[0, 0])
  scipy.io.savemat(path, {'results': results})


def _set_joints_of_video_4(entries):
  entries[0, 3]['train_joints'] = np.zeros((3, 7, 2))


def _add_frame_to_video_4(entries):
  entries[0, 3]['train_frames'] = np.array([[1.0, 2.0]])


def _fractional_frame_of_video_4(entries):
  entries[0, 3]['train_frames'] = np.array([[2.5]])


def _drop_joint_from_results(results):
  results['gt'] = results['gt'][:, :6]


def _drop_video_from_results(results):
  results['video'] = results['video'][:, 1:]


@pytest.mark.parametrize(
  'rewrite, change, message',
  [
    (_rewrite_bbcpose, _set_joints_of_video_4, r'bbcpose\.mat, video 4.*train_joints.*2x7xN.*got 3x7x2'),
    (_rewrite_bbcpose, _add_frame_to_video_4, r'bbcpose\.mat, video 4.*train_joints.*N = 2 frames'),
    (_rewrite_bbcpose, _fractional_frame_of_video_4, r'video 4.*train_frames: expected positive integers'),
    (_rewrite_results, _drop_joint_from_results, r'results\.mat.*2x7xN.*got 2x6x5'),
    (_rewrite_results, _drop_video_from_results, r'results\.mat: 5 frame numbers and 4 video numbers'),
  ],
)
def test_malformed_mat(tmp_path, rewrite, change, message):
  fake = _small_fake(tmp_path)
  rewrite(fake.root, change)
  with pytest.raises(ValueError, match=message):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


def test_mat_without_the_struct(tmp_path):
  fake = _small_fake(tmp_path)
  scipy.io.savemat(os.path.join(fake.root, 'code', 'bbcpose.mat'), {'something': np.zeros((2, 2))})
  with pytest.raises(ValueError, match=r"bbcpose\.mat holds no variable 'bbcpose'.*something"):
    bbc_pose.prepare(fake.root, tmp_path / 'data')


@pytest.mark.parametrize('text', [b'not a mat file', b'video frame x y\n1 2 3.5 4.5\n1 3 5 6\n'])
def test_unreadable_mat(tmp_path, text):
  """Text in place of the .mat file; the second makes scipy itself fail with an IndexError."""
  fake = _small_fake(tmp_path)
  with open(os.path.join(fake.root, 'code', 'results.mat'), 'wb') as f:
    f.write(text)
  with pytest.raises(ValueError, match=r"results\.mat is not a readable MATLAB file.*struct 'results'"):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


def test_missing_video_folder(tmp_path):
  fake = _small_fake(tmp_path)
  shutil.rmtree(os.path.join(fake.root, '12'))
  with pytest.raises(FileNotFoundError, match=r"(?s)raw/12 is missing.*'validation' split needs video 12"):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


def test_missing_frame_file(tmp_path):
  fake = _small_fake(tmp_path)
  missing = fake.records['test'][2]
  os.remove(missing.path)
  with pytest.raises(FileNotFoundError, match=rf'{missing.path} of video {missing.video} is missing'):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')


def test_builder_checks_before_generating(tmp_path):
  """Building through TFDS directly (not prepare) gives the same error and writes no split."""
  fake = _small_fake(tmp_path)
  missing = fake.records['train'][5]
  os.remove(missing.path)
  builder = bbc_pose.BbcPose(data_dir=tmp_path / 'data', file_format='array_record')
  with pytest.raises(FileNotFoundError, match=rf'{missing.path} of video {missing.video} is missing'):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=fake.root))
  _assert_nothing_built(tmp_path / 'data')


def test_corrupt_jpeg_fails_naming_the_file(tmp_path):
  fake = _small_fake(tmp_path, corrupt=(14, 0))
  assert fake.corrupt_path is not None
  with pytest.raises(ValueError, match=rf'{fake.corrupt_path} \(video 14, frame \d+\) is corrupt'):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')
  # Once the file is whole again the same data_dir builds.
  Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(fake.corrupt_path, format='JPEG')
  builder = bbc_pose.prepare(fake.root, tmp_path / 'data')
  assert builder.info.splits['validation'].num_examples == 5


def test_non_jpeg_frame_is_refused(tmp_path):
  fake = _small_fake(tmp_path)
  Image.fromarray(np.zeros((30, 40), np.uint8)).save(fake.records['train'][0].path, format='PNG')
  with pytest.raises(ValueError, match=r'1/\d+\.jpg \(video 1, frame \d+\) is a PNG L image'):
    bbc_pose.prepare(fake.root, tmp_path / 'data')
  _assert_nothing_built(tmp_path / 'data')
