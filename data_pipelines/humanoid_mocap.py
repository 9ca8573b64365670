"""The humanoid motion-capture dataset: the project's embedded default, built on the CPU with nothing to
download.

Each video plays one of pybullet's 15 DeepMimic motion-capture clips at 30 frames per second on one
"subject": a random colour for each of the humanoid's 15 body parts, a random crop of a photo from
scikit-image behind it, a light, and a camera that follows the body (it aims at the smoothed root, drifts
slowly around it and stands far enough that the body stays in the frame). `humanoid_render` renders the
frames. Validation and test subjects draw their part colours from hue ranges and their backgrounds from
photos that training never uses, so evaluation measures generalisation to unseen appearances.

Examples follow the project's shared features: 'image' (PNG), 'mask' (PNG, 255 on the body), 'video' (an id
unique across splits), 'frame' (the frame number in the clip's playback at 30 fps), 'frame_index' (position
within the video), 'joints' (15, 2) pixels (x, y), and 'train_box' = 'eval_box' = a square around the body
(`body_box`: around the silhouettes of all the video's frames, clipped to the frame). The metadata
holds 'videos' {split: [[video, first_record, num_frames], ...]}, 'joint_names', 'joint_parents' and
'subjects' {split: [plan of each video]} (clip, start, part colours, photo crop, camera, light).

Configs: 'full' (128 px; train 60 videos x 80 frames, validation and test 8 x 60) and 'tiny' (64 px; 2, 1
and 1 videos of 50 frames, for tests). The same seed gives byte-identical data.

Usage:
  builder = humanoid_mocap.prepare(data_dir)  # Builds once (under a minute), then reuses.
  source = builder.as_data_source('train', decoders={'image': tfds.decode.SkipDecoding(),
                                                     'mask': tfds.decode.SkipDecoding()})

  python -m landmarks_jax.data_pipelines.humanoid_mocap --data_dir=~/tensorflow_datasets \
      --write_samples=docs/images/humanoid_mocap_samples.png
"""

import argparse
import colorsys
import dataclasses
import io
import math
import os

import numpy as np
from PIL import Image
from PIL import ImageDraw
import tensorflow_datasets as tfds

from landmarks_jax.data_pipelines import frame_dataset
from landmarks_jax.data_pipelines import humanoid_render

JOINT_NAMES = humanoid_render.JOINT_NAMES
NUM_JOINTS = humanoid_render.NUM_JOINTS
SPLITS = ('train', 'validation', 'test')

# Background photos of each split; no photo serves two splits.
SPLIT_PHOTOS = {
  'train': (
    'astronaut',
    'brick',
    'camera',
    'coffee',
    'grass',
    'hubble_deep_field',
    'immunohistochemistry',
    'moon',
    'motorcycle',
    'retina',
  ),
  'validation': ('chelsea', 'gravel'),
  'test': ('coins', 'rocket'),
}
# The hue circle cut into 12 sectors of 30 degrees; each split draws part colours from its own sectors, and
# a sampled hue keeps _HUE_MARGIN degrees from its sector's edges, so hues of different splits differ by at
# least twice that.
_HUE_SECTOR = 30.0
_HUE_MARGIN = 3.0
SPLIT_HUE_SECTORS = {'train': (0, 1, 3, 4, 6, 7, 9, 10), 'validation': (2, 8), 'test': (5, 11)}

_DESCRIPTION = """\
Renderings of pybullet's DeepMimic motion-capture clips (15 motions: walk, run, jump, dances, kicks,
cartwheel, backflip, crawl, get-ups, ...) on the DeepMimic humanoid with random part colours, over crops of
scikit-image's sample photos, with the 15 joints projected into each frame and the body's mask. Validation
and test subjects use part colours and photos unseen in training.
"""


@dataclasses.dataclass(eq=False)
class HumanoidMocapConfig(tfds.core.BuilderConfig):
  """A size of the dataset: frame size in pixels, videos and frames per video of each split, and the seed."""

  image_size: int = 128
  train_videos: int = 60
  train_frames: int = 80
  eval_videos: int = 8  # Of the validation split, and as many of the test split.
  eval_frames: int = 60
  seed: int = 0

  def __post_init__(self):
    if self.image_size < 16:
      raise ValueError(f'humanoid_mocap frames must be at least 16 pixels wide, got {self.image_size}.')
    for field in ('train_videos', 'eval_videos', 'train_frames', 'eval_frames'):
      if getattr(self, field) < 1:
        raise ValueError(f'humanoid_mocap config {self.name!r}: {field} must be positive.')

  def split_sizes(self):
    """{split: (number of videos, frames per video)}."""
    return {
      'train': (self.train_videos, self.train_frames),
      'validation': (self.eval_videos, self.eval_frames),
      'test': (self.eval_videos, self.eval_frames),
    }


