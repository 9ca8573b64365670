"""Tests of the host input pipeline on an in-memory source laid out like the TFDS builders' records."""

import io
import multiprocessing
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from landmarks_jax.configs import default
from landmarks_jax.data import input_pipeline
from landmarks_jax.training import config_checks

WIDTH, HEIGHT = 30, 24
NUM_JOINTS = 3
# Video lengths include videos shorter than the temporal range minimum, to reach the backward rule.
VIDEO_LENGTHS = {101: 9, 102: 2, 103: 14, 104: 1, 105: 6}
# Ties at .5 tell Pillow's round-half-to-even apart from round-half-up (2.5 -> 2, 3.5 -> 4).
TRAIN_BOX = (2.5, 3.5, 25.5, 20.5)


def _encode(pixels, fmt):
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=fmt)
  return buffer.getvalue()


def make_fake_source(with_mask=True):
  """Records grouped by video in frame order, plus their video table [[video, first_record, n], ...]."""
  rng = np.random.default_rng(1234)
  source, videos = [], []
  for video, count in VIDEO_LENGTHS.items():
    videos.append([video, len(source), count])
    for frame_index in range(count):
      pixels = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
      shift = len(source) % 3
      record = {
        # Every third frame is a JPEG like BBC Pose, the others PNG like the mocap renders.
        'image': _encode(pixels, 'JPEG' if len(source) % 3 == 2 else 'PNG'),
        'video': np.int32(video),
        'frame': np.int32(10 * frame_index + 1),
        'frame_index': np.int32(frame_index),
        'joints': rng.uniform(0, [WIDTH, HEIGHT], (NUM_JOINTS, 2)).astype(np.float32),
        'train_box': np.array([TRAIN_BOX[0] + shift, TRAIN_BOX[1], TRAIN_BOX[2], TRAIN_BOX[3] + shift], np.float32),
        'eval_box': np.array([1.0, 0.5, WIDTH - 1.5, HEIGHT], np.float32),
      }
      if with_mask:
        mask = np.where(rng.random((HEIGHT, WIDTH)) < 0.5, 255, 0).astype(np.uint8)
        record['mask'] = _encode(mask, 'PNG')
      source.append(record)
  return source, videos


SOURCE, VIDEOS = make_fake_source()
NUM_RECORDS = len(SOURCE)
VIDEO_OF = np.concatenate([[v] * n for v, n in VIDEO_LENGTHS.items()])
FIRST_OF = np.concatenate([[first] * n for _, first, n in VIDEOS])
COUNT_OF = np.concatenate([[n] * n for n in VIDEO_LENGTHS.values()])


def make_config(**overrides):
  config = default.get_config()
  config.img_size = 16
  config.batch_size = 2
  config.num_workers = 0  # batches made in this process; the tests of worker processes ask for them
  config.prefetch_batches = 2
  config.seed = 7
  config.temporal_range = (3, 40)
  config.flip_probability = 0.0
  config.val_frac = 0.3
  for key, value in overrides.items():
    config[key] = value
  return config


def take(iterator, count):
  with iterator:
    return [next(iterator) for _ in range(count)]


def take_all(iterator):
  with iterator:
    return list(iterator)


def decoded(record, mode='RGB'):
  key = 'image' if mode == 'RGB' else 'mask'
  return np.asarray(Image.open(io.BytesIO(SOURCE[record][key])).convert(mode))


def expected_crop(pixels, box, size, flip=False):
  """Independent crop: numpy slicing at the box rounded half to even, then PIL's bilinear resize."""
  x0, y0, x1, y1 = (int(np.rint(v)) for v in box)
  crop = pixels[y0:y1, x0:x1]
  if flip:
    crop = crop[:, ::-1]
  resized = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR))
  return resized


def flat(batch):
  """(D, B, ...) fields to (D * B, ...)."""
  return {key: value.reshape((-1,) + value.shape[2:]) for key, value in batch.items()}


