"""Parity of ``isanet`` against OpenMMLab mmsegmentation 1.2.2, and a head-timing comparison.

Runs ONLY in a scratch environment that has mmsegmentation installed (see ``benchmarks/mmseg_env.md``);
``isanet`` itself never depends on mmseg. For each zoo config it

1. builds mmseg's ``EncoderDecoder`` from the config file (SyncBN -> BN, CPU, eval mode) and our model from
   ``isanet.build_model(name)``;
2. fills ours with ``isanet.data.sample_checkpoint.random_state_dict(model, seed)`` and loads the *same* state dict into
   mmseg's model with ``strict=True`` (so the key names must agree one to one);
3. runs both on a deterministic normalised input whose stride-8 feature map is not a multiple of the ISA
   block size, in whole mode and in slide mode (overlapping windows plus a clipped edge window), in fp32 and
   in fp64, and prints the max abs / relative difference (max|ours-ref| / max|ref|); the exit status is 1
   when one exceeds ``--rtol`` (fp32, 1e-5) or ``--rtol64`` (fp64, 1e-12).

``--save-fixture`` writes ``tests/fixtures/parity_<tag>.pt`` (plain tensors/dicts, ``weights_only``-loadable)
so that ``tests/test_parity.py`` can replay the comparison in CI without mmseg. ``--bench-head`` times mmseg's
``ISAHead.forward`` against ours on the same weights.

    /tmp/mmenv/bin/python benchmarks/reference_parity.py                          # check only
    /tmp/mmenv/bin/python benchmarks/reference_parity.py --save-fixture           # + rewrite the fixtures
    /tmp/mmenv/bin/python benchmarks/reference_parity.py --bench-head --no-parity # head timing only

(the repository root is put on ``sys.path`` by the script itself).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import types
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_CONFIGS = [
    "isanet_r50-d8_4xb2-40k_cityscapes-512x1024",  # whole, align_corners=False
    "isanet_r50-d8_4xb2-40k_cityscapes-769x769",   # slide, align_corners=True
    "isanet_r101-d8_4xb4-20k_voc12aug-512x512",    # R-101, 21 classes, align_corners=False
]
FIXTURE_FORMAT = 1


# ----------------------------------------------------------------------------------------------- mmseg side

def stub_mmcv_ops() -> None:
    """mmcv-lite ships ``mmcv/ops`` without its compiled ``_ext``, so importing it fails; mmseg imports a few
    ops (point_sample, CrissCrossAttention, ...) at module level for heads ISANet never uses. Register a stub
    ``mmcv.ops`` whose every attribute is a class that refuses to be instantiated."""
    try:
        import mmcv.ops
        return
    except Exception:
        pass
    import mmcv

    class _MissingOp:
        def __init__(self, *args, **kwargs):
            raise RuntimeError(f"{type(self).__name__}: mmcv.ops is stubbed (mmcv-lite has no compiled ops)")

        def __call__(self, *args, **kwargs):
            raise RuntimeError("mmcv.ops is stubbed (mmcv-lite has no compiled ops)")

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_MissingOp,), {})

    stub = types.ModuleType("mmcv.ops")
    stub.__getattr__ = __getattr__
    for name in [k for k in sys.modules if k == "mmcv.ops" or k.startswith("mmcv.ops.")]:
        del sys.modules[name]
    sys.modules["mmcv.ops"] = stub
    mmcv.ops = stub


def find_config_dir(explicit: str | None) -> Path:
    candidates = [Path(explicit)] if explicit else []
    try:
        import mmseg
        candidates.append(Path(mmseg.__file__).parent / ".mim" / "configs")
    except ImportError:
        pass
    candidates.append(Path("/tmp/ref/mmseg_src/mmseg/.mim/configs"))
    for candidate in candidates:
        if (candidate / "isanet").is_dir():
            return candidate
    raise SystemExit(f"no mmseg configs/isanet found in {[str(c) for c in candidates]}; pass --config-dir")


def _syncbn_to_bn(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "norm_cfg" and isinstance(value, dict) and value.get("type") == "SyncBN":
                value["type"] = "BN"
            else:
                _syncbn_to_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _syncbn_to_bn(value)


def build_mmseg(name: str, config_dir: Path):
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(str(config_dir / "isanet" / f"{name}.py"))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pretrained = None
    model_cfg.backbone.pop("init_cfg", None)
    _syncbn_to_bn(model_cfg)
    model = MODELS.build(model_cfg)
    return model.eval(), cfg


def mmseg_logits(model, x: torch.Tensor, mode: str, crop_size=None, stride=None) -> torch.Tensor:
    """``EncoderDecoder.inference`` with ``test_cfg`` overridden: logits at the input's size."""
    from mmengine.config import ConfigDict

    test_cfg = dict(mode=mode)
    if mode == "slide":
        test_cfg.update(crop_size=tuple(crop_size), stride=tuple(stride))
    model.test_cfg = ConfigDict(test_cfg)
    h, w = x.shape[2:]
    metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
             for _ in range(x.shape[0])]
    with torch.no_grad():
        logits = model.inference(x, metas)
        # the public entry point must agree with the one we compare against
        samples = model.predict(x)
        via_predict = torch.stack([s.seg_logits.data for s in samples])
    torch.testing.assert_close(via_predict, logits, rtol=0, atol=0)
    return logits