VARIANTS = {
  'full': HumanoidMocapConfig(name='full', description='128 px; 4800 train, 480 validation and 480 test frames.'),
  'tiny': HumanoidMocapConfig(
    name='tiny',
    description='64 px; 100 train, 50 validation and 50 test frames, for tests.',
    image_size=64,
    train_videos=2,
    train_frames=50,
    eval_videos=1,
    eval_frames=50,
  ),
}


def make_config(variant: str = 'full', seed: int = 0) -> HumanoidMocapConfig:
  """The config of `variant` rendered with `seed`; seeds other than 0 get their own name (and folder)."""
  if variant not in VARIANTS:
    raise ValueError(f'Unknown humanoid_mocap variant {variant!r}; choose one of {sorted(VARIANTS)}.')
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f'The humanoid_mocap seed must be a non-negative integer, got {seed!r}.')
  if seed == 0:
    return VARIANTS[variant]
  return dataclasses.replace(VARIANTS[variant], name=f'{variant}_seed{seed}', seed=int(seed))


def _part_colour(rng, sectors):
  """An RGB colour (0..255 ints) with a hue inside one of `sectors` and a clearly coloured saturation."""
  sector = sectors[rng.integers(len(sectors))]
  hue = rng.uniform(sector * _HUE_SECTOR + _HUE_MARGIN, (sector + 1) * _HUE_SECTOR - _HUE_MARGIN) / 360.0
  rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 0.95), rng.uniform(0.45, 1.0))
  return tuple(int(round(255 * channel)) for channel in rgb)


def _plan_video(video, split, clip, num_frames, seed):
  """Draws the subject, backdrop, camera, light and start of one video from its own random stream."""
  rng = np.random.default_rng([seed, video])
  clip_frames = humanoid_render.load_clip(clip).duration * humanoid_render.FPS
  # A clip that does not loop plays forwards then backwards: its playback repeats after twice its length.
  period = clip_frames if humanoid_render.load_clip(clip).loops else 2 * clip_frames
  colours = tuple(_part_colour(rng, SPLIT_HUE_SECTORS[split]) for _ in range(NUM_JOINTS))
  photos = SPLIT_PHOTOS[split]
  backdrop = humanoid_render.Backdrop(
    photo=photos[rng.integers(len(photos))],
    side=float(rng.uniform(0.3, 1.0)),
    top=float(rng.uniform()),
    left=float(rng.uniform()),
    flip=bool(rng.uniform() < 0.5),
  )
  camera = humanoid_render.Camera(
    yaw=float(rng.uniform(0.0, 360.0)),
    yaw_rate=float(rng.uniform(-25.0, 25.0)),
    pitch=float(rng.uniform(-35.0, 0.0)),
    fill=float(rng.uniform(0.65, 0.85)),
  )
  azimuth, elevation = rng.uniform(0.0, 2 * math.pi), math.radians(rng.uniform(20.0, 70.0))
  light = humanoid_render.Light(
    direction=(math.cos(elevation) * math.cos(azimuth), math.sin(elevation), math.cos(elevation) * math.sin(azimuth)),
    ambient=float(rng.uniform(0.45, 0.65)),
    diffuse=float(rng.uniform(0.3, 0.5)),
  )
  return humanoid_render.VideoPlan(
    video=video,
    clip=clip,
    first_frame=int(rng.integers(int(period))),
    num_frames=num_frames,
    part_colours=colours,
    backdrop=backdrop,
    camera=camera,
    light=light,
  )


def plan_videos(config: HumanoidMocapConfig):
  """{split: [VideoPlan, ...]}: video ids run on from train to validation to test; each split cycles
  through the clips in its own seeded order."""
  plans = {}
  video = 0
  for split_number, (split, (num_videos, num_frames)) in enumerate(config.split_sizes().items()):
    clips = humanoid_render.CLIP_NAMES
    # Streams keyed [seed, video] belong to videos; this three-part key cannot collide with them.
    order = np.random.default_rng([config.seed, split_number, len(clips)]).permutation(len(clips))
    plans[split] = []
    for index in range(num_videos):
      clip = clips[order[index % len(clips)]]
      plans[split].append(_plan_video(video, split, clip, num_frames, config.seed))
      video += 1
  return plans


