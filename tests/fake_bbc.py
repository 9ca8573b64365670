"""Writes a small fake BBC Pose download (video folders of JPEGs and code/*.mat) for tests.

The .mat files have the real ones' layout: `code/bbcpose.mat` holds a 1x20 struct array `bbcpose` with the
fields videoName, type, source, train_frames (1xN), train_joints (2x7xN), test_frames, test_joints, and
`code/results.mat` a struct `results` whose fields are, in order, the test ground truth (2x7xN), the frame
numbers and the video numbers. The test videos appear in results.mat in the order 18, 19, 20, 16, 17 so
that a reader that sorts the records is caught. Joints are unrounded floats; every second frame places them
near a corner so that both crop boxes get clipped, the others near the centre so that the training box
is not.

  import fake_bbc
  fake = fake_bbc.write_fake_bbc(tmp_path / 'bbc')
  fake.records['train'][0].joints  # (7, 2) x, y pixels
"""

import dataclasses
import os

import numpy as np
from PIL import Image
import scipy.io

TRAIN_VIDEOS = tuple(range(1, 11))
VALIDATION_VIDEOS = tuple(range(11, 16))
TEST_VIDEOS = tuple(range(16, 21))
NUM_JOINTS = 7
_STRUCT_FIELDS = ('videoName', 'type', 'source', 'train_frames', 'train_joints', 'test_frames', 'test_joints')


@dataclasses.dataclass(frozen=True)
class FakeRecord:
  """One expected record: `<root>/<video>/<frame>.jpg` with joints (7, 2) as (x, y) pixels."""

  video: int
  frame: int
  frame_index: int
  joints: np.ndarray
  path: str


@dataclasses.dataclass(frozen=True)
class FakeBbc:
  """What was written: the folder, the image size (width, height) and each split's records in order."""

  root: str
  image_size: tuple
  records: dict
  corrupt_path: str = None

  def test_ground_truth(self):
    """The test joints as results.mat holds them, shape (2, 7, N)."""
    return np.stack([record.joints.T for record in self.records['test']], axis=-1)


def _random_joints(rng, width, height, near_border):
  """(7, 2) joints: spread around a corner (so the crops clip) or around the image centre."""
  if near_border:
    corner_x = rng.choice([0.0, width - 20.0])
    corner_y = rng.choice([0.0, height - 20.0])
    x = corner_x + rng.uniform(0.5, 19.5, NUM_JOINTS)
    y = corner_y + rng.uniform(0.5, 19.5, NUM_JOINTS)
  else:
    x = width / 2 + rng.uniform(-15.3, 15.3, NUM_JOINTS)
    y = height / 2 + rng.uniform(-10.7, 10.7, NUM_JOINTS)
  return np.stack([x, y], axis=-1)


def _frame_pixels(rng, width, height):
  """A smooth random colour pattern (compresses well, differs between frames), shape (H, W, 3) uint8."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  channels = []
  for _ in range(3):
    fx, fy, phase = rng.uniform(0.02, 0.2), rng.uniform(0.02, 0.2), rng.uniform(0, 2 * np.pi)
    channels.append(127.5 + 120 * np.sin(fx * xs + fy * ys + phase))
  return np.stack(channels, axis=-1).astype(np.uint8)


def _frames(rng, count):
  """`count` distinct increasing frame numbers, gaps included like the real annotated frames."""
  return np.sort(rng.choice(np.arange(1, 1000), size=count, replace=False))


def write_fake_bbc(root, frames_per_video=2, test_frames_per_video=None, image_size=(320, 240), corrupt=None, seed=0):
  """Writes a fake BBC Pose folder at `root` and returns a FakeBbc describing the expected records.

  Args:
    root: folder to create (parents too).
    frames_per_video: annotated frames per training and validation video.
    test_frames_per_video: frames per test video listed in results.mat (default frames_per_video).
    image_size: (width, height) of every JPEG.
    corrupt: optional (video, position): the frame at that position of that video's frames (in the
      split that uses the video) is written as a truncated JPEG.
    seed: seeds frames, joints and pixels.

  Returns:
    FakeBbc with records['train' | 'validation' | 'test'] in the order a reader must produce them.
  """
  root = os.fspath(root)
  width, height = image_size
  test_frames_per_video = test_frames_per_video or frames_per_video
  rng = np.random.default_rng(seed)

  entries = np.zeros(
    (1, len(TRAIN_VIDEOS + VALIDATION_VIDEOS + TEST_VIDEOS)), dtype=[(name, 'O') for name in _STRUCT_FIELDS]
  )
  annotated = {}
  for video in TRAIN_VIDEOS + VALIDATION_VIDEOS + TEST_VIDEOS:
    kind = 'train' if video in TRAIN_VIDEOS else 'val' if video in VALIDATION_VIDEOS else 'test'
    count = test_frames_per_video if kind == 'test' else frames_per_video
    frames = _frames(rng, count)
    joints = np.stack([_random_joints(rng, width, height, near_border=i % 2 == 1) for i in range(count)])  # (N, 7, 2)
    annotated[video] = (frames, joints)
    entry = entries[0, video - 1]
    entry['videoName'] = f'fake_video_{video:02d}'
    entry['type'] = kind
    entry['source'] = 'fake'
    # The real train fields carry the tracker's joints for every video, including the test videos,
    # whose manual ground truth sits in test_frames/test_joints and in results.mat.
    entry['train_frames'] = frames[None, :].astype(np.float64)
    entry['train_joints'] = np.transpose(joints, (2, 1, 0))
    if kind == 'train':
      entry['test_frames'] = np.zeros((0, 0))
      entry['test_joints'] = np.zeros((0, 0))
    else:
      entry['test_frames'] = frames[None, :].astype(np.float64)
      entry['test_joints'] = np.transpose(joints, (2, 1, 0))

  test_order = TEST_VIDEOS[2:] + TEST_VIDEOS[:2]  # Not sorted: readers must keep results.mat's order.
  splits = {'train': TRAIN_VIDEOS, 'validation': VALIDATION_VIDEOS, 'test': test_order}
  records = {}
  corrupt_path = None
  for split, videos in splits.items():
    records[split] = []
    for video in videos:
      os.makedirs(os.path.join(root, str(video)), exist_ok=True)
      frames, joints = annotated[video]
      for position, frame in enumerate(frames):
        path = os.path.join(root, str(video), f'{frame}.jpg')
        Image.fromarray(_frame_pixels(rng, width, height)).save(path, format='JPEG', quality=90)
        if corrupt == (video, position):
          with open(path, 'rb') as f:
            data = f.read()
          with open(path, 'wb') as f:
            f.write(data[: len(data) // 2])
          corrupt_path = path
        records[split].append(FakeRecord(video, int(frame), position, joints[position], path))

  test = records['test']
  results = np.zeros((1, 1), dtype=[('gt', 'O'), ('frame', 'O'), ('video', 'O')])
  results[0, 0]['gt'] = np.stack([record.joints.T for record in test], axis=-1)
  results[0, 0]['frame'] = np.array([[record.frame for record in test]], np.float64)
  results[0, 0]['video'] = np.array([[record.video for record in test]], np.float64)
  os.makedirs(os.path.join(root, 'code'), exist_ok=True)
  scipy.io.savemat(os.path.join(root, 'code', 'bbcpose.mat'), {'bbcpose': entries})
  scipy.io.savemat(os.path.join(root, 'code', 'results.mat'), {'results': results})
  return FakeBbc(root, (width, height), records, corrupt_path)