# ------------------------------------------------------------------------------------------------- our side

def build_ours(name: str, seed: int):
    import isanet
    from isanet.data.sample_checkpoint import random_state_dict

    build = getattr(isanet, "build_model", None)
    if build is None:
        from isanet.models.zoo import build_model as build
    model = build(name).eval()
    state = random_state_dict(model, seed=seed)
    model.load_state_dict(state, strict=True)
    return model, state


def our_logits(model, x: torch.Tensor, mode: str, crop_size=None, stride=None) -> torch.Tensor:
    import isanet

    predict = getattr(isanet, "predict", None)
    if predict is None:
        from isanet.evaluation.inference import predict
    kwargs = dict(mode=mode)
    if mode == "slide":
        kwargs.update(crop_size=tuple(crop_size), stride=tuple(stride))
    with torch.no_grad():
        out = predict(model, x, **kwargs)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = out["logits"]
    return out


# ------------------------------------------------------------------------------------------------ comparing

def make_input(size: tuple[int, int], seed: int) -> torch.Tensor:
    """The deterministic image-like input of ``isanet bench model`` (a smooth colour field plus noise,
    normalised), so that both benches and the stored parity fixtures measure the same batch."""
    from isanet.analysis.model_bench import bench_input

    return bench_input(size, seed)


def diff(ours: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """``(max |ours - ref|, that over max |ref|)``; a shape mismatch ends the run, naming both shapes."""
    from isanet.analysis.compare import max_abs_difference, max_relative_difference

    try:
        return max_abs_difference(ours, ref), max_relative_difference(ours, ref)
    except ValueError as error:
        raise SystemExit(f"ours against mmseg: {error}") from None


def diagnose(ours, ref, x: torch.Tensor) -> None:
    """Where do the two models part ways? Compare each stage, each head, and the resize."""
    print("  diagnosis (whole image):")
    with torch.no_grad():
        f_ours, f_ref = ours.backbone(x), ref.backbone(x)
        for i, (a, b) in enumerate(zip(f_ours, f_ref)):
            print(f"    backbone stage {i} {tuple(b.shape)}: abs {diff(a, b)[0]:.3e} rel {diff(a, b)[1]:.3e}")
        # feed both heads the SAME (reference) features, so head errors are not backbone errors
        d_ours, d_ref = ours.decode_head(list(f_ref)), ref.decode_head(list(f_ref))
        abs_d, rel_d = diff(d_ours, d_ref)
        print(f"    decode head {tuple(d_ref.shape)}: abs {abs_d:.3e} rel {rel_d:.3e}")
        if getattr(ours, "auxiliary_head", None) is not None:
            a_ours, a_ref = ours.auxiliary_head(list(f_ref)), ref.auxiliary_head(list(f_ref))
            print(f"    aux head {tuple(a_ref.shape)}: abs {diff(a_ours, a_ref)[0]:.3e} "
                  f"rel {diff(a_ours, a_ref)[1]:.3e}")
        up_ref = F.interpolate(d_ref, size=x.shape[2:], mode="bilinear", align_corners=ref.align_corners)
        up_ours = ours.upsample(d_ref, x.shape[2:]) if hasattr(ours, "upsample") else up_ref
        print(f"    resize (ref align_corners={ref.align_corners}): abs {diff(up_ours, up_ref)[0]:.3e}")
        full_ours = ours(x)
        print(f"    model(x) vs mmseg whole: rel {diff(full_ours, ref.encode_decode(x, _metas(x)))[1]:.3e}")


def _metas(x):
    h, w = x.shape[2:]
    return [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])]


def fixture_tag(name: str) -> str:
    """``isanet_r50-d8_4xb2-40k_cityscapes-769x769`` -> ``r50_cityscapes-769x769``."""
    parts = name.split("_")
    return f"{parts[1].split('-')[0]}_{parts[-1]}"


