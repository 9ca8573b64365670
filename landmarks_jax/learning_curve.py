"""The learning curve of a run: the landmark scores of each evaluation during training, as a table and a plot.

  python -m landmarks_jax.learning_curve --workdir=runs/mocap [--output=docs/images/curve.png]
  python -m landmarks_jax.learning_curve --history=DIR [--output=curve.png]

Every evaluation keeps a copy of its metrics.json as <workdir>/eval/history/step_<N>.json (training evaluates
every `eval_every_steps`); --history reads another folder of such files. The command prints a markdown table,
one row per step: the test and validation joint error as a multiple of the mean training pose's, PCK@0.1, mask
IoU, and the test error in pixels of each knee, ankle, elbow and wrist; then rows for the floors (the mean pose
and the bounding-box regression), which do not change with the step. The plot (default with --workdir:
<workdir>/eval/learning_curve.png) draws the error ratios beside the floors, and PCK@0.1 and mask IoU.
"""

import json
import math
import os
import re
import sys
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
from PIL import features

from landmarks_jax import pictures
from landmarks_jax import user_errors
from landmarks_jax.evaluation import landmark_eval

HISTORY_NAME = re.compile(r'step_(\d+)\.json')  # as `landmark_eval.history_file` names the run's own subjects
LIMB_PARTS = ('knee', 'ankle', 'elbow', 'wrist')  # the joints the table and the targets single out
SPLITS = ('test', 'validation')
PLOT_SIZE = (1200, 480)
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
GRID = (225, 225, 225)
# Series colours: test, validation; and for the second panel's mask IoU, test and validation.
COLORS = {
  'test': (31, 119, 180),
  'validation': (255, 127, 14),
  'test IoU': (44, 160, 44),
  'validation IoU': (214, 39, 40),
}
FLOOR_COLOR = (150, 150, 150)  # the mean pose's, dashed
BOX_COLORS = {'test': (115, 159, 190), 'validation': (227, 163, 107)}  # the bounding box's, dashed


class HistoryError(user_errors.UserError, ValueError):
  """A history folder holds no usable evaluation, or one without joint errors to draw."""


def read_history(folder: str) -> tuple[list[dict], list[str]]:
  """The metrics of every step_<N>.json in `folder`, in step order, and the names of files that did not parse.

  A file that is not JSON (one being copied in) is passed over and named, not fatal: the rest is still a curve.
  """
  if not os.path.isdir(folder):
    raise HistoryError(
      f'{folder} is not a folder. Evaluations during training (--config.eval_every_steps=N) '
      f'keep their metrics in <workdir>/{landmark_eval.EVAL_DIR}/{landmark_eval.HISTORY_DIR}/.'
    )
  history, unreadable = [], []
  for name in sorted(os.listdir(folder)):
    if not HISTORY_NAME.fullmatch(name):
      continue
    try:
      with open(os.path.join(folder, name)) as file:
        metrics = json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError):
      unreadable.append(name)
      continue
    if not isinstance(metrics, dict) or 'step' not in metrics:
      unreadable.append(name)
      continue
    history.append(metrics)
  if not history:
    raise HistoryError(
      f'{folder} holds no readable step_<N>.json; evaluations during training (--config.eval_every_steps=N) write them.'
    )
  for metrics in history:
    missing = [split for split in SPLITS if 'error_ratio' not in (metrics.get(split) or {})]
    if missing:
      raise HistoryError(
        f'The metrics of step {metrics["step"]} in {folder} have no joint errors on {missing} '
        '(a dataset scored by accuracy or without keypoints); the curve draws joint errors.'
      )
  return sorted(history, key=lambda metrics: int(metrics['step'])), unreadable


def limb_joints(joint_names: Sequence[str]) -> list[str]:
  """The knees, ankles, elbows and wrists among `joint_names`, part by part, each in the dataset's order."""
  return [name for part in LIMB_PARTS for name in joint_names if part in name]


def _number(value: float | None, fmt: str) -> str:
  return '-' if value is None else format(value, fmt)


