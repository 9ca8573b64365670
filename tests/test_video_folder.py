"""Your own videos end to end: a folder of real video files, a frame folder and still images as a dataset (the
build and its errors), training and evaluation on it, and `predict` on new videos.

The videos are encoded here with PyAV (H.264 in .mp4, MPEG-4 in .avi) from synthetic frames whose one
bright square is the keypoint, so the keypoint CSV is known exactly.
"""

import csv
import io
import json
import os
import shutil

import av
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from landmarks_jax import evaluate
from landmarks_jax import predict
from landmarks_jax.configs import test as test_config
from landmarks_jax.data_pipelines import video_folder
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.training import train

WIDTH, HEIGHT = 80, 48  # not square, not multiples of 16


def _frames(count, seed):
  """(count, H, W, 3) uint8 frames with a bright square moving across; its centre per frame (x, y)."""
  rng = np.random.default_rng(seed)
  frames, centres = [], []
  for i in range(count):
    frame = np.full((HEIGHT, WIDTH, 3), rng.integers(20, 80, 3), np.uint8)
    x, y = 10 + (i * 3) % (WIDTH - 20), 10 + (i * 2) % (HEIGHT - 20)
    frame[y - 4 : y + 4, x - 4 : x + 4] = 240
    frames.append(frame)
    centres.append((x, y))
  return np.stack(frames), centres


def write_video(path, frames, codec):
  with av.open(path, 'w') as container:
    stream = container.add_stream(codec, rate=30)
    stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], 'yuv420p'
    for frame in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format='rgb24')):
        container.mux(packet)
    for packet in stream.encode():
      container.mux(packet)


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  """Three videos (two codecs), one frame folder, and the keypoint CSV of all four."""
  root = tmp_path_factory.mktemp('videos')
  rows = []
  for name, codec, count in (('walk', 'libx264', 24), ('run.x', 'libx264', 20), ('jump', 'mpeg4', 18)):
    frames, centres = _frames(count, len(rows))
    write_video(os.fspath(root / (name + ('.avi' if codec == 'mpeg4' else '.mp4'))), frames, codec)
    rows += [(name, i, 'square', x, y) for i, (x, y) in enumerate(centres)]
  frames, centres = _frames(12, 99)
  (root / 'still_camera').mkdir()
  for i, frame in enumerate(frames):
    Image.fromarray(frame).save(root / 'still_camera' / f'{i:04d}.png')
  rows += [('still_camera', i, 'square', x, y) for i, (x, y) in enumerate(centres) if i != 5]  # one missing
  keypoints = root.parent / 'keypoints.csv'
  with open(keypoints, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['video', 'frame', 'keypoint', 'x', 'y'])
    writer.writerows(rows)
  return root, os.fspath(keypoints)


def _options(**changes):
  values = dict(short_side=32, validation_fraction=0.25, test_fraction=0.25)
  values.update(changes)
  return video_folder.FolderOptions(**values)


@pytest.fixture(scope='module')
def built(folder, tmp_path_factory):
  root, keypoints = folder
  data_dir = os.fspath(tmp_path_factory.mktemp('tfds'))
  return video_folder.prepare(os.fspath(root), data_dir, _options(keypoints=keypoints, stride=2)), data_dir


def _records(builder, split):
  source = builder.as_data_source(split, decoders={'image': tfds.decode.SkipDecoding()})
  return [source[i] for i in range(len(source))]


def test_split_by_whole_videos_with_the_strided_frames(built):
  builder, _ = built
  names = builder.info.metadata['video_names']
  assert sorted(names) == ['jump', 'run.x', 'still_camera', 'walk']
  seen = {}
  for split in video_folder.SPLITS:
    for record in _records(builder, split):
      seen.setdefault(names[int(record['video'])], set()).add(split)
  assert all(len(splits) == 1 for splits in seen.values())  # no video in two splits
  assert {s for splits in seen.values() for s in splits} == set(video_folder.SPLITS)
  counts = {name: 0 for name in names}
  for split in video_folder.SPLITS:
    for record in _records(builder, split):
      counts[names[int(record['video'])]] += 1
      assert int(record['frame']) % 2 == 0
  assert counts == {'walk': 12, 'run.x': 10, 'jump': 9, 'still_camera': 6}