def fixture_path(name: str) -> Path:
    """Where ``--save-fixture`` writes the fixture of config ``name`` (replaced only while it is the file that
    ``tests/fixtures/.isanet-outputs`` records)."""
    return REPO / "tests" / "fixtures" / f"parity_{fixture_tag(name)}.pt"


def run_parity(args, config_dir: Path) -> bool:
    """fp32 against fp32 (the contract: rtol), then fp64 against fp64 (the same math: ``--rtol64``).

    The fixture keeps mmseg's fp64 logits (stored as fp32): fp32 results differ between CPUs (vector ISA,
    threads) by float noise that a 101-layer net amplifies to a few 1e-6, whereas an fp64 replay of the same
    weights is machine-independent to ~1e-7 (the fp32 rounding of the stored values)."""
    from isanet.io.digest import state_dict_digest

    ok = True
    x = make_input(tuple(args.size), args.seed)
    for name in args.configs:
        t0 = time.perf_counter()
        ref, cfg = build_mmseg(name, config_dir)
        ours, state = build_ours(name, args.seed)
        missing, unexpected = ref.load_state_dict(state, strict=True)  # raises on any key mismatch
        assert not missing and not unexpected
        align = bool(cfg.model.decode_head.align_corners)
        if getattr(ours, "align_corners", align) != align:
            print(f"  !! align_corners: ours {ours.align_corners} vs config {align}")
            ok = False
        print(f"{name}: {len(state)} tensors loaded strictly into mmseg's model; "
              f"config test mode {cfg.model.test_cfg.mode}, align_corners={align}, input {tuple(x.shape)}")
        results = {}
        for dtype, rtol in ((torch.float32, args.rtol), (torch.float64, args.rtol64)):
            ref.to(dtype)
            ours.to(dtype)
            xd = x.to(dtype)
            for mode in ("whole", "slide"):
                ref_out = mmseg_logits(ref, xd, mode, args.crop, args.stride)
                our_out = our_logits(ours, xd, mode, args.crop, args.stride)
                abs_d, rel_d = diff(our_out, ref_out)
                passed = rel_d <= rtol
                ok &= passed
                detail = "" if mode == "whole" else f" crop {tuple(args.crop)} stride {tuple(args.stride)}"
                print(f"  {str(dtype)[6:]} {mode:5s}{detail}: max|ref| {ref_out.abs().max().item():.4f}  "
                      f"max abs diff {abs_d:.3e}  rel {rel_d:.3e}  {'OK' if passed else f'FAIL (> {rtol:g})'}")
                if dtype == torch.float64:
                    results[mode] = ref_out.float().contiguous()
                if not passed and mode == "whole":
                    diagnose(ours, ref, xd)
        ref.float()
        ours.float()
        if args.save_fixture:
            path = fixture_path(name)
            import mmseg

            from isanet.io.atomic import atomic_path
            with atomic_path(path) as temporary:
                torch.save({
                    "format": FIXTURE_FORMAT,
                    "name": name,
                    "seed": args.seed,
                    "align_corners": align,
                    "weights_sha256": state_dict_digest(state),
                    "input": x.clone(),
                    "crop_size": list(args.crop),
                    "stride": list(args.stride),
                    "whole": results["whole"],
                    "slide": results["slide"],
                    "reference_dtype": "float64",
                    "reference": f"mmsegmentation {mmseg.__version__}, torch {torch.__version__}, "
                                 f"computed in float64, stored as float32",
                }, temporary)
            print(f"  wrote {path.relative_to(REPO)} ({path.stat().st_size / 1e6:.2f} MB)")
        print(f"  ({time.perf_counter() - t0:.1f} s)")
    return ok


# ------------------------------------------------------------------------------------------------- timing

