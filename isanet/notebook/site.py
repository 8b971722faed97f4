"""The course as a static site: every notebook executed and written as an HTML page with its outputs, an
index, and notebook 02's explorer embedded as the standalone page, so the notebooks can be read in any browser
without installing anything.

``python3 kit.py site`` runs this (``python -m isanet.notebook.site --out site``) with the notebooks' full
settings (``ISANET_QUICK=0``): notebook 04 trains its teaching run live, the pages show what a learner who runs
the notebooks sees. ``python3 kit.py site --quick`` (what CI runs) uses their tiny test-runner settings
(``ISANET_QUICK=1``), and the index says so. Notebooks run as ``nbmake`` runs them (``nbclient``, their own
folder as the working directory).

Widgets need a kernel: in the pages their outputs are replaced by a short note. Cells whose outputs are hidden
in JupyterLab (``jupyter.outputs_hidden``: the exercise solutions and quiz answers) are collapsed in the pages
too, code and outputs inside one ``<details>``, so an answer never sits in view under its question. The notebooks
with an explorer (01: partitions, 02: attention, 06: patterns; see ``EMBEDS``) get, right after the cell that
makes or saves it, a hidden cell that saves the explorer as a standalone page into the site and shows it in an
``<iframe>``: those pages answer clicks and sliders without a kernel, and the index links them. The notation card
(``notebooks/notation.md``) becomes a page of its own, and the notebooks' links to it point there.

The pages need no network: the formulas are typeset by MathJax 3 copied into ``mathjax/`` (:func:`install_mathjax`,
the page template ``templates/nbconvert/isanet-site``, which also drops JupyterLab's require.js and mermaid
loaders), and the outputs name the repository as the root of relative paths and the temporary folder as
``$TMPDIR`` (:func:`scrub_local_paths`), never the building machine's folders.

Each notebook is also kept as it ran, outputs and errors included, in ``executed/`` inside the site (before the
pages' changes to its outputs). With ``ISANET_SITE_DIR`` naming the site, the test suite checks those copies
(:func:`executed_notebook`, :func:`cell_failure`) instead of running every notebook a second time: CI builds
the site, then runs the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from isanet.io.atomic import atomic_path, write_text_atomic
from isanet.io.outputs import OutputError, check_output, check_replaceable, foreign_files
from isanet.limits import bounded_int
from isanet.notebook.session import repo_root

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
HIDDEN_TAG = "site-hidden"
EXPLORER_NOTEBOOK = "02_attention_explorer"
EXPLORER_PAGE = "02_attention_explorer_page.html"
EXECUTED_DIR = "executed"  # in the site: each notebook as it ran, for the tests to check
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"  # the notebooks a build executes
SKIP_TAG, RAISES_TAG = "skip-execution", "raises-exception"  # nbclient's (and nbmake's) cell tags
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours of a kernel's traceback


@dataclass(frozen=True)
class Embed:
    """A page of the site shown inside a notebook's page: after the first code cell holding ``mark``, a hidden
    cell runs ``save`` (Python, ``{path}`` standing for the page's path in the site) and shows the page in an
    iframe."""

    page: str    # its file in the site
    mark: str    # text of the code cell after which the page is saved and shown
    title: str   # the index's link text
    height: int  # of the iframe, in CSS pixels
    save: str = "explorer.save_html({path!r})"  # the notebook's variable ``explorer`` writes its standalone page


LIVE_PAGE = "02_live_page.html"
#: The pages each notebook's page embeds: the explorers as standalone pages, and notebook 02's live model.
EMBEDS: dict[str, tuple[Embed, ...]] = {
    "01_interlaced_partitions": (Embed("01_partition_explorer_page.html", "= PartitionExplorer(",
                                       "partition explorer (sliders; click a pixel)", 1000),),
    EXPLORER_NOTEBOOK: (Embed(EXPLORER_PAGE, "= AttentionExplorer(", "attention explorer (click a pixel)", 1300),
                        Embed(LIVE_PAGE, "plot_predictions(rows,", "the teaching model live (move and recolour the "
                              "beacon; served over http)", 1900,
                              "from isanet.notebook.live_page import save_teaching_live_page\n"
                              "save_teaching_live_page({path!r}, first=IMAGE_INDEX)")),
    "06_efficient_attention": (Embed("06_pattern_explorer_page.html", "= ReachExplorer(",
                                     "pattern explorer (click a query; size slider)", 700),),
}
NOTATION_CARD = "notation.md"
NOTATION_PAGE = "notation.html"
MATHJAX_DIR = "mathjax"
#: MathJax 3 as ``web/package.json`` pins it (``npm ci --prefix web``; kit.py runs it where npm is installed):
#: one self-contained script (every TeX extension, SVG output) and its licence, copied into the site's ``mathjax/``.
MATHJAX_FILES = ("es5/tex-svg-full.js", "LICENSE")
TEMPLATE_DIR = Path(__file__).parent / "templates" / "nbconvert"  # the site's page template, "isanet-site"
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


def embed_page(nb, site_dir: Path, embed: Embed) -> bool:
    """Insert, after the first code cell holding ``embed.mark``, a hidden cell that writes ``embed.page`` into
    ``site_dir`` (``embed.save``) and shows it in an iframe. Returns whether the mark was found."""
    import nbformat

    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and embed.mark in cell.source:
            source = (f"from IPython.display import IFrame\n"
                      f"{embed.save.format(path=str(site_dir / embed.page))}\n"
                      f"IFrame({embed.page!r}, width='100%', height={embed.height}, extras=["
                      f"'class=\"isanet-explorer-frame\"', 'style=\"border: 0; outline: 1px solid #ccc\"'])")
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


def local_prefixes() -> dict[str, str]:
    """The machine's own folders as the site's pages name them: the repository as the root of relative paths,
    the temporary folder as ``$TMPDIR``. A page is read on other machines, where these mean nothing."""
    import tempfile

    return {f"{repo_root()}{os.sep}": "", f"{Path(tempfile.gettempdir()).resolve()}{os.sep}": f"$TMPDIR{os.sep}"}


def scrub_local_paths(nb, prefixes: dict[str, str]) -> int:
    """Rewrite the ``prefixes`` (:func:`local_prefixes`) in every text an output shows (streams, plain text, HTML,
    tracebacks); returns how many outputs changed. The executed copy the tests check keeps them as they ran."""

    def scrub(text: str) -> str:
        for prefix, shown in prefixes.items():
            text = text.replace(prefix, shown)
        return text

    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            before = repr(output)
            if "text" in output:
                output["text"] = scrub(output["text"])
            if "traceback" in output:
                output["traceback"] = [scrub(line) for line in output["traceback"]]
            for mime in ("text/plain", "text/html"):
                if mime in output.get("data", {}):
                    output["data"][mime] = scrub(output["data"][mime])
            changed += repr(output) != before
    return changed


def _output_html(output) -> str:
    """One executed output as HTML: the richest of HTML, a PNG or plain text; streams and errors as text."""
    if output.get("output_type") == "stream":
        return f"<pre>{html.escape(output.get('text', ''))}</pre>"
    if output.get("output_type") == "error":
        traceback = ANSI.sub("", "\n".join(output.get("traceback", [])))
        return f"<pre>{html.escape(traceback)}</pre>"
    data = output.get("data", {})
    if "text/html" in data:
        return data["text/html"]
    if "image/png" in data:
        return f'<img src="data:image/png;base64,{data["image/png"].strip()}" alt="figure">'
    return f"<pre>{html.escape(data.get('text/plain', ''))}</pre>"


def collapse_hidden_outputs(nb) -> int:
    """Cells marked ``jupyter.outputs_hidden`` become one closed ``<details>`` holding their code and outputs
    (their own input is then removed from the page). Returns how many were collapsed."""
    import nbformat

    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.metadata.get("jupyter", {}).get("outputs_hidden"):
            continue
        inner = "\n".join(_output_html(output) for output in cell.get("outputs", []))
        answer = {"solution", "answer"} & set(cell.metadata.get("tags", []))
        summary = "show the answer (code and output)" if answer else "show the code and its output"
        details = (f'<details class="isanet-hidden-output"><summary>{summary}</summary>'
                   f"<pre><code>{html.escape(cell.source)}</code></pre>{inner}</details>")
        cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": details})]
        cell.metadata["tags"] = [*cell.metadata.get("tags", []), HIDDEN_TAG]
        count += 1
    return count


def execute(nb, folder: Path, timeout: int) -> None:
    """Run every cell as ``nbmake`` does: the notebook's folder as working directory, python3 kernel."""
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(folder)}}).execute()


