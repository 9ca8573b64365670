"""Tests of the landmark evaluation command: checkpoint -> landmarks -> joints -> metrics.json, .mat, pictures."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import scipy.io

from landmarks_jax import evaluate
from landmarks_jax.configs import test as test_config
from landmarks_jax.data import datasets
from landmarks_jax.evaluation import boxes as boxes_lib
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.evaluation import mocap_metrics
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import train_state

import fake_bbc

SAVED_STEP = 3
SPLITS = ('train', 'validation', 'test')


def _save_untrained_run(workdir, config, step=SAVED_STEP):
  """An untrained state saved as training saves it (with its options), and the run's config.json."""
  checkpoints.Checkpoints(workdir).save(
    step, train_state.create_train_state(config), meta={checkpoints.OPTIONS_KEY: config_checks.plain_config(config)}
  )
  checkpoints.write_or_check_config(workdir, config)


def _bbc_config(root):
  config = test_config.get_config()
  config.dataset = 'bbc_pose'
  config.dataset_path = os.fspath(root / 'bbc')
  config.data_dir = os.fspath(root / 'data')
  return config


def _read_metrics(workdir):
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as file:
    return json.load(file)


def _numbers(tree):
  if isinstance(tree, dict):
    return [number for value in tree.values() for number in _numbers(value)]
  return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def _split_sizes(config):
  splits = datasets.prepare_dataset(config).info.splits
  return {split: splits[split].num_examples for split in SPLITS}


def _toolkit_accuracy(pred_2jn, gt_2jn):
  """The BBC Pose toolkit's rule on (2, J, N) arrays: half-resolution distance of at most 6 pixels."""
  pred = 0.5 * (pred_2jn - 1) + 1
  gt = 0.5 * (gt_2jn - 1) + 1
  return float(np.mean(np.sqrt(np.sum((pred - gt) ** 2, axis=0)) <= 6))


@pytest.fixture(scope='module')
def mocap_run(tmp_path_factory, tiny_mocap_data_dir):
  """An untrained checkpoint of the tiny test config on the tiny motion-capture data, evaluated."""
  root = tmp_path_factory.mktemp('mocap')
  config = test_config.get_config()
  config.data_dir = tiny_mocap_data_dir
  workdir = os.fspath(root / 'run')
  _save_untrained_run(workdir, config)
  return config, workdir, evaluate.run(workdir)


@pytest.fixture(scope='module')
def bbc_run(tmp_path_factory):
  """An untrained checkpoint evaluated on a fake BBC Pose download (3 frames per video)."""
  root = tmp_path_factory.mktemp('bbc')
  fake = fake_bbc.write_fake_bbc(root / 'bbc', frames_per_video=3)
  config = _bbc_config(root)
  workdir = os.fspath(root / 'run')
  _save_untrained_run(workdir, config)
  return config, workdir, fake, evaluate.run(workdir)


def test_mocap_metrics_file_is_complete(mocap_run):
  config, workdir, metrics = mocap_run
  assert _read_metrics(workdir) == metrics
  assert metrics['step'] == SAVED_STEP
  assert metrics['dataset'] == 'humanoid_mocap'
  assert metrics['n_landmarks'] == config.n_landmarks
  assert metrics['num_examples'] == _split_sizes(config)
  assert all(math.isfinite(x) for x in _numbers(metrics))
  joint_names = list(datasets.prepare_dataset(config).info.metadata['joint_names'])
  for split in ('validation', 'test'):
    scores = metrics[split]
    for result in (scores, scores['baseline'], scores['bounding_box']):
      assert list(result['pck']) == ['0.05', '0.1', '0.2']
      pck = list(result['pck'].values())
      assert all(0 <= p <= 1 for p in pck) and pck == sorted(pck)  # A looser threshold never counts fewer.
      assert list(result['per_joint_pixel_error']) == joint_names
      assert result['mean_pixel_error'] == pytest.approx(np.mean(list(result['per_joint_pixel_error'].values())))
    for result in (scores, scores['baseline']):
      assert 0 <= result['mask_iou'] <= 1
    for result in (scores, scores['bounding_box']):
      ratio = result['mean_pixel_error'] / scores['baseline']['mean_pixel_error']
      assert result['error_ratio'] == pytest.approx(ratio)
    # The all-foreground mask scores the share of foreground pixels: small for a figure in a frame.
    assert 0 < scores['baseline']['mask_iou'] < 0.5


