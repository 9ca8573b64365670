"""A folder of your own videos (or frame folders, or still images) as a TFDS frame dataset.

The folder (`config.dataset_path`, TFDS's manual dir) may hold:
- video files (.mp4, .mov, .avi, .mkv, .webm), decoded with PyAV, one video each;
- sub-folders of frames (.jpg, .jpeg, .png, in name order), one video each;
- still images at its top level, each a video of one frame (an image set: train with use_warped only).

Frames are kept every `stride` frames and stored as JPEGs whose short side is `short_side` (aspect kept; 0
keeps the size). The split is by whole videos, so validation and test never share a video with training: a
fraction of the videos each, drawn with `split_seed`, or a text file of `name split` lines. The crop the model
sees is the whole frame ('full', squeezed to a square), its centre square ('center'), or boxes from a CSV
(`video,frame,x0,y0,x1,y1` in pixels of the original frames; an empty frame means the whole video). Optional
keypoints, a CSV of `video,frame,keypoint,x,y` in pixels of the original frames (a missing row, or empty x and
y, is a keypoint not annotated there), become each record's 'joints' (NaN where missing) for evaluation.

The files and CSVs are checked before a record is written (each file's first frame is decoded); a file that is
not a readable video or image stops the build with its name (or, with `skip_bad_files`, is left out, warned
about and listed in the metadata). Frames are then streamed from the decoder into the records, so a folder of
long videos is never held in memory; a build that fails leaves nothing behind. A build records
its folder and options, and a later run with another folder or other options is refused, not silently served
the old build.
"""

import csv
import dataclasses
import io
import json
import os
from typing import Iterator, Sequence

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

VIDEO_SUFFIXES = ('.mp4', '.mov', '.avi', '.mkv', '.webm')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')
SPLITS = ('train', 'validation', 'test')
CROPS = ('full', 'center')
OPTIONS_KEY = 'build_options'
JPEG_QUALITY = 95