def cell_failure(nb) -> str | None:
    """What stopped an executed notebook, as nbmake reports it: the first code cell with an error output (its
    number as the notebook counts it, its source, the traceback without colours) or that never ran; None when
    every code cell ran without an error. Cells tagged ``raises-exception`` may fail, ``skip-execution`` ones
    are not run; a cell that the site build added (its explorer page) is named as such."""
    added = 0
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        site_cell = HIDDEN_TAG in tags
        added += site_cell
        if cell.cell_type != "code" or not cell.source.strip() or SKIP_TAG in tags:
            continue
        where = "the cell the site build added after cell" if site_cell else "cell"
        errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        if errors and RAISES_TAG not in tags:
            traceback = ANSI.sub("", "\n".join(errors[0].get("traceback", [])))
            return f"{where} {index - added} failed:\n{cell.source}\n------------------\n{traceback}"
        if cell.get("execution_count") is None:
            return f"{where} {index - added} never ran (the run stopped before it):\n{cell.source}"
    return None


def executed_copy(site_dir: str | os.PathLike, notebook: Path):
    """The copy of ``notebook`` that the site build in ``site_dir`` executed. A ValueError names what is wrong
    when there is none, or when it no longer stands for a run of the code as it is now: its cells differ from
    the notebook's (the cells the build adds aside), or a file of the package changed after it was written."""
    import nbformat

    copy = Path(site_dir) / EXECUTED_DIR / notebook.name
    again = "rebuild the site (python3 kit.py site --quick) or unset ISANET_SITE_DIR to run the notebooks here"
    if not copy.is_file():
        raise ValueError(f"ISANET_SITE_DIR={site_dir}: no executed copy {copy} (the site build executes "
                         f"{NOTEBOOK_PATTERN}): {again}")
    executed, current = nbformat.read(copy, as_version=4), nbformat.read(notebook, as_version=4)
    ran = [(cell.cell_type, cell.source) for cell in executed.cells if HIDDEN_TAG not in cell.metadata.get("tags", [])]
    if ran != [(cell.cell_type, cell.source) for cell in current.cells]:
        raise ValueError(f"{copy} ran other cells than {notebook} has now: {again}")
    written = copy.stat().st_mtime
    package = Path(__file__).resolve().parents[1]
    changed = next((path for path in sorted(package.rglob("*")) if path.is_file() and "__pycache__" not in
                    path.parts and path.stat().st_mtime > written), None)
    if changed is not None:
        raise ValueError(f"{copy} is older than {changed}: {again}")
    return executed