def test_mocap_pictures_open(mocap_run):
  config, workdir, metrics = mocap_run
  eval_dir = os.path.join(workdir, 'eval')
  for name in ('landmarks_test.png', 'masks_test.png'):
    with Image.open(os.path.join(eval_dir, name)) as picture:
      picture.load()
      assert picture.format == 'PNG' and min(picture.size) >= 4 * config.img_size
  _, videos = datasets.open_split(datasets.prepare_dataset(config), 'test')
  with Image.open(os.path.join(eval_dir, 'video_test.gif')) as gif:
    assert gif.format == 'GIF'
    # One frame per frame of the first test video (PIL merges a frame into the previous one only if equal).
    assert 1 < gif.n_frames <= min(videos[0][2], landmark_eval.GIF_MAX_FRAMES)
  assert not os.path.exists(os.path.join(eval_dir, 'preds_test.mat'))


def test_summary_puts_each_score_beside_its_floor(mocap_run):
  _, _, metrics = mocap_run
  lines = landmark_eval.summary(metrics).splitlines()
  assert f'step {metrics["step"]}' in lines[0]
  test_line = next(line for line in lines if line.strip().startswith('test:'))
  test = metrics['test']
  for value in (
    f'{test["mean_pixel_error"]:.2f} px',
    f'{test["error_ratio"]:.2f} x',
    f'{test["baseline"]["mean_pixel_error"]:.2f} px',
    f'IoU {test["mask_iou"]:.3f}',
    f'all-foreground: {test["baseline"]["mask_iou"]:.3f}',
    f'(bounding box: {test["bounding_box"]["error_ratio"]:.2f} x)',
    f'bounding box: {test["bounding_box"]["pck"]["0.1"]:.1%})',
  ):
    assert value in test_line


def test_summary_gives_the_bounding_box_beside_the_mean_pose():
  def joint_result(error, pck):
    return {'mean_pixel_error': error, 'pck': {'0.05': pck / 2, '0.1': pck, '0.2': 1.0}}

  test = dict(
    joint_result(11.44, 0.61),
    error_ratio=11.44 / 15.52,
    mask_iou=0.198,
    baseline=dict(joint_result(15.52, 0.401), mask_iou=0.072),
    bounding_box=dict(joint_result(12.4, 0.45), error_ratio=12.4 / 15.52),
  )
  metrics = {'step': 800, 'dataset': 'humanoid_mocap', 'n_landmarks': 16, 'test': test}
  assert landmark_eval.summary(metrics).splitlines()[1] == (
    "  test: mean joint error 11.44 px, 0.74 x the mean training pose's 15.52 px (bounding box: 0.80 x); "
    'PCK@0.1 61.0% (mean pose: 40.1%, bounding box: 45.0%); foreground IoU 0.198 (all-foreground: 0.072)'
  )
  del test['bounding_box']  # Without true masks there is no box: the line as before.
  assert landmark_eval.summary(metrics).splitlines()[1] == (
    "  test: mean joint error 11.44 px, 0.74 x the mean training pose's 15.52 px; "
    'PCK@0.1 61.0% (mean pose: 40.1%); foreground IoU 0.198 (all-foreground: 0.072)'
  )


def test_bbc_summary_gives_the_accuracy():
  scores = {'accuracy': 0.625, 'baseline': {'accuracy': 0.25}}
  text = landmark_eval.summary({'step': 3, 'dataset': 'bbc_pose', 'n_landmarks': 4, 'test': scores})
  assert 'test: 62.5% of joints within 6 px (mean training pose: 25.0%)' in text
  assert 'validation' not in text


