"""BBC Pose as a TFDS dataset, built from the manual download.

Splits, as the PyTorch original uses them:
  'train':      videos 1-10, the frames and joints of `train_frames`/`train_joints` in `code/bbcpose.mat`.
  'validation': videos 11-15, from the same fields.
  'test':       the frames listed in `code/results.mat`, in that file's order, so that record i of the
                split is column i of the toolkit's ground truth and predictions can be written back in its
                order.

Each example holds the frame's original JPEG bytes (never re-encoded), its video and frame numbers, its
position within its video in the split ('frame_index'), the 7 joints in pixels and the two crop boxes the
original computes from them: 'train_box', the joints' bounding box grown by 60 px on each side, and
'eval_box', a 300x300 box centred on the joints' bounding box; both are clipped to the image and kept as
unrounded floats.

Everything the build needs is checked before any example is written: the folder, both .mat files and their
layout, the video folders and every frame file. A frame that does not decode as a complete RGB JPEG fails
the build with an error naming the file; it is never skipped, because skipping would change the record
counts and break the test split's correspondence with `results.mat`. TFDS writes into a temporary
`incomplete.*` folder and renames it only on success, so a failed build leaves nothing behind.

Usage:
  builder = bbc_pose.prepare('/path/to/bbcpose', data_dir)
  source = builder.as_data_source('train', decoders={'image': tfds.decode.SkipDecoding()})
"""

import dataclasses
import io
import os

import numpy as np
from PIL import Image
import scipy.io
import tensorflow_datasets as tfds

from landmarks_jax import user_errors
from landmarks_jax.data_pipelines import frame_dataset

JOINT_NAMES = ('head', 'right_wrist', 'left_wrist', 'right_elbow', 'left_elbow', 'right_shoulder', 'left_shoulder')
NUM_JOINTS = len(JOINT_NAMES)
SPLIT_VIDEOS = {'train': tuple(range(1, 11)), 'validation': tuple(range(11, 16))}
NUM_VIDEOS = 20

# The original's crops: the joints' box grown by this margin for training, and a box of twice this half
# size around the joints' centre for evaluation (both in pixels).
TRAIN_BOX_MARGIN = 60.0
EVAL_BOX_HALF_SIZE = 150.0

