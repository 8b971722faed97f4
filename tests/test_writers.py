"""Every writer the kit has goes through the output guard: each call that writes, replaces or removes a file
(``open(..., "w")``, ``write_text``, ``torch.save``, ``json.dump``, ``savefig``, ``rmtree``, ``unlink``, ``os.replace``,
...) in ``isanet/``, ``kit.py``, ``hubconf.py`` and ``benchmarks/``, found by reading their syntax trees, must be
listed in :data:`GUARDED` for the function it sits in, with the reason it cannot replace what the kit does not
own. A new write anywhere else fails here, even in a listed function: route it through
:func:`isanet.io.atomic.atomic_path` (and its helpers ``write_text_atomic``, ``write_json_atomic``,
``save_checkpoint``, ``save_figure``), or list it here with its reason. A listed function that no longer writes
fails too, so the list stays the list of writers."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("isanet/**/*.py"), REPO / "kit.py", REPO / "hubconf.py", *REPO.glob("benchmarks/*.py")])

#: ``module.function`` calls that write, replace or remove files.
WRITING_FUNCTIONS = {
    ("os", "remove"), ("os", "unlink"), ("os", "rmdir"), ("os", "removedirs"), ("os", "rename"), ("os", "renames"),
    ("os", "replace"), ("os", "link"), ("os", "symlink"), ("os", "truncate"), ("os", "write"),
    ("shutil", "rmtree"), ("shutil", "copy"), ("shutil", "copy2"), ("shutil", "copyfile"), ("shutil", "copytree"),
    ("shutil", "move"), ("torch", "save"), ("json", "dump"), ("pickle", "dump"), ("np", "save"), ("np", "savez"),
    ("np", "savetxt"), ("cv2", "imwrite"), ("cv2", "VideoWriter"), ("venv", "create"), ("nbformat", "write"),
    ("tempfile", "mkstemp"), ("tempfile", "NamedTemporaryFile"), ("hub", "download_url_to_file"),
}
#: Methods that write, whatever their object (a ``Path``, a figure, an image, an ONNX program).
WRITING_METHODS = {"write_text", "write_bytes", "touch", "unlink", "rmdir", "symlink_to", "hardlink_to", "save",
                   "savefig", "imwrite", "rmtree", "copyfile", "copytree"}
#: Methods that write when given one positional argument (``Path.replace(target)``, not ``str.replace(a, b)``).
ONE_ARGUMENT_METHODS = {"replace", "rename"}
#: ``os.open`` flags that make a descriptor a writer.
WRITING_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}

#: ``path::function`` -> (the writing calls it may make, by :func:`label`; why they cannot replace or remove what
#: the kit does not own). Another writing call in a listed function fails as one in an unlisted function does.
GUARDED = {
    "isanet/io/atomic.py::clean_stale_temporaries": ({".unlink", "shutil.rmtree"}, "only temporaries of the kit's "
                                                     "own name pattern whose writer process is gone"),
    "isanet/io/atomic.py::_put_in_place": ({"os.replace", "shutil.rmtree"}, "the guard's door: check_replaceable "
                                           "before any rename over a name; removes only what it set aside"),
    "isanet/io/atomic.py::atomic_path": ({".unlink", "shutil.rmtree"}, "removes only its own fresh temporary"),
    "isanet/io/atomic.py::write_text_atomic": ({".write_text"}, "the fresh temporary of atomic_path"),
    "isanet/io/outputs.py::_open_ledger": ({"os.open"}, "the ledger only, never through a link, never a FIFO or "
                                           "device"),
    "isanet/io/outputs.py::record_output": ({"os.write"}, "appends to the ledger only (opened by _open_ledger)"),
    "isanet/io/outputs.py::check_output": ({"tempfile.NamedTemporaryFile"}, "a probe under a fresh name, removed "
                                           "at once"),
    "isanet/io/checkpoint.py::atomic_save": ({"open", "torch.save"}, "the temporary of atomic_path"),
    "isanet/io/export.py::export_onnx": ({".save"}, "the ONNX program, into the temporary of atomic_path"),
    "isanet/io/download.py::download_url": ({"hub.download_url_to_file"}, "the temporary of atomic_path"),
    "isanet/evaluation/predict_files.py::_write_png": ({".write_bytes"}, "the temporary of atomic_path"),
    "isanet/evaluation/predict_files.py::predict_video_file": ({"cv2.VideoWriter"}, "the temporary of atomic_path"),
    "isanet/engine/state.py::WorkDirLock.acquire": ({"os.open", "os.fdopen", ".unlink"}, "creates its lock "
                                                    "exclusively (O_EXCL); removes only a lock holding a dead pid"),
    "isanet/engine/state.py::WorkDirLock.release": ({".unlink", ".rmdir"}, "its own lock, and the folder it made "
                                                    "while still empty"),
    "isanet/engine/state.py::_link_or_copy": ({"os.link", "shutil.copyfile", ".unlink"}, "into the temporary of "
                                              "atomic_path; unlinks only a second name of a numbered checkpoint"),
    "isanet/engine/state.py::write_checkpoint": ({".unlink"}, "prunes only checkpoints the ledger vouches for"),
    "isanet/engine/log.py::JsonlLog.__init__": ({"os.open", "os.fdopen"}, "appends (O_NOFOLLOW) to the log it has "
                                                "just written atomically"),
    "isanet/data/synthetic.py::write_image": ({"cv2.imwrite"}, "for the writers below, in a staging folder"),
    "isanet/data/synthetic.py::write_label": ({".save"}, "for the writers below, in a staging folder"),
    "isanet/data/synthetic.py::write_voc": ({".write_text"}, "a DATASETS writer: write_sample_dataset calls it in "
                                            "atomic_path's staging folder"),
    "isanet/data/synthetic.py::write_folder": ({".write_text"}, "a DATASETS writer, in a staging folder"),
    "isanet/data/context.py::write_context": ({".write_text"}, "a DATASETS writer, in a staging folder"),
    "isanet/data/registry.py::write_sample_dataset": ({".write_text"}, "SAMPLE_DATA.txt, in atomic_path's staging "
                                                      "folder"),
    "isanet/notebook/plots.py::save_figure": ({".savefig"}, "the temporary of atomic_path"),
    "isanet/notebook/site.py::install_mathjax": ({"shutil.copyfile"}, "into atomic_path's staging folder"),
    "isanet/notebook/live_page.py::save_live_page": ({"shutil.copyfile"}, "the runtime, into atomic_path's staging "
                                                     "folder"),
    "isanet/io/live_export.py::export_live": ({".save"}, "the temporary of atomic_path"),
    "isanet/notebook/explorer_html.py::_jpeg_b64": ({".save"}, "into memory (BytesIO)"),
    "kit.py::setup": ({"venv.create", ".write_text"}, "the virtual environment kit.py creates, and its install stamp "
                      "in it"),
    "kit.py::setup_web": ({".write_text"}, "the install stamp in the node_modules folder npm ci has just made"),
    "benchmarks/context_experiment.py::save": ({".write_text"}, "the temporary of atomic_path"),
    "benchmarks/reference_parity.py::run_parity": ({"torch.save"}, "the temporary of atomic_path"),
    "benchmarks/gpu_check.py::amp.precision_part.body": ({"shutil.copy"}, "into its own fresh scratch folder"),
}


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _literal_mode(call: ast.Call, position: int) -> str | None:
    """The ``mode`` of an ``open`` call (None: not given or not a literal)."""
    mode = next((keyword.value for keyword in call.keywords if keyword.arg == "mode"),
                call.args[position] if len(call.args) > position else None)
    return mode.value if isinstance(mode, ast.Constant) and isinstance(mode.value, str) else None


def writes(call: ast.Call) -> bool:
    """Whether ``call`` writes, replaces or removes a file (read from its syntax alone)."""
    function = call.func
    name = _name(function)
    owner = _name(function.value) if isinstance(function, ast.Attribute) else None
    if name == "open" and owner == "os":  # os.open(path, flags): a writing flag, or flags in a variable
        flags = {_name(node) for node in ast.walk(call.args[1]) if isinstance(node, (ast.Name, ast.Attribute))} \
            - {"os", "getattr"} if len(call.args) > 1 else set()
        return bool(flags & WRITING_FLAGS) or any(not flag.startswith("O_") for flag in flags)
    if name == "open" and owner is None:  # open(path, mode): a mode that is not a literal may write
        given = any(keyword.arg == "mode" for keyword in call.keywords) or len(call.args) > 1
        mode = _literal_mode(call, 1)
        return given and (mode is None or bool(set(mode) & set("wax+")))
    if name == "open":  # Path.open("w"), not Image.open(path): a literal mode says which
        return bool(set(_literal_mode(call, 0) or "") & set("wax+"))
    if name == "fdopen":
        return bool(set(_literal_mode(call, 1) or "w") & set("wax+"))
    if (owner, name) in WRITING_FUNCTIONS:
        return True
    method = isinstance(function, ast.Attribute)
    return method and (name in WRITING_METHODS
                       or (name in ONE_ARGUMENT_METHODS and len(call.args) == 1 and not call.keywords))


def label(call: ast.Call) -> str:
    """A writing call as :data:`GUARDED` names it: ``open``, ``module.function`` or ``.method``."""
    function = call.func
    if not isinstance(function, ast.Attribute):
        return _name(function)
    owner = _name(function.value)
    return f"{owner}.{function.attr}" if (owner, function.attr) in WRITING_FUNCTIONS or owner == "os" \
        else f".{function.attr}"


def writers() -> dict[str, dict[str, list[int]]]:
    """``path::function`` -> its writing calls (by :func:`label`) -> their line numbers, for every source file."""
    found: dict[str, dict[str, list[int]]] = {}

    def visit(node: ast.AST, source: str, scope: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, source, (*scope, child.name))
                continue
            if isinstance(child, ast.Call) and writes(child):
                where = found.setdefault(f"{source}::{'.'.join(scope) or '<module>'}", {})
                where.setdefault(label(child), []).append(child.lineno)
            visit(child, source, scope)

    for path in SOURCES:
        visit(ast.parse(path.read_text(encoding="utf-8")), path.relative_to(REPO).as_posix(), ())
    return found


def test_the_walk_recognises_what_writes_and_what_does_not():
    samples = {
        'open(p, "w")': True, 'open(p, "rb")': False, "open(p)": False, 'p.open("a")': True, "p.open()": False,
        "open(p, mode)": True, "os.open(p, os.O_WRONLY | os.O_CREAT)": True, "os.open(p, os.O_RDONLY)": False,
        "os.open(p, flags | os.O_NOFOLLOW)": True,
        'p.write_text("x")': True, "torch.save(x, p)": True, "json.dump(x, f)": True, "json.dumps(x)": False,
        "shutil.rmtree(p)": True, "p.unlink()": True, "os.replace(a, b)": True, "p.replace(q)": True,
        's.replace("a", "b")': False, "config.replace(size=1)": False, "figure.savefig(p)": True,
        "cv2.imwrite(p, x)": True, "torch.load(p)": False, "p.read_text()": False, "os.fdopen(h, 'a')": True,
        "Image.open(p)": False, "image.save(p)": True, "save(p, x)": False,
    }
    assert {code: writes(ast.parse(code, mode="eval").body) for code in samples} == samples


def test_every_writer_is_a_guarded_function():
    found = writers()
    unlisted = {f"{where} {call}": lines for where, calls in found.items() for call, lines in calls.items()
                if call not in GUARDED.get(where, ((), ""))[0]}
    assert not unlisted, ("writes outside the output guard (route them through isanet.io.atomic.atomic_path, or "
                          f"list the call in GUARDED with the reason it is safe): {unlisted}")
    stale = sorted(set(GUARDED) - set(found))
    assert not stale, f"listed in GUARDED but writing nothing any more (remove them): {stale}"
