"""Packages import only downward: library < data < reproduction < launch.

`occnet_jax` (the library) may import none of the others, `data_prep` only
the library, `reproduction` both, and the `launch` entry points anything.
Every import counts, also those inside functions and
`importlib.import_module('<package>...')` calls with a literal name. Tests
(`test_*.py`, `*_test.py`) may import anything.
"""

import ast
import os

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lowest first: a package may import those at or before its own position.
LAYERS = ('occnet_jax', 'data_prep', 'reproduction', 'launch')


def is_test(path: str) -> bool:
  name = os.path.basename(path)
  return name.startswith('test_') or name.endswith('_test.py')


def imported_names(tree: ast.AST) -> list[tuple[int, str, str]]:
  """(line, module, statement) for every import of `tree`, not relative ones."""
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found += [(node.lineno, alias.name, ast.unparse(node))
                for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and not node.level:
      found.append((node.lineno, node.module, ast.unparse(node)))
    elif (isinstance(node, ast.Call) and node.args
          and isinstance(node.func, ast.Attribute)
          and node.func.attr == 'import_module'):
      name = node.args[0]
      # f'data_prep.{name}' names its package in its first literal part.
      if isinstance(name, ast.JoinedStr) and name.values:
        name = name.values[0]
      if isinstance(name, ast.Constant) and isinstance(name.value, str):
        found.append((node.lineno, name.value, ast.unparse(node)))
  return found


def violations(root: str, layers: tuple[str, ...] = LAYERS) -> list[str]:
  """'file:line: `statement`: ...' for each upward import under `root`."""
  rank = {layer: position for position, layer in enumerate(layers)}
  found = []
  for layer in layers:
    for directory, _, files in os.walk(os.path.join(root, layer)):
      for file in sorted(files):
        path = os.path.join(directory, file)
        if not file.endswith('.py') or is_test(path):
          continue
        with open(path) as source:
          tree = ast.parse(source.read(), filename=path)
        for line, module, statement in imported_names(tree):
          top = module.split('.')[0]
          if rank.get(top, -1) > rank[layer]:
            found.append(f'{os.path.relpath(path, root)}:{line}: `{statement}`'
                         f': {layer} imports {top}, a higher layer')
  return found


def test_no_layer_imports_a_higher_one():
  assert not violations(REPOSITORY), '\n'.join(violations(REPOSITORY))


@pytest.mark.parametrize('statement,higher', [
    ('from data_prep import records', 'data_prep'),
    ('import reproduction.runs', 'reproduction'),
    ('def f():\n  import launch.train', 'launch'),
    ('import importlib\nimportlib.import_module(f"data_prep.{name}")',
     'data_prep'),
])
def test_an_upward_import_is_named(tmp_path, statement, higher):
  package = tmp_path / 'occnet_jax' / 'sub'
  package.mkdir(parents=True)
  (package / 'module.py').write_text('import os\n' + statement + '\n')
  # Downward imports and tests are allowed.
  (tmp_path / 'launch').mkdir()
  (tmp_path / 'launch' / 'main.py').write_text('import occnet_jax\n')
  (package / 'module_test.py').write_text(statement + '\n')
  found = violations(str(tmp_path))
  line = statement.count('\n') + 2
  assert len(found) == 1, found
  path = os.path.join('occnet_jax', 'sub', 'module.py')
  last = ast.unparse(ast.parse(statement.splitlines()[-1].strip()))
  assert found[0].startswith(f'{path}:{line}: `{last}')
  assert found[0].endswith(f': occnet_jax imports {higher}, a higher layer')