class VideoFolderError(ValueError):
  """A file or option of the folder that cannot be used; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class FolderOptions:
  """How the folder becomes a dataset (config.video_* options)."""
  stride: int = 1
  short_side: int = 256
  crop: str = 'full'  # 'full', 'center', or the path of a boxes CSV
  validation_fraction: float = 0.1
  test_fraction: float = 0.1
  split_seed: int = 0
  split_file: str = ''
  keypoints: str = ''
  skip_bad_files: bool = False

  def check(self) -> None:
    if self.stride < 1:
      raise VideoFolderError(f'config.video_stride must be at least 1, got {self.stride}.')
    if self.short_side < 0:
      raise VideoFolderError(f'config.video_short_side must be 0 (keep) or positive, got {self.short_side}.')
    if self.crop not in CROPS and not os.path.isfile(self.crop):
      raise VideoFolderError(f'config.video_crop must be one of {CROPS} or the path of a boxes CSV; '
                             f'{self.crop!r} is neither.')
    fractions = (self.validation_fraction, self.test_fraction)
    if min(fractions) < 0 or sum(fractions) >= 1:
      raise VideoFolderError(f'config.video_validation_fraction and video_test_fraction must be >= 0 and leave '
                             f'videos for training; got {fractions}.')
    for name in ('split_file', 'keypoints'):
      path = getattr(self, name)
      if path and not os.path.isfile(path):
        raise VideoFolderError(f'config.video_{name} is {path!r}, which is not a file.')


@dataclasses.dataclass(frozen=True)
class Item:
  """One video of the folder: a video file, a folder of frames, or a still image."""
  name: str
  kind: str  # 'video', 'frames' or 'image'
  path: str


def scan(folder: str) -> list[Item]:
  """The videos of a folder, sorted by name; an error when it holds none."""
  if not os.path.isdir(folder):
    raise VideoFolderError(f'config.dataset_path {folder!r} is not a folder; pass the folder of your videos.')
  items = []
  for entry in sorted(os.listdir(folder)):
    path = os.path.join(folder, entry)
    suffix = os.path.splitext(entry)[1].lower()
    if os.path.isdir(path):
      if any(os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES for f in os.listdir(path)):
        items.append(Item(entry, 'frames', path))
    elif suffix in VIDEO_SUFFIXES:
      items.append(Item(os.path.splitext(entry)[0], 'video', path))
    elif suffix in IMAGE_SUFFIXES:
      items.append(Item(os.path.splitext(entry)[0], 'image', path))
  names = [item.name for item in items]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise VideoFolderError(f'{folder} holds several videos named {duplicates[0]!r} (a file and a folder, or two '
                           'suffixes); rename one, since videos are named without their suffix.')
  if not items:
    raise VideoFolderError(f'{folder} holds no video ({", ".join(VIDEO_SUFFIXES)}), no folder of frames and no '
                           f'image ({", ".join(IMAGE_SUFFIXES)}); pass the folder of your videos.')
  return items


def read_frames(item: Item) -> Iterator[tuple[int, Image.Image]]:
  """(frame number, RGB image) of every frame; errors name the file."""
  try:
    if item.kind == 'video':
      import av  # pylint: disable=g-import-not-at-top
      with av.open(item.path) as container:
        if not container.streams.video:
          raise VideoFolderError(f'{item.path} holds no video stream.')
        for number, frame in enumerate(container.decode(video=0)):
          yield number, frame.to_image().convert('RGB')
    elif item.kind == 'frames':
      names = sorted(f for f in os.listdir(item.path) if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES)
      for number, name in enumerate(names):
        with Image.open(os.path.join(item.path, name)) as image:
          yield number, image.convert('RGB')
    else:
      with Image.open(item.path) as image:
        yield 0, image.convert('RGB')
  except VideoFolderError:
    raise
  except Exception as error:  # pylint: disable=broad-except
    raise VideoFolderError(f'{item.path} is not a readable {"video" if item.kind == "video" else "image"} '
                           f'({type(error).__name__}: {error}). Remove it, re-encode it, or pass '
                           '--config.video_skip_bad_files=True to leave it out.') from error


def assign_splits(names: Sequence[str], options: FolderOptions) -> dict[str, str]:
  """{video name: split}: from the split file, else by fractions drawn with the seed (whole videos)."""
  if options.split_file:
    assigned = {}
    with open(options.split_file) as f:
      for number, line in enumerate(f, 1):
        fields = line.split()
        if not fields or fields[0].startswith('#'):
          continue
        if len(fields) != 2 or fields[1] not in SPLITS or fields[0] not in names:
          raise VideoFolderError(f'{options.split_file} line {number}: expected "<video> <split>" with a video of '
                                 f'the folder and a split of {SPLITS}, got {line.strip()!r}.')
        assigned[fields[0]] = fields[1]
    missing = [n for n in names if n not in assigned]
    if missing:
      raise VideoFolderError(f'{options.split_file} gives no split for {len(missing)} videos (first: '
                             f'{missing[0]!r}); list every video of the folder.')
    return assigned
  order = np.random.default_rng(options.split_seed).permutation(len(names))
  count = len(names)
  num_test = int(round(count * options.test_fraction)) if count >= 3 else 0
  num_validation = int(round(count * options.validation_fraction)) if count >= 3 else 0
  num_test = max(num_test, 1) if options.test_fraction > 0 and count >= 3 else num_test
  num_validation = max(num_validation, 1) if options.validation_fraction > 0 and count >= 3 else num_validation
  split_of = {}
  for rank, index in enumerate(order):
    split_of[names[index]] = ('test' if rank < num_test else 'validation' if rank < num_test + num_validation
                              else 'train')
  return split_of


def _read_csv(path: str, columns: Sequence[str]) -> list[dict[str, str]]:
  with open(path, newline='') as f:
    reader = csv.DictReader(f)
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
      raise VideoFolderError(f'{path} must be a CSV whose first line names the columns {",".join(columns)}; '
                             f'it has {reader.fieldnames}.')
    return list(reader)


def _number(value: str, path: str, line: int, column: str) -> float:
  try:
    return float(value)
  except ValueError:
    raise VideoFolderError(f'{path} line {line}: {column} {value!r} is not a number.') from None


def read_keypoints(path: str, names: Sequence[str]) -> tuple[list[str], dict[tuple[str, int], dict[str, tuple]]]:
  """(keypoint names in first-seen order, {(video, frame): {keypoint: (x, y)}}) from the keypoint CSV."""
  rows = _read_csv(path, ('video', 'frame', 'keypoint', 'x', 'y'))
  keypoints, points = [], {}
  for line, row in enumerate(rows, 2):
    if row['video'] not in names:
      raise VideoFolderError(f'{path} line {line}: video {row["video"]!r} is not in the folder.')
    frame = int(_number(row['frame'], path, line, 'frame'))
    if row['keypoint'] not in keypoints:
      keypoints.append(row['keypoint'])
    if all(row[c].strip().lower() in ('', 'nan') for c in ('x', 'y')):
      continue  # not annotated on this frame
    points.setdefault((row['video'], frame), {})[row['keypoint']] = (
        _number(row['x'], path, line, 'x'), _number(row['y'], path, line, 'y'))
  return keypoints, points


def read_boxes(path: str, names: Sequence[str]) -> dict[tuple[str, int | None], np.ndarray]:
  """{(video, frame or None for the whole video): (x0, y0, x1, y1)} from the boxes CSV."""
  boxes = {}
  for line, row in enumerate(_read_csv(path, ('video', 'frame', 'x0', 'y0', 'x1', 'y1')), 2):
    if row['video'] not in names:
      raise VideoFolderError(f'{path} line {line}: video {row["video"]!r} is not in the folder.')
    frame = None if row['frame'].strip() in ('', '-1') else int(_number(row['frame'], path, line, 'frame'))
    box = np.array([_number(row[c], path, line, c) for c in ('x0', 'y0', 'x1', 'y1')], np.float64)
    if not (box[0] < box[2] and box[1] < box[3]):
      raise VideoFolderError(f'{path} line {line}: the box {box.tolist()} is empty; give x0 < x1 and y0 < y1.')
    boxes[(row['video'], frame)] = box
  return boxes


def stored_size(width: int, height: int, short_side: int) -> tuple[int, int]:
  """(width, height) with the short side at most `short_side` (aspect kept; 0 keeps the size)."""
  if not short_side or min(width, height) <= short_side:
    return width, height
  scale = short_side / min(width, height)
  return max(1, round(width * scale)), max(1, round(height * scale))


def frame_box(options: FolderOptions, boxes, video: str, frame: int, width: int, height: int,
              scale: np.ndarray) -> np.ndarray:
  """The crop of one frame in stored pixels: the whole frame, its centre square, or the CSV's box.

  `scale` is (x, y) stored pixels per original pixel; the CSV's boxes are in original pixels.
  """
  if options.crop == 'full':
    return np.array([0, 0, width, height], np.float32)
  if options.crop == 'center':
    side = min(width, height)
    x0, y0 = (width - side) / 2, (height - side) / 2
    return np.array([x0, y0, x0 + side, y0 + side], np.float32)
  box = boxes.get((video, frame), boxes.get((video, None)))
  if box is None:
    raise VideoFolderError(f'{options.crop} gives no box for video {video!r} frame {frame}; add a row for it, or '
                           'one with an empty frame for the whole video.')
  scale = np.tile(np.asarray(scale, np.float64), 2)
  box = box * scale
  if box[0] < -0.5 or box[1] < -0.5 or box[2] > width + 0.5 or box[3] > height + 0.5:
    raise VideoFolderError(f'{options.crop}: the box of video {video!r} frame {frame} ({(box / scale).tolist()} '
                           f'in original pixels) reaches outside the frame of {width / scale[0]:g} x '
                           f'{height / scale[1]:g}; clip it to the frame.')
  return np.clip(box, 0, [width, height, width, height]).astype(np.float32)


def _encode(image: Image.Image) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format='JPEG', quality=JPEG_QUALITY)
  return buffer.getvalue()


class VideoFolder(tfds.core.GeneratorBasedBuilder):
  """Your own videos, frame folders or images, with optional keypoints."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Videos, frame folders and still images; splits by video; crops; keypoints.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = 'Pass the folder of your videos as config.dataset_path.'
  code_path = None  # No download checksums to look up (see frame_dataset.py).
  options = FolderOptions()

  def _info(self):
    from landmarks_jax.data_pipelines import frame_dataset  # pylint: disable=g-import-not-at-top
    features = frame_dataset.frame_features('jpeg', None)
    return frame_dataset.frame_dataset_info(self, features, (), description=__doc__.split('\n')[0])

  def _split_generators(self, dl_manager):
    folder = os.fspath(dl_manager.manual_dir)
    options = self.options
    items = scan(folder)
    skipped = []
    for item in items:
      try:
        probe(item)
      except VideoFolderError as error:
        if not options.skip_bad_files:
          raise
        logging.warning('Leaving out %s: %s', item.path, error)
        skipped.append(item.path)
    usable = [item for item in items if item.path not in skipped]
    names = [item.name for item in items]
    split_of = assign_splits([item.name for item in usable], options)
    empty = [split for split in SPLITS if split not in split_of.values()]
    if empty:
      raise VideoFolderError(
          f'{folder} gives no video to the {" and ".join(empty)} split{"s" if len(empty) > 1 else ""} '
          f'({len(usable)} usable videos): splits are by '
          'whole videos, so they need at least one video each. Add videos (or cut a long one into parts), or '
          'list the split of each in --config.video_split_file.')
    keypoint_names, points = read_keypoints(options.keypoints, names) if options.keypoints else ([], {})
    boxes = read_boxes(options.crop, names) if options.crop not in CROPS else {}
    train_videos = {name for name, split in split_of.items() if split == 'train'}
    unannotated = [k for k in keypoint_names if not any(k in found for (video, _), found in points.items()
                                                        if video in train_videos)]
    if unannotated:
      raise VideoFolderError(f'{options.keypoints}: keypoints {unannotated} are annotated on no training frame '
                             '(the map to them is fitted on training frames); annotate some, choose the split '
                             'with --config.video_split_file, or leave them out.')
    self.info.metadata['joint_names'] = list(keypoint_names)
    self.info.metadata['video_names'] = names
    self.info.metadata['skipped'] = skipped
    self.info.metadata[OPTIONS_KEY] = recorded_options(folder, options)
    self.info.metadata['videos'] = {}  # filled as each split's records are written
    context = dict(options=options, keypoint_names=keypoint_names, points=points, boxes=boxes)
    return {split: self._generate_examples(split, [(names.index(item.name), item) for item in usable
                                                   if split_of[item.name] == split], context)
            for split in SPLITS}

  def _generate_examples(self, split, videos, context):
    """A split's records, video after video, streamed from the decoder; its video table goes to the metadata."""
    options, keypoint_names, points = context['options'], context['keypoint_names'], context['points']
    table, key = [], 0
    for video_id, item in videos:
      count, first = 0, key
      for number, image in read_frames(item):
        count += 1
        if number % options.stride:
          continue
        size = stored_size(*image.size, options.short_side)
        scale = np.array(size, np.float64) / image.size
        joints = np.full((len(keypoint_names), 2), np.nan, np.float32)
        for k, name in enumerate(keypoint_names):
          if name in points.get((item.name, number), {}):
            joints[k] = np.asarray(points[(item.name, number)][name]) * scale
        box = frame_box(options, context['boxes'], item.name, number, *size, scale)
        yield key, {'image': _encode(image.resize(size, Image.Resampling.BILINEAR) if size != image.size else image),
                    'video': video_id, 'frame': number, 'frame_index': key - first, 'joints': joints,
                    'train_box': box, 'eval_box': box}
        key += 1
      if not count:
        raise VideoFolderError(f'{item.path} has no frame; remove it.')
      beyond = sorted(frame for video, frame in points if video == item.name and not 0 <= frame < count)
      if beyond:
        raise VideoFolderError(f'{options.keypoints} names frame {beyond[0]} of video {item.name!r}, which has '
                               f'frames 0 to {count - 1}; correct the CSV.')
      table.append([video_id, first, key - first])
    self.info.metadata['videos'][split] = table


