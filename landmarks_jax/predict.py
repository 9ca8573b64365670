"""Runs a trained model on new videos: landmarks on every frame, as files and as an annotated video.

  python -m landmarks_jax.predict --workdir=runs/mine --input=clip.mp4 --output=out/ [--keypoints] [--mask]

--input is a video file, a folder of frames, or a folder of videos (and frame folders). For each video,
<output>/<video>/ receives:
- landmarks.npz: 'mean' (N, K, 2) in [-1, 1] of the crop (x, y), 'mean_px' (N, K, 2) in pixels of the input
  frames, 'covariance' (N, K, 2, 2) in crop units, 'frame' (N,) frame numbers, 'crop' (N, 4) the crop box in
  pixels (x0, y0, x1, y1), 'frame_size' (width, height); with --keypoints 'keypoints_px' (N, J, 2) and
  'keypoint_names';
- landmarks.csv: frame,landmark,x,y in pixels of the input frames (and keypoints.csv with --keypoints);
- annotated.mp4: the input with the landmarks drawn in the colours of the training pictures (the regressed
  keypoints too with --keypoints; the predicted foreground mask beside it with --mask).

The workdir may come from any dataset (BBC Pose, the humanoid data, your own videos) or from `import_torch`.
The model sees each frame as in training: the whole frame squeezed to a square ('full', the default), its
centre square ('center'), or boxes from a CSV (video,frame,x0,y0,x1,y1), chosen by --crop. Frames are batched
over the local devices. Every file is written whole or not at all. In a folder, a video that cannot be read
(or breaks midway) is named and left out, the others are written, and the command then exits non-zero.
"""

import csv
import os
import tempfile
from typing import Any, Iterator, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
from PIL import Image
import tqdm

from landmarks_jax import pictures
from landmarks_jax import user_errors
from landmarks_jax.cpu import kernels
from landmarks_jax.cpu import process_settings
from landmarks_jax.data import files
from landmarks_jax.data import frames as frames_lib
from landmarks_jax.data import video_files
from landmarks_jax.data_pipelines import video_folder
from landmarks_jax.evaluation import boxes as boxes_lib
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.evaluation import regression
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import logs

FLAGS = flags.FLAGS
MARK_SIZE_PER_PIXELS = 240  # Marks grow by one unit of radius per this many pixels of the frame's short side.


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  flags.DEFINE_string('workdir', None, "The trained run's folder (holding checkpoints/ and config.json).")
  flags.DEFINE_string('input', None, 'A video, a folder of frames, or a folder of videos.')
  flags.DEFINE_string('output', None, 'Folder for the results (one sub-folder per video).')
  config_flags.DEFINE_config_file(
    'config', None, "Configuration file (default: the workdir's config.json).", lock_config=True
  )
  flags.DEFINE_integer('step', None, 'Checkpoint step to use (default: the latest).')
  flags.DEFINE_string(
    'crop',
    None,
    "'full', 'center', or a boxes CSV (video,frame,x0,y0,x1,y1); default: the "
    "run's video_crop when it is 'full' or 'center', else 'full'.",
  )
  flags.DEFINE_integer('batch_size', None, "Frames per device and batch (default: the run's batch_size).")
  flags.DEFINE_bool('keypoints', False, 'Add the keypoints regressed by the map `evaluate` fitted.')
  flags.DEFINE_bool('mask', False, 'Show the predicted foreground mask beside each frame (models with masks).')
  flags.DEFINE_bool('video', True, 'Write annotated.mp4 (off: only the landmark files).')
  flags.mark_flags_as_required(['workdir', 'input', 'output'])
  user_errors.define_traceback_flag()


class PredictError(user_errors.UserError, ValueError):
  """An output predict cannot write, or inputs it could not read; the message names them and what to do."""


class VideosFailed(PredictError):
  """Some videos of a folder could not be read; the others were written, and `results` holds them."""

  def __init__(self, message: str, results: dict[str, dict[str, np.ndarray]]):
    super().__init__(message)
    self.results = results


