"""Kernels of an optimised XLA HLO module and the bytes each reads and writes at its boundary
(a bandwidth lower bound on its time), and its dots with their shapes, parsed from
`compiled.as_text()`. Used by `h100_hlo.py` and `cpu_breakdown.py`.
"""

import math
import re

_BYTES = {
  "pred": 1,
  "s8": 1,
  "u8": 1,
  "bf16": 2,
  "f16": 2,
  "s32": 4,
  "u32": 4,
  "f32": 4,
  "s64": 8,
  "u64": 8,
  "f64": 8,
}
_ARRAY = re.compile(r"\b([a-z]+\d*)\[([\d,]*)\]")
_INSTR = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) (\S+?)\((.*?)\)(?:, |$)(.*)$")
_PARTIAL_READS = ("gather", "slice", "dynamic-slice")  # ops that read part of their operand


def _ints(text: str) -> tuple[int, ...]:
  """'768,128' -> (768, 128); '' -> ()."""
  return tuple(int(d) for d in text.split(",") if d)


def shape_bytes(shape: str) -> int:
  """Bytes of an HLO shape string, tuples summed."""
  return sum(math.prod(_ints(dims)) * _BYTES.get(dtype, 0) for dtype, dims in _ARRAY.findall(shape))


def computations(hlo_text: str) -> dict[str, list[tuple]]:
  """Each computation's instructions as (name, shape, opcode, operand names), by name."""
  comps, current = {}, None
  for line in hlo_text.splitlines():
    head = re.match(r"^(?:ENTRY )?%(\S+) ", line)
    if head and line.rstrip().endswith("{"):
      current = comps.setdefault(head.group(1), [])
    elif current is not None and (m := _INSTR.match(line)):
      name, shape, opcode, operands, _ = m.groups()
      refs = [operands] if opcode == "parameter" else re.findall(r"%([\w.\-]+)", operands)
      current.append((name, shape, opcode, refs))
  return comps


def parameter_reads(body: list[tuple]) -> dict[int, int]:
  """Bytes a fused computation reads of each parameter that it only gathers or slices from
  (through bitcasts); other parameters are read whole and are not listed."""
  users = {}
  for name, shape, opcode, operands in body:
    for o in operands:
      users.setdefault(o, []).append((name, shape, opcode))
  reads = {}
  for name, _, opcode, operands in body:
    if opcode != "parameter":
      continue
    frontier, total, partial = [name], 0, True
    while frontier and partial:
      for user, user_shape, user_op in users.get(frontier.pop(), []):
        if user_op == "bitcast":
          frontier.append(user)
        elif user_op in _PARTIAL_READS:
          total += shape_bytes(user_shape)
        else:
          partial = False
    if partial:
      reads[int(operands[0])] = total
  return reads


def kernels(hlo_text: str) -> list[dict]:
  """The entry computation's kernels: fusions, custom calls and copies, with boundary bytes
  (outputs plus operands, an operand that is only gathered or sliced counted by what is read)."""
  comps = computations(hlo_text)
  entry = hlo_text[hlo_text.index("\nENTRY") :]
  sizes, out = {}, []
  for line in entry.splitlines()[1:]:
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, operands, attrs = m.groups()
    sizes[name] = shape_bytes(shape)
    if opcode not in ("fusion", "custom-call", "copy"):
      continue
    used = re.findall(r"%([\w.\-]+)", operands)
    called = re.search(r"calls=%([\w.\-]+)", attrs)
    reads = parameter_reads(comps.get(called.group(1), [])) if called else {}
    kind = re.search(r"kind=(\w+)", attrs)
    target = re.search(r'custom_call_target="([^"]+)"', attrs)
    epilogue = re.search(r'"epilogue":"(\w+)"', attrs)
    op_name = re.search(r'op_name="([^"]+)"', attrs)
    label = target.group(1) if target else kind.group(1) if kind else opcode
    if epilogue:
      label += f" {epilogue.group(1)}"
    operand_bytes = {u: reads.get(i, sizes.get(u, 0)) for i, u in enumerate(used)}
    out.append(
      {
        "kind": label,
        "shape": re.sub(r"\{[^}]*\}", "", shape)[:70],
        "op": op_name.group(1).split("/")[-1] if op_name else "",
        "bytes": sizes[name] + sum(operand_bytes.values()),
      }
    )
  return out


_NUMPY_DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16", "f64": "float64"}


def _dims(attrs: str, key: str) -> tuple[int, ...]:
  m = re.search(key + r"=\{([\d,]*)\}", attrs)
  return _ints(m.group(1)) if m else ()


def dots(hlo_text: str) -> list[dict]:
  """Every dot of a module: its operands' dtype (numpy's name) and dims, and its dimension numbers
  (((lhs contracting, rhs contracting), (lhs batch, rhs batch)), as `lax.dot_general` takes)."""
  out, shapes = [], {}
  for line in hlo_text.splitlines():
    if line.rstrip().endswith("{"):
      shapes = {}
    m = _INSTR.match(line)
    if not m:
      continue
    name, shape, opcode, operands, attrs = m.groups()
    shapes[name] = _ARRAY.search(shape)
    if opcode != "dot":
      continue
    lhs, rhs = (shapes[u] for u in re.findall(r"%([\w.\-]+)", operands))
    out.append(
      {
        "dtype": _NUMPY_DTYPES.get(lhs.group(1), lhs.group(1)),
        "lhs": _ints(lhs.group(2)),
        "rhs": _ints(rhs.group(2)),
        "dimension_numbers": (
          (_dims(attrs, "lhs_contracting_dims"), _dims(attrs, "rhs_contracting_dims")),
          (_dims(attrs, "lhs_batch_dims"), _dims(attrs, "rhs_batch_dims")),
        ),
      }
    )
  return out