def test_bbc_metrics_and_toolkit_files(bbc_run):
  config, workdir, fake, metrics = bbc_run
  assert _read_metrics(workdir) == metrics
  sizes = {split: len(fake.records[split]) for split in SPLITS}
  assert metrics['num_examples'] == sizes == _split_sizes(config)
  assert all(math.isfinite(x) for x in _numbers(metrics))
  eval_dir = os.path.join(workdir, 'eval')
  test_pred = scipy.io.loadmat(os.path.join(eval_dir, 'preds_test.mat'))['my_pred']
  val_pred = scipy.io.loadmat(os.path.join(eval_dir, 'preds_val.mat'))['my_pred']
  assert test_pred.shape == (2, 7, sizes['test']) and val_pred.shape == (2, 7, sizes['validation'])
  # Scored as the original's script scores the files: test against results.mat (in its order), validation
  # against the validation annotations.
  results = scipy.io.loadmat(os.path.join(fake.root, 'code', 'results.mat'))['results']['gt'][0, 0]
  val_gt = np.stack([record.joints.T for record in fake.records['validation']], axis=-1)
  assert metrics['test']['accuracy'] == pytest.approx(_toolkit_accuracy(test_pred, results))
  assert metrics['validation']['accuracy'] == pytest.approx(_toolkit_accuracy(val_pred, val_gt))
  for split in ('validation', 'test'):
    per_joint = metrics[split]['per_joint_accuracy']
    assert list(per_joint)[:3] == ['head', 'right_wrist', 'left_wrist'] and len(per_joint) == 7
    assert metrics[split]['accuracy'] == pytest.approx(np.mean(list(per_joint.values())))
    assert 0 <= metrics[split]['baseline']['accuracy'] <= 1
  with Image.open(os.path.join(eval_dir, 'landmarks_test.png')) as picture:
    picture.load()


def test_dump_keeps_every_record_once_in_order_whatever_the_batch(mocap_run):
  config, workdir, _ = mocap_run
  source, _ = datasets.open_split(datasets.prepare_dataset(config), 'test')
  variables, _ = landmark_eval.load_variables(workdir)
  replicated = device_layout.replicate(variables)
  encode_fn = landmark_eval.make_encode_fn(config)
  # 2 devices x 3 frames do not divide the split, so the last batch is padded.
  dump = landmark_eval.dump_landmarks(config, encode_fn, replicated, source, batch_size=3)
  np.testing.assert_array_equal(dump['index'], np.arange(len(source)))
  np.testing.assert_array_equal(dump['joints'], np.stack([source[i]['joints'] for i in range(len(source))]))
  np.testing.assert_array_equal(dump['video'], [source[i]['video'] for i in range(len(source))])
  assert dump['mean_x'].shape == dump['mean_y'].shape == (len(source), config.n_landmarks)
  assert np.all(np.abs(dump['mean_x']) <= 1) and np.all(np.abs(dump['mean_y']) <= 1)
  assert dump['covariance'].shape == (len(source), config.n_landmarks, 2, 2)
  size = (len(source), config.img_size, config.img_size, 1)
  assert dump['pred_mask'].shape == dump['gt_mask'].shape == size
  # Each frame's landmarks depend on that frame alone, not on its batch or the padding.
  other = landmark_eval.dump_landmarks(config, encode_fn, replicated, source, keep_masks=False)
  np.testing.assert_allclose(other['mean_x'], dump['mean_x'], atol=1e-4)
  np.testing.assert_allclose(other['mean_y'], dump['mean_y'], atol=1e-4)
  assert 'pred_mask' not in other and 'gt_mask' not in other
  # The true masks' boxes, the bounding-box baseline's features, are kept either way (the training split's
  # dump keeps no masks).
  np.testing.assert_array_equal(dump['gt_mask_box'], mocap_metrics.mask_boxes(dump['gt_mask']))
  np.testing.assert_array_equal(other['gt_mask_box'], dump['gt_mask_box'])
  assert dump['gt_mask_box'].shape == (len(source), 4) and np.ptp(dump['gt_mask_box'], axis=0).min() > 0


def test_mask_boxes_are_in_the_landmarks_coordinates():
  masks = np.zeros((3, 4, 8, 1), np.uint8)
  masks[0, 1:3, 2:6] = 255  # rows 1..2 of 4, columns 2..5 of 8
  masks[2, 3, 7] = 255  # the last pixel alone
  # Pixel i of a side of S pixels sits at -1 + 2i / S; an empty mask gives the whole frame.
  np.testing.assert_allclose(
    mocap_metrics.mask_boxes(masks), [[-0.5, -0.5, 0.25, 0.0], [-1.0, -1.0, 0.75, 0.5], [0.75, 0.5, 0.75, 0.5]]
  )
  np.testing.assert_allclose(mocap_metrics.mask_boxes(masks[..., 0] / 255.0 * 0.4), [[-1.0, -1.0, 0.75, 0.5]] * 3)


