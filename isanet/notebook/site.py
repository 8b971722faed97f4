"""The course as a static site: every notebook executed and written as an HTML page with its outputs, an
index, and notebook 02's explorer embedded as the standalone page, so the notebooks can be read in any browser
without installing anything.

``python3 kit.py site`` runs this (``python -m isanet.notebook.site --out site``) with the notebooks' full
settings (``ISANET_QUICK=0``): notebook 04 trains its teaching run live, the pages show what a learner who runs
the notebooks sees. ``python3 kit.py site --quick`` (what CI runs) uses their tiny test-runner settings
(``ISANET_QUICK=1``), and the index says so. Notebooks run as ``nbmake`` runs them (``nbclient``, their own
folder as the working directory).

Widgets need a kernel: in the pages their outputs are replaced by a short note. Notebook 02 gets, right after the
cell where it saves its standalone explorer, a hidden cell that saves the page into the site and shows it in an
``<iframe>``: that explorer answers clicks without a kernel.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from pathlib import Path

from isanet.io.atomic import atomic_path, write_text_atomic
from isanet.io.outputs import check_output
from isanet.notebook.session import repo_root

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
HIDDEN_TAG = "site-hidden"
EXPLORER_NOTEBOOK = "02_attention_explorer"
EXPLORER_PAGE = "02_attention_explorer_page.html"
EXPLORER_CELL_MARK = "explorer.save_html("
MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration MathJax 2's local bundle ships
WIDGET_NOTE = ("<p><i>(An interactive widget: it needs a running kernel. Open the notebook in JupyterLab "
               "(<code>python3 kit.py lab</code>) to use it.)</i></p>")


def notebook_title(nb, fallback: str) -> str:
    """The first ``# heading`` of the notebook's first markdown cell."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.MULTILINE)
            if match:
                return match.group(1).strip()
    return fallback


def embed_explorer(nb, site_dir: Path) -> bool:
    """Insert, after notebook 02's ``explorer.save_html(...)`` cell, a hidden cell that writes the standalone
    explorer into ``site_dir`` and shows it in an iframe. Returns whether the mark was found."""
    import nbformat

    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and EXPLORER_CELL_MARK in cell.source:
            source = (f"from IPython.display import HTML\n"
                      f"explorer.save_html({str(site_dir / EXPLORER_PAGE)!r})\n"
                      f"HTML('<iframe class=\"isanet-explorer-frame\" src=\"{EXPLORER_PAGE}\" "
                      f"style=\"width: 100%; height: 1300px; border: 0; outline: 1px solid #ccc\"></iframe>')")
            nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": [HIDDEN_TAG]}))
            return True
    return False


def replace_widget_outputs(nb) -> int:
    """Widget views render nothing without a kernel: say so instead. Returns how many were replaced."""
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/html": WIDGET_NOTE, "text/plain": "(interactive widget)"}
                count += 1
    return count