def test_frames_are_stored_smaller_with_keypoints_scaled_and_missing_ones_nan(built):
  builder, _ = built
  names = builder.info.metadata['video_names']
  assert builder.info.metadata['joint_names'] == ['square']
  scale = 32 / HEIGHT
  for split in video_folder.SPLITS:
    for record in _records(builder, split):
      image = np.asarray(Image.open(io.BytesIO(bytes(record['image']))))
      assert image.shape == (32, round(WIDTH * scale), 3)
      np.testing.assert_allclose(record['train_box'], [0, 0, round(WIDTH * scale), 32])
      name, frame = names[int(record['video'])], int(record['frame'])
      joints = record['joints']
      if name == 'still_camera' and frame == 5:
        assert np.all(np.isnan(joints))
        continue
      # The bright square sits where the CSV says, in stored pixels.
      x, y = joints[0]
      assert image[int(round(y)), int(round(x))].mean() > 150


def test_a_rebuild_with_other_options_is_refused(built, folder):
  root, keypoints = folder
  _, data_dir = built
  video_folder.prepare(os.fspath(root), data_dir, _options(keypoints=keypoints, stride=2))  # the same: reused
  with pytest.raises(video_folder.VideoFolderError, match=r'stride: built 2, asked 1.*--config.data_dir'):
    video_folder.prepare(os.fspath(root), data_dir, _options(keypoints=keypoints))


def test_centre_crops_and_box_files(folder, tmp_path):
  root, _ = folder
  builder = video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'a'), _options(crop='center', stride=6))
  record = _records(builder, 'train')[0]
  box = record['train_box']
  assert box[2] - box[0] == pytest.approx(box[3] - box[1]) == pytest.approx(32)
  boxes = tmp_path / 'boxes.csv'
  boxes.write_text(
    'video,frame,x0,y0,x1,y1\n'
    + '\n'.join(f'{n},,10,4,50,44' for n in ('walk', 'run.x', 'jump', 'still_camera'))
    + '\n'
  )
  builder = video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'b'), _options(crop=os.fspath(boxes), stride=6))
  stored_width = round(WIDTH * 32 / HEIGHT)
  np.testing.assert_allclose(
    _records(builder, 'train')[0]['train_box'],
    np.array([10, 4, 50, 44]) * np.tile([stored_width / WIDTH, 32 / HEIGHT], 2),
    rtol=1e-5,
  )
  boxes.write_text('video,frame,x0,y0,x1,y1\nwalk,,10,4,50,44\n')
  with pytest.raises(video_folder.VideoFolderError, match=r"gives no box for video '[a-z.]+' frame 0; add a row"):
    video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'c'), _options(crop=os.fspath(boxes)))
  boxes.write_text(
    'video,frame,x0,y0,x1,y1\n'
    + '\n'.join(f'{n},,10,4,{90 if n == "walk" else 50},44' for n in ('walk', 'run.x', 'jump', 'still_camera'))
    + '\n'
  )
  with pytest.raises(
    video_folder.VideoFolderError,
    match=r"box of video 'walk' frame 0 .*outside the frame of 80 x "
    r'48; clip it',
  ):
    video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'd'), _options(crop=os.fspath(boxes)))
  assert not list((tmp_path / 'd').glob('video_folder/*/1.0.0'))


def test_still_images_are_videos_of_one_frame(tmp_path):
  frames, _ = _frames(6, 3)
  for i, frame in enumerate(frames):
    Image.fromarray(frame).save(tmp_path / f'photo_{i}.jpg')
  builder = video_folder.prepare(os.fspath(tmp_path), os.fspath(tmp_path / 'tfds'), _options())
  tables = builder.info.metadata['videos']
  assert sum(len(tables[s]) for s in video_folder.SPLITS) == 6
  assert all(n == 1 for s in video_folder.SPLITS for _, _, n in tables[s])


