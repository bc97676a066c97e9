"""Shared pytest set-up: fake devices and fresh random seeds.

Four fake CPU devices are configured before JAX initialises its backend, so
that data-parallel code is tested as it runs on a multi-device host.
Single-device code is unaffected: it runs on the first device. Tests draw
fresh random inputs every run; the seed is printed so that a failure
replays: `OCCNET_TEST_SEED=<seed> pytest <test>` fixes every seed to it.
`OCCNET_TEST_SEEDS=<start>:<count> pytest <tests>` soaks the tests that draw
a `module_seed` over the seeds start, ..., start + count - 1 (each seed
builds a module's fixtures once; a failing test's id names its seed).
"""

import os

import jax
import numpy as np
import pytest

jax.config.update('jax_num_cpu_devices', 4)


def _draw_seed() -> int:
  """$OCCNET_TEST_SEED when set (to replay a failure), else a fresh seed."""
  fixed = os.environ.get('OCCNET_TEST_SEED')
  if fixed is not None:
    return int(fixed)
  return int(np.random.SeedSequence().entropy % 2**32)


@pytest.fixture
def seed() -> int:
  """A fresh random seed per test, printed so that a failure can be replayed."""
  value = _draw_seed()
  print(f'seed = {value}')  # Shown by pytest when the test fails.
  return value


def _soak_seeds() -> list[int]:
  """The seeds $OCCNET_TEST_SEEDS=<start>:<count> names, else none."""
  spec = os.environ.get('OCCNET_TEST_SEEDS')
  if not spec:
    return []
  start, count = map(int, spec.split(':'))
  return list(range(start, start + count))


def pytest_generate_tests(metafunc):
  """Runs the tests that use `module_seed` once per soaked seed."""
  seeds = _soak_seeds()
  if seeds and 'module_seed' in metafunc.fixturenames:
    metafunc.parametrize('module_seed', seeds, indirect=True, scope='module',
                         ids=[f'module_seed={s}' for s in seeds])


@pytest.fixture(scope='module')
def module_seed(request) -> int:
  """A fresh random seed shared by a module's fixtures, printed.

  Under $OCCNET_TEST_SEEDS the seed is the soaked one of this run instead.
  """
  value = getattr(request, 'param', None)
  if value is None:
    value = _draw_seed()
  print(f'module seed = {value}')
  return value


@pytest.fixture
def rng(seed) -> np.random.Generator:
  """A numpy generator seeded by `seed`."""
  return np.random.default_rng(seed)
