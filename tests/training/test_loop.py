import dataclasses
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm.data import pipeline
from lm.model import config as model_config
from lm.model.config import ExecutionConfig
from lm.runs import metrics, run_files
from lm.runtime import sharding
from lm.scaling import results
from lm.training import config_checks, experiment, loop
from lm.training import step as step_lib


def _run(config, workdir, mesh=None):
  return loop.train_and_evaluate(config, str(workdir), mesh=mesh)


def test_tiny_model_overfits_one_batch(tiny_config):
  tiny_config.model.dropout = 0.0
  tiny_config.optim.learning_rate = 3e-3
  tiny_config.optim.weight_decay = 0.0
  tiny_config.optim.schedule = "constant"
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  built = experiment.build(tiny_config, mesh)
  state = jax.jit(built.layout.init_fn)(jax.random.key(0))
  step = jax.jit(
    step_lib.make_train_step(built.layout.graphdef, built.layout.tx, built.layout.schedule, False)
  )
  ds = pipeline.window_batches(built.data.splits["train"], 16, 8, shuffle_seed=0, repeat=True)
  batch = {"tokens": jnp.asarray(ds[0]["tokens"])}
  losses = []
  for _ in range(150):
    state, m = step(state, batch)
    losses.append(float(m["loss"]))
  assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


@pytest.fixture
def busy_machine():
  """Every core kept busy by another process while the test runs."""
  hogs = [
    subprocess.Popen([sys.executable, "-c", "while True: pass"])
    for _ in range(len(os.sched_getaffinity(0)))
  ]
  yield
  for h in hogs:
    h.kill()
    h.wait()


# The 2x2x2 scanned layout once failed on a loaded machine: it runs with every core contended.
# The 1x4x2 one trains the modern blocks (KV heads and SwiGLU split over `tensor`) with a z-loss
# and Muon.
@pytest.mark.parametrize(
  "layout",
  [
    pytest.param(
      {"data": 2, "fsdp": 2, "tensor": 2, "scan_layers": True, "busy": True},
      marks=pytest.mark.slow,  # holds every core while it runs
    ),
    {"data": 8, "fsdp": 1, "tensor": 1},
    {"data": 1, "fsdp": 4, "tensor": 2, "llama": True},
  ],
)
def test_sharded_training_matches_one_device(tiny_config, tmp_path, layout, request):
  tiny_config.train.steps = 3
  tiny_config.train.eval_every = 100
  tiny_config.execution.scan_layers = layout.pop("scan_layers", False)
  if layout.pop("llama", False):
    m = tiny_config.model
    m.position, m.norm, m.mlp, m.num_kv_heads, m.qk_norm = "rotary", "rmsnorm", "swiglu", 2, True
    m.use_bias, m.tie_embeddings = False, False
    tiny_config.train.z_loss = 1e-4
    tiny_config.optim.name, tiny_config.optim.learning_rate = "muon", 0.02
  if layout.pop("busy", False):  # the same equality with the cores contended
    request.getfixturevalue("busy_machine")
  one = _run(tiny_config, tmp_path / "one", sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  for axis, size in layout.items():
    tiny_config.mesh[axis] = size
  many = _run(tiny_config, tmp_path / "many", sharding.make_mesh(tiny_config.mesh))
  assert many["state"].params["embed"].sharding.mesh.size == 8
  # Both ran every step (a run that stopped early reports a loss of an earlier step).
  assert one["step"] == many["step"] == 3 and one["preempted"] is many["preempted"] is None
  one_curve, many_curve = _losses(tmp_path / "one"), _losses(tmp_path / "many")
  assert [s for s, _ in many_curve] == [s for s, _ in one_curve] == [1, 2, 3]
  rows = metrics.read_metrics(str(tmp_path / "many"))
  assert any("z_loss" in r for r in rows) == (tiny_config.train.z_loss > 0)
  np.testing.assert_allclose([x for _, x in many_curve], [x for _, x in one_curve], rtol=1e-5)
  np.testing.assert_allclose(many["train_loss"], one["train_loss"], rtol=1e-5)
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
    sharding.host_copy(many["state"].params),
    sharding.host_copy(one["state"].params),
  )


def test_resume_is_bitwise_equal_to_a_straight_run(tiny_config, tmp_path):
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  straight = _run(tiny_config, tmp_path / "straight", mesh)
  tiny_config.train.stop_after_steps = 4  # the first half, then a restart in the same workdir
  first = _run(tiny_config, tmp_path / "resumed", mesh)
  assert first["step"] == 4
  resumed = _run(tiny_config, tmp_path / "resumed", mesh)
  assert resumed["start_step"] == 4 and resumed["step"] == 8
  assert resumed["train_loss"] == straight["train_loss"]
  assert resumed["eval_loss"] == straight["eval_loss"]
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(resumed["state"].params),
    sharding.host_copy(straight["state"].params),
  )
  for a, b in zip(_losses(tmp_path / "resumed"), _losses(tmp_path / "straight")):
    assert a == b


