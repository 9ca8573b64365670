"""Mistakes in a user's input or setup, and how the commands report them: one message, no traceback.

Every error class whose message already names the file, option or step at fault and says what to do derives
from `UserError`. The commands run their `main` under `report_user_errors`: such an error prints as one line
(`Error: ...`) and exits with status 1; `--traceback` shows the whole traceback instead. Anything else is a bug
and keeps its traceback.
"""

import functools
import sys
from typing import Callable, Sequence

from absl import flags

EXIT_STATUS = 1


class UserError(Exception):
  """A mistake the user can fix; the message says where it is and how."""


def define_traceback_flag() -> None:
  """Defines --traceback (once per process), which makes a user error show its traceback."""
  if 'traceback' not in flags.FLAGS:
    flags.DEFINE_boolean(
      'traceback', False, 'Show the full traceback of an error in the input or the options, not just its message.'
    )


def traceback_requested() -> bool:
  """Whether the command line asked for the traceback of a user error (--traceback)."""
  return flags.FLAGS.is_parsed() and 'traceback' in flags.FLAGS and flags.FLAGS['traceback'].value


def report_user_errors(main: Callable[[Sequence[str]], None]) -> Callable[[Sequence[str]], None]:
  """Wraps a command's `main`: a UserError or a missing file becomes one line on stderr and exit status 1."""

  @functools.wraps(main)
  def wrapped(argv: Sequence[str]) -> None:
    try:
      main(argv)
    except (UserError, FileNotFoundError) as error:
      if traceback_requested():
        raise
      print(f'Error: {error}', file=sys.stderr, flush=True)
      sys.exit(EXIT_STATUS)

  return wrapped