def execute(nb, folder: Path, timeout: int) -> None:
    """Run every cell as ``nbmake`` does: the notebook's folder as working directory, python3 kernel."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(folder)}}).execute()


def install_mathjax(out: Path) -> str | None:
    """Copy MathJax 2 (the ``jupyter-server-mathjax`` package's bundle) into the site, so that the formulas are
    typeset with no network; returns the pages' MathJax URL, or None (then nbconvert's CDN URL) without it."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    target = out / MATHJAX_DIR
    if not (target / "MathJax.js").is_file():
        shutil.rmtree(target, ignore_errors=True)  # a copy an interrupted build left half-written
        with atomic_path(target) as staging:
            shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", staging)
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def to_html(nb, title: str, mathjax_url: str | None = None) -> str:
    """The lab-style HTML page of an executed notebook, hidden cells' inputs removed, with a link home."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_input_tags = {HIDDEN_TAG}
    exporter = HTMLExporter(config=config, template_name="lab")
    if mathjax_url is not None:
        exporter.mathjax_url = mathjax_url
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    home = ('<nav style="padding: 8px 16px; font-family: sans-serif"><a href="index.html">&larr; all notebooks'
            '</a></nav>')
    return re.sub(r"(<body[^>]*>)", lambda match: match.group(1) + home, body, count=1)


def index_html(pages: list[tuple[str, str, str]], seconds: float, quick: bool) -> str:
    """The index: one link per page (file, title, status), and what the pages were built with."""
    items = "\n".join(f'<li><a href="{html.escape(file)}">{html.escape(title)}</a>{html.escape(status)}</li>'
                      for file, title, status in pages)
    explorer = (f'<p>The attention explorer also works on its own: <a href="{EXPLORER_PAGE}">standalone '
                f"explorer page</a> (one HTML file; click a pixel).</p>"
                if any(file.startswith(EXPLORER_NOTEBOOK) for file, _, _ in pages) else "")
    settings = ("in quick mode (the notebooks' tiny test-runner settings: their training numbers say nothing)"
                if quick else "with the notebooks' full settings")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>isanet notebooks</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 24px auto; line-height: 1.5 }}</style>
</head><body>
<h1>isanet: Interlaced Sparse Self-Attention, in notebooks</h1>
<p>The teaching notebooks of <b>isanet</b> (ISANet: Huang et al., <i>Interlaced Sparse Self-Attention for Semantic
Segmentation</i>, arXiv:1907.12273), executed and saved with their outputs, to read without installing anything.</p>
<ol class="isanet-pages">
{items}
</ol>
{explorer}
<p><small>Built with <code>python3 kit.py site{' --quick' if quick else ''}</code> {settings} in {seconds:.0f} s.
Unless real data sets and published checkpoints were present, the notebooks ran on small <b>synthetic</b> data
(the context task and samples in the published layouts) with the shipped <b>teaching model</b> (trained on the
synthetic context task) or random weights: their numbers say what attention does on those scenes, nothing
about ISANet on real images.
Interactive widgets need a kernel (<code>python3 kit.py lab</code>); formulas are typeset by the copy of
MathJax in <code>{MATHJAX_DIR}/</code>, with no network.</small></p>
</body></html>
"""


def build_site(out_dir: str | os.PathLike, names: list[str] | None = None, timeout: int = 300,
               notebooks_dir: str | os.PathLike | None = None, quick: bool = False) -> int:
    """Execute the notebooks (all ``NN_*.ipynb``, or those named) and write the site; returns how many failed.
    A failing notebook is still written (with the error in its outputs) and named in one line. ``quick``: the
    notebooks' test-runner settings."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    os.environ["ISANET_QUICK"] = "1" if quick else "0"  # the kernels inherit it
    folder = Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks"
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if names:
        wanted = {Path(name).stem for name in names}
        unknown = wanted - {path.stem for path in paths}
        if unknown:
            raise FileNotFoundError(f"no notebook {', '.join(sorted(unknown))} in {folder}")
        paths = [path for path in paths if path.stem in wanted]
    start, failures, pages = time.monotonic(), 0, []
    mathjax_url = install_mathjax(out)
    if mathjax_url is None:
        print("site: warning: jupyter-server-mathjax is not installed; the pages load MathJax from its CDN",
              file=sys.stderr)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = notebook_title(nb, path.stem)
        if path.stem == EXPLORER_NOTEBOOK and not embed_explorer(nb, out):
            print(f"site: warning: {path.name} has no `{EXPLORER_CELL_MARK}` cell; no explorer embedded",
                  file=sys.stderr)
        began, status = time.monotonic(), ""
        try:
            execute(nb, folder, timeout)
        except CellExecutionError as error:
            failures += 1
            status = " (a cell failed while building this page)"
            print(f"site: error: {path.name}: {str(error).strip().splitlines()[-1]}", file=sys.stderr)
        replace_widget_outputs(nb)
        page = f"{path.stem}.html"
        write_text_atomic(to_html(nb, title, mathjax_url), out / page)
        pages.append((page, title, status))
        print(f"site: {page} ({time.monotonic() - began:.0f} s)", flush=True)
    write_text_atomic(index_html(pages, time.monotonic() - start, quick), out / "index.html")
    print(f"site: wrote {out / 'index.html'} ({len(pages)} pages, {failures} failed, "
          f"{time.monotonic() - start:.0f} s)")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 kit.py site", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names (e.g. 02_attention_explorer); default: all")
    parser.add_argument("--out", default=str(repo_root() / "site"), help="folder for the site (default: site/)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="the notebooks' tiny test-runner settings (what CI builds); default: full settings")
    args = parser.parse_args(argv)
    try:
        check_output(args.out, "--out", kind="dir", inputs=[("notebooks", repo_root() / "notebooks")])
        return 1 if build_site(args.out, args.notebooks, args.timeout, quick=args.quick) else 0
    except (OSError, ValueError) as error:
        print(f"site: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