def test_several_steps_per_dispatch_are_bitwise_single_steps(tiny_config, tmp_path):
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  single = _run(tiny_config, tmp_path / "single", mesh)
  # 8 steps, evaluation and checkpoint every 4, step 6 kept: dispatches of 3, 1, 1, 1, 1, 1.
  tiny_config.train.steps_per_dispatch = 3
  tiny_config.train.keep_steps = (6,)
  scanned = _run(tiny_config, tmp_path / "scanned", mesh)
  assert sorted(os.listdir(tmp_path / "scanned" / "checkpoints")) == ["4", "6", "8"]
  assert scanned["step"] == 8 and scanned["eval_loss"] == single["eval_loss"]
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(scanned["state"].params),
    sharding.host_copy(single["state"].params),
  )
  assert _losses(tmp_path / "scanned") == _losses(tmp_path / "single")
  assert [s for s, _ in _losses(tmp_path / "scanned")] == list(range(1, 9))


def test_the_metrics_are_in_step_order_when_the_last_dispatch_holds_a_logged_step(
  tiny_config, tmp_path
):
  # Dispatches 1-3, 4-6, 7-9: step 8 is logged, step 9 evaluated; a sweep reads the last step.
  tiny_config.train.steps, tiny_config.train.steps_per_dispatch = 9, 3
  tiny_config.train.log_every, tiny_config.train.eval_every = 2, 100
  out = _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  steps = [row["step"] for row in metrics.read_metrics(str(tmp_path))]
  assert out["step"] == 9 and steps == sorted(steps) and steps[-1] == 9
  assert results.logged_summary(str(tmp_path))["step"] == 9


def test_rows_of_one_dispatch_share_the_rate_measured_over_it(tiny_config, tmp_path):
  # Every step logged, 4 steps a dispatch: rows 5-8 end together (1-4 compile, unmeasured).
  # Each row once took the time since the row before, ~0 within a dispatch: MFU up to 1194%.
  tiny_config.train.steps, tiny_config.train.steps_per_dispatch = 8, 4
  tiny_config.train.log_every, tiny_config.train.eval_every = 1, 100
  _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  rates = {r["step"]: r for r in metrics.read_metrics(str(tmp_path)) if "tokens_per_s" in r}
  assert sorted(rates) == [5, 6, 7, 8]
  for field in ("step_time_s", "tokens_per_s", "mfu"):
    assert len({rates[s][field] for s in rates}) == 1, field


def _losses(workdir):
  rows = metrics.read_metrics(str(workdir))
  return sorted((r["step"], r["loss"]) for r in rows if "loss" in r)


def test_train_step_compiles_once_and_writes_metrics(tiny_config, tmp_path):
  out = _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  assert out["train_step_compiles"] == 1
  steps = [s for s, _ in _losses(tmp_path)]
  assert steps == list(range(1, 9))
  assert list((tmp_path / "tb").iterdir())
  assert (tmp_path / "char_vocab.json").exists() and (tmp_path / "model.json").exists()
  status = run_files.read_status(str(tmp_path))
  assert (
    status["status"] == run_files.FINISHED and status["step"] == 8 and status["pid"] == os.getpid()
  )


def test_nan_loss_stops_with_step_and_last_good_checkpoint(tiny_config, tmp_path):
  tiny_config.optim.learning_rate = 1e30
  tiny_config.optim.grad_clip_norm = 0.0
  tiny_config.optim.warmup_steps = 0
  tiny_config.train.checkpoint_every = 1
  tiny_config.train.steps = 50
  with pytest.raises(loop.NonFiniteLossError, match=r"at step \d+; last good checkpoint: step \d+"):
    _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  status = run_files.read_status(str(tmp_path))
  assert status["status"] == run_files.FAILED
  assert status["detail"].startswith("NonFiniteLossError: loss nan")


# Each must give the same step as the plain one: every execution field but the dtypes and the
# attention kernel (on a CPU every choice is XLA's), and gradient accumulation. A sweep's run
# identity leaves the execution out. Levers that touch different parts of the step share a
# compilation (a change is named when it fails).
_SPEED_LEVERS = (
  {"grad_accum_steps": 2, "remat": "dots"},
  {"fused_cross_entropy": False, "separate_qkv": True, "one_pass_logsumexp": True},
  {"remat": "full", "scan_layers": True},
)
_NOT_LEVERS = ("param_dtype", "compute_dtype", "logits_dtype", "attention_impl")