def executed_notebook(notebook: Path, site_dir: str | os.PathLike | None = None, timeout: int = 300):
    """``notebook`` after a run, for :func:`cell_failure` to judge: the copy the site build in ``site_dir``
    executed (:func:`executed_copy`; CI builds the site first, so no notebook runs twice), else the notebook
    executed now, as ``pytest --nbmake`` would (a failing cell keeps its error in its outputs)."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    if site_dir:
        return executed_copy(site_dir, notebook)
    nb = nbformat.read(notebook, as_version=4)
    with contextlib.suppress(CellExecutionError):  # the error output stays in its cell, for cell_failure
        execute(nb, notebook.parent, timeout)
    return nb


def mathjax_source() -> Path | None:
    """The npm copy of MathJax 3 (``web/node_modules/mathjax``), or None when ``npm ci --prefix web`` has not run."""
    source = repo_root() / "web" / "node_modules" / "mathjax"
    return source if all((source / name).is_file() for name in MATHJAX_FILES) else None


def install_mathjax(out: Path) -> str | None:
    """Copy MathJax 3 (:func:`mathjax_source`) into the site, so that the formulas are typeset with no network and
    from ``file://``; returns the pages' MathJax URL, or None without the npm copy (the pages then show their
    formulas as TeX source, and the index says so). An earlier build's copy is reused while every file in it is as
    the kit wrote it; a ``mathjax/`` holding anything else is never replaced (:func:`site_outputs` refuses it before
    the build)."""
    source = mathjax_source()
    if source is None:
        return None
    target = out / MATHJAX_DIR
    script = target / Path(MATHJAX_FILES[0]).name
    if not script.is_file() or foreign_files(target):  # reused only while whole and the kit's
        with atomic_path(target) as staging:  # replaces only a copy of the kit's own, unchanged
            staging.mkdir()
            for name in MATHJAX_FILES:
                shutil.copyfile(source / name, staging / Path(name).name)
    return f"{MATHJAX_DIR}/{script.name}"


def to_html(nb, title: str, mathjax_url: str | None = None) -> str:
    """The lab-style HTML page of an executed notebook, hidden cells' inputs removed, with a link home."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_input_tags = {HIDDEN_TAG}
    exporter = HTMLExporter(config=config, template_name="isanet-site", extra_template_basedirs=[str(TEMPLATE_DIR)])
    exporter.mathjax_url = mathjax_url or ""  # empty: the template loads no MathJax
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    home = ('<nav style="padding: 8px 16px; font-family: sans-serif"><a href="index.html">&larr; all notebooks'
            '</a></nav>')
    return re.sub(r"(<body[^>]*>)", lambda match: match.group(1) + home, body, count=1)