def table(history: Sequence[Mapping[str, Any]]) -> str:
  """A markdown table of the curve: a row per step, then the floors' rows (from the last step's metrics)."""
  last = history[-1]
  joints = limb_joints(list(last['test']['per_joint_pixel_error']))
  header = (
    ['step']
    + [f'{split} error / mean pose' for split in SPLITS]
    + [f'{split} PCK@0.1' for split in SPLITS]
    + [f'{split} mask IoU' for split in SPLITS]
    + [f'{name.replace("_", " ")} (test, px)' for name in joints]
  )

  def row(label, results):
    """results: {split: joint scores with 'error_ratio' and 'pck', maybe 'mask_iou'}."""
    return (
      [label]
      + [_number(results[split].get('error_ratio'), '.3f') for split in SPLITS]
      + [_number(results[split]['pck']['0.1'], '.1%') for split in SPLITS]
      + [_number(results[split].get('mask_iou'), '.3f') for split in SPLITS]
      + [_number(results['test']['per_joint_pixel_error'].get(name), '.1f') for name in joints]
    )

  rows = [row(str(metrics['step']), metrics) for metrics in history]
  rows.append(row('mean pose', {split: dict(last[split]['baseline'], error_ratio=1.0) for split in SPLITS}))
  if all('bounding_box' in last[split] for split in SPLITS):
    rows.append(row('bounding box', {split: last[split]['bounding_box'] for split in SPLITS}))
  lines = ['| ' + ' | '.join(cells) + ' |' for cells in [header, ['---'] * len(header)] + rows]
  return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------------------
# The plot.


class Axes:
  """A panel's plotting area in pixels and the data range it shows; maps (step, value) to a pixel."""

  def __init__(self, box: tuple[int, int, int, int], steps: tuple[float, float], values: tuple[float, float]):
    self.box, self.steps, self.values = box, steps, values

  def to_pixel(self, step: float, value: float) -> tuple[float, float]:
    left, top, right, bottom = self.box
    x = left + (step - self.steps[0]) / (self.steps[1] - self.steps[0]) * (right - left)
    y = bottom - (value - self.values[0]) / (self.values[1] - self.values[0]) * (bottom - top)
    return x, y


def _font(size: int):
  # FreeType (normally present) gives legible sizes; the built-in bitmap font has one.
  return ImageFont.load_default(size=size) if features.check('freetype2') else ImageFont.load_default()


def _tick_spacing(span: float, count: int = 5) -> float:
  """A round spacing (1, 2 or 5 times a power of ten) giving about `count` ticks over `span`."""
  raw = span / count
  power = 10.0 ** math.floor(math.log10(raw))
  return min((factor * power for factor in (1, 2, 5, 10)), key=lambda spacing: abs(math.log(spacing / raw)))


def _ticks(low: float, high: float, least_spacing: float = 0.0) -> list[float]:
  spacing = max(_tick_spacing(high - low), least_spacing)
  first = math.ceil(low / spacing - 1e-9) * spacing
  return [first + i * spacing for i in range(int((high - first) / spacing + 1e-9) + 1)]


def _dashed(
  draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], color, width: int, dash: int = 8
) -> None:
  """A horizontal dashed line from start to end."""
  x, y = start
  while x < end[0]:
    draw.line([(x, y), (min(x + dash, end[0]), y)], fill=color, width=width)
    x += 2 * dash


def _panel(
  draw,
  axes: Axes,
  title: str,
  series: Sequence[tuple[str, tuple, list, list]],
  floors: Sequence[tuple[str, tuple, float]],
  font,
  small_font,
) -> None:
  """Draws a panel: grid, ticks, title, the floors dashed, each series as a line with dots, and a legend."""
  left, top, right, bottom = axes.box
  for value in _ticks(*axes.values):
    y = axes.to_pixel(axes.steps[0], value)[1]
    draw.line([(left, y), (right, y)], fill=GRID)
    draw.text((left - 6, y), f'{value:g}', fill=INK, font=small_font, anchor='rm')
  for step in _ticks(*axes.steps, least_spacing=1):
    x = axes.to_pixel(step, axes.values[0])[0]
    draw.line([(x, bottom), (x, bottom + 4)], fill=INK)
    draw.text((x, bottom + 6), f'{step:,.0f}', fill=INK, font=small_font, anchor='ma')
  draw.rectangle([left, top, right, bottom], outline=INK)
  draw.text(((left + right) / 2, top - 8), title, fill=INK, font=font, anchor='md')
  draw.text(((left + right) / 2, bottom + 24), 'training step', fill=INK, font=small_font, anchor='ma')
  legend = []
  for label, color, value in floors:
    y = axes.to_pixel(axes.steps[0], value)[1]
    _dashed(draw, (left + 1, y), (right - 1, y), color, 2)
    legend.append((label, color, True))
  for label, color, steps, values in series:
    points = [axes.to_pixel(step, value) for step, value in zip(steps, values) if value is not None]
    if len(points) > 1:
      draw.line(points, fill=color, width=3, joint='curve')
    for x, y in points:
      draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
    legend.append((label, color, False))
  # The legend in rows under the axis, clear of the lines.
  x, y = left, bottom + 46
  for label, color, dashed in legend:
    entry = 38 + draw.textlength(label, font=small_font) + 18
    if x + entry > right and x > left:
      x, y = left, y + 18
    if dashed:
      _dashed(draw, (x, y), (x + 30, y), color, 2, dash=6)
    else:
      draw.line([(x, y), (x + 30, y)], fill=color, width=3)
    draw.text((x + 38, y), label, fill=INK, font=small_font, anchor='lm')
    x += entry