def bench_head(args, config_dir: Path) -> list:
    """Median time of the decode head's forward, mmseg's against ours, same weights, eval, no_grad.

    Two rows per size: the whole head on a ``1 x 2048 x S x S`` stage-4 map (dominated by the 3x3 in_conv,
    2048 -> 512), and the head without its in_conv on ``1 x 512 x S x S`` (ISA + out_conv + classifier), where
    the attention's share shows. ``--clock cpu`` measures the calling thread's CPU time (use it with
    ``--threads 1``): on a machine shared with other jobs it is far steadier than wall time. Peak memory is
    :func:`isanet.analysis.memory.peak_memory`'s CPU tracker: bytes of live tensors over the inputs and weights."""
    from torch import nn

    from isanet.analysis.measure import time_calls
    from isanet.analysis.memory import peak_memory

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    name = args.configs[0]
    ref, _ = build_mmseg(name, config_dir)
    ours, state = build_ours(name, args.seed)
    ref.load_state_dict(state, strict=True)
    kernels = ["matmul", "sdpa"] if hasattr(ours.decode_head, "kernel") else [None]
    print(f"decode head timing ({name} weights, seed {args.seed}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.clock} clock, median of {args.repeats} interleaved runs "
          f"after {args.warmup} warm-up, eval, no_grad")
    rows = []
    for side in args.head_sizes:
        for skip_in_conv in (False, True):
            channels = 512 if skip_in_conv else 2048
            x = torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(args.seed))
            feats = [x, x, x, x]  # both heads read features[3]
            saved = ref.decode_head.in_conv, ours.decode_head.in_conv
            if skip_in_conv:
                ref.decode_head.in_conv = ours.decode_head.in_conv = nn.Identity()
            try:
                fns = {"mmseg": lambda feats=feats: ref.decode_head(feats)}
                rel = {}
                with torch.no_grad():
                    ref_out = ref.decode_head(feats)
                    for kernel in kernels:
                        head = copy.copy(ours.decode_head)  # shallow: shares the weights
                        if kernel is not None:
                            head.kernel = kernel
                        rel[kernel] = diff(head(feats), ref_out)[1]
                        fns[kernel] = lambda head=head, feats=feats: head(feats)
                    medians = time_calls(fns, args.repeats, args.warmup, clock=clock)  # ms, interleaved
                    peaks = {key: peak_memory(fn, "cpu") / 2**20 for key, fn in fns.items()}
            finally:
                ref.decode_head.in_conv, ours.decode_head.in_conv = saved
            t_ref, peak_ref = medians.pop("mmseg"), peaks["mmseg"]
            label = f"1x{channels}x{side}x{side}" + (" (no in_conv)" if skip_in_conv else "")
            line = f"  {label:28s} mmseg ISAHead.forward {t_ref:8.1f} ms, peak {peak_ref:7.1f} MiB"
            for kernel, t_ours in medians.items():
                line += (f" | ours[{kernel}] {t_ours:8.1f} ms, peak {peaks[kernel]:7.1f} MiB "
                         f"(ours/mmseg: time {t_ours / t_ref:.3f}, peak {peaks[kernel] / peak_ref:.2f}; "
                         f"rel diff {rel[kernel]:.1e})")
                rows.append((label, kernel, t_ref, t_ours, peak_ref, peaks[kernel]))
            print(line, flush=True)
    return rows


def main(argv=None) -> int:
    from isanet.limits import bounded_float

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="zoo / mmseg config names")
    parser.add_argument("--config-dir", help="mmseg's configs folder (the one holding isanet/ and _base_/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(65, 81), metavar=("H", "W"),
                        help="input size; 65x81 gives a 9x11 stride-8 map, which ISA pads asymmetrically (3+4, 2+3)")
    parser.add_argument("--crop", type=int, nargs=2, default=(49, 65), metavar=("H", "W"))
    parser.add_argument("--stride", type=int, nargs=2, default=(33, 41), metavar=("H", "W"))
    parser.add_argument("--rtol", type=bounded_float(0, 1), default=1e-5,
                        help="max |ours-ref| / max |ref| allowed in fp32")
    parser.add_argument("--rtol64", type=bounded_float(0, 1), default=1e-12, help="the same in fp64")
    parser.add_argument("--save-fixture", action="store_true", help="write tests/fixtures/parity_<tag>.pt")
    parser.add_argument("--bench-head", action="store_true", help="time mmseg's ISAHead.forward against ours")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity check (with --bench-head)")
    parser.add_argument("--head-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or the calling thread's CPU time (steady on a shared machine; --threads 1)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.save_fixture:
        from isanet.io.outputs import OutputError, check_replaceable
        try:
            for name in args.configs:
                check_replaceable(fixture_path(name), "--save-fixture")
        except OutputError as error:
            parser.error(str(error))
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(mmseg|mmcv)(\.|$)")
    if args.threads:
        torch.set_num_threads(args.threads)

    stub_mmcv_ops()
    config_dir = find_config_dir(args.config_dir)
    ok = True
    if not args.no_parity:
        ok = run_parity(args, config_dir)
        print("parity:", "OK" if ok else f"FAILED (rtol {args.rtol:g} fp32, {args.rtol64:g} fp64)")
    if args.bench_head:
        bench_head(args, config_dir)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