def test_bad_inputs_name_the_file_and_the_fix(folder, tmp_path):
  root, _ = folder
  with pytest.raises(video_folder.VideoFolderError, match='holds no video'):
    video_folder.prepare(os.fspath(tmp_path), os.fspath(tmp_path / 'tfds'), _options())
  bad = tmp_path / 'bad'
  bad.mkdir()
  write_video(os.fspath(bad / 'good.mp4'), _frames(8, 1)[0], 'libx264')
  write_video(os.fspath(bad / 'good2.mp4'), _frames(8, 2)[0], 'libx264')
  write_video(os.fspath(bad / 'good3.mp4'), _frames(8, 3)[0], 'libx264')
  (bad / 'broken.mp4').write_bytes(b'this is not a video')
  with pytest.raises(video_folder.VideoFolderError, match=r'broken\.mp4 is not a readable video.*skip_bad_files'):
    video_folder.prepare(os.fspath(bad), os.fspath(tmp_path / 'tfds_bad'), _options())
  assert not list((tmp_path / 'tfds_bad').glob('video_folder/*/1.0.0'))
  builder = video_folder.prepare(os.fspath(bad), os.fspath(tmp_path / 'tfds_skip'), _options(skip_bad_files=True))
  assert builder.info.metadata['skipped'] == [os.fspath(bad / 'broken.mp4')]
  (bad / 'good3.mp4').unlink()  # two usable videos cannot fill three splits by whole videos
  with pytest.raises(
    video_folder.VideoFolderError, match=r'gives no video to the validation and test splits \(2 usable'
  ):
    video_folder.prepare(os.fspath(bad), os.fspath(tmp_path / 'tfds_two'), _options(skip_bad_files=True))
  keypoints = tmp_path / 'k.csv'
  keypoints.write_text('video,frame,keypoint,x,y\nnowhere,0,a,1,2\n')
  with pytest.raises(video_folder.VideoFolderError, match="video 'nowhere' is not in the folder"):
    video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'k1'), _options(keypoints=os.fspath(keypoints)))
  keypoints.write_text('video,frame,keypoint,x,y\nwalk,500,a,1,2\n')
  with pytest.raises(video_folder.VideoFolderError, match="frame 500 of video 'walk', which has frames 0 to 23"):
    video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'k2'), _options(keypoints=os.fspath(keypoints)))
  keypoints.write_text('frame,x,y\n1,2,3\n')
  with pytest.raises(video_folder.VideoFolderError, match='first line names the columns video,frame,keypoint,x,y'):
    video_folder.prepare(os.fspath(root), os.fspath(tmp_path / 'k3'), _options(keypoints=os.fspath(keypoints)))


# ----------------------------------------------------------------------------------------------------------
# Training, evaluation and prediction.


def _video_config(root, keypoints, data_dir):
  config = test_config.get_config()
  config.dataset = 'video_folder'
  config.dataset_path = os.fspath(root)
  config.data_dir = os.fspath(data_dir)
  config.video_short_side = 32
  config.video_validation_fraction = config.video_test_fraction = 0.25
  config.video_keypoints = keypoints
  config.temporal_range = (2, 6)
  config.num_train_steps = 2
  config.log_images_every_steps = 0
  config.val_every_steps = -1
  return config


@pytest.fixture(scope='module')
def trained(folder, tmp_path_factory):
  """Two training steps of the tiny config on the folder with its keypoints, evaluated at the end."""
  root, keypoints = folder
  base = tmp_path_factory.mktemp('video_run')
  config = _video_config(root, keypoints, base / 'tfds')
  workdir = os.fspath(base / 'run')
  return config, workdir, train.train_and_evaluate(config, workdir)


def _read_video(path):
  with av.open(path) as container:
    return np.stack([frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)])


def test_training_on_a_folder_evaluates_the_keypoints_against_the_mean_pose(trained):
  config, workdir, metrics = trained
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    assert json.load(f) == metrics
  assert metrics['num_joints'] == 1 and metrics['n_landmarks'] == config.n_landmarks
  for split in ('validation', 'test'):
    scores = metrics[split]
    assert scores['mean_pixel_error'] > 0 and scores['baseline']['mean_pixel_error'] > 0
    assert scores['error_ratio'] == pytest.approx(scores['mean_pixel_error'] / scores['baseline']['mean_pixel_error'])
    assert list(scores['per_joint_pixel_error']) == ['square']
  joint_map = landmark_eval.read_joint_map(workdir)
  assert joint_map['weights'].shape == (2 * config.n_landmarks, 2) and joint_map['joint_names'] == ['square']
  assert 'mean joint error' in landmark_eval.summary(metrics)
  for picture in ('landmarks_test.png', 'video_test.gif'):
    assert os.path.getsize(os.path.join(workdir, 'eval', picture)) > 0


def test_without_keypoints_evaluation_reports_the_reconstruction_loss(trained, folder, tmp_path):
  config, workdir, _ = trained
  root, _ = folder
  workdir = shutil.copytree(workdir, tmp_path / 'copy')
  no_keypoints = _video_config(root, '', tmp_path / 'tfds')
  metrics = evaluate.run(os.fspath(workdir), no_keypoints)
  assert metrics['num_joints'] == 0
  for split in ('validation', 'test'):
    assert set(metrics[split]) == {'reconstruction_loss'} and metrics[split]['reconstruction_loss'] > 0
  assert 'reconstruction loss' in landmark_eval.summary(metrics)
  assert os.path.getsize(workdir / 'eval' / 'landmarks_test.png') > 0