def _synthetic_dump(rng, count, mix, with_masks=False):
  """Landmarks that are a known linear function `mix` of the joints in centred box units."""
  num_joints = mix.shape[0] // 2
  centres = rng.uniform([120.0, 90.0], [560.0, 300.0], (count, 2))
  half_sizes = rng.uniform(80.0, 150.0, (count, 2))
  boxes = np.concatenate([centres - half_sizes, centres + half_sizes], axis=1)
  joints = centres[:, None] + rng.uniform(-0.45, 0.45, (count, num_joints, 2)) * 2 * half_sizes[:, None]
  size = 2 * half_sizes[:, None]
  units = (joints - boxes[:, None, :2] - size / 2) / size  # (N, J, 2)
  features = np.concatenate([units[..., 0], units[..., 1]], axis=1) @ mix
  k = mix.shape[1] // 2
  dump = {
    'mean_x': features[:, :k],
    'mean_y': features[:, k:],
    'joints': joints,
    'boxes': boxes,
    'video': np.ones(count, np.int32),
    'frame': np.arange(count, dtype=np.int32),
    'index': np.arange(count, dtype=np.int32),
  }
  if with_masks:
    dump['gt_mask'] = (rng.uniform(size=(count, 8, 8, 1)) < 0.3).astype(np.float32)
    dump['pred_mask'] = dump['gt_mask'] * 0.9
  return dump


def _synthetic_dumps(num_joints, with_masks=False):
  rng = np.random.default_rng(0)
  mix = rng.normal(0.0, 0.6, (2 * num_joints, 2 * (num_joints + 2)))
  return {
    split: _synthetic_dump(rng, count, mix, with_masks)
    for split, count in (('train', 60), ('validation', 20), ('test', 25))
  }


def test_landmarks_linear_in_the_joints_give_perfect_bbc_scores(tmp_path):
  config = test_config.get_config()
  config.dataset = 'bbc_pose'
  dumps = _synthetic_dumps(7)
  names = [f'joint{j}' for j in range(7)]
  metrics, _ = landmark_eval.evaluate_dumps(config, dumps, os.fspath(tmp_path), 11, names)
  assert metrics['test']['accuracy'] == 1.0 and metrics['validation']['accuracy'] == 1.0
  assert metrics['test']['baseline']['accuracy'] < 0.5
  assert metrics['num_examples'] == {'train': 60, 'validation': 20, 'test': 25}
  assert metrics['n_landmarks'] == 9 and metrics['step'] == 11
  assert _read_metrics(tmp_path) == metrics
  # The .mat files hold the regressed joints in record order, in full-frame pixels (x in row 0).
  for split, name in (('test', 'preds_test.mat'), ('validation', 'preds_val.mat')):
    pred = scipy.io.loadmat(tmp_path / 'eval' / name)['my_pred']
    np.testing.assert_allclose(pred, dumps[split]['joints'].transpose(2, 1, 0), atol=2.0)


def test_landmarks_linear_in_the_joints_give_zero_mocap_error(tmp_path):
  config = test_config.get_config()
  dumps = _synthetic_dumps(15, with_masks=True)
  names = [f'joint{j}' for j in range(15)]
  metrics, predictions = landmark_eval.evaluate_dumps(config, dumps, os.fspath(tmp_path), 0, names)
  np.testing.assert_allclose(predictions['test'], dumps['test']['joints'], atol=1e-2)
  test = metrics['test']
  assert test['mean_pixel_error'] < 1e-2 and test['error_ratio'] < 1e-3
  assert test['pck'] == {'0.05': 1.0, '0.1': 1.0, '0.2': 1.0}
  assert test['baseline']['mean_pixel_error'] > 10
  assert test['mask_iou'] == 1.0
  foreground = dumps['test']['gt_mask'][..., 0] > 0.5
  assert test['baseline']['mask_iou'] == pytest.approx(foreground.mean(axis=(1, 2)).mean())
  assert not os.path.exists(tmp_path / 'eval' / 'preds_test.mat')


def _box_dumps(num_joints, side=16):
  """Dumps whose joints are a linear function of each frame's true-mask bounding box, and landmarks noise.

  The training split keeps only the boxes (as `dump_landmarks` keeps it); the others keep the masks.
  """
  rng = np.random.default_rng(1)
  mix = rng.normal(0.0, 0.5, (4, 2 * num_joints))
  dumps = {}
  for split, count in (('train', 50), ('validation', 20), ('test', 25)):
    dump = _synthetic_dump(rng, count, np.eye(2 * num_joints))
    corners = np.sort(rng.integers(0, side, (count, 2, 2)), axis=1)  # (N, first / last, column / row)
    masks = np.zeros((count, side, side, 1), np.float32)
    for mask, ((column0, row0), (column1, row1)) in zip(masks, corners):
      mask[row0 : row1 + 1, column0 : column1 + 1] = 1.0
    box = -1.0 + 2.0 * corners.reshape(count, 4) / side
    dump['joints'] = boxes_lib.box_units_to_pixels(box @ mix, dump['boxes'])
    dump['mean_x'] = rng.uniform(-1, 1, dump['mean_x'].shape)
    dump['mean_y'] = rng.uniform(-1, 1, dump['mean_y'].shape)
    if split == 'train':
      dump['gt_mask_box'] = box.astype(np.float32)
    else:
      dump['gt_mask'] = masks
      dump['pred_mask'] = masks
    dumps[split] = dump
  return dumps


