"""Tests of the learning curve: per-step metrics kept by each evaluation -> a markdown table and a plot."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from landmarks_jax import learning_curve
from landmarks_jax.evaluation import landmark_eval

JOINTS = (
  'root',
  'right_knee',
  'right_ankle',
  'right_elbow',
  'right_wrist',
  'left_knee',
  'left_ankle',
  'left_elbow',
  'left_wrist',
)
STEPS = (500, 2000, 10000)  # in text order, 10000 would come before 2000


def _joint_result(error, pck, per_joint=None):
  per_joint = per_joint or {name: error for name in JOINTS}
  return {
    'pck': {'0.05': pck / 2, '0.1': pck, '0.2': min(1.0, 1.5 * pck)},
    'mean_pixel_error': float(np.mean(list(per_joint.values()))),
    'per_joint_pixel_error': per_joint,
  }


def _metrics(step, ratio, pck, iou):
  """Metrics as an evaluation of humanoid_mocap writes them; validation's numbers are test's plus 0.05."""
  metrics = {'step': step, 'dataset': 'humanoid_mocap', 'dataset_seed': 0}
  for split, offset in (('test', 0.0), ('validation', 0.05)):
    per_joint = {name: 20.0 * (ratio + offset) + j for j, name in enumerate(JOINTS)}  # root 0, right knee +1, ...
    scores = _joint_result(20.0, pck + offset, per_joint)
    scores['error_ratio'] = ratio + offset
    scores['mask_iou'] = iou + offset
    scores['baseline'] = dict(_joint_result(20.0, 0.40 + offset), mask_iou=0.07)
    scores['bounding_box'] = dict(_joint_result(16.0, 0.45 + offset), error_ratio=0.8 + offset)
    metrics[split] = scores
  return metrics


@pytest.fixture
def history_dir(tmp_path):
  """A workdir's eval/ with three evaluations, one on another seed's subjects, and a half-copied file."""
  eval_dir = tmp_path / 'run' / 'eval'
  for step, ratio, pck, iou in zip(STEPS, (0.9, 0.7, 0.6), (0.5, 0.6, 0.7), (0.1, 0.2, 0.3)):
    landmark_eval.write_metrics(os.fspath(eval_dir), _metrics(step, ratio, pck, iou))
  landmark_eval.write_metrics(os.fspath(eval_dir), dict(_metrics(10000, 0.1, 0.9, 0.9), dataset_seed=7))
  (eval_dir / 'history' / 'step_12000.json').write_text('{"step": 12000, "te')
  return eval_dir / 'history'


def _cells(table):
  """{row label: [cells]} and the header cells of a markdown table."""
  lines = [[cell.strip() for cell in line.strip('|').split('|')] for line in table.splitlines()]
  assert set(lines[1]) == {'---'}
  return lines[0], {cells[0]: cells[1:] for cells in lines[2:]}


def test_table_has_a_row_per_step_then_the_floors(history_dir):
  history, unreadable = learning_curve.read_history(os.fspath(history_dir))
  assert [metrics['step'] for metrics in history] == list(STEPS)
  assert all(metrics['dataset_seed'] == 0 for metrics in history)  # another seed's subjects are not the curve
  assert unreadable == ['step_12000.json']
  header, rows = _cells(learning_curve.table(history))
  assert header[:7] == [
    'step',
    'test error / mean pose',
    'validation error / mean pose',
    'test PCK@0.1',
    'validation PCK@0.1',
    'test mask IoU',
    'validation mask IoU',
  ]
  assert header[7:] == [
    f'{side} {part} (test, px)' for part in ('knee', 'ankle', 'elbow', 'wrist') for side in ('right', 'left')
  ]
  assert list(rows) == ['500', '2000', '10000', 'mean pose', 'bounding box']
  assert rows['2000'][:6] == ['0.700', '0.750', '60.0%', '65.0%', '0.200', '0.250']
  # Test errors: 20 x 0.7 plus the joint's index in JOINTS (right knee 1, left knee 5, right ankle 2, ...).
  assert rows['2000'][6:] == ['15.0', '19.0', '16.0', '20.0', '17.0', '21.0', '18.0', '22.0']
  assert rows['10000'][:2] == ['0.600', '0.650']
  assert rows['mean pose'][:6] == ['1.000', '1.000', '40.0%', '45.0%', '0.070', '0.070']
  assert rows['mean pose'][6:] == ['20.0'] * 8
  assert rows['bounding box'][:6] == ['0.800', '0.850', '45.0%', '50.0%', '-', '-']
  assert rows['bounding box'][6:] == ['16.0'] * 8


def test_a_folder_without_the_curve_is_explained(tmp_path):
  with pytest.raises(learning_curve.HistoryError, match='holds no readable step_<N>.json'):
    learning_curve.read_history(os.fspath(tmp_path))
  with pytest.raises(learning_curve.HistoryError, match='is not a folder'):
    learning_curve.read_history(os.fspath(tmp_path / 'missing'))
  bbc = {'step': 5, 'dataset': 'bbc_pose', 'test': {'accuracy': 0.5}, 'validation': {'accuracy': 0.5}}
  landmark_eval.write_metrics(os.fspath(tmp_path), bbc)
  with pytest.raises(learning_curve.HistoryError, match='no joint errors'):
    learning_curve.read_history(os.fspath(tmp_path / 'history'))


def _near(picture, point, color, reach=2):
  """Whether `color` is within `reach` pixels of `point` on the picture."""
  column, row = (int(round(v)) for v in point)
  patch = picture[row - reach : row + reach + 1, column - reach : column + reach + 1]
  return bool(np.all(patch == color, axis=-1).any())


def test_plot_draws_each_series_at_its_values(history_dir, tmp_path):
  history, _ = learning_curve.read_history(os.fspath(history_dir))
  path = os.fspath(tmp_path / 'curve.png')
  picture, (ratios, shares) = learning_curve.plot(history, path, size=(900, 400))
  with Image.open(path) as png:
    assert png.format == 'PNG' and png.size == (900, 400)
    np.testing.assert_array_equal(np.asarray(png.convert('RGB')), picture)
  test, validation = learning_curve.COLORS['test'], learning_curve.COLORS['validation']
  for metrics in history:
    step = metrics['step']
    assert _near(picture, ratios.to_pixel(step, metrics['test']['error_ratio']), test)
    assert _near(picture, ratios.to_pixel(step, metrics['validation']['error_ratio']), validation)
    assert _near(picture, shares.to_pixel(step, metrics['test']['pck']['0.1']), test)
    assert _near(picture, shares.to_pixel(step, metrics['test']['mask_iou']), learning_curve.COLORS['test IoU'])
    # Nothing is drawn where no series passes: 0.3 above the test error, inside the panel.
    assert not _near(picture, ratios.to_pixel(step, metrics['test']['error_ratio'] + 0.3), test)
  # Between two evaluations the line runs halfway between their values.
  middle = ratios.to_pixel((STEPS[1] + STEPS[2]) / 2, (0.7 + 0.6) / 2)
  assert _near(picture, middle, test)
  # The floors are dashed lines across the panel: the mean pose's at 1, the bounding box's at its ratio.
  left, _, right, _ = ratios.box
  for value, color in (
    (1.0, learning_curve.FLOOR_COLOR),
    (0.8, learning_curve.BOX_COLORS['test']),
    (0.85, learning_curve.BOX_COLORS['validation']),
  ):
    row = int(round(ratios.to_pixel(STEPS[0], value)[1]))
    dashes = np.all(picture[row - 1 : row + 2, left + 2 : right - 2] == color, axis=-1).any(axis=0)
    assert 0.3 < dashes.mean() < 0.7  # dashes and gaps


def test_command_prints_the_table_and_draws_the_workdir_plot(history_dir):
  workdir = history_dir.parent.parent
  command = [sys.executable, '-m', 'landmarks_jax.learning_curve', f'--workdir={workdir}']
  result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  _, rows = _cells('\n'.join(line for line in result.stdout.splitlines() if line.startswith('|')))
  assert rows['500'][0] == '0.900' and list(rows)[-1] == 'bounding box'
  assert 'step_12000.json' in result.stderr  # the half-copied file is named, not fatal
  plot_path = workdir / 'eval' / 'learning_curve.png'
  assert f'Plot: {plot_path}' in result.stdout
  with Image.open(plot_path) as png:
    assert png.size == learning_curve.PLOT_SIZE
