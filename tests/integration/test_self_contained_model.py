"""The registered model is self-contained: `mlflow models serve --env-manager local` scores with it from a
fresh virtualenv that holds only the model's requirements.txt, where Retain's own packages exist only as
the copies the model carries (its `code_paths`).

The virtualenv is built by pip against the project's lock as constraints (the same versions, resolved
without backtracking) and without byte-compiling; pip's cache makes re-runs faster. Needs PyPI: skips
without it locally, fails in CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from core.settings import Settings
from registry.environment import PACKAGES
from registry.tracking import active_uri, log_and_register, tracking_uri
from store.delta import Store
from tests.support.models import FEATURES, feature_rows, fit_model, train_result, write_plots
from tests.support.served import free_port
from tests.support.services import require_service
from training.artifact import ScoringModel

ROOT = Path(__file__).resolve().parents[2]
PIP_SECONDS = 600
START_SECONDS = 180

pytestmark = pytest.mark.timeout(PIP_SECONDS + START_SECONDS + 120)


def _isolated_env(venv: Path, **extra: str) -> dict[str, str]:
    """Only the fresh venv on PATH (`mlflow models serve` runs `uvicorn` from it), no PYTHONPATH."""
    kept = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR") if k in os.environ}
    return {**kept, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", **extra}


def _fresh_venv(folder: Path, requirements: Path) -> Path:
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet"]
    install += ["--no-compile", "-r", str(requirements), "-c", str(ROOT / "requirements.lock")]
    done = subprocess.run(install, timeout=PIP_SECONDS, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip could not install the model's requirements: {done.stderr[-3000:]}")
    return venv


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Settings, ScoringModel]:
    root = tmp_path_factory.mktemp("portable")
    store, settings = Store(root / "store"), Settings(home=root / "store")
    model = fit_model(seed=21, n=300, trees=10)
    log_and_register(store, settings, train_result(model, write_plots(root / "plots")), "churn")
    return store, settings, model


@pytest.fixture(scope="module")
def venv(registered: tuple[Store, Settings, ScoringModel], tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_service("PyPI", "pypi.org", 443)
    store, settings, _ = registered
    with active_uri(tracking_uri(store, settings)):
        requirements = Path(mlflow.pyfunc.get_model_dependencies("models:/churn@champion"))
    return _fresh_venv(tmp_path_factory.mktemp("fresh"), requirements)


@pytest.fixture
def served(registered: tuple[Store, Settings, ScoringModel], venv: Path, tmp_path: Path) -> Iterator[str]:
    """`mlflow models serve` from the fresh venv, run from an empty folder so nothing of Retain is near."""
    store, settings, _ = registered
    port, log = free_port(), tmp_path / "serve.log"
    command = [str(venv / "bin" / "mlflow"), "models", "serve", "-m", "models:/churn@champion"]
    command += ["--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)]
    env = _isolated_env(venv, MLFLOW_TRACKING_URI=tracking_uri(store, settings))
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while not _answers(f"{url}/ping"):
            assert process.poll() is None, f"mlflow models serve exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not serving in {START_SECONDS} s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the session holds mlflow and the uvicorn it started
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


#: run in the fresh venv: which Retain packages it finds, then where they come from once the model loads
PROBE = """
import importlib.util, json, sys
import mlflow
packages = json.loads(sys.argv[1])
before = [p for p in packages if importlib.util.find_spec(p) is not None]
mlflow.pyfunc.load_model("models:/churn@champion")
after = {p: sys.modules[p].__file__ for p in packages if p in sys.modules}
print(json.dumps({"before": before, "after": after}))
"""


def test_retain_is_importable_in_the_fresh_venv_only_from_the_models_code(
    registered: tuple[Store, Settings, ScoringModel], venv: Path, tmp_path: Path
) -> None:
    store, settings, _ = registered
    found = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PROBE, json.dumps(PACKAGES)],
        cwd=tmp_path,
        env=_isolated_env(venv, MLFLOW_TRACKING_URI=tracking_uri(store, settings)),
        capture_output=True,
        text=True,
        timeout=START_SECONDS,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    report = json.loads(found.stdout.splitlines()[-1])
    assert report["before"] == []
    carried = {"core", "features", "training", "registry"}
    assert set(report["after"]) == carried
    for package, origin in report["after"].items():
        assert origin.endswith(f"/code/{package}/__init__.py"), origin


def test_mlflow_models_serve_scores_from_the_fresh_venv(
    served: str, registered: tuple[Store, Settings, ScoringModel]
) -> None:
    model = registered[2]
    rows = feature_rows(40, 7)[0].dropna().head(5)
    body = {"dataframe_split": json.loads(rows[FEATURES].to_json(orient="split", index=False))}
    answer = requests.post(f"{served}/invocations", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    predictions = pd.DataFrame(answer.json()["predictions"])
    probability = predictions["probability"].to_numpy()
    assert ((probability >= 0) & (probability <= 1)).all()
    np.testing.assert_allclose(probability, model.predict(rows), rtol=0, atol=1e-12)
    reasons = json.loads(predictions["reasons"].iloc[0])
    assert {"feature", "text", "direction", "points", "value"} <= set(reasons[0])