def plot(
  history: Sequence[Mapping[str, Any]], path: str | None = None, size: tuple[int, int] = PLOT_SIZE
) -> tuple[np.ndarray, list[Axes]]:
  """Draws the curve: error / mean pose's (with the floors) on the left, PCK@0.1 and mask IoU on the right.

  Returns:
    ((height, width, 3) uint8 picture, the two panels' Axes); writes a PNG to `path` when given.
  """
  width, height = size
  steps = [int(metrics['step']) for metrics in history]
  low, high = min(steps), max(steps)
  if high == low:  # one evaluation: a point in the middle
    low, high = low - 1, high + 1
  margin = 0.03 * (high - low)
  step_range = (low - margin, high + margin)
  last = history[-1]

  def values(split, read):
    return [read(metrics[split]) for metrics in history]

  ratio_series = [
    (f'{split} error / mean pose', COLORS[split], steps, values(split, lambda s: s['error_ratio'])) for split in SPLITS
  ]
  ratio_floors = [('mean pose', FLOOR_COLOR, 1.0)]
  ratio_floors += [
    (f'{split} bounding box', BOX_COLORS[split], last[split]['bounding_box']['error_ratio'])
    for split in SPLITS
    if 'bounding_box' in last[split]
  ]
  top_ratio = max([1.0] + [v for _, _, _, vs in ratio_series for v in vs] + [v for _, _, v in ratio_floors])
  share_series = [
    (f'{split} PCK@0.1', COLORS[split], steps, values(split, lambda s: s['pck']['0.1'])) for split in SPLITS
  ]
  share_series += [
    (f'{split} mask IoU', COLORS[f'{split} IoU'], steps, values(split, lambda s: s.get('mask_iou')))
    for split in SPLITS
    if any('mask_iou' in metrics[split] for metrics in history)
  ]
  share_floors = [('test PCK@0.1, mean pose', FLOOR_COLOR, last['test']['baseline']['pck']['0.1'])]

  canvas = Image.new('RGB', (width, height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  font, small_font = _font(16), _font(12)
  half = width // 2
  boxes = [(60, 40, half - 20, height - 90), (half + 60, 40, width - 20, height - 90)]
  axes = [
    Axes(boxes[0], step_range, (0.0, math.ceil(top_ratio * 1.05 * 10) / 10)),
    Axes(boxes[1], step_range, (0.0, 1.0)),
  ]
  _panel(draw, axes[0], "joint error / mean training pose's", ratio_series, ratio_floors, font, small_font)
  _panel(draw, axes[1], 'PCK@0.1 and mask IoU', share_series, share_floors, font, small_font)
  picture = np.asarray(canvas)
  if path is not None:
    pictures.save_image(path, picture)
  return picture, axes


# ----------------------------------------------------------------------------------------------------------
# The command.


def define_flags() -> None:
  flags.DEFINE_string('workdir', None, "The run's folder: reads <workdir>/eval/history/.")
  flags.DEFINE_string('history', None, "A folder of step_<N>.json metrics to read instead of the workdir's.")
  flags.DEFINE_string(
    'output',
    None,
    'The PNG to draw (default with --workdir: <workdir>/eval/learning_curve.png; without either, no plot).',
  )
  user_errors.define_traceback_flag()


@user_errors.report_user_errors
def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  args = flags.FLAGS
  if not (args.workdir or args.history):
    raise app.UsageError('Give --workdir=W (its eval/history/) or --history=DIR.')
  workdir_eval = os.path.join(args.workdir, landmark_eval.EVAL_DIR) if args.workdir else None
  history, unreadable = read_history(args.history or os.path.join(workdir_eval, landmark_eval.HISTORY_DIR))
  if unreadable:
    print(f'Passed over (not readable metrics): {", ".join(unreadable)}', file=sys.stderr)
  print(table(history))
  output = args.output or (os.path.join(workdir_eval, 'learning_curve.png') if workdir_eval else None)
  if output:
    plot(history, output)
    print(f'Plot: {output}')


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
