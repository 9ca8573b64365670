"""What people bring to a video_folder build and to `predict`: unreadable and half-broken files, 16-bit PNGs,
phone photos and videos recorded sideways with a tag, keypoint CSVs with mistakes, an output that cannot be
written, and several folders built under one data directory.

The builds here are of a few tiny still images or short videos, so each takes under a second; `predict` runs an
untrained tiny model, compiled once for the module.
"""

import errno
import os
import re

import numpy as np
from PIL import Image
import pytest
from test_evaluate import _save_untrained_run  # pylint: disable=g-bad-import-order
from test_video_folder import write_video  # pylint: disable=g-bad-import-order

from landmarks_jax import predict
from landmarks_jax.configs import test as test_config
from landmarks_jax.data_pipelines import video_folder


def _clip(seed, count=6, size=(48, 32)):
  """(count, H, W, 3) uint8 random frames: incompressible, so that a video of them has long packets."""
  return np.random.default_rng(seed).integers(0, 255, (count, size[1], size[0], 3), np.uint8)


def _broken_midway(path, seed=0):
  """An H.264 MP4 whose first frames decode and whose middle is garbage: PyAV fails partway through it."""
  write_video(path, _clip(seed, count=30), 'libx264')
  with open(path, 'rb') as f:
    data = f.read()
  third = len(data) // 3
  garbage = np.random.default_rng(seed).integers(0, 255, third, np.uint8).tobytes()
  with open(path, 'wb') as f:
    f.write(data[:third] + garbage + data[2 * third :])


def _frame_folder(path, count=5, bad=None):
  """A folder of JPEG frames; frame `bad` is a JPEG cut short, so that it fails to decode."""
  os.makedirs(path)
  for i, frame in enumerate(_clip(7, count)):
    Image.fromarray(frame).save(os.path.join(path, f'{i:04d}.jpg'))
  if bad is not None:
    name = os.path.join(path, f'{bad:04d}.jpg')
    with open(name, 'rb') as f:
      head = f.read(200)
    with open(name, 'wb') as f:
      f.write(head)


def _photos(folder, names=('a', 'b', 'c'), size=(12, 8)):
  """Still images, one video each: the smallest folder that fills three splits."""
  os.makedirs(folder, exist_ok=True)
  for i, name in enumerate(names):
    Image.fromarray(_clip(i, 1, size)[0]).save(os.path.join(folder, f'{name}.png'))
  return os.fspath(folder)


def _options(**changes):
  values = dict(short_side=0, validation_fraction=0.25, test_fraction=0.25)
  values.update(changes)
  return video_folder.FolderOptions(**values)


def _first_frame(item):
  for _, image in video_folder.read_frames(item):
    return np.asarray(image)


# ----------------------------------------------------------------------------------------------------------
# Builds.


def test_skip_bad_files_leaves_out_files_that_break_midway(tmp_path):
  folder = tmp_path / 'videos'
  folder.mkdir()
  for i in range(3):
    write_video(os.fspath(folder / f'good{i}.mp4'), _clip(i), 'libx264')
  _broken_midway(os.fspath(folder / 'midway.mp4'))
  _frame_folder(os.fspath(folder / 'frames'), bad=3)
  with pytest.raises(
    video_folder.VideoFolderError,
    match=r'frames/0003\.jpg is not a readable image.*'
    r'--config\.video_skip_bad_files=True',
  ):
    video_folder.prepare(os.fspath(folder), os.fspath(tmp_path / 'stop'), _options())
  builder = video_folder.prepare(os.fspath(folder), os.fspath(tmp_path / 'skip'), _options(skip_bad_files=True))
  assert sorted(builder.info.metadata['skipped']) == [os.fspath(folder / 'frames'), os.fspath(folder / 'midway.mp4')]
  assert sum(n for s in video_folder.SPLITS for _, _, n in builder.info.metadata['videos'][s]) == 18
  assert 'skip_bad_files' not in video_folder.bad_file_fix(_options(skip_bad_files=True))  # not offered twice