class Predictor:
  """A trained generator's encoder, replicated over the local devices, and how frames are cut for it."""

  def __init__(
    self,
    config: ml_collections.ConfigDict,
    variables: Any,
    crop: str,
    batch_size: int | None = None,
    joint_map: dict | None = None,
  ):
    self.config = config
    self.crop = crop
    self.crop_options = video_folder.FolderOptions(crop=crop)
    self.boxes = {}
    self.batch_size = (batch_size or config.batch_size) * jax.local_device_count()
    self.encode = landmark_eval.make_encode_fn(config)
    self.variables = device_layout.replicate(variables)
    self.joint_map = joint_map
    # Frames of a video_folder run were stored smaller before cropping; new frames get the same treatment.
    self.short_side = config.video_short_side if config.dataset == 'video_folder' else 0

  def load_boxes(self, names: Sequence[str]) -> None:
    if self.crop not in video_folder.CROPS:
      self.boxes = video_folder.read_boxes(self.crop, names)

  def cut(self, name: str, number: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, S, 3) uint8 model input of one frame, and its crop box in the frame's pixels."""
    height, width = frame.shape[:2]
    image = Image.fromarray(frame)
    size = video_folder.stored_size(width, height, self.short_side)
    scale = np.array(size, np.float64) / (width, height)
    if size != (width, height):
      image = image.resize(size, Image.Resampling.BILINEAR)
    box = video_folder.frame_box(self.crop_options, self.boxes, name, number, *size, scale)
    return frames_lib.crop_resize(image, box, self.config.img_size), box / np.tile(scale, 2)

  def landmarks(self, images: np.ndarray) -> dict[str, np.ndarray]:
    """Landmarks of (n, S, S, 3) uint8 images: 'mean' (n, K, 2), 'covariance', and 'mask' with masks."""
    count = len(images)
    devices = jax.local_device_count()
    padded = np.concatenate([images, np.repeat(images[-1:], self.batch_size - count, axis=0)])
    encoded = self.encode(self.variables, padded.reshape((devices, -1) + images.shape[1:]))
    rows = {k: np.asarray(device_layout.local_rows(v)).reshape((-1,) + v.shape[2:])[:count] for k, v in encoded.items()}
    result = {'mean': np.stack([rows['mean_x'], rows['mean_y']], -1), 'covariance': rows['covariance']}
    if 'pred_mask' in rows:
      result['mask'] = rows['pred_mask']
    return result

  def keypoints(self, mean: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """(n, J, 2) keypoints in frame pixels through the map fitted by `evaluate`."""
    features = regression.landmark_features(mean[..., 0], mean[..., 1], self.joint_map['feature_dtype'])
    return boxes_lib.box_units_to_pixels(regression.apply_linear_map(features, self.joint_map['weights']), crops)


def to_pixels(mean: np.ndarray, crops: np.ndarray) -> np.ndarray:
  """(n, K, 2) landmarks in [-1, 1] of their crops -> pixels of the frames (centred box units are half of them)."""
  units = regression.landmark_features(mean[..., 0], mean[..., 1], np.float64) / 2
  return boxes_lib.box_units_to_pixels(units, crops)


def _batches(item: video_folder.Item, predictor: Predictor) -> Iterator[tuple[list, list, np.ndarray, np.ndarray]]:
  """(frame numbers, frames, model inputs, crop boxes) of each batch of a video, streamed."""
  numbers, frames, inputs, crops = [], [], [], []
  for number, frame in video_files.read(item):
    image, crop = predictor.cut(item.name, number, frame)
    numbers.append(number)
    frames.append(frame)
    inputs.append(image)
    crops.append(crop)
    if len(numbers) == predictor.batch_size:
      yield numbers, frames, np.stack(inputs), np.stack(crops)
      numbers, frames, inputs, crops = [], [], [], []
  if numbers:
    yield numbers, frames, np.stack(inputs), np.stack(crops)


def annotate(frame: np.ndarray, mean_px: np.ndarray, keypoints_px: np.ndarray | None, bones, mask_panel):
  """One output frame: landmarks (and keypoints) drawn on the frame, the mask panel beside it."""
  height, width = frame.shape[:2]
  radius = max(1, min(height, width) // MARK_SIZE_PER_PIXELS + 1)
  normalized = mean_px / np.array([width, height]) * 2 - 1
  drawn = pictures.draw_frame(
    frame,
    normalized,
    keypoints_px,
    None,
    bones if keypoints_px is not None else None,
    number_landmarks=True,
    font_size=8 * radius,
    radius=radius,
  )
  return drawn if mask_panel is None else np.concatenate([drawn, mask_panel], axis=1)


def mask_panel(mask: np.ndarray, crop: np.ndarray, height: int, width: int) -> np.ndarray:
  """The (S, S, 1) mask resized into its crop box on a black frame of the input's size."""
  panel = np.zeros((height, width, 3), np.uint8)
  x0, y0, x1, y1 = (int(round(v)) for v in crop)
  x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
  if x1 > x0 and y1 > y0:
    image = Image.fromarray(pictures.mask_to_uint8_image(mask)).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
    panel[y0:y1, x0:x1] = np.asarray(image)
  return panel


def _write_csv(path: str, header: Sequence[str], rows: Iterator[Sequence[Any]]) -> None:
  def write(temporary):
    with open(temporary, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(header)
      writer.writerows(rows)

  files.write_atomically(path, write)


def predict_video(
  item: video_folder.Item, predictor: Predictor, out_dir: str, *, write_video: bool = True, with_mask: bool = False
) -> dict[str, np.ndarray]:
  """Landmarks of every frame of one video, written to out_dir; returns what landmarks.npz holds."""
  os.makedirs(out_dir, exist_ok=True)
  bones = predictor.joint_map['bones'] if predictor.joint_map else None
  columns = {'frame': [], 'mean': [], 'mean_px': [], 'covariance': [], 'crop': []}
  if predictor.joint_map:
    columns['keypoints_px'] = []
  fps, num_frames = video_files.stream_info(item)
  writer = video_files.Mp4Writer(os.path.join(out_dir, 'annotated.mp4'), fps) if write_video else None
  frame_size = None
  try:
    with tqdm.tqdm(total=num_frames, desc=item.name, unit='frame') as progress:
      for numbers, frames, inputs, crops in _batches(item, predictor):
        found = predictor.landmarks(inputs)
        mean_px = to_pixels(found['mean'], crops)
        keypoints_px = predictor.keypoints(found['mean'], crops) if predictor.joint_map else None
        for column, values in (
          ('frame', numbers),
          ('mean', found['mean']),
          ('mean_px', mean_px),
          ('covariance', found['covariance']),
          ('crop', crops),
          ('keypoints_px', keypoints_px),
        ):
          if column in columns:
            columns[column].append(np.asarray(values))
        frame_size = (frames[0].shape[1], frames[0].shape[0])
        for i, frame in enumerate(frames):
          if writer:
            panel = mask_panel(found['mask'][i], crops[i], *frame.shape[:2]) if with_mask and 'mask' in found else None
            writer.write(annotate(frame, mean_px[i], None if keypoints_px is None else keypoints_px[i], bones, panel))
        progress.update(len(frames))
  except BaseException:
    if writer:
      writer.abort()
    raise
  if writer:
    writer.close()
  if not columns['frame']:
    raise video_folder.VideoFolderError(f'{item.path} has no frame.')
  result = {k: np.concatenate(v) for k, v in columns.items()}
  result['frame'] = result['frame'].astype(np.int32)
  result['frame_size'] = np.asarray(frame_size, np.int32)
  if predictor.joint_map:
    result['keypoint_names'] = np.asarray(predictor.joint_map['joint_names'], dtype=str)
  files.write_atomically(os.path.join(out_dir, 'landmarks.npz'), lambda path: np.savez(path, **result))
  _write_csv(
    os.path.join(out_dir, 'landmarks.csv'),
    ('frame', 'landmark', 'x', 'y'),
    (
      (int(f), k, float(x), float(y))
      for f, points in zip(result['frame'], result['mean_px'])
      for k, (x, y) in enumerate(points)
    ),
  )
  if predictor.joint_map:
    names = predictor.joint_map['joint_names']
    _write_csv(
      os.path.join(out_dir, 'keypoints.csv'),
      ('frame', 'keypoint', 'x', 'y'),
      (
        (int(f), names[j], float(x), float(y))
        for f, points in zip(result['frame'], result['keypoints_px'])
        for j, (x, y) in enumerate(points)
      ),
    )
  return result


def default_crop(config: ml_collections.ConfigDict) -> str:
  """The run's own crop when it is a whole-frame one ('full' or 'center'); 'full' otherwise."""
  crop = config.get('video_crop', 'full') if config.dataset == 'video_folder' else 'full'
  return crop if crop in video_folder.CROPS else 'full'


def run(
  workdir: str,
  input_path: str,
  output: str,
  *,
  config: ml_collections.ConfigDict | None = None,
  step: int | None = None,
  crop: str | None = None,
  batch_size: int | None = None,
  keypoints: bool = False,
  with_mask: bool = False,
  write_video: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
  """The command without its flags; returns {video name: what its landmarks.npz holds}."""
  config = config or checkpoints.read_config(workdir)
  config = config_checks.with_device_batch(config, jax.device_count())
  kernels.select_for(config)
  crop = crop or default_crop(config)
  if crop not in video_folder.CROPS and not os.path.isfile(crop):
    raise video_folder.VideoFolderError(f"--crop must be 'full', 'center' or a boxes CSV; {crop!r} is neither.")
  if with_mask and not config.use_fg_bg_mask:
    raise PredictError('--mask needs a model with foreground masks; this run was trained with use_fg_bg_mask=False.')
  if batch_size is not None and batch_size < 1:
    raise PredictError(f'--batch_size must be at least 1, got {batch_size}.')
  items = video_files.inputs(input_path)  # a bad --input or --output fails before the model is loaded
  check_output(output)
  joint_map = landmark_eval.read_joint_map(workdir) if keypoints else None
  variables, step = landmark_eval.load_variables(workdir, step, config)
  if joint_map and joint_map['weights'].shape[0] != 2 * config.n_landmarks:
    raise PredictError(
      f'{landmark_eval.JOINT_MAP_FILE} maps {joint_map["weights"].shape[0] // 2} landmarks, the '
      f'model has {config.n_landmarks}; run evaluate again for this run.'
    )
  predictor = Predictor(config, variables, crop, batch_size, joint_map)
  predictor.load_boxes([item.name for item in items])
  results, failures = {}, []
  for item in items:
    out_dir = os.path.join(output, item.name)
    fresh = not os.path.exists(out_dir)
    try:
      results[item.name] = predict_video(item, predictor, out_dir, write_video=write_video, with_mask=with_mask)
    except video_folder.VideoFolderError as error:
      if fresh and os.path.isdir(out_dir) and not os.listdir(out_dir):
        os.rmdir(out_dir)
      if len(items) == 1:
        if isinstance(error, video_folder.BadFileError):
          raise video_folder.VideoFolderError(f'{error} Re-encode it, or pass another --input.') from error
        raise
      logging.warning('Leaving out %s: %s', item.name, error)
      failures.append(error)
    except OSError as error:
      raise PredictError(
        f'Cannot write {out_dir}: {error.strerror or error}; the {len(results)} videos before it '
        f'were written. Free or fix {output}, or pass another --output.'
      ) from error
  if failures:
    fix = (
      ' Re-encode those files or move them out of the folder.'
      if any(isinstance(e, video_folder.BadFileError) for e in failures)
      else ''
    )
    raise VideosFailed(
      f'{len(failures)} of {len(items)} videos could not be read, the other {len(results)} were '
      f'written to {output}: {" ".join(map(str, failures))}{fix}',
      results,
    )
  return results


def check_output(output: str) -> None:
  """Makes the output folder and writes a scratch file in it, so that a file in the way or a read-only disk
  stops predict before the model is loaded, in one line naming the folder."""
  if os.path.isfile(output):
    raise PredictError(f'--output {output} is a file; pass a folder (it is made if missing).')
  try:
    os.makedirs(output, exist_ok=True)
    with tempfile.TemporaryFile(dir=output):
      pass
  except OSError as error:
    raise PredictError(
      f'Cannot write to --output {output}: {error.strerror or error}; pass a folder you can write to.'
    ) from error


def execute(workdir: str, input_path: str, output: str, **options) -> None:
  """`run` as the command runs it: a line per video written; a person's mistake (a bad input, output or workdir,
  unreadable videos) ends it with one line and a non-zero exit (SystemExit), no traceback."""
  try:
    results = run(workdir, input_path, output, **options)
  except VideosFailed as error:
    _print_written(error.results, output)
    raise SystemExit(f'Error: {error}') from error
  except (user_errors.UserError, FileNotFoundError) as error:
    if user_errors.traceback_requested():
      raise
    raise SystemExit(f'Error: {error}') from error
  _print_written(results, output)


def _print_written(results: dict[str, dict[str, np.ndarray]], output: str) -> None:
  for name, result in results.items():
    print(f'{name}: {len(result["frame"])} frames -> {os.path.join(output, name)}')


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  process_settings.apply()
  logs.quiet_libraries()
  execute(
    FLAGS.workdir,
    FLAGS.input,
    FLAGS.output,
    config=FLAGS.config,
    step=FLAGS.step,
    crop=FLAGS.crop,
    batch_size=FLAGS.batch_size,
    keypoints=FLAGS.keypoints,
    with_mask=FLAGS.mask,
    write_video=FLAGS.video,
  )


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
