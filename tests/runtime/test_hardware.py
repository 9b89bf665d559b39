"""The CPU's MFU peak: measured once per machine, then read back; or named."""

import json

from lm.runtime import hardware


def test_cpu_peak_is_measured_once_then_cached(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setenv("LM_CACHE_DIR", str(tmp_path))
  monkeypatch.delenv("LM_PEAK_FLOPS", raising=False)
  monkeypatch.setattr(
    hardware, "measured_matmul_flops", lambda: calls.append(1) or 100e9 * len(calls)
  )
  first, name = hardware.cpu_peak_flops("cpu")
  second, again = hardware.cpu_peak_flops("cpu")
  assert first == second == 100e9 and len(calls) == 1 and name == again
  assert "f32 matmul 100 GFLOP/s (measured " in name
  [entry] = json.loads((tmp_path / "cpu_peak_flops.json").read_text()).values()
  assert entry["flops"] == 100e9
  monkeypatch.setenv("LM_PEAK_FLOPS", "2.5e11")
  assert hardware.cpu_peak_flops("cpu") == (2.5e11, "cpu LM_PEAK_FLOPS 250 GFLOP/s")
  assert len(calls) == 1
