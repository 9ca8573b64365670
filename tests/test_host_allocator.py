"""glibc's malloc kept from unmapping freed blocks where JAX computes on the CPU; a user's own settings kept."""

import os
import subprocess
import sys

import pytest

from landmarks_jax.cpu import host_allocator

CPU = {'JAX_PLATFORMS': 'cpu'}


class RecordingLibc:
  """Stands in for glibc: records mallopt's calls and accepts them."""

  def __init__(self):
    self.calls = []

  def mallopt(self, parameter, value):
    self.calls.append((parameter.value, value.value))
    return 1


def test_applies_one_arena_no_mappings_no_trimming_on_the_cpu():
  libc = RecordingLibc()
  assert host_allocator.configure(CPU, libc)
  assert libc.calls == [
    (host_allocator.M_ARENA_MAX, 1),
    (host_allocator.M_MMAP_MAX, 0),
    (host_allocator.M_TRIM_THRESHOLD, -1),
  ]


@pytest.mark.parametrize(
  'environ',
  [
    dict(CPU, MALLOC_ARENA_MAX='4'),
    dict(CPU, GLIBC_TUNABLES='glibc.malloc.hugetlb=1'),
    dict(CPU, LD_PRELOAD='/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'),
    {'JAX_PLATFORMS': 'cuda'},
    {'JAX_PLATFORMS': 'cuda,cpu'},
  ],
)
def test_leaves_malloc_alone_where_the_user_or_the_platform_says_so(environ):
  libc = RecordingLibc()
  assert not host_allocator.configure(environ, libc)
  assert libc.calls == [] and host_allocator.reason_to_skip(environ)


def test_a_failing_mallopt_is_reported():
  class Refusing(RecordingLibc):
    def mallopt(self, parameter, value):
      super().mallopt(parameter, value)
      return 0

  assert not host_allocator.configure(CPU, Refusing())


# Faults while writing a fresh 768 MiB block, after one as large was written and freed, in a process that
# imported the package and its commands (argv[1] 'import'), or that applied a command's process settings
# (argv[1] 'apply'). Kept, the block is the freed one and its pages are already there.
FAULTS_ON_REUSE = r"""
import ctypes, importlib, resource, sys
if sys.argv[1] == 'import':
  for module in ('landmarks_jax', 'landmarks_jax.main', 'landmarks_jax.evaluate', 'landmarks_jax.predict',
                 'landmarks_jax.bench.step_benchmark', 'landmarks_jax.training.train'):
    importlib.import_module(module)
else:
  from landmarks_jax.cpu import process_settings
  process_settings.apply()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
size = 768 << 20
block = libc.malloc(ctypes.c_size_t(size))
ctypes.memset(block, 1, size)
libc.free(ctypes.c_void_p(block))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = libc.malloc(ctypes.c_size_t(size))
ctypes.memset(block, 2, size)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults_on_reuse(apply: bool, **variables) -> int:
  environ = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_') and k != 'GLIBC_TUNABLES'}
  result = subprocess.run(
    [sys.executable, '-c', FAULTS_ON_REUSE, 'apply' if apply else 'import'],
    env=dict(environ, JAX_PLATFORMS='cpu', **variables),
    capture_output=True,
    text=True,
    check=True,
  )
  return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux') or not os.confstr('CS_GNU_LIBC_VERSION'), reason='glibc only')
def test_a_command_keeps_a_freed_large_block_but_an_import_leaves_malloc_as_it_was():
  # glibc's defaults map the block afresh: a fault per page (at least one per 2 MiB huge page).
  assert faults_on_reuse(apply=False) >= 384
  assert faults_on_reuse(apply=True) < 64
  assert faults_on_reuse(apply=True, MALLOC_ARENA_MAX='8') >= 384  # a user's own setting wins
