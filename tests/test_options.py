"""Typed component options, for every registered kind at once: a misspelt or ill-typed option
fails when the config loads, naming the watcher (or job and signal) and the field, through
`load_settings` and through the CLI (exit 2); the options models' defaults are what the kinds
did before they had models; the watcher that calls out says so and the pure ones do not; and
the config reads all of it without the schedule, the models' libraries or numpy."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from watchkeeper.agent.config import ConfigError, load_settings
from watchkeeper.agent.jobs import (
    DEFAULT_SIGNALS,
    SAMPLE_METRICS,
    SIGNAL_COLUMNS,
    BiasSpec,
    DetectorJob,
    ProbeSpec,
)
from watchkeeper.detectors.drift import registry as drift_registry
from watchkeeper.detectors.watchers import registry

CLI = [sys.executable, "-m", "watchkeeper.agent"]
# What a kind needs besides the option under test (hf_classifier's model is required).
REQUIRED: dict[str, dict[str, Any]] = {"hf_classifier": {"model": "/models/classifier"}}
# Each kind's options as the kind read them before it had a model (its `options.get(...)`
# defaults), plus device and precision, which the service injects into every entry.
TODAY: dict[str, dict[str, Any]] = {
    "heuristics": {},
    "profanity": {"max_batch": 1024},
    "prompt_leak": {"model": "all-MiniLM-L6-v2", "embeddings": True, "similarity": 0.62,
                    "max_batch": 64, "max_length": 128, "cache_size": 256},
    "prompt_injection": {"embeddings": "auto", "max_chars": 20000, "max_batch": 256},
    "embedding": {"model": "all-MiniLM-L6-v2", "max_batch": 64, "max_length": 128},
    "trainable_head": {"name": None, "data_dir": None, "version": "current", "max_batch": 64},
    "detoxify": {"checkpoint": None, "config_dir": None, "model_type": None,
                 "allow_download": None, "max_batch": 32, "max_length": 256},
    "hf_classifier": {"model": "/models/classifier", "revision": None, "label_map": {},
                      "multi_label": None, "offline": None, "allow_download": False,
                      "max_batch": 32, "max_length": None},
    "llm_judge": {"base_url": None, "model": None, "api_key": None, "api_key_env": None,
                  "timeout": 30.0, "retries": 2, "max_concurrency": 8, "json_mode": False,
                  "max_tokens": 200, "check": True, "local_model": None, "max_new_tokens": 48,
                  "max_input_tokens": 4096, "rubrics": None, "max_batch": 16,
                  "max_chars": 8000, "cache_size": 4096},
}
IO_BOUND = {"llm_judge"}
EMBEDDING_DETECTORS = drift_registry.names("embedding")
SCALAR_DETECTORS = [n for n in drift_registry.KINDS if n not in EMBEDDING_DETECTORS]
SIGNAL_KIND = {"continuous": "latency_ms", "rate": "error", "categorical": "finish_reason"}


def _watcher_case(kind: str, options: dict[str, Any]) -> tuple[dict[str, Any], str]:
    config = {"watch": {"watchers": [
        {"name": "quality", "kind": "heuristics"},
        {"name": "checked", "kind": kind, "options": {**REQUIRED.get(kind, {}), **options}}]}}
    return config, "watch.watchers[1] (checked): "


def _signal_job(kind: str, test: str | None, params: dict[str, Any]) -> dict[str, Any]:
    signal = {"name": SIGNAL_KIND[kind], "kind": kind, "params": params,
              **({"test": test} if test else {})}
    return {"schedule": {"jobs": [{"name": "signals", "kind": "signals",
                                   "signals": [{"name": "prompt_length"}, signal]}]}}


# (config, the message's start, the field and reason after it), one per component kind
CASES: dict[str, tuple[dict[str, Any], str]] = {}
for _kind in registry.KINDS:
    CASES[f"watcher:{_kind}"] = (_watcher_case(_kind, {"max_btach": 8})[0],
                                 "watch.watchers[1] (checked): options.max_btach: "
                                 "Extra inputs are not permitted")
    CASES[f"watcher:{_kind}:ill-typed"] = (
        _watcher_case(_kind, {"precision": "fp8"})[0],
        "watch.watchers[1] (checked): options.precision: Input should be 'auto', 'fp32', "
        "'bf16' or 'fp16'")
for _name in EMBEDDING_DETECTORS:
    CASES[f"detector:{_name}"] = (
        {"schedule": {"jobs": [{"name": "drift", "detector": _name,
                                "params": {"n_permutatons": 100}}]}},
        "schedule.jobs[0] (drift): params.n_permutatons: Extra inputs are not permitted")
    CASES[f"detector:{_name}:ill-typed"] = (
        {"schedule": {"jobs": [{"name": "drift", "detector": _name,
                                "params": {"min_samples": "many"}}]}},
        "schedule.jobs[0] (drift): params.min_samples: Input should be a valid integer")
for _name in SCALAR_DETECTORS:
    _input = drift_registry.KINDS[_name].input
    CASES[f"detector:{_name}"] = (
        _signal_job(_input, _name, {"min_sampels": 10}),
        f"schedule.jobs[0] (signals): signals[1] ({SIGNAL_KIND[_input]}).params.min_sampels: "
        "Extra inputs are not permitted")
for _signal_kind, _column in SIGNAL_KIND.items():
    CASES[f"signal:{_signal_kind}"] = (
        _signal_job(_signal_kind, None, {"random_sate": 1}),
        f"schedule.jobs[0] (signals): signals[1] ({_column}).params.random_sate: "
        "Extra inputs are not permitted")
CASES["bias:counterfactual"] = (
    {"schedule": {"jobs": [{"name": "bias", "kind": "bias",
                            "bias": {"probes": {"max_textz": 50}}}]}},
    "schedule.jobs[0] (bias): bias.probes.max_textz: Extra inputs are not permitted")
CASES["bias:disparity"] = (
    {"schedule": {"jobs": [{"name": "bias", "kind": "bias", "bias": {"min_groop": 50}}]}},
    "schedule.jobs[0] (bias): bias.min_groop: Extra inputs are not permitted")


def test_every_kind_has_a_case() -> None:
    covered = {case.split(":")[1] for case in CASES if case.startswith(("watcher", "detector"))}
    assert covered == set(registry.KINDS) | set(drift_registry.KINDS)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_option_fails_at_load_naming_the_component_and_field(tmp_path: Path,
                                                                    case: str) -> None:
    config, message = CASES[case]
    path = tmp_path / "wk.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as failure:
        load_settings(path)
    assert message in str(failure.value)
    assert len(str(failure.value).splitlines()) == 1  # that error, and only that one


def test_the_cli_exits_2_with_every_bad_option_named(tmp_path: Path) -> None:
    """One config with every case's mistake (renumbered into one list each): the CLI stops
    before starting anything, exit 2, one line per mistake."""
    watchers: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    for config, _ in CASES.values():
        watchers += [w for w in config.get("watch", {}).get("watchers", [])[1:]]
        jobs += config.get("schedule", {}).get("jobs", [])
    for i, watcher in enumerate(watchers):
        watcher["name"] = f"w{i}"
    for i, job in enumerate(jobs):
        job["name"] = f"j{i}"
    path = tmp_path / "wk.yaml"
    path.write_text(yaml.safe_dump({"watch": {"watchers": watchers},
                                    "schedule": {"jobs": jobs}}))
    done = subprocess.run([*CLI, "--config", str(path), "up", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "watch.watchers[0] (w0): options.max_btach: Extra inputs are not permitted" \
        in done.stderr
    assert "schedule.jobs[0] (j0): params.n_permutatons: Extra inputs are not permitted" \
        in done.stderr
    assert "(j0)" in done.stderr and "bias.probes.max_textz" in done.stderr
    named = [line for line in done.stderr.splitlines() if line.startswith(("watch.", "sched"))]
    assert len(named) == len(CASES)


@pytest.mark.parametrize("kind", list(registry.KINDS))
def test_watcher_defaults_are_todays(kind: str) -> None:
    options = registry.KINDS[kind].options.model_validate(REQUIRED.get(kind, {}))
    dumped = options.model_dump()
    assert dumped == {"device": "auto", "precision": "auto", **TODAY[kind]}


def test_cheap_kinds_built_with_defaults_behave_as_before() -> None:
    from watchkeeper.detectors.watchers.base import WatcherSpec

    assert registry.build(WatcherSpec(name="q", kind="heuristics")).max_batch == 4096
    assert registry.build(WatcherSpec(name="p", kind="profanity")).max_batch == 1024


@pytest.mark.parametrize("kind", list(registry.KINDS))
def test_only_the_judge_is_io_bound(kind: str) -> None:
    import importlib

    from watchkeeper.detectors.watchers import is_io_bound

    module, _, name = registry.KINDS[kind].target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    io_bound = kind in IO_BOUND
    assert is_io_bound(cls) is io_bound
    scores = getattr(cls, "score", None) or cls.embed
    assert inspect.iscoroutinefunction(scores) is io_bound


@pytest.mark.parametrize("name", list(drift_registry.KINDS))
def test_detector_defaults_are_its_constructors(name: str) -> None:
    """The options model and the detector's own keywords: the same names (alpha aside: the
    schedule's; estimator aside: code's), the same defaults, the same input kind."""
    cls = drift_registry.detector_class(name)
    keywords = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
                if p.name not in ("self", "alpha", "estimator")}
    model = drift_registry.KINDS[name].options
    assert {f: info.default for f, info in model.model_fields.items()} == keywords
    assert cls.name == name and cls.kind == drift_registry.KINDS[name].input


def test_bias_defaults_are_the_tests_and_the_jobs() -> None:
    from watchkeeper.detectors.bias import CounterfactualProbe, GroupDisparity
    from watchkeeper.detectors.bias.options import CounterfactualOptions, DisparityOptions

    for cls, model in ((GroupDisparity, DisparityOptions),
                       (CounterfactualProbe, CounterfactualOptions)):
        keywords = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
        assert all(keywords[f] == info.default for f, info in model.model_fields.items())
    # a bias job's own defaults (200 texts per pair, groups of 30, against the rest)
    probes = ProbeSpec()
    assert (probes.max_texts, probes.min_texts, probes.tolerance, probes.min_effect) == \
        (200, 20, 0.05, 0.01)
    assert BiasSpec().disparity() == DisparityOptions(versus="rest", min_count=30)


def test_signal_defaults_are_todays() -> None:
    assert [(s.name, type(s.options).__name__, s.options.model_dump(exclude_unset=True))
            for s in DEFAULT_SIGNALS] == [
        ("prompt_length", "KSOptions", {}), ("completion_length", "KSOptions", {}),
        ("input_tokens", "KSOptions", {}), ("output_tokens", "KSOptions", {}),
        ("latency_ms", "KSOptions", {}), ("error", "ChiSquaredOptions", {}),
        ("finish_reason", "ChiSquaredOptions", {})]
    job = DetectorJob(name="drift", params={"n_permutations": 50, "scales": [0.5, 1, 2]})
    assert job.detector_options.model_dump(exclude_unset=True) == {
        "n_permutations": 50, "scales": (0.5, 1.0, 2.0)}


def test_the_names_the_models_accept_are_the_ones_the_schedule_reads() -> None:
    from watchkeeper.agent.schedule import data

    assert tuple(data.SIGNAL_COLUMNS) == SIGNAL_COLUMNS
    assert tuple(data.SAMPLE_METRICS) == SAMPLE_METRICS


def test_the_config_needs_neither_the_schedule_nor_the_models_libraries() -> None:
    """agent/config.py reads the job models from agent/jobs.py and every options model from
    plain-pydantic modules: loading a config with every kind imports no service, no numpy."""
    code = ("import sys\n"
            "from watchkeeper.agent.config import load_settings\n"
            "load_settings(None, **{'watch.watchers': [{'name': k, 'kind': k, 'options': "
            "{'model': '/m'} if k == 'hf_classifier' else {}} for k in "
            f"{sorted(registry.KINDS)!r}], 'schedule.jobs': [{{'name': 'j', 'kind': 'signals'}}, "
            "{'name': 'b', 'kind': 'bias'}, {'name': 'e', 'detector': 'classifier'}]})\n"
            "bad = [m for m in sys.modules if m.startswith(('watchkeeper.agent.schedule', "
            "'watchkeeper.agent.watch', 'numpy', 'scipy', 'sklearn', 'torch', 'httpx'))]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