def test_a_video_that_breaks_midway_is_named_with_the_frame(tmp_path):
  path = os.fspath(tmp_path / 'midway.mp4')
  _broken_midway(path)
  item = video_folder.Item('midway', 'video', path)
  video_folder.probe(item)  # its first frame decodes
  with pytest.raises(
    video_folder.BadFileError,
    match=r'midway\.mp4 is not a readable video: it breaks after '
    r'frame \d+',
  ):
    list(video_folder.read_frames(item))


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
  grey = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
  Image.fromarray(grey).save(tmp_path / 'deep.png')
  os.makedirs(tmp_path / 'frames')
  Image.fromarray(grey).save(tmp_path / 'frames' / '0000.png')
  expected = np.round(grey / 257).astype(np.uint8)
  for item in (
    video_folder.Item('deep', 'image', os.fspath(tmp_path / 'deep.png')),
    video_folder.Item('frames', 'frames', os.fspath(tmp_path / 'frames')),
  ):
    pixels = _first_frame(item)
    assert pixels.shape == (32, 64, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels[..., 1], expected)


def _phone_photo(path, seed=0):
  """A 40 x 20 JPEG stored sideways with EXIF orientation 6: it displays as 20 x 40, turned clockwise, so its red
  corner moves from the bottom left to the top left. Returns the frame as displayed."""
  stored = np.zeros((20, 40, 3), np.uint8)
  stored[:, :] = np.random.default_rng(seed).integers(0, 60, 3)
  stored[-6:, :6] = (255, 0, 0)
  exif = Image.Exif()
  exif[video_folder.EXIF_ORIENTATION] = 6  # turn 90 degrees clockwise to display
  Image.fromarray(stored).save(path, exif=exif, quality=95)
  return np.rot90(stored, k=-1)


def test_exif_orientation_is_applied_in_image_folder_builds(tmp_path):
  folder = tmp_path / 'photos'
  folder.mkdir()
  shown = [_phone_photo(os.fspath(folder / f'p{i}.jpg'), i) for i in range(3)]
  assert shown[0].shape == (40, 20, 3) and shown[0][:6, :6, 0].min() == 255
  builder = video_folder.prepare(os.fspath(folder), os.fspath(tmp_path / 'tfds'), _options())
  source = builder.as_data_source('train')
  image = np.asarray(source[0]['image'])
  assert image.shape == (40, 20, 3)
  assert image[:6, :6, 0].mean() > 200 and image[-6:, -6:, 0].mean() < 100


def test_a_phone_video_is_read_upright(tmp_path):
  """A landscape stream with a display rotation of -90 degrees (counter-clockwise), as phones record portrait
  video: it is read as displayed, turned clockwise, so its white corner moves from the top left to the top right."""
  import av  # pylint: disable=g-import-not-at-top

  path = os.fspath(tmp_path / 'portrait.mp4')
  stored = np.zeros((32, 48, 3), np.uint8)
  stored[:8, :8] = 255
  with av.open(path, 'w') as container:
    stream = container.add_stream('libx264', rate=30)
    stream.width, stream.height, stream.pix_fmt = 48, 32, 'yuv420p'
    stream.set_display_rotation(-90)
    for packet in list(stream.encode(av.VideoFrame.from_ndarray(stored, format='rgb24'))) + list(stream.encode()):
      container.mux(packet)
  frame = _first_frame(video_folder.Item('portrait', 'video', path))
  assert frame.shape == (48, 32, 3)
  assert frame[:8, -8:].mean() > 200 and frame[:8, :8].mean() < 50


