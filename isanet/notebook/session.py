"""What every teaching notebook needs before it teaches: where the repository and ``data/`` are, sample data
and sample checkpoints in the real formats (announced as such), and quick settings under a test runner."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from isanet.io.atomic import atomic_path
from isanet.runtime import resolve_device


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The checkout's top folder: the first of ``start`` (default: the working directory) and its parents that
    holds ``pyproject.toml`` and ``isanet/``; else the folder above the imported package; else ``start``.

    Notebooks run with their own folder as the working directory (JupyterLab, ``nbmake``), so paths such as
    ``data/checkpoints`` are resolved against this, not against the working directory.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "isanet").is_dir():
            return folder
    package_parent = Path(__file__).resolve().parents[1]
    if (package_parent / "pyproject.toml").is_file():
        return package_parent
    return here


def resolve_path(path: str | os.PathLike | None, root: str | os.PathLike | None = None) -> Path | None:
    """``None`` stays ``None``; ``~`` is expanded; a relative path is taken from the repository root."""
    if path is None or str(path) == "":
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(root or repo_root()) / path


def sample_dataset(kind: str, root: str | os.PathLike | None = None, *, num_train: int = 4, num_val: int = 2,
                   size: int = 256, seed: int = 0, object_classes: int | None = None, quiet: bool = False) -> Path:
    """A synthetic data set of ``kind`` (a name in :data:`isanet.data.registry.DATASETS`) in the real layout, written
    once under ``data/samples/`` of the repository (and reused afterwards); returns the data set's own top folder.
    ``object_classes`` is :func:`isanet.data.registry.write_sample_dataset`'s (VOC: only its first N object classes).

    Writing goes to a temporary folder that is renamed into place, so a half-written sample is never reused; a
    folder there without a complete sample is replaced only when every file in it is one isanet wrote (else
    the error names the first that is not).
    """
    from isanet.data.registry import DATASETS, write_sample_dataset

    if kind not in DATASETS:
        raise ValueError(f"unknown sample data set {kind!r}: choose one of {sorted(DATASETS)}")
    classes = f"-{object_classes}classes" if object_classes is not None else ""
    base = Path(root or repo_root()) / "data" / "samples" / f"{kind}-{size}px-{num_train}+{num_val}-seed{seed}{classes}"
    top = base / (DATASETS[kind].top or "")  # a spec without a top folder writes into ``base`` itself
    if not (top / "SAMPLE_DATA.txt").is_file():
        with atomic_path(base) as staging:  # replaces an incomplete sample of an older run
            write_sample_dataset(kind, staging, num_train=num_train, num_val=num_val, size=size, seed=seed,
                                 object_classes=object_classes)
    if not quiet:
        limited = f"; objects of its first {object_classes} object classes only" if object_classes is not None else ""
        print(f"USING SYNTHETIC SAMPLE DATA ({kind}, {num_train} train / {num_val} val images, {size} px wide"
              f"{limited}) at {top}: it only mimics the real layout; numbers measured on it say nothing about ISANet.")
    return top


def find_zoo_checkpoints(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """Published checkpoints found in ``folder`` (default ``data/checkpoints``), keyed by zoo name.

    A file counts when its name starts with an entry's legacy 0.x name or 1.x name (the downloaded files are
    called ``<legacy name>_<date>-<sha256 prefix>.pth``), longest name first so ``..._80k_...`` never matches a
    ``..._8k_...`` entry.
    """
    from isanet.models.zoo import entries

    folder = Path(folder) if folder is not None else repo_root() / "data" / "checkpoints"
    if not folder.is_dir():
        return {}
    names = sorted(((entry.legacy_name, entry.name) for entry in entries()), key=lambda n: -len(n[0]))
    names += sorted(((entry.name, entry.name) for entry in entries()), key=lambda n: -len(n[0]))
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.pth")):
        for prefix, name in names:
            if path.name.startswith(prefix) and path.name[len(prefix):len(prefix) + 1] in ("_", ".", "-"):
                found.setdefault(name, path)
                break
    return found


def quick_mode(value: bool | None = None) -> bool:
    """Whether a notebook should use its tiny CI settings: ``value`` when given; else ``ISANET_QUICK`` (1/0)
    when set; else True under a test runner (``PYTEST_CURRENT_TEST``, as ``pytest --nbmake`` sets it for the
    kernel it starts, or ``CI``). Notebooks print which settings they use."""
    if value is not None:
        return bool(value)
    explicit = os.environ.get("ISANET_QUICK")
    if explicit is not None:
        return explicit.strip().lower() not in ("", "0", "false", "no")
    return "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI", "").lower() in ("1", "true", "yes")


def sample_checkpoint(name: str, root: str | os.PathLike | None = None, seed: int = 0,
                      quiet: bool = False) -> Path:
    """A RANDOM-WEIGHTS checkpoint of zoo entry ``name`` in mmseg's format (what ``isanet sample-checkpoint``
    writes), created once under ``data/samples/checkpoints/``; for running the evaluation path without the
    published file. It predicts nothing useful, and says so in its meta."""
    from isanet.data.sample_checkpoint import save_random_checkpoint
    from isanet.models.zoo import get_entry

    entry = get_entry(name)
    folder = Path(root or repo_root()) / "data" / "samples" / "checkpoints"
    path = folder / f"{entry.legacy_name}_RANDOM_seed{seed}.pth"
    if not path.is_file():
        save_random_checkpoint(entry.name, path, seed, written_by="isanet.notebook.session.sample_checkpoint")
    if not quiet:
        print(f"USING A RANDOM-WEIGHTS SAMPLE CHECKPOINT for {entry.name} at {path}: it predicts nothing useful")
    return path


def configure_torch(device: str = "auto", threads: int | None = None, quick: bool | None = None) -> str:
    """Resolve ``device`` ("auto" -> CUDA when present) and set torch's CPU threads: ``threads`` when given,
    else one thread in quick mode on CPU (on a shared 2-core runner OpenMP barriers make two threads slower).
    Returns the device name."""
    device = resolve_device(device, "DEVICE")
    threads = threads or (1 if quick_mode(quick) and device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    return device