def test_joints_linear_in_the_mask_box_give_zero_bounding_box_error(tmp_path):
  config = test_config.get_config()
  names = [f'joint{j}' for j in range(15)]
  metrics, _ = landmark_eval.evaluate_dumps(config, _box_dumps(15), os.fspath(tmp_path), 5, names)
  for split in ('validation', 'test'):
    scores = metrics[split]
    box = scores['bounding_box']
    assert box['mean_pixel_error'] < 1e-3 and box['error_ratio'] < 1e-4
    assert box['pck'] == {'0.05': 1.0, '0.1': 1.0, '0.2': 1.0}
    assert list(box['per_joint_pixel_error']) == names and max(box['per_joint_pixel_error'].values()) < 1e-3
    # Landmarks that are noise do no better than the mean pose; the floors stay apart.
    assert scores['error_ratio'] > 0.9 and scores['baseline']['mean_pixel_error'] > 5
  assert '(bounding box: 0.00 x); PCK@0.1' in landmark_eval.summary(metrics)
  # Each evaluation also keeps its metrics under its step, for the learning curve.
  with open(tmp_path / 'eval' / 'history' / 'step_5.json') as file:
    assert json.load(file) == metrics == _read_metrics(tmp_path)


def test_metrics_of_another_dataset_seed_keep_their_own_history_name(tmp_path):
  metrics = {'step': 40, 'dataset': 'humanoid_mocap', 'dataset_seed': 3}
  landmark_eval.write_metrics(os.fspath(tmp_path), metrics)
  landmark_eval.write_metrics(os.fspath(tmp_path), dict(metrics, dataset_seed=0))
  assert sorted(os.listdir(tmp_path / 'history')) == ['step_40.json', 'step_40_dataset_seed_3.json']
  with open(tmp_path / 'history' / 'step_40_dataset_seed_3.json') as file:
    assert json.load(file)['dataset_seed'] == 3


def test_regression_is_fitted_on_the_training_split_only(tmp_path):
  config = test_config.get_config()
  dumps = _synthetic_dumps(15)
  dumps['test']['joints'] = dumps['test']['joints'] + 5.0  # Annotations the landmarks do not explain.
  metrics, _ = landmark_eval.evaluate_dumps(config, dumps, os.fspath(tmp_path), 0, [str(j) for j in range(15)])
  assert metrics['test']['mean_pixel_error'] == pytest.approx(5.0 * np.sqrt(2), abs=1e-2)
  assert metrics['validation']['mean_pixel_error'] < 1e-2
  assert 'bounding_box' not in metrics['test']  # no true masks, no box


def test_missing_checkpoint_is_reported(tmp_path):
  checkpoints.write_or_check_config(os.fspath(tmp_path), test_config.get_config())
  with pytest.raises(checkpoints.NoCheckpoint, match='No checkpoint in'):
    evaluate.run(os.fspath(tmp_path))
  os.makedirs(tmp_path / 'checkpoints')
  with pytest.raises(checkpoints.NoCheckpoint, match='holds no saved step'):
    evaluate.run(os.fspath(tmp_path))


def test_unknown_step_lists_the_saved_steps(mocap_run):
  _, workdir, _ = mocap_run
  # Through the command line, as a user meets it: a short message, no traceback.
  command = [sys.executable, '-m', 'landmarks_jax.evaluate', f'--workdir={workdir}', '--step=7']
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert 'No checkpoint of step 7' in result.stderr and f'saved steps: [{SAVED_STEP}]' in result.stderr
  assert 'Traceback' not in result.stderr