# ---------------------------------------------------------------------------------------------------------
# The temporal sampling rule.


@pytest.mark.parametrize('temporal_range', [(3, 40), (3, 6), (1, 2), (0, 4)])
def test_temporal_offset_properties_exhaustive_small_videos(temporal_range):
  range_min, range_max = temporal_range
  rng = np.random.default_rng(0)
  for n in range(1, 13):
    for i in range(n):
      offsets = {input_pipeline.sample_temporal_offset(n, i, rng, temporal_range) for _ in range(60)}
      for offset in offsets:
        assert 0 <= i + offset < n
        if n - i > range_min:
          # Forward whenever the rest of the video is longer than the minimum.
          assert range_min <= offset < min(range_max, n - i)
        else:
          assert -offset <= i and -offset < range_max
          if i >= range_min:
            assert -offset >= range_min
        if i + range_min < n or i >= range_min:
          assert abs(offset) >= range_min  # The minimum distance, whenever the video has such a frame.
      if n - i > range_min:
        # Every allowed forward offset is reachable.
        assert offsets == set(range(range_min, min(range_max, n - i)))


def test_temporal_offset_distribution_covers_the_range_uniformly():
  rng = np.random.default_rng(1)
  forward = [input_pipeline.sample_temporal_offset(100, 0, rng, (3, 40)) for _ in range(7400)]
  counts = np.bincount(forward, minlength=40)
  assert set(np.flatnonzero(counts)) == set(range(3, 40))
  assert counts[3:].min() > 100 and counts[3:].max() < 300  # 200 expected per offset.
  backward = [input_pipeline.sample_temporal_offset(50, 48, rng, (3, 10)) for _ in range(700)]
  assert set(backward) == set(range(-9, -2))
  # Near the start of a short video the backward offset is clipped to the first frame.
  clipped = {input_pipeline.sample_temporal_offset(4, 2, rng, (3, 10)) for _ in range(100)}
  assert clipped == {-2}


def test_select_records_leading_frames():
  by_frac = input_pipeline.select_records(NUM_RECORDS, VIDEOS, val_frac=0.3)
  expected = [first + k for _, first, n in VIDEOS for k in range(max(1, int(n * 0.3)))]
  np.testing.assert_array_equal(by_frac, expected)
  by_count = input_pipeline.select_records(NUM_RECORDS, VIDEOS, frames_per_video=3)
  expected = [first + k for _, first, n in VIDEOS for k in range(min(3, n))]
  np.testing.assert_array_equal(by_count, expected)


def test_temporal_range_check_refuses_ranges_most_frames_cannot_honour():
  videos = [[7, 0, 50], [9, 50, 20]]
  input_pipeline.check_temporal_range(videos, 70, (3, 40))
  input_pipeline.check_temporal_range(videos, 70, (30, 40))  # 10 of 50 and 20 of 20 frames fall short: 43 %
  with pytest.raises(ValueError, match=r'42 of the 70 frames .*longest video \(7\) has 50 frames'):
    input_pipeline.check_temporal_range(videos, 70, (36, 40))
  with pytest.raises(ValueError, match=r'70 of the 70 frames'):
    input_pipeline.check_temporal_range(videos, 70, (60, 100))


def test_video_table_that_does_not_tile_the_split_is_an_error():
  with pytest.raises(ValueError, match='rebuild the dataset'):
    input_pipeline.VideoTable.from_videos(VIDEOS[:-1], NUM_RECORDS)
  with pytest.raises(ValueError, match='does not tile'):
    input_pipeline.VideoTable.from_videos([[1, 0, 5], [2, 6, NUM_RECORDS - 6]], NUM_RECORDS)


# ---------------------------------------------------------------------------------------------------------
# Training batches.


def train(config, count, **kwargs):
  layout = dict(num_local_devices=1, process_index=0, process_count=1)
  layout.update(kwargs)
  return take(input_pipeline.train_batches(config, SOURCE, VIDEOS, **layout), count)


