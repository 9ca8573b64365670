"""Writes a trained run's model as a small workdir to share: the generator's weights and the run's options.

  python -m landmarks_jax.export_model --workdir=runs/mocap --output=pretrained/humanoid_mocap [--step=N]

The output holds `config.json` and `checkpoints/<step>/` with the generator's variables only (no optimizer
states, no discriminator): a fraction of a training checkpoint. `evaluate` and `predict` read it as they read any
workdir, and a new run starts from its weights with `--config.resume_ckpt=<output>`. The options naming places
on this machine (data and weight folders) are cleared, so that the output works elsewhere. When the run was
evaluated at that step, its joint map (`eval/joint_map.npz`) is copied too, for `predict --keypoints` (else
`evaluate` on the output fits it).
"""

import os
import shutil
from typing import Sequence

from absl import app
from absl import flags

from landmarks_jax import user_errors
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.training import checkpoints
from landmarks_jax.training import config_checks
from landmarks_jax.training import logs

FLAGS = flags.FLAGS
# Options that name places on the machine that trained the run.
LOCAL_PATHS = (
  'data_dir',
  'save_path',
  'torch_home',
  'vgg19_path',
  'resume_ckpt',
  'resume_ckpt_D',
  'resume_ckpt_opt_G',
  'resume_ckpt_opt_D',
)


class ExportError(user_errors.UserError):
  """The output folder cannot take the export."""


def export(workdir: str, output: str, step: int | None = None) -> int:
  """Writes the generator of `step` (default: the latest) of `workdir` to `output`; returns the step."""
  if os.path.exists(output) and os.listdir(output):
    raise ExportError(f'{output} is not empty; pass a new folder as --output.')
  config = checkpoints.read_config(workdir)
  variables, step = landmark_eval.load_variables(workdir, step, config)
  for name in LOCAL_PATHS:
    if name in config:
      config[name] = ''
  store = checkpoints.Checkpoints(output, max_to_keep=1)
  try:
    store.save(
      step,
      {'generator': variables},
      {'exported_from': os.path.abspath(workdir), checkpoints.OPTIONS_KEY: config_checks.plain_config(config)},
    )
  finally:
    store.close()
  checkpoints.write_config(output, config)
  joint_map = os.path.join(workdir, landmark_eval.EVAL_DIR, landmark_eval.JOINT_MAP_FILE)
  if os.path.exists(joint_map) and landmark_eval.read_joint_map(workdir)['step'] == step:
    os.makedirs(os.path.join(output, landmark_eval.EVAL_DIR), exist_ok=True)
    shutil.copyfile(joint_map, os.path.join(output, landmark_eval.EVAL_DIR, landmark_eval.JOINT_MAP_FILE))
  return step


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  flags.DEFINE_string('workdir', None, "The trained run's folder.")
  flags.DEFINE_string('output', None, 'A new folder for the exported model.')
  flags.DEFINE_integer('step', None, 'Checkpoint step to export (default: the latest).')
  flags.mark_flags_as_required(['workdir', 'output'])
  user_errors.define_traceback_flag()


@user_errors.report_user_errors
def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logs.quiet_libraries()
  step = export(FLAGS.workdir, FLAGS.output, FLAGS.step)
  print(f'Step {step} of {FLAGS.workdir} -> {FLAGS.output}')


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