_HOMEPAGE = 'https://www.robots.ox.ac.uk/~vgg/data/pose/index.html'
# The metadata key of the download folder a build was made from.
SOURCE_KEY = 'source_path'

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
From {_HOMEPAGE} download `bbcpose_data_1.0.zip` (the train, validation and test images). Unzipping it
yields 20 tarballs; extract each of them into one and the same folder, which then holds the subfolders
`1` to `20`. Also download `bbcpose_extbbcpose_code_1.0.tgz` and extract it into that folder, which
creates `code/` (with `bbcpose.mat` and the test annotations `results.mat`). Pass that folder as
`config.dataset_path`; it is used as the TFDS manual_dir. Every frame must be a complete JPEG: a corrupt
or truncated one stops the build with its name (re-extract its video's tarball).
"""

_GET_IMAGES = f'Extract the tarballs of bbcpose_data_1.0.zip (from {_HOMEPAGE}) into the dataset folder.'


class BbcPoseError(user_errors.UserError, ValueError):
  """A file of the BBC Pose download that is not what the original's release holds; the message names it."""


class BbcPoseMissing(user_errors.UserError, FileNotFoundError):
  """A file of the BBC Pose download is missing; the message names it and where to get it."""


_GET_CODE = f'Extract bbcpose_extbbcpose_code_1.0.tgz (from {_HOMEPAGE}) into the dataset folder; it creates code/.'

_CITATION = """\
@article{charles2014automatic,
  title={Automatic and Efficient Human Pose Estimation for Sign Language Videos},
  author={Charles, James and Pfister, Tomas and Everingham, Mark and Zisserman, Andrew},
  journal={International Journal of Computer Vision},
  volume={110},
  number={1},
  pages={70--90},
  year={2014}
}
"""


@dataclasses.dataclass(frozen=True)
class FrameAnnotation:
  """One annotated frame: the image `<video>/<frame>.jpg` and its joints, shape (7, 2) as (x, y) pixels.

  frame_index counts the video's records in its split, in record order: the column of train_frames for
  train and validation, the video's n-th appearance in results.mat for test.
  """

  video: int
  frame: int
  frame_index: int
  joints: np.ndarray


def frame_path(dataset_path, video, frame):
  """Returns the path of frame `frame` of video `video`."""
  return os.path.join(dataset_path, str(video), f'{frame}.jpg')


def train_box(joints, width, height):
  """The original's training crop: joints' box + 60 px, clipped. joints (7, 2) -> (4,) x0, y0, x1, y1."""
  x_min = max(0.0, joints[:, 0].min() - TRAIN_BOX_MARGIN)
  y_min = max(0.0, joints[:, 1].min() - TRAIN_BOX_MARGIN)
  x_max = min(float(width), joints[:, 0].max() + TRAIN_BOX_MARGIN)
  y_max = min(float(height), joints[:, 1].max() + TRAIN_BOX_MARGIN)
  return np.array([x_min, y_min, x_max, y_max], np.float32)


def eval_box(joints, width, height):
  """The original's evaluation crop: 300x300 around the joints' box centre, clipped. joints (7, 2) -> (4,)."""
  x_centre = (joints[:, 0].min() + joints[:, 0].max()) / 2
  y_centre = (joints[:, 1].min() + joints[:, 1].max()) / 2
  x_min = max(0.0, x_centre - EVAL_BOX_HALF_SIZE)
  y_min = max(0.0, y_centre - EVAL_BOX_HALF_SIZE)
  x_max = min(float(width), x_centre + EVAL_BOX_HALF_SIZE)
  y_max = min(float(height), y_centre + EVAL_BOX_HALF_SIZE)
  return np.array([x_min, y_min, x_max, y_max], np.float32)


def _load_mat(path, variable):
  """Loads `variable` from the .mat file at `path`, with errors that say what to do."""
  if not os.path.isfile(path):
    raise BbcPoseMissing(f'BBC Pose annotation file {path} is missing. {_GET_CODE}')
  try:
    contents = scipy.io.loadmat(path)
  except Exception as error:  # pylint: disable=broad-except
    # scipy fails on a file of another kind with whatever its parser meets (IndexError, KeyError, ...).
    raise BbcPoseError(
      f'{path} is not a readable MATLAB file ({type(error).__name__}: {error}); it should hold '
      f'the struct {variable!r}. {_GET_CODE}'
    ) from error
  if variable not in contents:
    found = sorted(name for name in contents if not name.startswith('__'))
    raise BbcPoseError(f'{path} holds no variable {variable!r} (found: {found}). {_GET_CODE}')
  value = contents[variable]
  if not isinstance(value, np.ndarray) or value.dtype.names is None:
    raise BbcPoseError(f'{variable!r} in {path} is not a MATLAB struct. {_GET_CODE}')
  return value


def _field(entry, name, position):
  """A struct entry's field by name, or at the original's position when loadmat gave other names."""
  names = entry.dtype.names
  if name in names:
    return entry[name]
  return entry[position]


def _positive_integers(value, where):
  """Frame or video numbers, a 1xN (or Nx1, or N) MATLAB array of positive integers -> (N,) int64."""
  array = np.asarray(value)
  if sum(size > 1 for size in array.shape) > 1 or not np.issubdtype(array.dtype, np.number):
    raise BbcPoseError(f'{where}: expected a 1xN numeric array, got shape {array.shape} ({array.dtype}).')
  array = array.reshape(-1).astype(np.float64)
  if not np.all(np.isfinite(array)) or np.any(array != np.round(array)) or np.any(array < 1):
    raise BbcPoseError(f'{where}: expected positive integers.')
  return array.astype(np.int64)


def _joints(value, num_frames, where):
  """Joints, a 2x7xN MATLAB array (row 0 x, row 1 y) -> (N, 7, 2) float64."""
  array = np.asarray(value)
  if not np.issubdtype(array.dtype, np.number):
    raise BbcPoseError(f'{where}: joints must be a numeric 2x{NUM_JOINTS}xN array, got {array.dtype}.')
  if num_frames == 1 and array.shape == (2, NUM_JOINTS):
    array = array[:, :, None]  # MATLAB drops a trailing singleton dimension.
  if array.shape != (2, NUM_JOINTS, num_frames):
    raise BbcPoseError(
      f'{where}: joints must have shape 2x{NUM_JOINTS}xN with N = {num_frames} frames, '
      f'got {"x".join(map(str, array.shape))}.'
    )
  if not np.all(np.isfinite(array)):
    raise BbcPoseError(f'{where}: joints hold non-finite values.')
  return np.transpose(array.astype(np.float64), (2, 1, 0))


def read_annotations(dataset_path):
  """Reads and checks the annotations of every split: {split: [FrameAnnotation, ...] in record order}."""
  bbcpose_path = os.path.join(dataset_path, 'code', 'bbcpose.mat')
  results_path = os.path.join(dataset_path, 'code', 'results.mat')
  bbcpose = _load_mat(bbcpose_path, 'bbcpose').reshape(-1)
  results = _load_mat(results_path, 'results').reshape(-1)

  needed_videos = max(max(videos) for videos in SPLIT_VIDEOS.values())
  if len(bbcpose) < needed_videos:
    raise BbcPoseError(
      f"'bbcpose' in {bbcpose_path} has {len(bbcpose)} entries; videos 1-{needed_videos} need at least "
      f'{needed_videos}. {_GET_CODE}'
    )
  if len(bbcpose.dtype.names) < 5:
    raise BbcPoseError(
      f"'bbcpose' in {bbcpose_path} has fields {bbcpose.dtype.names}; expected videoName, type, source, "
      f'train_frames, train_joints, test_frames, test_joints. {_GET_CODE}'
    )

  annotations = {}
  for split, videos in SPLIT_VIDEOS.items():
    annotations[split] = []
    for video in videos:
      entry = bbcpose[video - 1]
      where = f"{bbcpose_path}, video {video} ('bbcpose' entry {video})"
      frames = _positive_integers(_field(entry, 'train_frames', 3), where + ', train_frames')
      if frames.size == 0:
        raise BbcPoseError(f'{where}: train_frames is empty. {_GET_CODE}')
      joints = _joints(_field(entry, 'train_joints', 4), frames.size, where + ', train_joints')
      annotations[split].extend(
        FrameAnnotation(video, int(frame), index, joints[index]) for index, frame in enumerate(frames)
      )

  # The toolkit's test ground truth: fields gt (2x7xN), frame numbers and video numbers, in that order;
  # read by position as the original does.
  if len(results) != 1 or len(results.dtype.names) < 3:
    raise BbcPoseError(
      f"'results' in {results_path} must be one struct with the fields ground truth, frames and videos "
      f'(got {len(results)} entries with fields {results.dtype.names}). {_GET_CODE}'
    )
  entry = results[0]
  frames = _positive_integers(entry[1], f'{results_path}, field {results.dtype.names[1]!r}')
  videos = _positive_integers(entry[2], f'{results_path}, field {results.dtype.names[2]!r}')
  if videos.size != frames.size or frames.size == 0:
    raise BbcPoseError(
      f'{results_path}: {frames.size} frame numbers and {videos.size} video numbers; expected the same '
      f'non-zero count. {_GET_CODE}'
    )
  if np.any(videos > NUM_VIDEOS):
    raise BbcPoseError(f'{results_path}: video numbers must lie in 1..{NUM_VIDEOS}, got {videos.max()}.')
  joints = _joints(entry[0], frames.size, f'{results_path}, field {results.dtype.names[0]!r}')
  position_in_video = {}
  annotations['test'] = []
  for video, frame, frame_joints in zip(videos.tolist(), frames.tolist(), joints):
    index = position_in_video.get(video, 0)
    position_in_video[video] = index + 1
    annotations['test'].append(FrameAnnotation(video, frame, index, frame_joints))
  return annotations


def check_frame_files(dataset_path, annotations):
  """Checks that every video folder and frame file the splits need exists (not yet that they decode)."""
  listings = {}
  for split, frames in annotations.items():
    missing = []
    for annotation in frames:
      video = annotation.video
      if video not in listings:
        folder = os.path.join(dataset_path, str(video))
        if not os.path.isdir(folder):
          raise BbcPoseMissing(
            f'BBC Pose video folder {folder} is missing; the {split!r} split needs video {video}. {_GET_IMAGES}'
          )
        listings[video] = set(os.listdir(folder))
      if f'{annotation.frame}.jpg' not in listings[video]:
        missing.append(annotation)
    if missing:
      first = missing[0]
      raise BbcPoseMissing(
        f'Frame file {frame_path(dataset_path, first.video, first.frame)} of video {first.video} is '
        f'missing ({len(missing)} frame(s) of the {split!r} split are missing). {_GET_IMAGES}'
      )


def validate(dataset_path):
  """Checks the whole download before a build; returns read_annotations' result."""
  dataset_path = os.fspath(dataset_path)
  if not dataset_path or not os.path.isdir(dataset_path):
    raise BbcPoseMissing(
      f'BBC Pose folder {dataset_path!r} does not exist. Set config.dataset_path to the folder prepared '
      f'as follows:\n{MANUAL_DOWNLOAD_INSTRUCTIONS}'
    )
  annotations = read_annotations(dataset_path)
  check_frame_files(dataset_path, annotations)
  return annotations


def video_table(annotations):
  """[[video, first_record, num_frames], ...] for each run of consecutive records of one video."""
  table = []
  for record, annotation in enumerate(annotations):
    if table and table[-1][0] == annotation.video:
      table[-1][2] += 1
    else:
      table.append([annotation.video, record, 1])
  return table


def _read_jpeg(path, video, frame):
  """Returns the file's bytes and (width, height) after checking that it decodes fully as an RGB JPEG."""
  with open(path, 'rb') as f:
    data = f.read()
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()  # Decodes every pixel, so a truncated file fails here.
      image_format, mode, size = image.format, image.mode, image.size
  except (OSError, SyntaxError, ValueError) as error:
    raise BbcPoseError(
      f'Frame file {path} (video {video}, frame {frame}) is corrupt: {error}. '
      f'Re-extract video {video} from bbcpose_data_1.0.zip ({_HOMEPAGE}).'
    ) from error
  if image_format != 'JPEG' or mode != 'RGB':
    raise BbcPoseError(
      f'Frame file {path} (video {video}, frame {frame}) is a {image_format} {mode} image; BBC Pose frames '
      f'are RGB JPEGs. Re-extract video {video} from bbcpose_data_1.0.zip ({_HOMEPAGE}).'
    )
  return data, size


class BbcPose(tfds.core.GeneratorBasedBuilder):
  """BBC Pose: signers in BBC broadcasts with 7 upper-body joints per annotated frame."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Train (videos 1-10), validation (11-15) and test (results.mat) splits.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  code_path = None  # No download checksums to look up (see frame_dataset.py).

  def _info(self):
    return frame_dataset.frame_dataset_info(
      self,
      frame_dataset.frame_features('jpeg', NUM_JOINTS),
      JOINT_NAMES,
      description=(
        'BBC Pose: sign-language interpreters in BBC broadcasts, 20 videos, with head, wrist, elbow '
        'and shoulder positions (x, y pixels) per annotated frame and the crop boxes of the '
        'unsupervised-landmark evaluation protocol.'
      ),
      homepage=_HOMEPAGE,
      citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    dataset_path = os.fspath(dl_manager.manual_dir)
    annotations = validate(dataset_path)
    self.info.metadata['joint_names'] = list(JOINT_NAMES)
    self.info.metadata[SOURCE_KEY] = os.path.realpath(dataset_path)
    self.info.metadata['videos'] = {split: video_table(frames) for split, frames in annotations.items()}
    return {split: self._generate_examples(dataset_path, frames) for split, frames in annotations.items()}

  def _generate_examples(self, dataset_path, annotations):
    # Integer keys in record order: with shuffling disabled TFDS writes records sorted by key.
    for record, annotation in enumerate(annotations):
      path = frame_path(dataset_path, annotation.video, annotation.frame)
      data, (width, height) = _read_jpeg(path, annotation.video, annotation.frame)
      yield (
        record,
        {
          'image': data,
          'video': annotation.video,
          'frame': annotation.frame,
          'frame_index': annotation.frame_index,
          'joints': annotation.joints.astype(np.float32),
          'train_box': train_box(annotation.joints, width, height),
          'eval_box': eval_box(annotation.joints, width, height),
        },
      )


def prepare(dataset_path, data_dir=None):
  """Builds BBC Pose into `data_dir` once and returns the builder; later calls reuse the built data.

  Args:
    dataset_path: the manual download folder (subfolders 1..20 and code/). It must exist; a data dir whose
      build came from another folder is refused rather than silently reused.
    data_dir: the TFDS data directory; None or '' means TFDS's default (~/tensorflow_datasets).

  Returns:
    The prepared `BbcPose` builder (array_record files).
  """
  dataset_path = os.fspath(dataset_path)
  if not dataset_path or not os.path.isdir(dataset_path):
    raise BbcPoseMissing(
      f'BBC Pose folder {dataset_path!r} does not exist. Set config.dataset_path to the folder prepared '
      f'as follows:\n{MANUAL_DOWNLOAD_INSTRUCTIONS}'
    )
  builder = BbcPose(data_dir=data_dir or None, file_format='array_record')
  if builder.data_path.exists():  # TFDS's own test for a prepared dataset.
    built_from = (builder.info.metadata or {}).get(SOURCE_KEY)
    if built_from is not None and built_from != os.path.realpath(dataset_path):
      raise BbcPoseError(
        f'The BBC Pose build in {builder.data_path} was made from {built_from}, not from {dataset_path}. To '
        f'build from {dataset_path}, pass another --config.data_dir (or delete {builder.data_path}); to use '
        f'the existing build, pass --config.dataset_path={built_from}.'
      )
    return builder
  validate(dataset_path)  # Fails before TFDS creates anything.
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=dataset_path))
  return builder