def test_training_batch_shapes_dtypes_and_ranges():
  config = make_config()
  batch = train(config, 1, num_local_devices=2)[0]
  size = config.img_size
  assert batch['target'].shape == (2, 2, size, size, 3) and batch['target'].dtype == np.uint8
  assert batch['input_temporal'].shape == (2, 2, size, size, 3)
  assert batch['mask'].shape == (2, 2, size, size, 1) and batch['mask'].dtype == np.uint8
  assert batch['joints'].shape == (2, 2, NUM_JOINTS, 2) and batch['joints'].dtype == np.float32
  for key in ('index', 'temporal_index', 'video'):
    assert batch[key].shape == (2, 2) and batch[key].dtype == np.int32
  for key in ('target', 'input_temporal'):
    assert batch[key].min() < 64 and batch[key].max() > 192  # Whole levels, not [0, 1] floats.
  assert set(np.unique(batch['mask'])) - {0, 255}  # Resized masks have levels between 0 and 255.
  np.testing.assert_array_equal(batch['video'], VIDEO_OF[batch['index']])


def test_crops_and_joints_match_an_independent_computation():
  config = make_config()
  for batch in train(config, 3):
    batch = flat(batch)
    for k, record in enumerate(batch['index']):
      box = SOURCE[record]['train_box']
      target = expected_crop(decoded(record), box, config.img_size)
      np.testing.assert_array_equal(batch['target'][k], target)
      partner = batch['temporal_index'][k]
      temporal = expected_crop(decoded(partner), box, config.img_size)
      np.testing.assert_array_equal(batch['input_temporal'][k], temporal)
      mask = expected_crop(decoded(record, 'L'), box, config.img_size)
      np.testing.assert_array_equal(batch['mask'][k, ..., 0], mask)
      joints = SOURCE[record]['joints'].astype(np.float64)
      x_min, y_min, x_max, y_max = box.astype(np.float64)
      x = 2 * (joints[:, 0] - x_min) / (x_max - x_min) - 1
      y = 2 * (joints[:, 1] - y_min) / (y_max - y_min) - 1
      np.testing.assert_allclose(batch['joints'][k], np.stack([x, y], -1), rtol=1e-5, atol=1e-6)


def test_temporal_partner_is_in_the_same_video_and_obeys_the_rule():
  config = make_config()
  seen_backward = seen_forward = False
  for batch in train(config, 20, num_local_devices=2):
    for record, partner in zip(batch['index'].ravel(), batch['temporal_index'].ravel()):
      assert VIDEO_OF[partner] == VIDEO_OF[record]
      n, i, offset = COUNT_OF[record], record - FIRST_OF[record], partner - record
      if n - i > 3:
        assert 3 <= offset < min(40, n - i)
        seen_forward = True
      else:
        assert -i <= offset <= 0 and (i < 3 or offset <= -3)
        seen_backward = True
  assert seen_forward and seen_backward


def test_epoch_visits_each_record_at_most_once_and_drops_the_remainder():
  config = make_config()
  global_batch = 2 * config.batch_size
  per_epoch = NUM_RECORDS // global_batch
  batches = train(config, 2 * per_epoch, num_local_devices=2)
  for epoch in range(2):
    indices = np.concatenate([b['index'].ravel() for b in batches[epoch * per_epoch : (epoch + 1) * per_epoch]])
    assert len(indices) == per_epoch * global_batch == len(set(indices.tolist()))
  first = np.concatenate([b['index'].ravel() for b in batches[:per_epoch]])
  second = np.concatenate([b['index'].ravel() for b in batches[per_epoch:]])
  assert not np.array_equal(first, second)  # Each epoch has its own order.


def test_two_processes_see_the_one_process_global_batch():
  config = make_config()
  whole = train(config, 4, num_local_devices=2, process_count=1)
  halves = [train(config, 4, num_local_devices=1, process_index=p, process_count=2) for p in range(2)]
  for step in range(4):
    for key in whole[step]:
      joined = np.concatenate([halves[0][step][key], halves[1][step][key]], axis=0)
      np.testing.assert_array_equal(joined, whole[step][key], err_msg=f'{key} at step {step}')


