"""bench.json read back: its goals and its table, one definition of each.

The benchmark (`benchmark.format_table`) prints them and the report
(`tables.render_speed`, `render_targets`) writes them into RESULTS.md, from
the same cells.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from occnet_jax import machine
from reproduction import cells
from reproduction import claims

HEADER = ('size', 'pipeline', 'mode', 'batch (cars x views)',
          'cars/s median (min-max)', 'ms/call', 'GFLOP/call',
          '% of ceiling', '% of ceiling timed beside', 'compile s',
          'buffers MiB', 'peak memory MiB')
# Under the table.
NOTE = ('Buffers: the compiled call\'s arguments, outputs and temporaries; '
        'peak memory: the device allocator\'s peak where the backend has '
        'one, else the process\'s peak RSS so far (it only grows down the '
        'table). Input pipeline: cars/s from the built TFDS training split '
        'through grain to a batch on the device, at the train steps\' batch; '
        'every size reads the same data, so it is one measurement, and '
        'above 1x it keeps up with the full train step.')


def row(record: Mapping[str, Any]) -> list[str]:
  """A measurement's cells, in the order of `HEADER`."""
  if record['timed']:
    rate = record['cars_per_second']
    speed = f'{rate["median"]:.1f} ({rate["min"]:.1f}-{rate["max"]:.1f})'
    call = f'{record["seconds"]["median"] * 1e3:.2f}'
    ceiling = cells.percent(record['fraction_of_ceiling'])
    # Benchmarks before the ceiling was timed beside each call have none,
    # and those before it bracketed each call have no range.
    beside = cells.percent(record.get('fraction_of_ceiling_beside'))
    if 'fraction_of_ceiling_beside_range' in record:
      low, high = record['fraction_of_ceiling_beside_range']
      beside += f' ({cells.percent(low)}-{cells.percent(high)})'
  else:
    speed = f'<= {record["cars_per_second_at_ceiling"]:.1f} (not run)'
    call = ceiling = beside = cells.EMPTY
  buffers = record['compiled_memory_bytes']
  device = record.get('device_memory') or {}
  peak = device.get('peak_bytes_in_use', record['peak_rss_bytes'])
  return [record['size'], record['pipeline'], record['mode'],
          f'{record["batch_cars"]} x {record["views_per_car"]}', speed, call,
          f'{record["flops_per_call"] / 1e9:.3f}', ceiling, beside,
          f'{record["compile_seconds"]:.1f}',
          cells.mib(buffers['argument'] + buffers['output']
                    + buffers['temp']), cells.mib(peak)]


INPUT_HEADER = ('size', 'input pipeline cars/s median (min-max)',
                'full train step cars/s', 'graph train step cars/s',
                'input / full step')


def input_rows(bench: Mapping[str, Any]) -> list[list[str]]:
  """Per size: the input pipeline's cars/s beside its train steps' rates.

  Every size reads the same data (the base config's), so the pipeline's
  rate is one measurement, repeated on each size's row; 'not run' without
  one (benchmarks before it, or run without a data dir).
  """
  pipeline = bench.get('input_pipeline')
  if pipeline:
    rate = pipeline['cars_per_second']
    speed = f'{rate["median"]:.1f} ({rate["min"]:.1f}-{rate["max"]:.1f})'
  else:
    speed = 'not run'
  steps = {}
  for record in bench['measurements']:
    if record['mode'] == 'train' and record['timed']:
      steps[record['size'], record['pipeline']] = (
          record['cars_per_second']['median'])
  rows = []
  for size in dict.fromkeys(record['size'] for record in bench['measurements']):
    full, graph = steps.get((size, 'full')), steps.get((size, 'graph'))
    rows.append([size, speed] + [cells.EMPTY if value is None else
                                 f'{value:.1f}' for value in (full, graph)] + [
        f'{pipeline["cars_per_second"]["median"] / full:.1f}x'
        if pipeline and full else cells.EMPTY])
  return rows


def summary(bench: Mapping[str, Any]) -> str:
  """The machine, its load, the wall time and the matmul ceiling."""
  info, ceiling = bench['machine'], bench['ceiling']
  return (f'Machine: {machine.describe(info)}, jax {info["jax"]} on '
          f'{info["jax_backend"]}; load average '
          f'{info["load_average_1min"]:.1f} at start, '
          f'{bench["load_average_1min_end"]:.1f} at end; '
          f'{bench["wall_seconds"]:.0f} s in all. Matmul ceiling '
          f'({ceiling["size"]}^2 float32): '
          f'{ceiling["flops_per_second"] / 1e9:.1f} GFLOP/s.')