def probe(item: Item) -> None:
  """Reads the first frame of a video, frame folder or image: a file that is not one fails here, named."""
  for _ in read_frames(item):
    return
  raise VideoFolderError(f'{item.path} has no frame.')


def recorded_options(folder: str, options: FolderOptions) -> str:
  """What a build records of its source, compared on reuse: the folder and every option, as JSON."""
  return json.dumps(dict(dataclasses.asdict(options), folder=os.path.realpath(folder)), sort_keys=True)


def prepare(folder: str, data_dir: str | None, options: FolderOptions) -> VideoFolder:
  """Builds the folder's dataset into `data_dir` once and returns the builder; a build from another folder or
  with other options is refused, naming the difference."""
  options.check()
  builder = VideoFolder(data_dir=data_dir or None, file_format='array_record')
  builder.options = options
  if builder.data_path.exists():
    built = (builder.info.metadata or {}).get(OPTIONS_KEY)
    wanted = recorded_options(folder, options)
    if built != wanted:
      before, now = json.loads(built or '{}'), json.loads(wanted)
      changed = ', '.join(f'{k}: built {before.get(k)!r}, asked {now[k]!r}' for k in sorted(now)
                          if before.get(k) != now[k])
      raise VideoFolderError(f'The video_folder build in {builder.data_path} was made from other options ({changed}). '
                             f'Pass another --config.data_dir for this one, or delete {builder.data_path} to '
                             'rebuild.')
    return builder
  scan(folder)  # a missing or empty folder fails before TFDS creates anything
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=folder))
  return builder
