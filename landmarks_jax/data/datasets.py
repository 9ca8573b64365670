"""The datasets a config can name: builds the TFDS dataset on first use and opens its splits for reading.

The builder modules (and with them TFDS and TensorFlow) are imported only when a dataset is prepared, so
importing landmarks_jax stays light.
"""

import os
from typing import Any, Sequence

from landmarks_jax import user_errors

DATASETS = ('bbc_pose', 'humanoid_mocap', 'video_folder')


def data_dir(config: Any) -> str:
  """The TFDS data directory of a config: config.data_dir, or ~/tensorflow_datasets when empty."""
  return os.path.expanduser(config.data_dir or '~/tensorflow_datasets')


class DatasetError(user_errors.UserError, ValueError):
  """A dataset option or a built dataset that cannot be used; the message says which and what to do."""


def prepare_dataset(config: Any) -> Any:
  """Returns the TFDS builder of config.dataset, building the dataset in the data dir on first use.

  'bbc_pose' reads the manual download in config.dataset_path; 'humanoid_mocap' renders the
  config.dataset_variant ('full' or 'tiny') with config.dataset_seed (not the training seed); 'video_folder'
  reads the videos in config.dataset_path with the config's video_* options. A built dataset is reused.
  """
  name = config.dataset
  if name == 'bbc_pose':
    if not config.dataset_path:
      raise DatasetError(
        'config.dataset is bbc_pose but config.dataset_path is empty; download BBC Pose and pass the '
        'folder holding 1/ .. 20/ and code/ as --config.dataset_path=/path/to/bbcpose.'
      )
    from landmarks_jax.data_pipelines import bbc_pose  # pylint: disable=g-import-not-at-top

    return bbc_pose.prepare(os.path.expanduser(config.dataset_path), data_dir(config))
  if name == 'video_folder':
    if not config.dataset_path:
      raise DatasetError(
        'config.dataset is video_folder but config.dataset_path is empty; pass the folder of '
        'your videos as --config.dataset_path=/path/to/videos.'
      )
    from landmarks_jax.data_pipelines import video_folder  # pylint: disable=g-import-not-at-top

    options = video_folder.FolderOptions(
      stride=config.video_stride,
      short_side=config.video_short_side,
      crop=config.video_crop,
      validation_fraction=config.video_validation_fraction,
      test_fraction=config.video_test_fraction,
      split_seed=config.video_split_seed,
      split_file=config.video_split_file,
      keypoints=config.video_keypoints,
      skip_bad_files=config.video_skip_bad_files,
    )
    return video_folder.prepare(os.path.expanduser(config.dataset_path), data_dir(config), options)
  if name == 'humanoid_mocap':
    from landmarks_jax.data_pipelines import humanoid_mocap  # pylint: disable=g-import-not-at-top

    return humanoid_mocap.prepare(data_dir(config), variant=config.dataset_variant, seed=config.get('dataset_seed', 0))
  raise DatasetError(f'Unknown dataset {name!r}; set --config.dataset to one of: {", ".join(DATASETS)}.')


def open_split(builder: Any, split: str) -> tuple[Sequence[Any], list[list[int]]]:
  """Opens a built split for random access.

  Returns:
    (source, videos): `source[i]` is record i as a dict of numpy values with 'image' (and 'mask', when the
    dataset has one) left as encoded PNG/JPEG bytes; `videos` is the split's table
    [[video, first_record, num_frames], ...] from info.metadata['videos'].
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  available = sorted(builder.info.splits.keys())
  if split not in available:
    raise DatasetError(f'Dataset {builder.info.name} has no split {split!r}; it has: {", ".join(available)}.')
  decoders = {'image': tfds.decode.SkipDecoding()}
  if 'mask' in builder.info.features:
    decoders['mask'] = tfds.decode.SkipDecoding()
  source = builder.as_data_source(split, decoders=decoders)
  metadata = builder.info.metadata or {}
  if 'videos' not in metadata or split not in metadata['videos']:
    raise DatasetError(
      f'Dataset {builder.info.name} at {builder.data_dir} records no video table for split '
      f'{split!r} (info.metadata["videos"]); delete that folder and build it again.'
    )
  videos = [[int(v) for v in row] for row in metadata['videos'][split]]
  return source, videos
