"""Landmark evaluation of a model: dump landmarks, regress joints, map them to pixels, score, write, draw.

The landmarks are scored as the PyTorch original scores them (its dump_preds.py, then
map_to_supervised_landmarks_bbc.py, then eval_supervised_landmarks_bbc.py), in one pass and without pickles:
1. dump: the encoder's landmark means (and covariances, foreground masks) on each split's eval crops;
2. regress: a least-squares map without intercept from [mu_x..., mu_y...] to the joints in centred box units,
   fitted on the training split and applied to the validation and test splits;
3. map: the regressed joints back to full-frame pixels through each example's eval box;
4. score: BBC Pose accuracy (the toolkit's 6-pixel rule), or for motion capture PCK, pixel error and
   foreground-mask IoU; each next to the floor that the mean training pose (and an all-foreground mask) sets,
   and, where the dataset has true masks, the same regression from each frame's mask bounding box instead of
   the landmarks (what knowing only where the body is gives);
5. write `<workdir>/eval/`: metrics.json (and a copy per step in history/, the learning curve's points),
   BBC Pose's preds_test.mat and preds_val.mat (the toolkit's layout,
   in record order; the test split's order is results.mat's), the fitted map (joint_map.npz, which `predict`
   applies to new videos), and pictures of the test split.
A dataset without keypoints (your own videos without a keypoint CSV) has nothing to regress: its evaluation
reports each split's reconstruction loss (the validation loss, on every frame) and draws the landmarks.
Missing keypoints (NaN) are left out of the fit and of every score.
"""

import collections
import json
import math
import os
from typing import Any, Mapping, Sequence

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from landmarks_jax import pictures
from landmarks_jax import user_errors
from landmarks_jax.data import datasets
from landmarks_jax.data import files
from landmarks_jax.data import frames
from landmarks_jax.data import input_pipeline
from landmarks_jax.data import pixels
from landmarks_jax.evaluation import bbc_metric
from landmarks_jax.evaluation import boxes as boxes_lib
from landmarks_jax.evaluation import mat_files
from landmarks_jax.evaluation import mocap_metrics
from landmarks_jax.evaluation import regression
from landmarks_jax.model.landmark_model import MODEL_FIELDS
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.training import checkpoints
from landmarks_jax.training import device_layout
from landmarks_jax.training import train_state
from landmarks_jax.training import validation_passes
from landmarks_jax.weights import vgg_weights

EVAL_DIR = 'eval'
METRICS_FILE = 'metrics.json'
HISTORY_DIR = 'history'  # eval/history/step_<N>.json: every evaluation's metrics, kept
JOINT_MAP_FILE = 'joint_map.npz'
FIT_SPLIT = 'train'
EVAL_SPLITS = ('validation', 'test')
BBC_PREDICTION_FILES = {'test': 'preds_test.mat', 'validation': 'preds_val.mat'}
MASK_THRESHOLD = 0.5
# The PyTorch original stores the dumped landmarks as float16 before regressing; BBC Pose keeps that so that
# its numbers are the original's.
FEATURE_DTYPES = {'bbc_pose': np.float16}
# BBC Pose annotates the upper body only; its bones by joint name.
BBC_BONES = (
  ('right_wrist', 'right_elbow'),
  ('right_elbow', 'right_shoulder'),
  ('right_shoulder', 'left_shoulder'),
  ('left_shoulder', 'left_elbow'),
  ('left_elbow', 'left_wrist'),
)
GRID_FRAMES = 16
GRID_COLUMNS = 4
GIF_MAX_FRAMES = 100
PICTURE_SIDE = 256  # Frames are enlarged (by a whole factor) to about this many pixels for the pictures.


_PASS_THE_RUNS_CONFIG = (
  "Pass the configuration the run was trained with: leave --config out to use the workdir's "
  "config.json (unless it was edited), or pass that run's config file and options."
)


