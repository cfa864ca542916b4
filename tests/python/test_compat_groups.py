# SPDX-License-Identifier: MIT
"""The block-scaled drop-ins: fp8kv.compat.flashinfer's NVFP4 append (both
forms) and fp8kv.compat.vllm's per-(token, head) writer, every byte of
poisoned caches against recipes_ref.py / contract_ref.py (never the code
under test), their layouts as docs/recipes.md gives them, their errors."""

import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import contract_ref as C   # noqa: E402
import recipes_ref as R    # noqa: E402
from fp8kv.compat import flashinfer, vllm   # noqa: E402

POISON = 0xA5


@pytest.fixture(autouse=True)
def _no_stated_format():
    vllm.set_fp8_format(None)
    yield
    vllm.set_fp8_format(None)


def _bits(t):
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.view(torch.int32).numpy().view(np.uint32).tolist()
    return t.view(torch.int16).numpy().view(np.uint16).tolist()


def _f32(x):
    return int(np.array([x], np.float32).view(np.uint32)[0])


def _rows(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 3
    x[..., 1::13] *= 1e-3
    x[..., 2::29] = -0.0
    return x.to(dtype)


def test_signatures_are_the_engines():
    assert list(inspect.signature(
        flashinfer.nvfp4_quantize_append_paged_kv_cache_with_slot_mapping).parameters) == [
        "append_key", "append_value", "slot_mapping", "paged_kv_cache", "kv_cache_sf",
        "k_scale", "v_scale", "kv_layout"]
    assert list(inspect.signature(flashinfer.nvfp4_quantize_append_paged_kv_cache).parameters) \
        == ["append_key", "append_value", "batch_indices", "positions", "paged_kv_cache",
            "kv_cache_sf", "kv_indices", "kv_indptr", "kv_last_page_len", "k_scale", "v_scale",
            "kv_layout"]
    assert list(inspect.signature(
        vllm.triton_reshape_and_cache_flash_per_token_head_quant).parameters) == [
        "key", "value", "key_cache", "value_cache", "k_scale_cache", "v_scale_cache",
        "slot_mapping", "kv_quant_mode"]


def _fi_caches(pages, page_size, H, D, layout):
    inner = (page_size, H) if layout == "NHD" else (H, page_size)
    return (torch.full((pages, 2) + inner + (D // 2,), POISON, dtype=torch.uint8),
            torch.full((pages, 2) + inner + (D // 16,), POISON, dtype=torch.uint8))


def _fi_expect(k, v, slots, cache, sf, gk, gv, layout, page_size):
    """The expected cache and scales: FlashInfer's block scales (its IEEE
    model), fp8kv's codes (contract_ref); untouched bytes keep the poison."""
    cache, sf = cache.clone(), sf.clone()
    for i, slot in enumerate(slots):
        if slot < 0:
            continue
        page, off = divmod(slot, page_size)
        for side, (x, g) in enumerate(((k, gk), (v, gv))):
            for h in range(x.shape[1]):
                bits = _bits(x[i, h])
                row = C.group_row("nvfp4", "e2m1", bits, "bf16", 16, g=_f32(g))
                fi_scales = [R.nvfp4_flashinfer(bits[j:j + 16], "bf16", _f32(g))[1]
                             for j in range(0, len(bits), 16)]
                assert row.scales == fi_scales          # the block scales are FlashInfer's
                at = (page, side, off, h) if layout == "NHD" else (page, side, h, off)
                cache[at] = torch.tensor(row.codes, dtype=torch.uint8)
                sf[at] = torch.tensor(row.scales, dtype=torch.uint8)
    return cache, sf


@pytest.mark.parametrize("layout", ["NHD", "HND"])
def test_flashinfer_slot_mapping_form(layout):
    nnz, H, D, pages, page_size = 4, 2, 32, 3, 4
    k, v = _rows((nnz, H, D), torch.bfloat16, 1), _rows((nnz, H, D), torch.bfloat16, 2)
    slots = [9, -1, 0, 5]
    cache, sf = _fi_caches(pages, page_size, H, D, layout)
    want_cache, want_sf = _fi_expect(k, v, slots, cache, sf, 0.0125, 0.75, layout, page_size)
    flashinfer.nvfp4_quantize_append_paged_kv_cache_with_slot_mapping(
        k, v, torch.tensor(slots, dtype=torch.int32), cache, sf, 0.0125, 0.75, layout)
    assert torch.equal(cache, want_cache) and torch.equal(sf, want_sf)


def test_flashinfer_batch_form_reaches_the_pages_of_each_request():
    """Two requests: request 0 owns pages [2, 0], request 1 page [1];
    positions count from each request's start (docs/recipes.md 2.4)."""
    H, D, page_size = 1, 16, 4
    batch = [0, 0, 1, 0]
    pos = [1, 5, 2, 4]
    kv_indptr, kv_indices = [0, 2, 3], [2, 0, 1]
    slots = [kv_indices[kv_indptr[b] + p // page_size] * page_size + p % page_size
             for b, p in zip(batch, pos)]
    assert slots == [9, 1, 6, 0]
    k, v = _rows((4, H, D), torch.bfloat16, 3), _rows((4, H, D), torch.bfloat16, 4)
    cache, sf = _fi_caches(3, page_size, H, D, "NHD")
    pair_cache = (cache[:, 0].clone(), cache[:, 1].clone())
    pair_sf = (sf[:, 0].clone(), sf[:, 1].clone())
    want_cache, want_sf = _fi_expect(k, v, slots, cache, sf, 0.5, 0.5, "NHD", page_size)
    flashinfer.nvfp4_quantize_append_paged_kv_cache(
        k, v, torch.tensor(batch, dtype=torch.int32), torch.tensor(pos, dtype=torch.int32),
        pair_cache, pair_sf, torch.tensor(kv_indices, dtype=torch.int32),
        torch.tensor(kv_indptr, dtype=torch.int32), torch.tensor([1, 3], dtype=torch.int32),
        torch.tensor([0.5]), torch.tensor([0.5]))
    assert torch.equal(torch.stack(pair_cache, 1), want_cache)
    assert torch.equal(torch.stack(pair_sf, 1), want_sf)


@pytest.mark.parametrize("change, error, named", [
    ({"k_scale": 0.0}, ValueError, "k_scale"),
    ({"v_scale": float("inf")}, ValueError, "v_scale"),
    ({"append_key": torch.ones(1, 1, 16)}, TypeError, "append_key"),
    ({"kv_layout": "NDH"}, ValueError, "kv_layout"),
    ({"kv_cache_sf": torch.zeros(2, 2, 4, 1, 2, dtype=torch.uint8)}, ValueError, "kv_cache_sf"),
    ({"paged_kv_cache": torch.zeros(2, 3, 4, 1, 8, dtype=torch.uint8)}, ValueError,
     "paged_kv_cache")])
def test_flashinfer_errors_name_its_arguments_and_write_nothing(change, error, named):
    cache, sf = _fi_caches(2, 4, 1, 16, "NHD")
    args = dict(append_key=torch.ones(1, 1, 16, dtype=torch.float16),
                append_value=torch.ones(1, 1, 16, dtype=torch.float16),
                slot_mapping=torch.tensor([0]), paged_kv_cache=cache, kv_cache_sf=sf,
                k_scale=1.0, v_scale=1.0, kv_layout="NHD")
    args.update(change)
    with pytest.raises(error) as e:
        flashinfer.nvfp4_quantize_append_paged_kv_cache_with_slot_mapping(**args)
    assert str(e.value).startswith(named), str(e.value)
    assert (cache == POISON).all() and (sf == POISON).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_vllm_int8_per_token_head(dtype):
    T, H, D, B, bs = 4, 2, 24, 2, 4
    k, v = _rows((T, H, D), dtype, 5) * 9, _rows((T, H, D), dtype, 6)
    k[0, 1] = 0.0                                       # a row of zeros: s = the floor
    slots = [3, 6, -1, 0]
    kc = torch.full((B, bs, H, D), -91, dtype=torch.int8)
    vc = kc.clone()
    ks = torch.full((B, bs, H), -7.5, dtype=torch.float32)
    vs = ks.clone()
    want = [x.clone() for x in (kc, vc, ks, vs)]
    vllm.triton_reshape_and_cache_flash_per_token_head_quant(
        k, v, kc, vc, ks, vs, torch.tensor(slots), None)
    d = {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32"}[dtype]
    floor = 0x358637BD                                  # 1e-6 as fp32
    assert _f32(1e-6) == floor
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        blk, off = divmod(slot, bs)
        for x, cache, scales in ((k, want[0], want[2]), (v, want[1], want[3])):
            for h in range(H):
                codes, sbits = R.int8_rne(_bits(x[t, h]), d, floor=floor, rounding="trunc")
                cache[blk, off, h] = torch.from_numpy(codes.copy())
                scales[blk, off, h] = float(np.array([sbits], np.uint32).view(np.float32)[0])
    for got, exp in zip((kc, vc, ks, vs), want):
        assert torch.equal(got.view(torch.uint8) if got.dtype == torch.int8 else
                           got.view(torch.int32), exp.view(torch.uint8)
                           if exp.dtype == torch.int8 else exp.view(torch.int32))


def test_vllm_fp8_per_token_head_rounds_to_nearest():
    T, H, D = 2, 1, 16
    k = _rows((T, H, D), torch.float16, 7)
    kc = torch.full((1, 4, H, D), POISON, dtype=torch.uint8)
    vc = kc.clone()
    ks = torch.zeros(1, 4, H)
    vs = ks.clone()
    vllm.set_fp8_format("e4m3fn")

    class Mode:                         # vLLM's KVQuantMode member, by name
        name = "FP8_PER_TOKEN_HEAD"
    vllm.triton_reshape_and_cache_flash_per_token_head_quant(
        k, k, kc, vc, ks, vs, torch.tensor([2, 0]), Mode())
    for t, slot in enumerate([2, 0]):
        row = C.group_row("f32", "e4m3fn", _bits(k[t, 0]), "f16", D, floor=_f32(1e-6))
        assert kc[0, slot, 0].tolist() == row.codes
        assert ks[0, slot, 0].view(torch.int32).item() == int.from_bytes(bytes(row.scales),
                                                                         "little")
    assert (kc[0, 1] == POISON).all() and (kc[0, 3] == POISON).all()


@pytest.mark.parametrize("mode, cache_dtype", [("INT4_PER_TOKEN_HEAD", torch.int8),
                                               ("FP8_PER_TOKEN_HEAD", torch.int8)])
def test_vllm_per_token_head_refuses_modes_it_does_not_write(mode, cache_dtype):
    k = torch.ones(1, 1, 16)
    kc = torch.full((1, 4, 1, 16), 3, dtype=cache_dtype)
    with pytest.raises(ValueError, match="^kv_quant_mode"):
        vllm.triton_reshape_and_cache_flash_per_token_head_quant(
            k, k, kc, kc.clone(), torch.zeros(1, 4, 1), torch.zeros(1, 4, 1), torch.tensor([0]),
            mode)
    assert (kc == 3).all()


def _vllm_swizzle(t, s, S):
    """vLLM's V-scale position within a head's [block_size, S] scale tile
    (nvfp4_kv_cache_kernels.cu, swizzle_scale_offset), as (row, column)."""
    q = S // 4
    return (t // 4) * 4 + s // q, (s % q) * 4 + t % 4


@pytest.mark.parametrize("hnd, swizzled, H", [(True, True, 2), (True, False, 2),
                                              (False, False, 2), (False, True, 1)])
def test_vllm_nvfp4_page_layout(hnd, swizzled, H):
    """kv_cache_dtype "nvfp4": each side of a page is [data | scales]
    (docs/recipes.md 3.3); every byte of the page against addresses computed
    here from vLLM's formulas, codes and scales from contract_ref with
    g = RN(1 / RN(1 / k_scale))."""
    B, bs, D, T = 2, 8, 64, 5
    dd, S = D // 2, D // 16
    full = dd + S
    if hnd:
        phys = torch.full((B, 2, H, bs, full), POISON, dtype=torch.uint8)
        kv = phys.permute(0, 1, 3, 2, 4)
    else:
        phys = torch.full((B, 2, bs, H, full), POISON, dtype=torch.uint8)
        kv = phys
    k, v = _rows((T, H, D), torch.bfloat16, 8), _rows((T, H, D), torch.bfloat16, 9)
    slots = [13, 2, -1, 7, 8]
    k_scale, v_scale = 0.0173, torch.tensor([0.31])
    vllm.set_nvfp4_v_scales("swizzled" if swizzled else "linear")
    try:
        vllm.reshape_and_cache_flash(k, v, kv[:, 0], kv[:, 1], torch.tensor(slots), "nvfp4",
                                     k_scale, v_scale)
    finally:
        vllm.set_nvfp4_v_scales("swizzled")
    want = torch.full_like(phys, POISON).reshape(B, 2, -1)
    one = np.float32(1)
    for t, slot in enumerate(slots):
        if slot < 0:
            continue
        blk, off = divmod(slot, bs)
        for side, (x, sc) in enumerate(((k, k_scale), (v, float(v_scale)))):
            g = float(one / (one / np.float32(sc)))
            page = want[blk, side]
            for h in range(H):
                row = C.group_row("nvfp4", "e2m1", _bits(x[t, h]), "bf16", 16, g=_f32(g))
                data = (h * bs + off) * dd if hnd else (off * H + h) * dd
                page[data:data + dd] = torch.tensor(row.codes, dtype=torch.uint8)
                for j in range(S):
                    if side == 1 and swizzled:
                        r, c = _vllm_swizzle(off, j, S)
                    else:
                        r, c = off, j
                    at = H * bs * dd + ((h * bs + r) * S if hnd else (r * H + h) * S) + c
                    page[at] = row.scales[j]
    assert torch.equal(phys.reshape(B, 2, -1), want)


def test_vllm_nvfp4_refuses_what_it_cannot_lay_out():
    kv = torch.full((1, 2, 8, 2, 18), POISON, dtype=torch.uint8)      # NHD, 2 heads
    k = torch.ones(1, 2, 32, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="^key_cache"):
        vllm.reshape_and_cache_flash(k, k, kv[:, 0], kv[:, 1], torch.tensor([0]), "nvfp4",
                                     1.0, 1.0)
    assert (kv == POISON).all()