def test_speed_levers_leave_the_step_unchanged(tiny_config):
  tiny_config.model.dropout = 0.0
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  built = experiment.build(tiny_config, mesh)
  batch = {
    "tokens": jnp.asarray(
      pipeline.window_batches(built.data.splits["train"], 16, 8, shuffle_seed=0, repeat=True)[0][
        "tokens"
      ]
    )
  }

  def one_step(ex, grad_accum_steps=1):
    layout = step_lib.state_layout(built.model_cfg, ex, tiny_config.optim, 8, mesh)
    state = jax.jit(layout.init_fn)(jax.random.key(0))
    fn = step_lib.make_train_step(
      layout.graphdef, layout.tx, layout.schedule, False, grad_accum_steps, step_lib.token_loss(ex)
    )
    return jax.jit(fn)(state, batch)

  tested = {name for change in _SPEED_LEVERS for name in change}
  assert set(model_config.fields_of(ExecutionConfig)) - set(_NOT_LEVERS) <= tested
  ref_state, ref = one_step(built.layout.execution)
  for change in _SPEED_LEVERS:
    ex_change = {k: v for k, v in change.items() if k != "grad_accum_steps"}
    state, out = one_step(
      dataclasses.replace(built.layout.execution, **ex_change), change.get("grad_accum_steps", 1)
    )
    np.testing.assert_allclose(out["loss"], ref["loss"], rtol=1e-6, err_msg=str(change))
    np.testing.assert_allclose(out["grad_norm"], ref["grad_norm"], rtol=1e-5, err_msg=str(change))
    jax.tree.map(
      lambda a, b, err=str(change): np.testing.assert_allclose(a, b, 1e-5, 1e-7, err_msg=err),
      state.params,
      ref_state.params,
    )


def test_encoder_mlm_trains_and_resumes_bitwise(tiny_config, tmp_path):
  tiny_config.model.kind = "encoder"
  tiny_config.model.norm_position = "post"
  tiny_config.model.activation = "gelu"
  mesh = sharding.make_mesh(tiny_config.mesh, jax.devices()[:1])
  straight = _run(tiny_config, tmp_path / "straight", mesh)
  assert np.isfinite(straight["eval_loss"]) and 0 <= straight["eval_accuracy"] <= 1
  assert "mlm_head" in straight["state"].params
  tiny_config.train.stop_after_steps = 4
  _run(tiny_config, tmp_path / "resumed", mesh)
  resumed = _run(tiny_config, tmp_path / "resumed", mesh)
  assert resumed["train_loss"] == straight["train_loss"]
  jax.tree.map(
    np.testing.assert_array_equal,
    sharding.host_copy(resumed["state"].params),
    sharding.host_copy(straight["state"].params),
  )


def test_non_finite_parameters_are_never_saved(tiny_config, tmp_path):
  # eps=0: a parameter with a zero gradient (the rows of positions 16-31, which a context of
  # 16 never uses) gets 0/0 = NaN from Adam after step 1, while its loss and gradient are finite.
  tiny_config.model.max_seq_len = 32
  tiny_config.optim.eps = 0.0
  tiny_config.optim.warmup_steps = 0
  tiny_config.train.checkpoint_every = 1
  with pytest.raises(
    loop.NonFiniteLossError,
    match=r"parameters are not finite after step 1 \(not saved\); last good "
    r"checkpoint: none",
  ):
    _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  assert not any((tmp_path / "checkpoints").iterdir())


def test_stop_after_steps_is_reported_as_a_preemption(tiny_config, tmp_path):
  tiny_config.train.stop_after_steps = 3
  out = _run(tiny_config, tmp_path, sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  assert out["step"] == 3 and out["preempted"] == "config.train.stop_after_steps"
  status = run_files.read_status(str(tmp_path))
  assert (status["status"], status["step"], status["detail"]) == (
    run_files.PREEMPTED,
    3,
    "config.train.stop_after_steps",
  )
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [3]


@pytest.mark.parametrize(
  "chars, message",
  [
    # 12 characters: a train split of 10 tokens. It failed with a traceback once the run's
    # checkpoint folder and status were written.
    (
      12,
      "the train split (config.data.train_split) has 10 tokens, fewer than one window of "
      "config.data.seq_len + 1 = 17 tokens; lower config.data.seq_len to 9, or give it more data",
    ),
    # 300 characters: a validation split of 2 windows. It failed at the first evaluation,
    # after the training, without the last checkpoint.
    (
      300,
      "the validation split (config.data.eval_split) has 44 tokens: 2 windows of "
      "config.data.seq_len + 1 = 17 tokens, fewer than one batch (config.data.batch_size=8); "
      "lower config.data.batch_size to 2 or config.data.seq_len to 5, or raise "
      "config.data.validation_fraction",
    ),
  ],
)
def test_a_split_too_small_for_a_batch_fails_before_anything_is_written(
  tiny_config, tmp_path, chars, message
):
  corpus = tmp_path / "short.txt"
  corpus.write_text(pathlib.Path(tiny_config.data.path).read_text()[:chars])
  tiny_config.data.path = str(corpus)
  tiny_config.train.eval_every = tiny_config.train.steps  # the first evaluation after training
  with pytest.raises(config_checks.ConfigError) as failed:
    _run(tiny_config, tmp_path / "run", sharding.make_mesh(tiny_config.mesh, jax.devices()[:1]))
  assert str(failed.value) == message
  assert not (tmp_path / "run").exists()