def test_same_seed_same_batches_different_seed_different_order():
  first = train(make_config(seed=3), 3)
  again = train(make_config(seed=3), 3)
  other = train(make_config(seed=4), 3)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  order = np.concatenate([b['index'].ravel() for b in first])
  assert not np.array_equal(order, np.concatenate([b['index'].ravel() for b in other]))


def test_resume_at_step_k_equals_kth_batch_of_a_fresh_iterator():
  config = make_config()
  per_epoch = NUM_RECORDS // (2 * config.batch_size)
  fresh = train(config, per_epoch + 3, num_local_devices=2)
  for k in (1, per_epoch, per_epoch + 2):  # Within the first epoch, at and after the boundary.
    resumed = train(config, 1, num_local_devices=2, start_step=k)[0]
    for key in resumed:
      np.testing.assert_array_equal(resumed[key], fresh[k][key], err_msg=f'{key} at step {k}')


def test_flip_probability_one_mirrors_frames_and_negates_x():
  unflipped = flat(train(make_config(flip_probability=0.0), 2)[1])
  flipped = flat(train(make_config(flip_probability=1.0), 2)[1])
  # The order, partners and everything but the flip come from the same draws.
  np.testing.assert_array_equal(flipped['index'], unflipped['index'])
  np.testing.assert_array_equal(flipped['temporal_index'], unflipped['temporal_index'])
  size = 16
  for k, record in enumerate(flipped['index']):
    box = SOURCE[record]['train_box']
    target = expected_crop(decoded(record), box, size, flip=True)
    np.testing.assert_array_equal(flipped['target'][k], target)
    temporal = expected_crop(decoded(flipped['temporal_index'][k]), box, size, flip=True)
    np.testing.assert_array_equal(flipped['input_temporal'][k], temporal)
    mask = expected_crop(decoded(record, 'L'), box, size, flip=True)
    np.testing.assert_array_equal(flipped['mask'][k, ..., 0], mask)
    # Mirroring commutes with the symmetric bilinear filter up to one grey level of rounding.
    np.testing.assert_allclose(flipped['target'][k].astype(int), unflipped['target'][k][:, ::-1].astype(int), atol=1)
  np.testing.assert_allclose(flipped['joints'][..., 0], -unflipped['joints'][..., 0])
  np.testing.assert_array_equal(flipped['joints'][..., 1], unflipped['joints'][..., 1])


def test_flip_probability_zero_never_flips_and_half_flips_some():
  config = make_config(flip_probability=0.0)
  half = make_config(flip_probability=0.5)
  never = train(config, 8, num_local_devices=2)
  some = train(half, 8, num_local_devices=2)
  flips = []
  for a, b in zip(never, some):
    for k, record in enumerate(a['index'].ravel()):
      box = SOURCE[record]['train_box']
      target = expected_crop(decoded(record), box, 16)
      np.testing.assert_array_equal(flat(a)['target'][k], target)
      flips.append(bool(np.all(flat(b)['joints'][k, :, 0] == -flat(a)['joints'][k, :, 0])))
  assert any(flips) and not all(flips)


def test_dataset_smaller_than_a_global_batch_is_an_error():
  config = make_config(batch_size=NUM_RECORDS)
  with pytest.raises(ValueError, match='fewer than one global batch'):
    input_pipeline.train_batches(config, SOURCE, VIDEOS, num_local_devices=2, process_index=0, process_count=1)


def test_source_without_masks_yields_no_mask():
  source, videos = make_fake_source(with_mask=False)
  batch = take(
    input_pipeline.train_batches(make_config(), source, videos, num_local_devices=1, process_index=0, process_count=1),
    1,
  )[0]
  assert 'mask' not in batch and batch['target'].shape == (1, 2, 16, 16, 3)


