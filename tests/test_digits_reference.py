"""The benchmark figures packaged with diffusion_lib (``diffusion_lib/_data/digits_reference.json``):
they equal the benchmark's own result files, and a retrained checkpoint is refused, not shown."""

import json
from pathlib import Path

import pytest

from diffusion_lib.eval.digits import load_digits_reference

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = {"ddpm_digits.pt": "digits_results.json", "compare_hybrid_cosine.pt": "digits_results_hybrid_cosine.json"}


@pytest.mark.parametrize("checkpoint", sorted(BENCHMARKS))
def test_packaged_copy_equals_the_benchmark_files(checkpoint):
    bench = json.loads((ROOT / "benchmarks" / BENCHMARKS[checkpoint]).read_text(encoding="utf-8"))
    ref = load_digits_reference(checkpoint)  # also verifies the checkpoint and classifier hashes
    assert {k: ref[k] for k in bench} == bench
    assert ref["num_samples"] == 447 and ref["samplers"][0]["method"] == "ddpm"
    assert "benchmarks/digits.py" in ref["regenerate"]


def test_a_retrained_checkpoint_is_refused(tmp_path, monkeypatch):
    (tmp_path / "ddpm_digits.pt").write_bytes(b"another model")
    monkeypatch.setenv("DIFFUSION_BOOK_CHECKPOINTS", str(tmp_path))
    with pytest.raises(ValueError, match="another version of ddpm_digits.pt.*Regenerate"):
        load_digits_reference("ddpm_digits.pt")
    assert load_digits_reference("ddpm_digits.pt", verify=False)["T"] == 1000


def test_unknown_checkpoint_names_the_known_ones():
    with pytest.raises(ValueError, match="compare_hybrid_cosine.pt"):
        load_digits_reference("no_such_model.pt")
