"""What every dataset of the project holds, so that one input pipeline reads them all.

Each record is one annotated video frame: 'image', 'video', 'frame' (its number in the video), 'frame_index'
(its position among the video's records in the split), 'joints' (J, 2) pixels (x, y) in the full frame, and
the crop boxes 'train_box' and 'eval_box' (x_min, y_min, x_max, y_max); optionally a foreground 'mask'.
Records are written in order (shuffling disabled), grouped by video, and `info.metadata` holds 'joint_names'
and 'videos' {split: [[video, first_record, num_frames], ...]}.

Builders set `code_path = None`: TFDS otherwise looks for download checksums beside the builder's code, a
lookup that for a builder inside a package needs `importlib_resources`, absent on Python 3.11; neither
dataset downloads anything.
"""

import numpy as np
import tensorflow_datasets as tfds


def frame_features(encoding_format: str, num_joints: int, with_mask: bool = False) -> tfds.features.FeaturesDict:
  """The features of a frame record; images stored as `encoding_format` ('jpeg' or 'png')."""
  features = {
    'image': tfds.features.Image(shape=(None, None, 3), encoding_format=encoding_format),
    'video': tfds.features.Scalar(np.int32),
    'frame': tfds.features.Scalar(np.int32),
    'frame_index': tfds.features.Scalar(np.int32),
    'joints': tfds.features.Tensor(shape=(num_joints, 2), dtype=np.float32),
    'train_box': tfds.features.Tensor(shape=(4,), dtype=np.float32),
    'eval_box': tfds.features.Tensor(shape=(4,), dtype=np.float32),
  }
  if with_mask:
    features['mask'] = tfds.features.Image(shape=(None, None, 1), encoding_format='png')
  return tfds.features.FeaturesDict(features)


def frame_dataset_info(
  builder: tfds.core.DatasetBuilder, features: tfds.features.FeaturesDict, joint_names, **info
) -> tfds.core.DatasetInfo:
  """DatasetInfo of a frame dataset: records kept in the order they are generated, joint names recorded."""
  metadata = tfds.core.MetadataDict()
  metadata['joint_names'] = list(joint_names)
  return tfds.core.DatasetInfo(builder=builder, features=features, metadata=metadata, disable_shuffling=True, **info)