# ---------------------------------------------------------------------------------------------------------
# Evaluation and validation batches.


@pytest.mark.parametrize('process_count', [1, 2, 3])
def test_eval_batches_cover_every_record_once_with_padding(process_count):
  config = make_config()
  per_process = []
  for process_index in range(process_count):
    per_process.append(
      take_all(
        input_pipeline.eval_batches(
          config, SOURCE, num_local_devices=2, process_index=process_index, process_count=process_count, batch_size=3
        )
      )
    )
  assert len({len(batches) for batches in per_process}) == 1  # Same number of batches everywhere.
  valid_indices = []
  for batches in per_process:
    indices = np.concatenate([b['index'].ravel() for b in batches])
    valid = np.concatenate([b['valid'].ravel() for b in batches])
    assert all(b['image'].shape == (2, 3, 16, 16, 3) and b['valid'].dtype == np.bool_ for b in batches)
    # Padding comes last and repeats the last valid example.
    count = int(valid.sum())
    assert valid[:count].all() and not valid[count:].any()
    assert (indices[count:] == indices[count - 1]).all()
    valid_indices.append(indices[:count])
  # Contiguous shares: concatenated in process order they are the record order.
  np.testing.assert_array_equal(np.concatenate(valid_indices), np.arange(NUM_RECORDS))


def test_eval_example_fields():
  config = make_config()
  batch = flat(
    take(input_pipeline.eval_batches(config, SOURCE, num_local_devices=1, process_index=0, process_count=1), 2)[1]
  )
  for k, record in enumerate(batch['index']):
    example = SOURCE[record]
    np.testing.assert_array_equal(batch['joints'][k], example['joints'])
    np.testing.assert_array_equal(batch['box'][k], example['eval_box'])
    assert (batch['video'][k], batch['frame'][k]) == (example['video'], example['frame'])
    np.testing.assert_array_equal(batch['image'][k], expected_crop(decoded(record), example['eval_box'], 16))
    np.testing.assert_array_equal(
      batch['mask'][k, ..., 0], expected_crop(decoded(record, 'L'), example['eval_box'], 16)
    )


def test_eval_batches_leading_frames_per_video():
  config = make_config()
  batches = take_all(
    input_pipeline.eval_batches(
      config, SOURCE, num_local_devices=1, process_index=0, process_count=1, frames_per_video=2, videos=VIDEOS
    )
  )
  indices = np.concatenate([b['index'].ravel()[b['valid'].ravel()] for b in batches])
  expected = [first + k for _, first, n in VIDEOS for k in range(min(2, n))]
  np.testing.assert_array_equal(indices, expected)


def test_validation_batches_are_deterministic_and_cover_leading_frames():
  config = make_config(flip_probability=0.5)

  def run(seed, process_index=0, process_count=1):
    return take_all(
      input_pipeline.validation_batches(
        make_config(flip_probability=0.5, seed=seed),
        SOURCE,
        VIDEOS,
        num_local_devices=1,
        process_index=process_index,
        process_count=process_count,
      )
    )

  first, again = run(0), run(5)  # The run's seed does not change the validation pairs.
  assert len(first) == len(again)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  indices = np.concatenate([b['index'].ravel()[b['valid'].ravel()] for b in first])
  np.testing.assert_array_equal(indices, input_pipeline.select_records(NUM_RECORDS, VIDEOS, val_frac=config.val_frac))
  for batch in first:
    assert set(batch) >= {'target', 'input_temporal', 'joints', 'mask', 'index', 'video', 'valid'}
    for record, partner in zip(batch['index'].ravel(), batch['temporal_index'].ravel()):
      assert VIDEO_OF[partner] == VIDEO_OF[record]
  # Two processes see the same pairs as one.
  shares = [run(0, p, 2) for p in range(2)]
  joined = {}
  for batches in shares:
    for b in batches:
      keep = b['valid'].ravel()
      for key in ('index', 'temporal_index', 'joints'):
        joined.setdefault(key, []).append(flat(b)[key][keep])
  for key in ('index', 'temporal_index', 'joints'):
    single = np.concatenate([flat(b)[key][b['valid'].ravel()] for b in first])
    np.testing.assert_array_equal(np.concatenate(joined[key]), single)