def video_table(plans):
  """[[video, first_record, num_frames], ...] of a split's plans, in record order."""
  table, first = [], 0
  for plan in plans:
    table.append([plan.video, first, plan.num_frames])
    first += plan.num_frames
  return table


# The crop of a video: a square this many times the larger side of the bounding box of the body's silhouettes
# in all its frames, never less than this fraction of the frame. One crop a video, as a fixed camera frames a
# scene: the body moves inside it, and the backdrop stays where it is.
BOX_SCALE = 1.15
MIN_BOX_FRACTION = 0.35


def body_box(masks, size):
  """A square (x_min, y_min, x_max, y_max) around the foreground of one (H, W) mask or of all (N, H, W) masks
  together, clipped to the frame.

  Box edges are pixel edges: a foreground pixel at column c spans [c, c + 1).
  """
  masks = np.asarray(masks)
  foreground = masks.reshape((-1,) + masks.shape[-2:]).any(axis=0)
  rows, columns = np.nonzero(foreground)
  low = np.array([columns.min(), rows.min()], np.float64)
  high = np.array([columns.max(), rows.max()], np.float64) + 1.0
  centre = (low + high) / 2
  half = max(float((high - low).max()) * BOX_SCALE, MIN_BOX_FRACTION * size) / 2
  return np.clip(np.concatenate([centre - half, centre + half]), 0.0, float(size)).astype(np.float32)


def _png(array):
  """PNG bytes of an (H, W, 3) or (H, W, 1) uint8 array."""
  buffer = io.BytesIO()
  Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format='PNG')
  return buffer.getvalue()


class HumanoidMocap(tfds.core.GeneratorBasedBuilder):
  """Rendered humanoid motion capture with 15 joints, masks and photo backgrounds; no download."""

  VERSION = tfds.core.Version('1.2.0')
  RELEASE_NOTES = {
    '1.0.0': 'Train, validation and test videos of the 15 DeepMimic clips.',
    '1.1.0': 'Crop boxes around the body instead of the whole frame.',
    '1.2.0': 'One crop box a video, around the body in all its frames; backdrops out of focus.',
  }
  BUILDER_CONFIGS = list(VARIANTS.values())
  code_path = None  # No download checksums to look up (see frame_dataset.py).

  def _info(self):
    return frame_dataset.frame_dataset_info(
      self,
      frame_dataset.frame_features('png', NUM_JOINTS, with_mask=True),
      JOINT_NAMES,
      description=_DESCRIPTION,
      homepage='https://github.com/bulletphysics/bullet3',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Everything comes from pybullet_data and scikit-image.
    config = self.builder_config
    plans = plan_videos(config)
    metadata = self.info.metadata
    metadata['joint_names'] = list(JOINT_NAMES)
    metadata['joint_parents'] = list(humanoid_render.JOINT_PARENTS)
    metadata['image_size'] = config.image_size
    metadata['fps'] = humanoid_render.FPS
    metadata['videos'] = {split: video_table(split_plans) for split, split_plans in plans.items()}
    metadata['subjects'] = {
      split: [dataclasses.asdict(plan) for plan in split_plans] for split, split_plans in plans.items()
    }
    return {split: self._generate_examples(split_plans) for split, split_plans in plans.items()}

  def _generate_examples(self, plans):
    size = self.builder_config.image_size
    renderer = humanoid_render.HumanoidRenderer()
    try:
      record = 0  # Integer keys in record order: with shuffling disabled TFDS writes records sorted by key.
      for plan in plans:
        frames = list(humanoid_render.render_video(renderer, plan, size))
        box = body_box(np.stack([frame.mask[..., 0] for frame in frames]), size)
        for frame_index, frame in enumerate(frames):
          yield (
            record,
            {
              'image': _png(frame.image),
              'mask': _png(frame.mask),
              'video': plan.video,
              'frame': frame.frame,
              'frame_index': frame_index,
              'joints': frame.joints,
              'train_box': box,
              'eval_box': box,
            },
          )
          record += 1
    finally:
      renderer.close()


def prepare(data_dir=None, variant: str = 'full', seed: int = 0) -> HumanoidMocap:
  """Builds the dataset into `data_dir` on first use and returns the builder; later calls reuse the data.

  Args:
    data_dir: the TFDS data directory; None or '' means TFDS's default (~/tensorflow_datasets).
    variant: 'full' or 'tiny'.
    seed: seeds every random choice; each seed is its own config ('full', 'full_seed1', ...).

  Returns:
    The prepared `HumanoidMocap` builder (array_record files).
  """
  config = make_config(variant, seed)
  # A registered config goes by its name: a builder rebuilt from a pickle (as the input pipeline's worker
  # processes rebuild it) refuses a config object that shares a registered name.
  builder = HumanoidMocap(
    data_dir=data_dir or None, config=config.name if config.name in VARIANTS else config, file_format='array_record'
  )
  if not builder.data_path.exists():  # TFDS's own test for a prepared dataset.
    builder.download_and_prepare()
  return builder


def _decode(data):
  return np.asarray(Image.open(io.BytesIO(data)))


_SIDE_COLOURS = {'right': (255, 140, 0), 'left': (40, 120, 255)}


def _draw_joints(draw, joints, scale, bones):
  """Joints (and optionally bones) at `scale` times the frame size: right side orange, left side blue,
  spine white."""
  points = (np.asarray(joints, np.float64) + 0.5) * scale  # Pixel centres in the enlarged image.
  colours = [_SIDE_COLOURS.get(name.split('_')[0], (255, 255, 255)) for name in JOINT_NAMES]
  if bones:
    for child, parent in enumerate(humanoid_render.JOINT_PARENTS):
      if parent >= 0:
        draw.line([tuple(points[parent]), tuple(points[child])], fill=colours[child], width=2)
  for colour, (x, y) in zip(colours, points):
    draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour, outline=(0, 0, 0))