def _keypoint_error(tmp_path, text):
  """The build's error for a keypoint CSV holding `text` (after its header) on a folder of three photos."""
  folder = _photos(tmp_path / 'photos')
  csv_path = tmp_path / 'k.csv'
  csv_path.write_text('video,frame,keypoint,x,y\n' + text)
  with pytest.raises(video_folder.VideoFolderError) as caught:
    video_folder.prepare(folder, os.fspath(tmp_path / 'tfds'), _options(keypoints=os.fspath(csv_path)))
  assert not (tmp_path / 'tfds').exists() or not list((tmp_path / 'tfds').rglob('*.array_record*'))
  return str(caught.value)


@pytest.mark.parametrize(
  'rows, message',
  [
    ('a,0,nose,1,2\nb,0\n', r'k\.csv line 3: 2 fields, expected 5 \(video,frame,keypoint,x,y\)'),
    ('a,0,nose,1,2,9\n', r'k\.csv line 2: 6 fields, expected 5'),
    ('a,0,nose,1,2\nb,0,nose,inf,2\n', r"k\.csv line 3: x 'inf' is not a finite number"),
    ('a,3.7,nose,1,2\n', r"k\.csv line 2: frame '3\.7' is not a frame number \(0, 1, 2, \.\.\.\)"),
    ('a,-1,nose,1,2\n', r"k\.csv line 2: frame '-1' is not a frame number"),
    (
      'a,0,nose,1,2\nb,0,eye,1,2\na,0,nose,3,4\n',
      r"k\.csv line 4: video 'a' frame 0 keypoint 'nose' is "
      r'already on line 2',
    ),
    ('a,0,nose,1,\n', r'k\.csv line 2: give both x and y, or leave both empty'),
    ('a,0,,1,2\n', r'k\.csv line 2: the keypoint has no name'),
  ],
)
def test_keypoint_csv_mistakes_name_the_file_and_line(tmp_path, rows, message):
  assert re.search(message, _keypoint_error(tmp_path, rows))


def test_a_keypoint_csv_saved_by_a_spreadsheet_is_read(tmp_path):
  """A byte-order mark before the header, as Excel writes, and frames written as 4.0."""
  csv_path = tmp_path / 'k.csv'
  csv_path.write_bytes('\ufeffvideo,frame,keypoint,x,y\na,0.0,nose,1,2\nb,0,nose,3,4\nc,0,nose,,\n'.encode())
  keypoint_names, points = video_folder.read_keypoints(os.fspath(csv_path), ['a', 'b', 'c'])
  assert keypoint_names == ['nose'] and points == {('a', 0): {'nose': (1.0, 2.0)}, ('b', 0): {'nose': (3.0, 4.0)}}


def test_box_csv_short_rows_and_infinite_boxes_name_the_line(tmp_path):
  boxes = tmp_path / 'boxes.csv'
  boxes.write_text('video,frame,x0,y0,x1,y1\na,,0,0,4\n')
  with pytest.raises(video_folder.VideoFolderError, match=r'boxes\.csv line 2: 5 fields, expected 6'):
    video_folder.read_boxes(os.fspath(boxes), ['a'])
  boxes.write_text('video,frame,x0,y0,x1,y1\na,,0,0,inf,4\n')
  with pytest.raises(video_folder.VideoFolderError, match=r"boxes\.csv line 2: x1 'inf' is not a finite number"):
    video_folder.read_boxes(os.fspath(boxes), ['a'])


