"""The set-up paths (README, kit.py, pyproject, environment.yml, .ci/run) agree with each other."""

import re

import tomllib

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
README = (REPO / "README.md").read_text()
ENVIRONMENT = (REPO / "environment.yml").read_text()
KIT = (REPO / "kit.py").read_text()


def torch_pin(text: str) -> str:
    return re.search(r"torch==([0-9.]+)", text).group(1)


def test_torch_is_pinned_to_the_same_version_everywhere():
    pins = {name: torch_pin(text) for name, text in (
        ("pyproject", "\n".join(PYPROJECT["project"]["dependencies"])), ("environment.yml", ENVIRONMENT),
        ("kit.py", KIT), ("README", README))}
    assert set(pins.values()) == {"2.13.0"}, pins


def test_torch_is_installed_before_the_package():
    kit_install = KIT[KIT.index("def setup"):]
    assert kit_install.index('"pip", "install", "--quiet", TORCH') < kit_install.index('"-e", ".[dev]"')
    assert ENVIRONMENT.index("torch==") < ENVIRONMENT.index("-e .[dev]")


def test_dev_extras_cover_what_the_tests_and_notebooks_need():
    extras = {re.split(r"[<>=]", item)[0] for item in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert {"pytest", "nbmake", "jupytext", "jupyterlab", "ipywidgets", "nbconvert", "nbclient"} <= extras
    assert PYPROJECT["project"]["scripts"] == {"isanet": "isanet.cli:main"}


def test_environment_python_satisfies_pyproject():
    python = re.search(r"python=(\d+)\.(\d+)", ENVIRONMENT).groups()
    minimum = re.search(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"]).groups()
    assert tuple(map(int, python)) >= tuple(map(int, minimum))


def test_readme_commands_are_the_kit_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"^(python3 kit\.py \w+)", README, flags=re.MULTILINE)
    assert commands == ["python3 kit.py lab", "python3 kit.py test", "python3 kit.py site"]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^python3 kit\.py test$", ci, flags=re.MULTILINE)
    assert re.search(r"^python3 kit\.py lint$", ci, flags=re.MULTILINE), ".ci/run must run ruff (kit.py lint)"
    assert re.search(r"^python3 kit\.py site\b", ci, flags=re.MULTILINE), "CI builds the site the browser test opens"
    assert '"tests"' in KIT and (REPO / "tests" / "test_notebook_runs.py").is_file(), "kit.py test runs the notebooks"
    site, copies, test = (ci.index(text) for text in ("\npython3 kit.py site", '\nexport ISANET_SITE_DIR=',
                                                      "\npython3 kit.py test"))
    assert site < copies < test, "CI runs each notebook once: the tests check the copies the site build executed"


def test_kit_lab_allows_root_only_when_running_as_root(monkeypatch):
    """`python3 kit.py lab` in a root container: JupyterLab exits at once without --allow-root."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("kit", REPO / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    for uid, flags in ((0, ["--allow-root"]), (1000, [])):
        monkeypatch.setattr(kit.os, "geteuid", lambda uid=uid: uid, raising=False)
        assert kit.lab_command(Path("py")) == ["py", "-m", "jupyterlab", "notebooks", *flags]


def test_opencv_is_pinned_to_the_version_the_teaching_assets_were_made_with():
    from isanet.notebook.teaching import OPENCV_VERSION

    pins = [item for item in PYPROJECT["project"]["dependencies"] if item.startswith("opencv-python-headless")]
    match = len(pins) == 1 and re.fullmatch(r"opencv-python-headless==(\d+\.\d+\.\d+)\.\d+", pins[0])
    assert match, pins
    assert match.group(1) == OPENCV_VERSION, (pins, OPENCV_VERSION)
