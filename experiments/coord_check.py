"""μP's coordinate check: mean |activation| per layer vs width after a few Adam steps, under the
standard parametrization and under μP (lm/scaling/coord_check.py), as a plot.

    python -m experiments.coord_check --out=coord_check.png [--widths=64,128,256,512,1024] \\
        [--block=llama] [--json=coord_check.json]

Flat lines under μP and rising ones under the standard parametrization are what a correct
implementation shows; a dropped multiplier makes some μP line rise. `--block=llama` checks the
modern block (RMSNorm, SwiGLU, grouped-query attention, QK-norm, untied head).
"""

import dataclasses
import json

from absl import flags

from experiments.configs import base
from lm import cli, logs
from lm.model.config import TransformerConfig
from lm.scaling import coord_check, plots

_WIDTHS = flags.DEFINE_list(
  "widths", ["64", "128", "256", "512", "1024"], "d_model values; the first is μP's base width."
)
_LAYERS = flags.DEFINE_integer("num_layers", 2, "Depth.")
_HEADS = flags.DEFINE_integer("num_heads", 4, "Heads at every width (head_dim grows).")
_BLOCK = flags.DEFINE_enum("block", "gpt2", ["gpt2", "llama"], "The block's recipe.")
_STEPS = flags.DEFINE_integer("steps", 4, "Adam steps on one batch.")
_LR = flags.DEFINE_float("learning_rate", 3e-3, "Adam's learning rate (constant).")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Sequences in the batch.")
_SEQ = flags.DEFINE_integer("seq_len", 16, "Tokens per sequence.")
_OUT = flags.DEFINE_string("out", "coord_check.png", "The plot.")
_JSON = flags.DEFINE_string("json", None, "Also write the sizes here.")

LLAMA = {
  "norm": "rmsnorm",
  "mlp": "swiglu",
  "num_kv_heads": 2,
  "qk_norm": True,
  "use_bias": False,
  "tie_embeddings": False,
}


def main(argv):
  del argv
  logs.quiet_libraries()
  widths = [int(w) for w in _WIDTHS.value]
  family = TransformerConfig(
    vocab_size=64,
    num_layers=_LAYERS.value,
    num_heads=_HEADS.value,
    d_model=widths[0],
    mlp_dim=4 * widths[0],
    max_seq_len=_SEQ.value,
    position="rotary",
    base_width=widths[0],
    base_head_dim=widths[0] // _HEADS.value,
    **(LLAMA if _BLOCK.value == "llama" else {}),
  )
  optim_cfg = base.get_config().optim
  optim_cfg.update(
    schedule="constant",
    warmup_steps=0,
    learning_rate=_LR.value,
    weight_decay=0.0,
    grad_clip_norm=0.0,
  )
  results = {}
  for name in ("standard", "mup"):
    results[name] = coord_check.coordinate_check(
      dataclasses.replace(family, parametrization=name),
      optim_cfg,
      widths,
      steps=_STEPS.value,
      batch_size=_BATCH.value,
      seq_len=_SEQ.value,
    )
    last = results[name]
    for layer in last[widths[0]][-1]:
      growth = last[widths[-1]][-1][layer] / last[widths[0]][-1][layer]
      print(f"{name:<9} {layer:<12} x{growth:7.2f} from width {widths[0]} to {widths[-1]}")
  plots.coord_check(results, _OUT.value)
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump(results, f, indent=1)
  print(f"wrote {_OUT.value}")


def run() -> None:
  """The `lm-coord-check` command."""
  cli.run(main, __name__)


if __name__ == "__main__":
  run()
