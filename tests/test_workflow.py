"""The Snakemake workflow: the whole default DAG in a temporary folder, re-runs, the report,
the paper's DAG, lint and config validation."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import train_attempts

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "workflow" / "Snakefile"
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
FINAL = ["table.csv", "table.md", "table.tex", "mAP_by_model.png", "mAP_by_model.pdf", "per_class_ap.png",
         "training_curves.png", "mAP_vs_params.png"]
ANALYSIS_FILES = ["data_efficiency/data_efficiency.png", "data_efficiency/data_efficiency.md",
                  "label_noise/mAP_vs_label_noise.png", "label_noise/label_noise.md",
                  "label_quality/per_class_ap_vs_label_quality.png", "label_quality/label_quality.md",
                  "robustness/robustness.png", "robustness/robustness.md", "cost/mAP_vs_cost.png", "cost/cost.md"]
ANALYSIS_RULES = {"subset", "label_noise", "analysis_run_config", "analysis_train", "probe", "data_efficiency",
                  "label_noise_effect", "label_quality", "robustness", "cost"}


def snakemake(workdir: Path, *args: str, config: Path = ROOT / "config" / "config.yaml") -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=workdir)


def planned(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts by rule from a dry run's job-stats table."""
    output = result.stdout + result.stderr
    assert "Job stats:" in output, output[-2000:]
    table = output.split("Job stats:")[1].split("total")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The default workflow, run once end to end in a fresh folder (a few minutes on 2 cores)."""
    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_default_workflow_produces_the_comparison(finished):
    out = finished / "results" / "comparison" / "config"  # named after config/config.yaml
    for name in FINAL:
        assert (out / name).stat().st_size > 1000, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "mAP_by_model.pdf").read_bytes()[:5] == b"%PDF-"
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    table = pd.read_csv(out / "table.csv")
    assert sorted(table.model) == sorted([*config["models"], *config["ensembles"]])
    runs = table[table.architecture != "ensemble"]
    assert runs.mAP.between(0, 1).all() and (runs.mAP_ci_low <= runs.mAP).all() and (runs.mAP <= runs.mAP_ci_high).all()
    chance = 0.25  # well above the class prevalence of the embedded data (~0.17)
    assert runs.mAP.max() > chance
    md = (out / "table.md").read_text()
    assert all(model in md for model in table.model)
    for model in config["models"]:
        run = finished / "results" / "synth" / model / "seed0"
        assert (run / "checkpoints" / "last.pt").exists() and (run / "eval" / "metrics.json").exists()
        assert (finished / "results" / "logs" / "synth" / model / "seed0" / "train.log").exists()
        assert (finished / "results" / "benchmarks" / "synth" / model / "seed0" / "train.tsv").exists()


@pytest.mark.slow
def test_default_workflow_produces_every_analysis(finished):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    analyses = config["analyses"]
    analysis = finished / "results" / "synth" / "analysis"
    for name in ANALYSIS_FILES:
        if name.endswith(".png"):
            assert (analysis / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        else:  # a markdown table naming the analysed models
            text = (analysis / name).read_text()
            assert "|:--" in text and all(m in text for m in analyses["data_efficiency"]["models"]), name
    runs = finished / "results" / "synth"

    def summary(run):
        return json.loads((run / "summary.json").read_text())

    def data_config(run):
        return yaml.safe_load((run / "config.yaml").read_text())["data"]

    # Data efficiency: every model trains on the same subset of each size, read from the whole
    # split's store; the whole set is the ordinary run.
    efficiency = pd.read_csv(analysis / "data_efficiency" / "data_efficiency.csv")
    models, fractions = analyses["data_efficiency"]["models"], analyses["data_efficiency"]["fractions"]
    assert sorted(efficiency.model.unique()) == sorted(models)
    for fraction in map(str, fractions):
        subset = f"results/synth/analysis/data_efficiency/{fraction}/train.json"
        variant_runs = [analysis / "data_efficiency" / fraction / m / "seed0" for m in models]
        assert [data_config(r)["train"] for r in variant_runs] == [subset] * len(models)
        assert {data_config(r)["train_store"] for r in variant_runs} == {"results/synth/data/train.pack"}
        assert len({summary(r)["clips"]["train"] for r in variant_runs}) == 1
    whole = summary(runs / models[0] / "seed0")["clips"]["train"]
    clips = efficiency[efficiency.model == models[0]].train_clips.tolist()
    assert clips == sorted(clips) and clips[-1] == whole
    assert clips[:-1] == pytest.approx([f * whole for f in fractions], abs=0.05 * whole)
    # Label quality: rate 0 (the ordinary runs) and the injected rates, counted; a correlation per model and rate.
    rates = analyses["label_noise"]["rates"]
    noise = pd.read_csv(analysis / "label_noise" / "label_noise.csv")
    assert sorted(noise.rate.unique()) == [0.0, *rates] and (noise[noise.rate > 0].dropped > 0).all()
    quality = pd.read_csv(analysis / "label_quality" / "label_quality.csv")
    assert len(quality) == len(rates) * len(analyses["label_noise"]["models"])
    # Robustness: clean is each run's own evaluation, exactly.
    robust = pd.read_csv(analysis / "robustness" / "robustness.csv", keep_default_na=False)
    for model in analyses["robustness"]["models"]:
        clean = robust[(robust.model == model) & (robust.perturbation == "clean")].score.item()
        assert clean == summary(runs / model / "seed0")["best"]["mAP"]
    conditions = 1 + sum(map(len, analyses["robustness"]["perturbations"].values()))
    assert len(robust) == len(analyses["robustness"]["models"]) * conditions
    # Cost: every model, speeds measured, the Pareto front marked.
    cost = pd.read_csv(analysis / "cost" / "cost.csv")
    assert sorted(cost.model) == sorted(config["models"])
    assert (cost.infer_clips_per_s > 0).all() and (cost.train_cost_h > 0).all() and cost.pareto.any()


@pytest.mark.slow
def test_rerun_after_success_does_nothing(finished):
    result = snakemake(finished, "-n")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.slow
def test_report_renders(finished):
    result = snakemake(finished, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-2000:]
    html = (finished / "report.html").read_text(errors="ignore")
    assert len(html) > 100_000 and "mAP_by_model.png" in html and "table.csv" in html
    for figure in ANALYSIS_FILES[::2]:
        assert figure.split("/")[1] in html, figure


@pytest.mark.slow
def test_deleting_a_checkpoint_reruns_only_that_branch(finished):
    (finished / "results" / "synth" / "crnn" / "seed0" / "checkpoints" / "best.pt").unlink()
    dry = snakemake(finished, "-n")
    jobs = planned(dry)
    assert jobs["train"] == 1 and "results/synth/crnn/seed0/summary.json" in dry.stdout
    assert jobs["evaluate"] == 1 and "run_config" not in jobs and "norm_stats" not in jobs
    result = snakemake(finished)  # the finished run resumes from last.pt: no retraining, same outputs
    assert result.returncode == 0, result.stderr[-2000:]
    assert "epoch 1/" not in (finished / "results" / "logs" / "synth" / "crnn" / "seed0" / "train.log").read_text()
    assert len(train_attempts(finished / "results" / "synth" / "crnn" / "seed0" / "train.log")) == 2  # the run's own log
    assert snakemake(finished, "-n").stdout.count("rule train") == 0


@pytest.mark.slow
def test_changing_one_models_setting_reruns_only_that_model(finished, tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["models"]["linear"]["augment"] = {"freqm": 4}
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump(config))
    dry = snakemake(finished, "-n", config=changed)
    jobs = planned(dry)
    assert jobs["run_config"] == 1 and jobs["train"] == 1 and "results/synth/linear/seed0/run.yaml" in dry.stdout
    assert "norm_stats" not in jobs and "synth" not in jobs


def test_paper_config_plans_the_full_audioset_dag_without_data(tmp_path, monkeypatch):
    monkeypatch.setitem(ENV, "ATDR_CHECKPOINTS", str(tmp_path / "checkpoints"))
    result = snakemake(tmp_path, "-n", config=ROOT / "config" / "paper.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    runs = len(paper["datasets"]) * len(paper["models"]) * len(paper["seeds"])
    assert planned(result) == {
        "link_folder": 2, "datafile": 4, "pack": 4, "weights": 1, "run_config": runs, "train": runs, "evaluate": runs,
        "ensemble": len(paper["datasets"]) * len(paper["ensembles"]), "compare": 1, "all": 1,
        "pretrained_weights": 1,  # the ImageNet DeiT of the AST recipes, fetched once
    }


def test_analyses_off_plan_none_of_their_jobs(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump({k: v for k, v in config.items() if k != "analyses"}))
    jobs = planned(snakemake(tmp_path, "-n", config=off))
    assert not ANALYSIS_RULES & set(jobs) and jobs["train"] == len(config["models"])
    on = planned(snakemake(tmp_path, "-n"))  # the default: each variant trained once, no ordinary run twice
    assert on["pack"] == jobs["pack"]  # the variants read the whole split's store
    analyses = config["analyses"]
    variants = len(analyses["data_efficiency"]["fractions"]) * len(analyses["data_efficiency"]["models"]) + \
        len(analyses["label_noise"]["rates"]) * len(analyses["label_noise"]["models"])
    assert (on["train"], on["analysis_train"], on["probe"]) == (len(config["models"]), variants,
                                                                len(analyses["robustness"]["models"]))
    assert {rule: on[rule] for rule in ANALYSIS_RULES - {"analysis_train", "analysis_run_config", "probe"}} == dict.fromkeys(
        ANALYSIS_RULES - {"analysis_train", "analysis_run_config", "probe"}, 1)
    quality = tmp_path / "qa_true_counts.csv"  # a label-quality file alone: per-class AP of the ordinary runs
    quality.write_text("label_id,num_rated,num_true\n0,10,7\n")
    only = tmp_path / "only.yaml"
    only.write_text(yaml.safe_dump({**config, "analyses": {"robustness": analyses["robustness"],
                                                           "label_quality": {"file": str(quality)}}}))
    jobs = planned(snakemake(tmp_path, "-n", config=only))
    assert ANALYSIS_RULES & set(jobs) == {"probe", "robustness", "label_quality"}
    assert jobs["train"] == len(config["models"]) and "analysis_train" not in jobs


def test_lint_has_no_findings(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0 and "Congratulations, your workflow is in a good condition" in result.stdout + result.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["models"]["linear"].setdefault("augment", {}).update(freqmm=4),
     "models.linear.augment: unknown key 'freqmm' (allowed: mixup, mixup_alpha, mixup_partner, freqm, timem, noise)"),
    (lambda c: c["datasets"]["synth"].update(sorce="synth"), "datasets.synth: unknown key 'sorce' (allowed: source, path"),
    (lambda c: c.update(seeds=["zero"]), "seeds.0: 'zero' is not of type 'integer'"),
    (lambda c: c["datasets"]["synth"].update(split={"valid": 1.5}), "datasets.synth.split.valid: 1.5 is greater than"),
    (lambda c: c["datasets"]["synth"].update(segments=["all.csv"]),
     "datasets.synth: give train_segments and eval_segments (and optionally valid_segments), segments and split"),
    (lambda c: c["models"]["linear"]["model"]["params"].update(hiden_dim=3), "model 'linear' has no hyper-parameter 'hiden_dim'"),
    (lambda c: c["ensembles"].update(pair=["linear", "vgg"]), "ensembles.pair: unknown model 'vgg'"),
    (lambda c: c["models"].update(data=c["models"]["linear"]), "'data' is reserved"),
    (lambda c: c["models"]["crnn"]["data"].update(frontend="mel80"), "target_length has no entry for front-end mel80"),
    (lambda c: c["run_defaults"]["augment"].update(mixup=True),
     "run_defaults.augment.mixup: expected a number, not a boolean (YAML reads yes, no, on and off as booleans)"),
    (lambda c: c["run_defaults"]["optim"].update(lr=float("inf")), "run_defaults.optim.lr: inf is not a finite number"),
    (lambda c: c["datasets"]["synth"]["synth"].update(seconds=float("nan")),
     "datasets.synth.synth.seconds: nan is not a finite number"),
    (lambda c: c["run_defaults"]["train"].update(epochs=1.5),
     "run_defaults.train.epochs: 1.5 is not of type 'integer'"),
])
def test_config_mistakes_are_reported_in_a_few_lines(tmp_path, edit, message):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", config=path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output, output[-3000:]
    assert len(output.strip().splitlines()) <= 6 and "$schema" not in output, output  # not the schema


def test_jobs_never_import_the_working_folders_atdr(tmp_path):
    (tmp_path / "atdr").mkdir()  # a folder of the user's, say
    (tmp_path / "atdr" / "__init__.py").write_text("raise ImportError('imported atdr/ from the working folder')\n")
    result = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(SNAKEFILE),
                             "--configfile", str(ROOT / "config" / "config.yaml"), "--cores", "1",
                             "results/synth/download/class_labels_indices.csv"], capture_output=True, text=True,
                            env=ENV, cwd=tmp_path)
    assert result.returncode == 0, (tmp_path / "results" / "logs" / "synth" / "synth.log").read_text()


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    """The configfile's YAML 1.1 reads 1e3 as a string, Snakemake's --config 1e3 as 1000.0: both
    mean 1000, a number, an integer where one is asked for."""
    from atdr.config import load_config

    text = (ROOT / "config" / "config.yaml").read_text()
    for old, new in (("seeds: [0]", "seeds: [1e3]"), ("lr: 1.0e-3,", "lr: 1e-3,"), ("epochs: 8,", "epochs: 8e0,"),
                     ("hidden_dim: 128", "hidden_dim: 1.28e2")):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    made = snakemake(tmp_path, "results/synth/linear/seed1000/run.yaml", config=path)
    assert made.returncode == 0, made.stderr[-2000:]
    cfg = load_config(tmp_path / "results" / "synth" / "linear" / "seed1000" / "run.yaml").to_dict()
    assert (cfg["train"]["seed"], cfg["optim"]["lr"], cfg["train"]["epochs"], cfg["model"]["params"]["hidden_dim"]) \
        == (1000, 1e-3, 8, 128)
    dry = snakemake(tmp_path, "-n", "-p", "--config", "bootstrap=1e3", "--", "results/comparison/config/table.md",
                    config=path)
    assert dry.returncode == 0 and "--bootstrap 1000 " in dry.stdout and "--bootstrap 1000." not in dry.stdout, \
        dry.stderr[-2000:]


def test_each_config_has_its_own_comparison_folder(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "named.yaml").write_text(yaml.safe_dump({**config, "name": "small_models"}))
    for path, folder in (("mine.yaml", "mine"), ("named.yaml", "small_models")):
        dry = snakemake(tmp_path, "-n", config=tmp_path / path)
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert f"results/comparison/{folder}/table.md" in dry.stdout and "results/comparison/table.md" not in dry.stdout


def test_schema_file_is_generated_from_the_run_config():
    from atdr.workflow import schema_yaml

    assert (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text() == schema_yaml(), "run `make schema`"


@pytest.mark.slow
def test_a_preempted_trainer_is_restarted_and_a_deterministic_failure_is_not(tmp_path):
    """SIGTERM to a running trainer (what SLURM sends): `atdr train --restarts` starts it again and
    it resumes, in the same job and log; a failure that would recur fails once, not retried."""
    import psutil

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"]["synth"]["synth"] = {"train": 64, "eval": 24, "seconds": 1.0, "seed": 0}
    config["models"] = {"linear": config["models"]["linear"]}
    config["ensembles"] = {}
    config.pop("analyses", None)
    config["run_defaults"]["train"].update(epochs=4, log_every=1, wa_start=1)
    config["bootstrap"] = 20
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
           "--configfile", str(path), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=tmp_path)
    log = tmp_path / "results" / "logs" / "synth" / "linear" / "seed0" / "train.log"
    trainer = None
    for _ in range(600):  # wait until training is inside epoch 2
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        if log.exists() and "epoch 2 step" in log.read_text():
            job = next(p for p in psutil.process_iter(["cmdline", "cwd"])  # this test's, not another's
                       if p.info["cmdline"] and "--restarts" in p.info["cmdline"]
                       and p.info["cmdline"][1:4] == ["-m", "atdr", "train"] and p.info["cwd"] == str(tmp_path))
            trainer = job.children()[0]
            break
        time.sleep(0.2)
    assert trainer is not None, "training never reached epoch 2"
    trainer.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    (attempt,) = train_attempts(tmp_path / "results" / "synth" / "linear" / "seed0" / "train.log")  # the run's own log
    assert "the trainer was stopped by SIGTERM after saving its state (pre-empted); starting it again" in attempt
    assert "resuming results/synth/linear/seed0 at epoch" in attempt
    metrics = pd.read_csv(tmp_path / "results" / "synth" / "linear" / "seed0" / "metrics.csv")
    assert list(metrics.epoch) == [1, 2, 3, 4]

    config["models"]["needs_cuda"] = {**config["models"]["linear"], "train": {"device": "cuda"}}
    path.write_text(yaml.safe_dump(config))
    failed = snakemake(tmp_path, "results/synth/needs_cuda/seed0/checkpoints/best.pt", config=path)
    assert failed.returncode != 0 and "Trying to restart" not in failed.stdout + failed.stderr
    (attempt,) = train_attempts(tmp_path / "results" / "synth" / "needs_cuda" / "seed0" / "train.log")
    assert "train.device is cuda but no CUDA device is available" in attempt and "starting it again" not in attempt


@pytest.mark.parametrize("with_account", [True, False], ids=["accounting", "no-accounting"])
def test_readme_slurm_commands_plan_the_default_workflow_and_the_paper(tmp_path, with_account):
    """The README's SLURM commands, as written: the default config, as the default profile; the
    paper's with --configfile at the end."""
    sys.path.insert(0, str(ROOT / "tests" / "cluster"))
    from slurm_cluster import readme_commands

    (command,) = [c for c in readme_commands(ROOT / "README.md") if ("--slurm-no-account" in c) != with_account]
    args = shlex.split(command.replace("YOUR_PARTITION", "gpu").replace("YOUR_ACCOUNT", "atdr"))
    run = [sys.executable, "-m", *args, "-n", "--directory", str(tmp_path)]
    default = subprocess.run(run, capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert default.returncode == 0, default.stderr[-2000:]
    default_config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert planned(default)["train"] == len(default_config["models"]) * len(default_config["seeds"])
    paper = subprocess.run([*run, "--configfile", "config/paper.yaml"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert paper.returncode == 0, paper.stderr[-2000:]
    assert planned(paper)["train"] == 14