def goal_measured(goal: Mapping[str, Any]) -> str:
  """What was measured of a goal of `evaluate_goals`, against the ceiling."""
  # Goals of benchmarks before efficiency goals have no quantity.
  fraction_goal = goal.get('quantity') == 'fraction_of_ceiling_beside'
  if goal['value'] is None:
    measured = cells.EMPTY
  elif fraction_goal:
    measured = f'{cells.percent(goal["value"])}%'
  else:
    measured = f'{goal["value"]:.1f}'
  notes = []
  if 'fraction_of_ceiling' in goal:
    notes.append(f'{cells.percent(goal["fraction_of_ceiling"])}% of ceiling')
  if 'fraction_of_ceiling_beside' in goal and not fraction_goal:
    notes.append(f'{cells.percent(goal["fraction_of_ceiling_beside"])}% of '
                 'the ceiling timed beside it')
  if 'required_fraction_of_ceiling' in goal:
    notes.append(f'needs {cells.percent(goal["required_fraction_of_ceiling"])}'
                 '% of the ceiling')
  return measured + (f' ({"; ".join(notes)})' if notes else '')


def bench_goals(bench: Mapping[str, Any]) -> list[dict[str, Any]]:
  """bench.json's goals, evaluated from its measurements if it has none."""
  if 'goals' in bench:
    return bench['goals']
  return evaluate_goals(bench['measurements'],
                        bench['ceiling']['flops_per_second'])


def _find(measurements: Sequence[Mapping[str, Any]],
          goal: claims.Goal) -> Mapping[str, Any] | None:
  for record in measurements:
    if (record['size'], record['pipeline'], record['mode'],
        record['batch_cars']) == (goal.size, goal.pipeline, goal.mode,
                                  goal.batch):
      return record
  return None


def evaluate_goals(measurements: Sequence[Mapping[str, Any]],
                   ceiling: float,
                   goals: Sequence[claims.Goal] = claims.SPEED_GOALS,
                   ) -> list[dict[str, Any]]:
  """Each goal with its measured value and status.

  Args:
    measurements: bench.json's records (`benchmark.benchmark_size`).
    ceiling: the machine's matmul FLOP/s.
    goals: the goals.

  Returns:
    Per goal: `name`, `target`, `quantity`, `value` (the goal's quantity;
    None when not measured), `status` ('met', 'missed' or 'not measured');
    throughput goals add `required_fraction_of_ceiling` (the target's
    FLOP/s over the ceiling: above 1, no code can meet it); measurement
    goals add `fraction_of_ceiling` and, where measured,
    `fraction_of_ceiling_beside`.
  """
  results = []
  for goal in goals:
    result = {'name': goal.name, 'target': goal.target,
              'quantity': goal.quantity, 'value': None,
              'status': 'not measured'}
    if not goal.size:
      compile_times = [r['compile_seconds'] for r in measurements
                       if r['mode'] == 'train']
      if compile_times:
        result['value'] = max(compile_times)
        result['status'] = ('met' if result['value'] < goal.target
                            else 'missed')
      results.append(result)
      continue
    record = _find(measurements, goal)
    throughput = goal.quantity == 'cars_per_second'
    if record is not None:
      if throughput:
        flops_per_car = record['flops_per_call'] / record['batch_cars']
        result['required_fraction_of_ceiling'] = (goal.target * flops_per_car
                                                  / ceiling)
      if record['timed']:
        result['fraction_of_ceiling'] = record['fraction_of_ceiling']
        if 'fraction_of_ceiling_beside' in record:
          result['fraction_of_ceiling_beside'] = record[
              'fraction_of_ceiling_beside']
        result['value'] = (record['cars_per_second']['median'] if throughput
                           else result.get('fraction_of_ceiling_beside'))
        if result['value'] is not None:
          result['status'] = ('met' if result['value'] >= goal.target
                              else 'missed')
      elif throughput and record['cars_per_second_at_ceiling'] < goal.target:
        # Even at the ceiling the FLOPs do not fit: missed without timing.
        result['status'] = 'missed'
    results.append(result)
  return results