def test_predict_writes_landmarks_in_frame_pixels_and_an_annotated_video(trained, tmp_path):
  config, workdir, _ = trained
  # A new clip no test trained on: portrait, odd-sized, MPEG-4 in Matroska.
  clip = np.random.default_rng(5).integers(0, 255, (7, 45, 27, 3), np.uint8)
  clip[:, 20:26, 10:16] = 250
  path = os.fspath(tmp_path / 'new clip.mkv')
  write_video(path, np.pad(clip, ((0, 0), (0, 1), (0, 1), (0, 0)), mode='edge'), 'mpeg4')
  results = predict.run(workdir, path, os.fspath(tmp_path / 'out'), keypoints=True, with_mask=True, batch_size=3)
  result = results['new clip']
  out = tmp_path / 'out' / 'new clip'
  width, height = result['frame_size']
  assert (width, height) == (28, 46)
  assert result['mean_px'].shape == (7, config.n_landmarks, 2)
  assert result['frame'].tolist() == list(range(7))
  assert np.all((result['mean_px'] >= 0) & (result['mean_px'] <= [width, height]))
  np.testing.assert_allclose(result['crop'], [[0, 0, width, height]] * 7, atol=1e-3)
  with open(out / 'landmarks.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 7 * config.n_landmarks
  np.testing.assert_allclose([float(rows[-1]['x']), float(rows[-1]['y'])], result['mean_px'][-1, -1], rtol=1e-6)
  with open(out / 'keypoints.csv', newline='') as f:
    assert [row['keypoint'] for row in csv.DictReader(f)] == ['square'] * 7
  saved = np.load(out / 'landmarks.npz')
  np.testing.assert_array_equal(saved['mean'], result['mean'])
  video = _read_video(os.fspath(out / 'annotated.mp4'))
  assert video.shape == (7, height, 2 * width, 3)  # the frame and its mask beside it
  # The same frames batched differently give the same landmarks.
  again = predict.run(workdir, path, os.fspath(tmp_path / 'again'), batch_size=1, write_video=False)['new clip']
  np.testing.assert_allclose(again['mean'], result['mean'], atol=1e-5)
  assert not os.path.exists(tmp_path / 'again' / 'new clip' / 'annotated.mp4')


def test_predict_reads_frame_folders_and_folders_of_videos(trained, folder, tmp_path):
  _, workdir, _ = trained
  root, _ = folder
  results = predict.run(workdir, os.fspath(root / 'still_camera'), os.fspath(tmp_path / 'frames'))
  assert len(results['still_camera']['frame']) == 12
  assert len(_read_video(os.fspath(tmp_path / 'frames' / 'still_camera' / 'annotated.mp4'))) == 12
  results = predict.run(workdir, os.fspath(root), os.fspath(tmp_path / 'all'), write_video=False, crop='center')
  assert {name: len(r['frame']) for name, r in results.items()} == {
    'jump': 18,
    'run.x': 20,
    'still_camera': 12,
    'walk': 24,
  }
  crop = results['walk']['crop'][0]
  # The centre square of the frame as stored (53 x 32 px), in pixels of the 80 x 48 input: square to the rounding.
  assert crop[2] - crop[0] == pytest.approx(HEIGHT, rel=0.01) and crop[3] - crop[1] == pytest.approx(HEIGHT)
  assert (crop[0] + crop[2]) / 2 == pytest.approx(WIDTH / 2)


def test_predict_names_bad_inputs(trained, tmp_path):
  _, workdir, _ = trained
  with pytest.raises(video_folder.VideoFolderError, match='does not exist'):
    predict.run(workdir, os.fspath(tmp_path / 'nowhere.mp4'), os.fspath(tmp_path / 'out'))
  (tmp_path / 'notes.txt').write_text('not a video')
  with pytest.raises(video_folder.VideoFolderError, match='neither a video'):
    predict.run(workdir, os.fspath(tmp_path / 'notes.txt'), os.fspath(tmp_path / 'out'))
  (tmp_path / 'broken.mp4').write_bytes(b'not a video either')
  with pytest.raises(video_folder.VideoFolderError, match=r'broken\.mp4 is not a readable video'):
    predict.run(workdir, os.fspath(tmp_path / 'broken.mp4'), os.fspath(tmp_path / 'out'))
  assert not list((tmp_path / 'out').rglob('*.mp4'))  # no half-written video is left behind
  with pytest.raises(FileNotFoundError, match='no fitted keypoint map'):
    predict.run(
      os.fspath(tmp_path),
      os.fspath(tmp_path / 'broken.mp4'),
      os.fspath(tmp_path / 'out'),
      config=test_config.get_config(),
      keypoints=True,
    )


def test_videos_shorter_than_the_temporal_range_are_refused_before_training(trained, tmp_path):
  config, _, _ = trained
  config = config.copy_and_resolve_references()
  config.temporal_range = (30, 60)  # the longest training video has 24 frames
  with pytest.raises(ValueError, match=r'temporal_range=\(30, 60\) asks for partners at least 30 frames away'):
    train.train_and_evaluate(config, os.fspath(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run' / 'config.json')