class CheckpointError(user_errors.UserError, ValueError):
  """The checkpoint is not a landmarks_jax training state (it holds no generator variables)."""


class VariablesMismatch(user_errors.UserError, ValueError):
  """A checkpoint's variables do not fit the model the configuration describes."""


# ----------------------------------------------------------------------------------------------------------
# Checkpoint.


def load_variables(
  workdir: str, step: int | None = None, config: ml_collections.ConfigDict | None = None
) -> tuple[dict, int]:
  """The generator variables {'params', 'spectral'} (numpy) saved at `step` (default: the latest), and the step.

  With `config`, the model options the checkpoint records are checked against config's first, so that a
  config.json edited after training cannot run the weights with other options, and the variables' shapes against
  config's model after (`check_variables`); either raises VariablesMismatch.
  """
  store = checkpoints.Checkpoints(workdir, writer=False)
  try:
    step = store.resolve_step(step)
    if config is not None:
      try:
        store.check_options(step, config, MODEL_FIELDS, fix=_PASS_THE_RUNS_CONFIG)
      except checkpoints.CheckpointMismatch as error:
        raise VariablesMismatch(str(error)) from error
    state, _ = store.restore_raw(step)
  finally:
    store.close()
  if 'generator' not in state:
    raise CheckpointError(
      f'The checkpoint in {store.directory} holds no generator variables (it has '
      f'{sorted(state)}); it is not a landmarks_jax training state.'
    )
  if config is not None:
    check_variables(config, state['generator'])
  return state['generator'], step


def check_variables(config: ml_collections.ConfigDict, variables: Mapping[str, Any]) -> None:
  """Raises VariablesMismatch, naming the differences, when `variables` do not fit config's model."""
  problems = checkpoints.shape_differences(variables, train_state.variable_shapes(config)[0])
  if problems:
    raise VariablesMismatch(
      f'The checkpoint does not fit the model of this configuration (n_landmarks={config.n_landmarks}, '
      f'use_fg_bg_mask={config.use_fg_bg_mask}, ...):\n{checkpoints.shown_lines(problems)}\n'
      f'{_PASS_THE_RUNS_CONFIG}'
    )


# ----------------------------------------------------------------------------------------------------------
# Dump.


def make_encode_fn(config: ml_collections.ConfigDict):
  """pmapped (replicated variables, (D, B, S, S, 3) images) -> landmarks.

  Returns a function giving 'mean_x', 'mean_y' (D, B, K) in [-1, 1], 'covariance' (D, B, K, 2, 2), and with
  config.use_fg_bg_mask 'pred_mask' (D, B, S, S, 1) in [0, 1]. Replicate the variables with
  `device_layout.replicate`.
  """
  model = model_from_config(config)
  with_mask = bool(config.use_fg_bg_mask)

  def encode(variables, image):
    outputs = model.apply(variables, pixels.to_signed(image), with_mask=with_mask)
    mean_x, mean_y = outputs['vis_centers']
    encoded = {'mean_x': mean_x, 'mean_y': mean_y, 'covariance': outputs['vis_cov']}
    if with_mask:
      encoded['pred_mask'] = outputs['input_a_fg_mask']
    return encoded

  return device_layout.data_parallel(encode)


def _rows(array: np.ndarray) -> np.ndarray:
  """(D, B, ...) -> (D * B, ...)."""
  return array.reshape((array.shape[0] * array.shape[1],) + array.shape[2:])