def notation_html(card: str, mathjax_url: str | None = None) -> str:
    """The notation card (markdown with formulas and tables) as a page, through the same exporter as the
    notebooks, so that it looks like them and its formulas are typeset the same way."""
    import nbformat

    return to_html(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(card)]), "Notation card", mathjax_url)


def index_html(pages: list[tuple[str, str, str]], seconds: float, quick: bool, typeset: bool = True) -> str:
    """The index: how the pages were built (quick mode or full settings) at the top, one link per page (file,
    title, status), the standalone explorers, and where the formulas are typeset (``typeset``: the site holds
    its copy of MathJax)."""
    items = "\n".join(f'<li><a href="{html.escape(file)}">{html.escape(title)}</a>{html.escape(status)}</li>'
                      for file, title, status in pages)
    built = {Path(file).stem for file, _, _ in pages}
    links = "\n".join(f'<li><a href="{html.escape(embed.page)}">{html.escape(embed.title)}</a> (notebook '
                      f"{html.escape(name[:2])})</li>" for name, embeds in EMBEDS.items() if name in built
                      for embed in embeds)
    explorer = (f"<p>The explorers also work on their own, one HTML file each, no kernel needed (the live page "
                f"runs its model when the site is served: <code>python3 kit.py site --serve</code>):</p>\n"
                f'<ul class="isanet-explorers">\n{links}\n</ul>' if links else "")
    settings = ('<b>Built in quick mode</b>: the notebooks ran with their tiny test-runner settings, so their '
                "training numbers say nothing (build with <code>python3 kit.py site</code> for the full ones)."
                if quick else "<b>Built with the notebooks' full settings</b>: the numbers are those a learner who "
                              "runs the notebooks sees.")
    formulas = (f"formulas are typeset by the copy of MathJax in <code>{MATHJAX_DIR}/</code>, with no network"
                if typeset else "formulas are shown as TeX source: this site was built without MathJax "
                                "(<code>npm ci --prefix web</code>, then build again)")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>isanet notebooks</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 900px; margin: 24px auto; line-height: 1.5 }}