def test_several_folders_share_one_data_dir_and_a_changed_folder_is_noticed(tmp_path):
  data_dir = os.fspath(tmp_path / 'tfds')
  first, second = _photos(tmp_path / 'first'), _photos(tmp_path / 'second', names=('x', 'y', 'z', 'w'))
  one = video_folder.prepare(first, data_dir, _options())
  two = video_folder.prepare(second, data_dir, _options())
  assert one.data_path != two.data_path
  assert two.info.metadata['video_names'] == ['w', 'x', 'y', 'z']
  assert video_folder.prepare(first, data_dir, _options()).info.metadata['video_names'] == ['a', 'b', 'c']
  Image.fromarray(_clip(9, 1, (12, 8))[0]).save(os.path.join(first, 'd.png'))
  os.remove(os.path.join(first, 'a.png'))
  with open(os.path.join(first, 'b.png'), 'ab') as f:
    f.write(b'\0')
  with pytest.raises(
    video_folder.VideoFolderError,
    match=r'first changed since .*\(added d\.png; removed a\.png; '
    r'modified b\.png.*delete',
  ):
    video_folder.prepare(first, data_dir, _options())
  assert video_folder.prepare(second, data_dir, _options()).data_path == two.data_path
  with pytest.raises(video_folder.VideoFolderError, match=r'stride: built 1, asked 2'):
    video_folder.prepare(second, data_dir, _options(stride=2))


# ----------------------------------------------------------------------------------------------------------
# predict.


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """An untrained tiny model saved as a video_folder run (frames stored with a 32 px short side)."""
  config = test_config.get_config()
  config.dataset = 'video_folder'
  config.video_short_side = 32
  path = os.fspath(tmp_path_factory.mktemp('predict_run') / 'run')
  _save_untrained_run(path, config)
  return path


def test_predict_on_a_folder_writes_every_readable_video_and_names_each_bad_one(workdir, tmp_path, capsys):
  """Two good videos, three bad ones (not a video, broken midway, a corrupt frame), and a phone photo stored
  sideways as a folder of one frame, which is read upright."""
  folder = tmp_path / 'in'
  folder.mkdir()
  (folder / 'f').mkdir()
  shown = _phone_photo(os.fspath(folder / 'f' / '0000.jpg'))
  write_video(os.fspath(folder / 'a.mp4'), _clip(1), 'libx264')
  (folder / 'b.mp4').write_bytes(b'not a video')
  _broken_midway(os.fspath(folder / 'c.mp4'))
  _frame_folder(os.fspath(folder / 'd'), bad=2)
  write_video(os.fspath(folder / 'e.mp4'), _clip(2), 'libx264')
  out = tmp_path / 'out'
  with pytest.raises(SystemExit) as caught:
    predict.execute(workdir, os.fspath(folder), os.fspath(out), write_video=False)
  message = str(caught.value.code)
  assert message.startswith('Error: 3 of 6 videos could not be read, the other 3 were written')
  for name in ('b.mp4', 'c.mp4', os.path.join('d', '0002.jpg')):
    assert name in message
  assert 'skip_bad_files' not in message and '--config' not in message
  for name in ('a', 'e'):
    assert len((out / name / 'landmarks.csv').read_text().splitlines()) == 1 + 6 * 4
  assert not (out / 'b').exists() and not (out / 'd').exists()
  printed = capsys.readouterr().out
  assert f'a: 6 frames -> {out / "a"}' in printed and f'e: 6 frames -> {out / "e"}' in printed
  assert np.load(out / 'f' / 'landmarks.npz')['frame_size'].tolist() == [shown.shape[1], shown.shape[0]]


def test_predict_names_an_output_it_cannot_write(workdir, tmp_path, monkeypatch):
  clip = os.fspath(tmp_path / 'clip.mp4')
  write_video(clip, _clip(3), 'libx264')
  (tmp_path / 'taken').write_text('a file')
  with pytest.raises(predict.PredictError, match=r'--output .*taken is a file; pass a folder'):
    predict.run(workdir, clip, os.fspath(tmp_path / 'taken'))
  with pytest.raises(predict.PredictError, match=r'--output .*taken/out: .*Not a directory'):
    predict.run(workdir, clip, os.fspath(tmp_path / 'taken' / 'out'))

  def read_only(path, *args, **kwargs):
    raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

  monkeypatch.setattr(os, 'makedirs', read_only)
  with pytest.raises(predict.PredictError, match=r'Cannot write to --output .*elsewhere: Read-only file system'):
    predict.run(workdir, clip, os.fspath(tmp_path / 'elsewhere'))