def _gather(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Every process's rows, process 0's first: process p walked the p-th block of the records."""
  if jax.process_count() == 1:
    return local
  return {key: np.asarray(multihost_utils.process_allgather(value, tiled=True)) for key, value in local.items()}


# Batch fields kept in the dump, under their dump names.
_BATCH_FIELDS = {
  'joints': 'joints',
  'box': 'boxes',
  'video': 'video',
  'frame': 'frame',
  'index': 'index',
  'valid': 'valid',
}


def dump_landmarks(
  config: ml_collections.ConfigDict,
  encode_fn,
  variables: Any,
  source: Sequence[Mapping[str, Any]],
  *,
  batch_size: int | None = None,
  keep_masks: bool = True,
  description: str = 'landmarks',
) -> dict[str, np.ndarray]:
  """The model's landmarks on every record of a split, in record order. Run it on every process.

  Args:
    config: img_size, batch_size and the input pipeline's options are read.
    encode_fn: from `make_encode_fn(config)`.
    variables: the generator variables, replicated by `device_layout.replicate`.
    source: the split's records (`datasets.open_split`).
    batch_size: per-device batch size (default config.batch_size).
    keep_masks: keep the predicted and ground-truth foreground masks (when there are any).
    description: label of the progress bar (shown on process 0).

  Returns:
    On every process, all N records: 'mean_x', 'mean_y' (N, K); 'covariance' (N, K, 2, 2); 'joints' (N, J, 2)
    full-frame pixels; 'boxes' (N, 4) eval boxes; 'video', 'frame', 'index' (N,) int32; with keep_masks,
    'pred_mask' (N, S, S, 1) with config.use_fg_bg_mask and 'gt_mask' (N, S, S, 1) when the dataset has masks,
    both in [0, 1]; when the dataset has masks, with keep_masks or not, 'gt_mask_box' (N, 4): each true mask's
    bounding box (`mocap_metrics.mask_boxes`), the bounding-box baseline's features.
  """
  local_devices, process_count = jax.local_device_count(), jax.process_count()
  batch_size = batch_size or config.batch_size
  num_batches = max(1, math.ceil(math.ceil(len(source) / process_count) / (batch_size * local_devices)))
  fields = dict(_BATCH_FIELDS, **({'mask': 'gt_mask'} if keep_masks else {}))
  columns = collections.defaultdict(list)
  batches = input_pipeline.eval_batches(config, source, batch_size=batch_size, **device_layout.host_layout())
  with batches:
    for batch in tqdm.tqdm(batches, total=num_batches, desc=description, disable=jax.process_index() != 0):
      for key, value in encode_fn(variables, batch['image']).items():
        if key != 'pred_mask' or keep_masks:
          columns[key].append(_rows(device_layout.local_rows(value)))
      for key, name in fields.items():
        if key in batch:
          columns[name].append(_rows(frames.unit_float(batch[key]) if key == 'mask' else batch[key]))
      if 'mask' in batch:
        columns['gt_mask_box'].append(mocap_metrics.mask_boxes(_rows(batch['mask']), MASK_THRESHOLD))
  dump = _gather({key: np.concatenate(parts) for key, parts in columns.items()})
  valid = dump.pop('valid')
  return {key: value[valid] for key, value in dump.items()}


# ----------------------------------------------------------------------------------------------------------
# Regression and scores.


def feature_dtype(config: ml_collections.ConfigDict) -> type:
  """Precision of the regression features for config.dataset (see FEATURE_DTYPES)."""
  return FEATURE_DTYPES.get(config.dataset, np.float32)


def fit_joint_map(train_dump: Mapping[str, np.ndarray], dtype: type = np.float32) -> np.ndarray:
  """(2K, 2J) least-squares map from a split's landmarks to its joints in centred box units."""
  features = regression.landmark_features(train_dump['mean_x'], train_dump['mean_y'], dtype)
  targets = boxes_lib.joints_to_box_units(train_dump['joints'], train_dump['boxes'])
  return regression.fit_linear_map(features, targets)


def predict_joints(dump: Mapping[str, np.ndarray], weights: np.ndarray, dtype: type = np.float32) -> np.ndarray:
  """(N, J, 2) full-frame pixel joints regressed from a split's landmarks through its boxes."""
  features = regression.landmark_features(dump['mean_x'], dump['mean_y'], dtype)
  return boxes_lib.box_units_to_pixels(regression.apply_linear_map(features, weights), dump['boxes'])


def mask_box_features(dump: Mapping[str, np.ndarray]) -> np.ndarray | None:
  """(N, 4) true-mask bounding boxes of a split's frames, or None when its dump has no true masks."""
  if 'gt_mask_box' in dump:
    return np.asarray(dump['gt_mask_box'])
  if 'gt_mask' in dump:
    return mocap_metrics.mask_boxes(dump['gt_mask'], MASK_THRESHOLD)
  return None


def bounding_box_predictions(
  dumps: Mapping[str, Mapping[str, np.ndarray]], train_targets: np.ndarray, splits: Sequence[str]
) -> dict[str, np.ndarray] | None:
  """{split: (N, J, 2) pixel joints} regressed from each frame's true-mask bounding box, or None without masks.

  The map is fitted on the training split as the landmarks' is (least squares, no intercept, the same
  targets), from the box (x_min, y_min, x_max, y_max) instead of the landmarks: the floor that knowing only
  where the body is sets.
  """
  features = {split: mask_box_features(dumps[split]) for split in (FIT_SPLIT,) + tuple(splits)}
  if any(value is None for value in features.values()):
    return None
  weights = regression.fit_linear_map(features[FIT_SPLIT], train_targets)
  return {
    split: boxes_lib.box_units_to_pixels(regression.apply_linear_map(features[split], weights), dumps[split]['boxes'])
    for split in splits
  }


def bbc_scores(pred_px: np.ndarray, gt_px: np.ndarray, joint_names: Sequence[str]) -> dict:
  """BBC Pose accuracy (share of joints within 6 toolkit pixels), mean and per joint."""
  accuracy = bbc_metric.bbc_accuracy(pred_px, gt_px, joint_names=tuple(joint_names))
  return {'accuracy': accuracy['mean'], 'per_joint_accuracy': accuracy['per_joint']}


def joint_scores(pred_px: np.ndarray, gt_px: np.ndarray, boxes: np.ndarray, joint_names: Sequence[str]) -> dict:
  """PCK at the default fractions of the crop side and the mean pixel error, overall and per joint."""
  pck = mocap_metrics.pck(pred_px, gt_px, boxes)
  error = mocap_metrics.mean_pixel_error(pred_px, gt_px, list(joint_names))
  return {
    'pck': {f'{fraction:g}': value for fraction, value in pck.items()},
    'mean_pixel_error': error['mean'],
    'per_joint_pixel_error': error['per_joint'],
  }


def score_split(
  config: ml_collections.ConfigDict,
  dump: Mapping[str, np.ndarray],
  pred_px: np.ndarray,
  train_targets: np.ndarray,
  joint_names: Sequence[str],
  box_px: np.ndarray | None = None,
) -> dict:
  """A split's scores with the floor of each under 'baseline': the mean training pose, all-foreground masks.

  With `box_px` (the joints regressed from the true masks' bounding boxes), their joint scores and error ratio
  to the mean pose go under 'bounding_box'.
  """
  baseline_px = mocap_metrics.mean_pose_baseline(train_targets, dump['boxes'])
  if config.dataset == 'bbc_pose':
    scores = bbc_scores(pred_px, dump['joints'], joint_names)
    scores['baseline'] = bbc_scores(baseline_px, dump['joints'], joint_names)
    return scores
  scores = joint_scores(pred_px, dump['joints'], dump['boxes'], joint_names)
  scores['baseline'] = joint_scores(baseline_px, dump['joints'], dump['boxes'], joint_names)
  floor_error = max(scores['baseline']['mean_pixel_error'], 1e-12)
  scores['error_ratio'] = scores['mean_pixel_error'] / floor_error
  if box_px is not None:
    scores['bounding_box'] = joint_scores(box_px, dump['joints'], dump['boxes'], joint_names)
    scores['bounding_box']['error_ratio'] = scores['bounding_box']['mean_pixel_error'] / floor_error
  if 'pred_mask' in dump and 'gt_mask' in dump:
    scores['mask_iou'] = mocap_metrics.mask_iou(dump['pred_mask'], dump['gt_mask'], MASK_THRESHOLD)
    scores['baseline']['mask_iou'] = mocap_metrics.all_foreground_iou(dump['gt_mask'], MASK_THRESHOLD)
  return scores


def check_annotated(joints: np.ndarray, joint_names: Sequence[str]) -> None:
  """Every joint needs an annotation on some training frame for the map to be fitted."""
  unannotated = [name for j, name in enumerate(joint_names) if np.isnan(joints[:, j]).any(axis=-1).all()]
  if unannotated:
    raise ValueError(
      f'Keypoints {unannotated} are annotated on no training frame, so no map to them can be '
      'fitted; annotate them on some training frames or leave them out of the keypoint CSV.'
    )


def score(
  config: ml_collections.ConfigDict,
  dumps: Mapping[str, Mapping[str, np.ndarray]],
  joint_names: Sequence[str],
  splits: Sequence[str] = EVAL_SPLITS,
) -> tuple[dict, dict, np.ndarray]:
  """Fits the joint map on dumps['train'] and scores each of `splits`.

  Returns:
    ({split: scores}, {split: (N, J, 2) regressed pixel joints}, the (2K, 2J) map).
  """
  dtype = feature_dtype(config)
  check_annotated(dumps[FIT_SPLIT]['joints'], joint_names)
  weights = fit_joint_map(dumps[FIT_SPLIT], dtype)
  train_targets = boxes_lib.joints_to_box_units(dumps[FIT_SPLIT]['joints'], dumps[FIT_SPLIT]['boxes'])
  predictions = {split: predict_joints(dumps[split], weights, dtype) for split in splits}
  box_predictions = bounding_box_predictions(dumps, train_targets, splits)  # None without true masks (BBC Pose)
  scores = {
    split: score_split(
      config,
      dumps[split],
      predictions[split],
      train_targets,
      joint_names,
      None if box_predictions is None else box_predictions[split],
    )
    for split in splits
  }
  return scores, predictions, weights


def metrics_record(
  config: ml_collections.ConfigDict,
  step: int,
  dumps: Mapping[str, Mapping[str, np.ndarray]],
  scores: Mapping[str, dict],
) -> dict:
  """The content of metrics.json: what was evaluated, and each split's scores."""
  return {
    'step': int(step),
    'dataset': config.dataset,
    **({'dataset_seed': int(config.get('dataset_seed', 0))} if config.dataset == 'humanoid_mocap' else {}),
    'n_landmarks': int(next(iter(dumps.values()))['mean_x'].shape[1]),
    'num_joints': int(next(iter(dumps.values()))['joints'].shape[1]),
    'num_examples': {split: int(len(dump['index'])) for split, dump in dumps.items()},
    **scores,
  }


def summary(metrics: Mapping[str, Any]) -> str:
  """A few lines a person reads: each split's score beside its floors, and the mask IoU beside all-foreground."""
  lines = [
    f'Landmarks at step {metrics["step"]} ({metrics["dataset"]}, {metrics["n_landmarks"]} landmarks), '
    'linearly regressed to the joints:'
  ]
  if any('reconstruction_loss' in (metrics.get(split) or {}) for split in EVAL_SPLITS):
    lines[0] = (
      f'Landmarks at step {metrics["step"]} ({metrics["dataset"]}, {metrics["n_landmarks"]} landmarks); '
      'no keypoints to regress, so the reconstruction loss:'
    )
  for split in EVAL_SPLITS:
    scores = metrics.get(split)
    if not scores:
      continue
    if 'reconstruction_loss' in scores:
      lines.append(f'  {split}: {scores["reconstruction_loss"]:.5f}')
      continue
    floor = scores['baseline']
    if 'accuracy' in scores:
      lines.append(
        f'  {split}: {scores["accuracy"]:.1%} of joints within 6 px (mean training pose: {floor["accuracy"]:.1%})'
      )
      continue
    box = scores.get('bounding_box')
    line = (
      f'  {split}: mean joint error {scores["mean_pixel_error"]:.2f} px, {scores["error_ratio"]:.2f} x the '
      f"mean training pose's {floor['mean_pixel_error']:.2f} px"
      + (f' (bounding box: {box["error_ratio"]:.2f} x)' if box else '')
      + f'; PCK@0.1 {scores["pck"]["0.1"]:.1%} (mean pose: {floor["pck"]["0.1"]:.1%}'
      + (f', bounding box: {box["pck"]["0.1"]:.1%})' if box else ')')
    )
    if 'mask_iou' in scores:
      line += f'; foreground IoU {scores["mask_iou"]:.3f} (all-foreground: {floor["mask_iou"]:.3f})'
    lines.append(line)
  return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------------------
# Files.


def history_file(metrics: Mapping[str, Any]) -> str:
  """The name of a step's copy in eval/history/: step_<N>.json, or step_<N>_dataset_seed_<S>.json.

  Scores on the subjects of another dataset seed keep their own name: they are not points of the run's curve.
  """
  seed = int(metrics.get('dataset_seed', 0))
  return f'step_{int(metrics["step"])}' + (f'_dataset_seed_{seed}' if seed else '') + '.json'


def write_metrics(eval_dir: str, metrics: Mapping[str, Any]) -> str:
  """Writes metrics.json whole or not at all (beside it first, then moved over it); returns its path.

  A copy goes to history/ under the step's name (`history_file`), so that evaluations during training, which
  each replace metrics.json, leave the learning curve behind (`python -m landmarks_jax.learning_curve`).
  """
  os.makedirs(eval_dir, exist_ok=True)
  path = os.path.join(eval_dir, METRICS_FILE)
  text = json.dumps(metrics, indent=2, allow_nan=False) + '\n'  # Fails on NaN before anything is written.
  if 'step' in metrics:
    files.write_text_atomically(os.path.join(eval_dir, HISTORY_DIR, history_file(metrics)), text)
  return files.write_text_atomically(path, text)


def write_bbc_predictions(eval_dir: str, predictions: Mapping[str, np.ndarray]) -> None:
  """preds_test.mat and preds_val.mat ('my_pred', 2 x 7 x N) in record order, for the BBC Pose toolkit."""
  for split, name in BBC_PREDICTION_FILES.items():
    if split in predictions:
      mat_files.write_predictions(os.path.join(eval_dir, name), predictions[split])


def write_joint_map(
  eval_dir: str,
  weights: np.ndarray,
  joint_names: Sequence[str],
  dtype: type,
  bones: Sequence[tuple[int, int]] | None,
  step: int,
) -> str:
  """joint_map.npz: the fitted map, the feature precision, the joint names and bones; returns its path."""
  os.makedirs(eval_dir, exist_ok=True)
  path = os.path.join(eval_dir, JOINT_MAP_FILE)
  return files.write_atomically(
    path,
    lambda f: np.savez(
      f,
      weights=weights,
      joint_names=np.asarray(list(joint_names), dtype=str),
      feature_dtype=np.dtype(dtype).name,
      bones=np.asarray(bones or [], np.int32).reshape(-1, 2),
      step=step,
    ),
  )


def read_joint_map(workdir: str) -> dict[str, Any]:
  """The map `evaluate` fitted for a workdir: {'weights', 'joint_names', 'feature_dtype', 'bones', 'step'}."""
  path = os.path.join(workdir, EVAL_DIR, JOINT_MAP_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f'{path} does not exist: the run has no fitted keypoint map. Run python -m '
      f'landmarks_jax.evaluate --workdir={workdir} on a dataset with keypoints first.'
    )
  with np.load(path) as saved:
    return {
      'weights': saved['weights'],
      'joint_names': [str(n) for n in saved['joint_names']],
      'feature_dtype': np.dtype(str(saved['feature_dtype'])).type,
      'bones': [tuple(int(v) for v in b) for b in saved['bones']],
      'step': int(saved['step']),
    }


def evaluate_dumps(
  config: ml_collections.ConfigDict,
  dumps: Mapping[str, Mapping[str, np.ndarray]],
  workdir: str,
  step: int,
  joint_names: Sequence[str],
  splits: Sequence[str] = EVAL_SPLITS,
  bones: Sequence[tuple[int, int]] | None = None,
) -> tuple[dict, dict]:
  """Regresses, scores and (on process 0) writes metrics.json, the joint map and BBC's .mat files.

  Returns:
    (metrics, {split: (N, J, 2) regressed pixel joints}).
  """
  scores, predictions, weights = score(config, dumps, joint_names, splits)
  metrics = metrics_record(config, step, dumps, scores)
  if jax.process_index() == 0:
    eval_dir = os.path.join(workdir, EVAL_DIR)
    if config.dataset == 'bbc_pose':
      write_bbc_predictions(eval_dir, predictions)
    write_joint_map(eval_dir, weights, joint_names, feature_dtype(config), bones, step)
    write_metrics(eval_dir, metrics)
  return metrics, predictions


def reconstruction_losses(
  config: ml_collections.ConfigDict,
  replicated_variables: Any,
  opened: Mapping[str, tuple[Any, Any]],
  splits: Sequence[str],
) -> dict:
  """{split: {'reconstruction_loss'}}: the validation loss on every frame of each split (no keypoints needed)."""
  p_loss = validation_passes.make_p_validation_loss(config)
  vgg = device_layout.replicate(vgg_weights.vgg_params(config)) if config.use_vgg else None
  losses = {}
  for split in splits:
    source, videos = opened[split]
    with input_pipeline.validation_batches(
      config, source, videos, val_frac=1.0, **device_layout.host_layout()
    ) as batches:
      loss = validation_passes.run_validation(p_loss, replicated_variables, vgg, batches, None, 0)
      losses[split] = {'reconstruction_loss': loss}
  return losses


# ----------------------------------------------------------------------------------------------------------
# Pictures.


def skeleton(metadata: Mapping[str, Any]) -> list[tuple[int, int]] | None:
  """Bones as joint index pairs: from the dataset's 'joint_parents', or BBC Pose's upper body; None if unknown."""
  if 'joint_parents' in metadata:
    return [(int(parent), child) for child, parent in enumerate(metadata['joint_parents']) if parent >= 0]
  names = list(metadata.get('joint_names', ()))
  if all(a in names and b in names for a, b in BBC_BONES):
    return [(names.index(a), names.index(b)) for a, b in BBC_BONES]
  return None


def _crops(config: ml_collections.ConfigDict, source: Sequence[Mapping[str, Any]], records: np.ndarray) -> np.ndarray:
  """(n, S, S, 3) eval crops in [-1, 1] of the given records, as the model saw them."""
  return frames.signed_float(
    np.stack(
      [
        frames.eval_example(source, int(r), config.img_size, False, reduced=config.reduced_decode)['image']
        for r in records
      ]
    )
  )


def _enlarge(images: np.ndarray, scale: int) -> np.ndarray:
  """(n, H, W, C) -> (n, H * scale, W * scale, C), nearest neighbour."""
  return np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)