.isanet-built {{ padding: 8px 12px; background: #f3f3f3; border-left: 4px solid #888 }}</style>
</head><body>
<h1>isanet: Interlaced Sparse Self-Attention, in notebooks</h1>
<p class="isanet-built">{settings}</p>
<p>The teaching notebooks of <b>isanet</b> (ISANet: Huang et al., <i>Interlaced Sparse Self-Attention for Semantic
Segmentation</i>, arXiv:1907.12273), executed and saved with their outputs, to read without installing anything.</p>
<ol class="isanet-pages">
{items}
</ol>
{explorer}
<p><small>Built with <code>python3 kit.py site{' --quick' if quick else ''}</code> in {seconds:.0f} s.
Unless real data sets and published checkpoints were present, the notebooks ran on small <b>synthetic</b> data
(the context task and samples in the published layouts) with the shipped <b>teaching model</b> (trained on the
synthetic context task) or random weights: their numbers say what attention does on those scenes, nothing
about ISANet on real images.
Interactive widgets need a kernel (<code>python3 kit.py lab</code>); {formulas}.</small></p>
</body></html>
"""


def site_outputs(out: Path, notebooks: list[Path], card: Path) -> list[Path]:
    """Every name a build of ``notebooks`` writes in the site ``out`` (pages, executed copies, explorer pages,
    the notation page, ``mathjax/``, the index): checked before any notebook runs, so that a user's own
    ``index.html`` or ``mathjax/`` is named in an error and kept, not found after an hour of building."""
    pages = [out / f"{path.stem}.html" for path in notebooks] + [out / EXECUTED_DIR / path.name for path in notebooks]
    embedded = [out / embed.page for path in notebooks for embed in EMBEDS.get(path.stem, ())]
    explorers = [*embedded, *(page.with_name(f"{page.stem}_files") for page in embedded if page.name == LIVE_PAGE)]
    return [*pages, *explorers, *([out / NOTATION_PAGE] if card.is_file() else []), out / MATHJAX_DIR,
            out / "index.html"]


def notebook_paths(folder: Path, names: list[str] | None = None) -> list[Path]:
    """The notebooks of ``folder`` a build runs: all, or those ``names`` names (an unknown one refused)."""
    paths = sorted(folder.glob(NOTEBOOK_PATTERN))
    if not names:
        return paths
    wanted = {Path(name).stem for name in names}
    unknown = wanted - {path.stem for path in paths}
    if unknown:
        raise FileNotFoundError(f"no notebook {', '.join(sorted(unknown))} in {folder}")
    return [path for path in paths if path.stem in wanted]


def build_site(out_dir: str | os.PathLike, names: list[str] | None = None, timeout: int = 300,
               notebooks_dir: str | os.PathLike | None = None, quick: bool = False) -> int:
    """Execute the notebooks (all ``NN_*.ipynb``, or those named) and write the site; returns how many failed.
    A failing notebook is still written, page and executed copy (with the error in its outputs), and named in one
    line. ``quick``: the notebooks' test-runner settings. A name the build writes that holds a file the kit did not
    write (:func:`site_outputs`) is refused before any notebook runs."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    os.environ["ISANET_QUICK"] = "1" if quick else "0"  # the kernels inherit it
    folder = Path(notebooks_dir) if notebooks_dir else repo_root() / "notebooks"
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = notebook_paths(folder, names)
    card = folder / NOTATION_CARD
    for target in site_outputs(out, paths, card):
        check_replaceable(target, "--out")
    start, failures, pages = time.monotonic(), 0, []
    mathjax_url = install_mathjax(out)
    if mathjax_url is None:
        print("site: warning: no copy of MathJax 3 (run `npm ci --prefix web`); the pages show their formulas as "
              "TeX source", file=sys.stderr)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = notebook_title(nb, path.stem)
        for embed in EMBEDS.get(path.stem, ()):
            if not embed_page(nb, out, embed):
                print(f"site: warning: {path.name} has no `{embed.mark}` cell; {embed.page} not embedded",
                      file=sys.stderr)
        began, status = time.monotonic(), ""
        try:
            execute(nb, folder, timeout)
        except CellExecutionError as error:
            failures += 1
            status = " (a cell failed while building this page)"
            print(f"site: error: {path.name}: {str(error).strip().splitlines()[-1]}", file=sys.stderr)
        write_text_atomic(nbformat.writes(nb), out / EXECUTED_DIR / path.name)
        replace_widget_outputs(nb)
        scrub_local_paths(nb, local_prefixes())
        collapse_hidden_outputs(nb)
        page = f"{path.stem}.html"
        write_text_atomic(to_html(nb, title, mathjax_url).replace(f'href="{NOTATION_CARD}"', f'href="{NOTATION_PAGE}"'),
                          out / page)
        pages.append((page, title, status))
        print(f"site: {page} ({time.monotonic() - began:.0f} s)", flush=True)
    if card.is_file():
        write_text_atomic(notation_html(card.read_text(encoding="utf-8"), mathjax_url), out / NOTATION_PAGE)
        pages.append((NOTATION_PAGE, "Notation card: every letter of the notebooks, with the code's names", ""))
    write_text_atomic(index_html(pages, time.monotonic() - start, quick, mathjax_url is not None),
                      out / "index.html")
    print(f"site: wrote {out / 'index.html'} ({len(pages)} pages, {failures} failed, "
          f"{time.monotonic() - start:.0f} s)")
    return failures


#: The longest a cell may run: a day (notebook 04's full teaching runs take about an hour in one cell).
MAX_CELL_SECONDS = 86_400


def build_parser() -> argparse.ArgumentParser:
    """The options of ``kit.py site`` (walked by the tests with every command's)."""
    parser = argparse.ArgumentParser(prog="python3 kit.py site", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebook names (e.g. 02_attention_explorer); default: all")
    parser.add_argument("--out", default=str(repo_root() / "site"), help="folder for the site (default: site/)")
    parser.add_argument("--timeout", type=bounded_int(1, MAX_CELL_SECONDS),
                        help=f"seconds per cell, 1 to {MAX_CELL_SECONDS} (default: 300 with --quick; 3600 with the "
                             "full settings, where notebook 04 trains its live teaching runs in one cell)")
    parser.add_argument("--quick", action="store_true",
                        help="the notebooks' tiny test-runner settings (what CI builds); default: full settings")
    parser.add_argument("--serve", action="store_true",
                        help="serve the site built in --out on 127.0.0.1 (with the headers that let the live page "
                             "run its model on several threads) instead of building it; Ctrl-C stops")
    parser.add_argument("--port", type=bounded_int(1, 65535), default=8000, help="--serve's port (default: 8000)")
    return parser


def serve_site(out: Path, port: int) -> int:
    """``--serve``: the built site on 127.0.0.1:``port`` until Ctrl-C; 2 when ``out`` holds no site."""
    from isanet.notebook.serve import HOST, make_server

    if not (out / "index.html").is_file():
        print(f"site: error: --out {out}: holds no site (index.html); build it first with python3 kit.py site "
              "(--quick: in minutes)", file=sys.stderr)
        return 2
    try:
        server = make_server(out, port)
    except OSError as error:
        print(f"site: error: --port {port}: cannot serve there ({error.strerror or error})", file=sys.stderr)
        return 2
    print(f"site: serving {out} at http://{HOST}:{port}/ (the live page: http://{HOST}:{port}/{LIVE_PAGE}); "
          "Ctrl-C stops", flush=True)
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``kit.py site``: exit 2 for a refusal before any notebook runs (as every ``isanet`` command), 1 when a
    notebook failed or a write did."""
    args = build_parser().parse_args(argv)
    if args.serve:
        return serve_site(Path(args.out).resolve(), args.port)
    try:
        check_output(args.out, "--out", kind="dir", inputs=[("notebooks", repo_root() / "notebooks")])
        notebook_paths(repo_root() / "notebooks", args.notebooks)
    except (OSError, ValueError) as error:
        print(f"site: error: {error}", file=sys.stderr)
        return 2
    try:
        timeout = args.timeout or (300 if args.quick else 3600)
        return 1 if build_site(args.out, args.notebooks, timeout, quick=args.quick) else 0
    except (OSError, ValueError) as error:
        print(f"site: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, OutputError) else 1  # the guard's refusals come before any notebook runs


if __name__ == "__main__":
    sys.exit(main())