# ---------------------------------------------------------------------------------------------------------
# Errors and threads.


def test_decoding_error_names_the_record_video_and_frame():
  source = list(SOURCE)
  bad = 11
  source[bad] = dict(source[bad], image=b'not an image')
  with pytest.raises(input_pipeline.RecordError) as error:
    take_all(input_pipeline.eval_batches(make_config(), source, num_local_devices=1, process_index=0, process_count=1))
  message = str(error.value)
  assert f'record {bad}' in message
  assert f'video {VIDEO_OF[bad]}' in message and f'frame {int(SOURCE[bad]["frame"])}' in message


def test_batches_do_not_depend_on_the_number_of_worker_processes():
  in_process = train(make_config(num_workers=0), 3, num_local_devices=2, start_step=5)
  for workers in (1, 2):
    for a, b in zip(in_process, train(make_config(num_workers=workers), 3, num_local_devices=2, start_step=5)):
      for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=f'{key} with {workers} workers')


def test_a_bad_record_read_by_a_worker_process_is_named():
  source = [dict(record, image=b'not an image') for record in SOURCE]
  with pytest.raises(Exception) as error:
    take(
      input_pipeline.train_batches(
        make_config(num_workers=1), source, VIDEOS, num_local_devices=1, process_index=0, process_count=1
      ),
      1,
    )
  assert isinstance(error.value, input_pipeline.RecordError), type(error.value)
  assert 'Cannot decode or crop record' in str(error.value) and 'video' in str(error.value)


def test_close_stops_the_worker_processes():
  iterator = input_pipeline.train_batches(
    make_config(num_workers=2), SOURCE, VIDEOS, num_local_devices=1, process_index=0, process_count=1
  )
  next(iterator)
  assert multiprocessing.active_children()
  iterator.close()
  deadline = time.monotonic() + 20
  while multiprocessing.active_children() and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not multiprocessing.active_children()
  with pytest.raises(StopIteration):
    next(iterator)


def test_interpreter_exits_with_an_unclosed_endless_iterator():
  script = (
    'import sys; sys.path.insert(0, "tests")\n'
    'import test_input_pipeline as t\n'
    'from landmarks_jax.data import input_pipeline\n'
    'it = input_pipeline.train_batches(t.make_config(num_workers=2), t.SOURCE, t.VIDEOS, num_local_devices=1, '
    'process_index=0, process_count=1)\n'
    'next(it)\n'
    'print("done")\n'
  )
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert 'done' in result.stdout


def test_importing_the_pipeline_pulls_no_jax_or_tensorflow():
  script = (
    'import sys\nimport landmarks_jax.data.input_pipeline\n'
    'print(sorted(m for m in ("jax", "tensorflow", "tensorflow_datasets") if m in sys.modules))\n'
  )
  result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == '[]'


@pytest.mark.parametrize(
  'option, value, message',
  [
    ('seed', -1, 'seed must be non-negative'),
    ('flip_probability', 1.5, r'flip_probability must lie in \[0, 1\]'),
    ('temporal_range', (5, 5), r'temporal_range must be \(min, max\) with 0 <= min < max'),
    ('num_workers', -2, 'num_workers must be 0'),
  ],
)
def test_pair_options_are_checked_before_any_pair_is_drawn(option, value, message):
  config = make_config(**{option: value})
  with pytest.raises(config_checks.ConfigError, match=message):
    input_pipeline.train_batches(config, SOURCE, VIDEOS, num_local_devices=1, process_index=0, process_count=1)
  with pytest.raises(config_checks.ConfigError, match=message):
    input_pipeline.validation_batches(config, SOURCE, VIDEOS, num_local_devices=1, process_index=0, process_count=1)