def draw_pictures(
  config: ml_collections.ConfigDict,
  eval_dir: str,
  source: Sequence[Mapping[str, Any]],
  dump: Mapping[str, np.ndarray],
  pred_px: np.ndarray,
  bones: Sequence[tuple[int, int]] | None,
  split: str = 'test',
) -> list[str]:
  """Writes pictures of a split; returns their paths.

  landmarks_<split>.png: frames spread over the split with regressed joints (and bones) and the numbered raw
  landmarks; masks_<split>.png (with predicted masks): each frame, its predicted mask, its true mask (when the
  dataset has masks); video_<split>.gif: the split's first video in frame order with joints and landmarks.
  """
  scale = max(1, PICTURE_SIDE // config.img_size)
  landmarks = np.stack([dump['mean_x'], dump['mean_y']], axis=-1)
  rows = np.unique(np.linspace(0, len(dump['index']) - 1, min(GRID_FRAMES, len(dump['index']))).round().astype(int))
  images = _crops(config, source, dump['index'][rows])
  paths = [os.path.join(eval_dir, f'landmarks_{split}.png')]
  joints = (lambda selected: None) if pred_px is None else (lambda selected: pred_px[selected])
  pictures.landmark_grid(
    images, landmarks[rows], joints(rows), dump['boxes'][rows], bones, GRID_COLUMNS, scale, path=paths[-1]
  )
  if 'pred_mask' in dump:
    paths.append(os.path.join(eval_dir, f'masks_{split}.png'))
    gt_masks = _enlarge(dump['gt_mask'][rows], scale) if 'gt_mask' in dump else None
    pictures.mask_grid(
      _enlarge(images, scale), _enlarge(dump['pred_mask'][rows], scale), gt_masks, GRID_COLUMNS, path=paths[-1]
    )
  video = np.flatnonzero(dump['video'] == dump['video'][0])[:GIF_MAX_FRAMES]
  paths.append(os.path.join(eval_dir, f'video_{split}.gif'))
  pictures.landmark_gif(
    paths[-1],
    _crops(config, source, dump['index'][video]),
    landmarks[video],
    joints(video),
    dump['boxes'][video],
    bones,
    scale,
  )
  return paths


# ----------------------------------------------------------------------------------------------------------
# The whole evaluation.


def evaluate_landmarks(
  config: ml_collections.ConfigDict,
  variables: Any,
  workdir: str,
  step: int,
  *,
  splits: Sequence[str] = EVAL_SPLITS,
  builder: Any = None,
) -> dict:
  """Evaluates the landmarks of `variables` and writes `<workdir>/eval/`; returns the metrics.

  Run it on every process (the dump is shared between them); process 0 writes the files.

  Args:
    config: the run's configuration.
    variables: the generator variables {'params', 'spectral'}, on the host (not replicated).
    workdir: the run's folder; results go to its eval/ subfolder.
    step: the training step of `variables`, recorded in metrics.json.
    splits: the splits to score; the joint map is always fitted on 'train'.
    builder: the prepared dataset (default: `datasets.prepare_dataset(config)`).

  Returns:
    The metrics written to metrics.json.
  """
  builder = builder or datasets.prepare_dataset(config)
  opened = {split: datasets.open_split(builder, split) for split in (FIT_SPLIT,) + tuple(splits)}
  encode_fn = make_encode_fn(config)
  replicated = device_layout.replicate(variables)
  metadata = builder.info.metadata or {}
  joint_names = list(metadata.get('joint_names', ()))
  if not joint_names:  # nothing to regress: the landmarks of the pictured split, and the reconstruction loss
    opened = {split: opened[split] for split in splits}
  dumps = {
    split: dump_landmarks(
      config, encode_fn, replicated, source, keep_masks=split != FIT_SPLIT, description=f'landmarks {split}'
    )
    for split, (source, _) in opened.items()
  }
  if joint_names:
    metrics, predictions = evaluate_dumps(config, dumps, workdir, step, joint_names, splits, skeleton(metadata))
  else:
    metrics = metrics_record(config, step, dumps, reconstruction_losses(config, replicated, opened, splits))
    predictions = {split: None for split in splits}
    if jax.process_index() == 0:
      write_metrics(os.path.join(workdir, EVAL_DIR), metrics)
  picture_split = 'test' if 'test' in splits else splits[-1]
  if jax.process_index() == 0:
    draw_pictures(
      config,
      os.path.join(workdir, EVAL_DIR),
      opened[picture_split][0],
      dumps[picture_split],
      predictions[picture_split],
      skeleton(metadata),
      picture_split,
    )
  return metrics