def write_samples(builder: HumanoidMocap, path: str, per_split=(3, 2, 1), scale: int = 2):
  """Writes a PNG grid of the middle frames of the first videos of each split: each frame with its joints,
  and beside it the mask (grey) with the skeleton."""
  decoders = {'image': tfds.decode.SkipDecoding(), 'mask': tfds.decode.SkipDecoding()}
  subjects = builder.info.metadata['subjects']
  tiles = []
  for split, count in zip(SPLITS, per_split):
    source = builder.as_data_source(split, decoders=decoders)
    table = builder.info.metadata['videos'][split]
    for number, (video, first, num_frames) in enumerate(table[:count]):
      example = source[first + num_frames // 2]
      image = Image.fromarray(_decode(example['image'])).convert('RGB')
      mask = Image.fromarray((_decode(example['mask']) > 0).astype(np.uint8) * 150).convert('RGB')
      panels = []
      for panel, bones in ((image, False), (mask, True)):
        panel = panel.resize((panel.width * scale, panel.height * scale), Image.Resampling.NEAREST)
        _draw_joints(ImageDraw.Draw(panel), example['joints'], scale, bones)
        panels.append(panel)
      label = f'{split} {video}: {subjects[split][number]["clip"]}'
      ImageDraw.Draw(panels[0]).text((4, 2), label, fill=(255, 255, 255), stroke_width=2, stroke_fill=0)
      tiles.append(np.concatenate([np.asarray(p) for p in panels], axis=1))
  columns = 3
  while len(tiles) % columns:
    tiles.append(np.zeros_like(tiles[0]))
  rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
  grid = Image.fromarray(np.concatenate(rows, axis=0))
  # A 256-colour palette keeps the picture small enough for the README.
  grid.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description='Builds the humanoid motion-capture dataset.')
  parser.add_argument('--data_dir', default='', help='TFDS data directory ("" means ~/tensorflow_datasets).')
  parser.add_argument('--variant', default='full', choices=sorted(VARIANTS), help='Which config to build.')
  parser.add_argument('--seed', type=int, default=0, help='Seed of every random choice.')
  parser.add_argument('--write_samples', default='', help='If set, write a PNG grid of sample frames here.')
  args = parser.parse_args(argv)
  builder = prepare(os.path.expanduser(args.data_dir), args.variant, args.seed)
  for split in SPLITS:
    print(f'{split}: {builder.info.splits[split].num_examples} frames in {builder.data_dir}')
  if args.write_samples:
    write_samples(builder, args.write_samples)
    print(f'Wrote {args.write_samples}')


if __name__ == '__main__':
  main()