def test_the_command_evaluates_on_subjects_rendered_with_another_dataset_seed(mocap_run, tmp_path):
  config, workdir, seed_0 = mocap_run
  copy = os.fspath(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  command = [
    sys.executable,
    '-m',
    'landmarks_jax.evaluate',
    f'--workdir={copy}',
    '--config.dataset_seed=3',
    f'--config.data_dir={tmp_path / "data"}',
  ]
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = _read_metrics(copy)
  assert metrics['dataset_seed'] == 3 and seed_0['dataset_seed'] == 0
  assert metrics['test']['mean_pixel_error'] != seed_0['test']['mean_pixel_error']  # other frames scored
  assert os.listdir(tmp_path / 'data' / 'humanoid_mocap')  # rendered there, not in the run's data_dir
  assert checkpoints.read_config(copy).dataset_seed == config.get('dataset_seed', 0)  # the run is unchanged


def test_config_that_does_not_fit_the_checkpoint_names_the_fix(mocap_run):
  config, workdir, _ = mocap_run
  other = test_config.get_config()
  other.data_dir = config.data_dir
  other.n_landmarks = config.n_landmarks + 1
  expected = r'(?s)n_landmarks: checkpoint has 4, this run has 5.*config\.json'
  with pytest.raises(landmark_eval.VariablesMismatch, match=expected):
    evaluate.run(workdir, config=other)
  variables, step = landmark_eval.load_variables(workdir)
  assert step == SAVED_STEP
  landmark_eval.check_variables(config, variables)  # The run's own config fits.
  # A checkpoint without its options (as older versions saved them) is checked by its shapes.
  with pytest.raises(landmark_eval.VariablesMismatch, match=r'(?s)is \(.*\) in the checkpoint but .*config\.json'):
    landmark_eval.check_variables(other, variables)


def test_an_edited_config_json_is_refused_by_the_checkpoints_record(mocap_run, tmp_path):
  config, workdir, _ = mocap_run
  copy = os.fspath(tmp_path / 'run')
  shutil.copytree(os.path.join(workdir, 'checkpoints'), os.path.join(copy, 'checkpoints'))
  edited = config.copy_and_resolve_references()
  edited.img_size = 64  # the model's arrays do not depend on it, so only the record can tell
  checkpoints.write_config(copy, edited)
  with pytest.raises(landmark_eval.VariablesMismatch, match='img_size: checkpoint has 32, this run has 64'):
    evaluate.run(copy)


def test_an_unreadable_checkpoint_names_its_file_and_the_older_steps(mocap_run, tmp_path):
  config, workdir, _ = mocap_run
  copy = os.fspath(tmp_path / 'run')
  shutil.copytree(workdir, copy)
  _save_untrained_run(copy, config, step=SAVED_STEP + 2)
  metadata = os.path.join(copy, 'checkpoints', str(SAVED_STEP + 2), 'meta', 'metadata')
  os.truncate(metadata, 9)
  expected = (
    rf'(?s)Checkpoint {SAVED_STEP + 2} .* is unreadable.*Damaged: {metadata} \(not valid JSON\).*'
    rf'Older checkpoints: steps {SAVED_STEP}\..*evaluate --workdir={copy} --step={SAVED_STEP}'
  )
  with pytest.raises(checkpoints.CheckpointUnreadable, match=expected):
    evaluate.run(copy)


def test_trained_run_evaluates_end_to_end(bbc_run):
  from landmarks_jax.training import train  # pylint: disable=g-import-not-at-top

  config, bbc_workdir, fake, _ = bbc_run
  config = config.copy_and_resolve_references()
  config.num_train_steps = 2
  config.save_every_steps = 2
  config.temporal_range = (1, 2)  # the fake videos have 3 frames
  config.eval_at_end = False
  config.val_every_steps = -1
  config.log_images_every_steps = 0
  workdir = os.path.join(os.path.dirname(bbc_workdir), 'trained')
  train.train_and_evaluate(config, workdir)
  metrics = evaluate.run(workdir)
  assert metrics == _read_metrics(workdir)
  assert metrics['step'] == 2
  assert metrics['num_examples'] == {split: len(fake.records[split]) for split in SPLITS}
  test_pred = scipy.io.loadmat(os.path.join(workdir, 'eval', 'preds_test.mat'))['my_pred']
  assert test_pred.shape == (2, 7, len(fake.records['test']))
  assert metrics['test']['accuracy'] == pytest.approx(_toolkit_accuracy(test_pred, fake.test_ground_truth()))
  assert os.path.exists(os.path.join(workdir, 'eval', 'preds_val.mat'))
