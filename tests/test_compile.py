"""`--compile` (torch.compile with inductor's freezing): the same restoration as eager, and an
adapter swap after compiling is seen (frozen code holds the weights as constants)."""
import numpy as np
import pytest
import torch

from colora.adapters import attach_adapter, merge_adapter, set_adapter
from colora.archs import build_arch
from colora.errors import ColoraError
from colora.inference.runtime import TorchRunner, cxx_compiler
from tests.conftest import TINY_NAFNET, randomize_layer_scales

needs_cxx = pytest.mark.skipif(cxx_compiler() is None, reason="torch.compile on CPU needs a C++ compiler")


def two_adapter_model():
    torch.manual_seed(0)
    model = randomize_layer_scales(build_arch(TINY_NAFNET), seed=1).eval()
    for name in ("a", "b"):
        attach_adapter(model, {"method": "lora", "rank": 2}, name=name)
    with torch.no_grad():
        for p in model.colora_adapters.parameters():
            p.normal_(0, 0.1)
    merge_adapter(model)
    return model


@needs_cxx
@pytest.mark.filterwarnings("ignore")
def test_frozen_compile_matches_eager_and_follows_an_adapter_swap():
    compiled_model, eager_model = two_adapter_model(), two_adapter_model()
    compiled = TorchRunner(compiled_model, "fp32", compile=True)
    eager = TorchRunner(eager_model, "fp32")
    assert compiled.frozen
    x = torch.rand(1, 3, 32, 32)
    outs = {}
    for name in ("a", "b", "a"):
        set_adapter(compiled_model, name)
        set_adapter(eager_model, name)
        got, want = compiled(x), eager(x)
        assert torch.allclose(got, want, atol=1e-5), name
        outs.setdefault(name, got)
    assert (outs["a"] - outs["b"]).abs().max() > 1e-3  # the swap changed the output: it was seen


@needs_cxx
@pytest.mark.filterwarnings("ignore")
def test_restorer_freezes_only_when_its_weights_stay_fixed(caplog):
    from colora.inference.restorer import Restorer

    single = Restorer(two_adapter_model(), ["a"], compile=True, precision="fp32")
    chain = Restorer(two_adapter_model(), ["a", "b"], compile=True, precision="fp32")
    assert single.run.frozen and not chain.run.frozen
    img = np.random.default_rng(0).random((24, 40, 3)).astype(np.float32)
    with caplog.at_level("INFO", logger="colora"):
        first, second = single.restore(img), single.restore(img)
    assert "compiling again" not in caplog.text  # one adapter: compiled once, never again
    np.testing.assert_allclose(first, Restorer(two_adapter_model(), ["a"], precision="fp32").restore(img), atol=1e-5)
    np.testing.assert_array_equal(first, second)
    plain = Restorer(two_adapter_model(), ["a", "b"], precision="fp32")
    np.testing.assert_allclose(chain.restore(img), plain.restore(img), atol=1e-5)


def test_compile_without_a_cxx_compiler_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(ColoraError, match="--compile needs a C\\+\\+ compiler"):
        TorchRunner(two_adapter_model(), "fp32", compile=True)
