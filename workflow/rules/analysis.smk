# Stage 6: the paper's analyses (config `analyses`, each optional; config/README.md), under
# results/{dataset}/analysis/, each a table and a figure in the report:
# - data efficiency: each model retrained on nested, stratified subsets of the training set;
# - label quality: retrained on labels with noise injected, mAP against the noise rate; per-class
#   AP against per-class label quality (measured for the noisy labels, or a file for the given ones);
# - robustness: trained runs probed under waveform perturbations, no retraining;
# - cost: parameters, GFLOPs, training and inference speed, mAP per device-hour, Pareto front.
# The retraining analyses' runs are ordinary training runs (the run_config and train rules,
# reused with `use rule`) on another training datafile whose clips they read from the whole
# split's packed store; the whole set and the clean labels are the ordinary runs, never trained twice.
import shlex

ANALYSES = config["analyses"]
ANALYSIS = f"{RESULTS}/{{dataset}}/analysis"
VARIANT_RUN = f"{ANALYSIS}/{{analysis}}/{{variant}}/{{model}}/seed{{seed}}"


wildcard_constraints:
    analysis=choice(list(atdr_workflow.RETRAINING)),
    variant=choice(sorted({v for a in atdr_workflow.RETRAINING for v in atdr_workflow.variants(config, a)})),


rule subset:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.json",
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
    output:
        datafiles=variant_files("data_efficiency", "train.json"),
        weights=variant_files("data_efficiency", "train_weight.csv"),
        counts=f"{ANALYSIS}/data_efficiency/subsets.csv",
    params:
        fractions=" ".join(map(str, ANALYSES.get("data_efficiency", {}).get("fractions", []))),
        seed=ANALYSES.get("data_efficiency", {}).get("seed"),
        out=analysis_folder("data_efficiency"),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/subset.log",
    shell:
        "python -m atdr subset {input.train} --labels {input.labels} --fractions {params.fractions}"
        " --seed {params.seed} --out {params.out} 2> {log}"


rule label_noise:
    input:
        train=f"{RESULTS}/{{dataset}}/data/train.json",
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
    output:
        datafiles=variant_files("label_noise", "train.json"),
        weights=variant_files("label_noise", "train_weight.csv"),
        counts=variant_files("label_noise", "noise.json"),
        quality=variant_files("label_noise", "label_quality.csv"),
    params:
        rates=" ".join(map(str, ANALYSES.get("label_noise", {}).get("rates", []))),
        seed=ANALYSES.get("label_noise", {}).get("seed"),
        out=analysis_folder("label_noise"),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/label_noise.log",
    shell:
        "python -m atdr label-noise {input.train} --labels {input.labels} --rates {params.rates}"
        " --seed {params.seed} --out {params.out} 2> {log}"


use rule run_config as analysis_run_config with:  # `use rule` does not carry `localrule` over
    output:
        f"{VARIANT_RUN}/run.yaml",
    params:
        config=lambda w: atdr_workflow.variant_run_config(config, w.dataset, w.model, int(w.seed), w.analysis, w.variant),
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/{{analysis}}/{{variant}}/{{model}}/seed{{seed}}/run_config.log",
    localrule: True


use rule train as analysis_train with:
    input:
        unpack(variant_train_inputs),
    output:
        summary=f"{VARIANT_RUN}/summary.json",
        metrics=f"{VARIANT_RUN}/metrics.csv",
        predictions=f"{VARIANT_RUN}/predictions.npy",
        ensemble=f"{VARIANT_RUN}/predictions_ensemble.npy",
        targets=f"{VARIANT_RUN}/targets.npy",
        best=f"{VARIANT_RUN}/checkpoints/best.pt",
    params:
        out=variant_run_path,
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/{{analysis}}/{{variant}}/{{model}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/analysis/{{analysis}}/{{variant}}/{{model}}/seed{{seed}}/train.tsv"


rule probe:
    input:
        unpack(eval_inputs),
        summary=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/summary.json",
        best=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/checkpoints/best.pt",
    output:
        f"{ANALYSIS}/robustness/{{model}}/seed{{seed}}/probe.csv",
    params:
        run=run_path,
        perturbations=atdr_workflow.probe_args(config),
        seed=ANALYSES.get("robustness", {}).get("seed"),
        workers=lambda w, threads: max(threads - 1, 0),
    threads: 2
    resources:
        gpu=min(config["gpus_per_run"], 1),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/robustness/{{model}}/seed{{seed}}/probe.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/analysis/robustness/{{model}}/seed{{seed}}/probe.tsv"
    shell:
        "python -m atdr probe {params.run} {params.perturbations} --seed {params.seed} --workers {params.workers}"
        " --gpus {resources.gpu} --out {output} 2> {log}"


rule data_efficiency:
    input:
        analysis_runs("data_efficiency"),
    output:
        table=report(f"{ANALYSIS}/data_efficiency/data_efficiency.csv", caption="../report/data_efficiency_table.rst",
                     category="Analyses", subcategory="Data efficiency"),
        md=f"{ANALYSIS}/data_efficiency/data_efficiency.md",
        figure=report(f"{ANALYSIS}/data_efficiency/data_efficiency.png", caption="../report/data_efficiency.rst",
                      category="Analyses", subcategory="Data efficiency"),
    params:
        runs=analysis_run_dirs("data_efficiency"),
        out=analysis_folder("data_efficiency"),
        bootstrap=config["bootstrap"],
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/data_efficiency.log",
    shell:
        "python -m atdr analyze data-efficiency {params.runs} --bootstrap {params.bootstrap} --out {params.out} 2> {log}"


rule label_noise_effect:
    input:
        analysis_runs("label_noise"),
    output:
        table=report(f"{ANALYSIS}/label_noise/label_noise.csv", caption="../report/label_noise_table.rst",
                     category="Analyses", subcategory="Label quality"),
        md=f"{ANALYSIS}/label_noise/label_noise.md",
        figure=report(f"{ANALYSIS}/label_noise/mAP_vs_label_noise.png", caption="../report/label_noise.rst",
                      category="Analyses", subcategory="Label quality"),
    params:
        runs=analysis_run_dirs("label_noise"),
        out=analysis_folder("label_noise"),
        bootstrap=config["bootstrap"],
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/label_noise_effect.log",
    shell:
        "python -m atdr analyze label-noise {params.runs} --bootstrap {params.bootstrap} --out {params.out} 2> {log}"


rule label_quality:
    input:
        runs=analysis_runs("label_quality"),
        quality=[ANALYSES["label_quality"]["file"]] if "label_quality" in ANALYSES else [],
    output:
        table=report(f"{ANALYSIS}/label_quality/label_quality.csv", caption="../report/label_quality_table.rst",
                     category="Analyses", subcategory="Label quality"),
        md=f"{ANALYSIS}/label_quality/label_quality.md",
        per_class=f"{ANALYSIS}/label_quality/per_class_label_quality.csv",
        figure=report(f"{ANALYSIS}/label_quality/per_class_ap_vs_label_quality.png",
                      caption="../report/label_quality.rst", category="Analyses", subcategory="Label quality"),
    params:
        runs=analysis_run_dirs("label_quality"),
        quality=lambda w, input: f"--quality {shlex.quote(input.quality[0])}" if input.quality else "",
        out=analysis_folder("label_quality"),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/label_quality.log",
    shell:
        "python -m atdr analyze label-quality {params.runs} {params.quality} --out {params.out} 2> {log}"


rule robustness:
    input:
        probes,
    output:
        table=report(f"{ANALYSIS}/robustness/robustness.csv", caption="../report/robustness_table.rst",
                     category="Analyses", subcategory="Robustness"),
        md=f"{ANALYSIS}/robustness/robustness.md",
        figure=report(f"{ANALYSIS}/robustness/robustness.png", caption="../report/robustness.rst",
                      category="Analyses", subcategory="Robustness"),
    params:
        out=analysis_folder("robustness"),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/robustness.log",
    shell:
        "python -m atdr analyze robustness {input} --out {params.out} 2> {log}"


rule cost:
    input:
        evals=lambda w: [f"{run}/eval/metrics.json" for run in atdr_workflow.analysis_runs(config, w.dataset, "cost")],
        benchmarks=lambda w: [f"{RESULTS}/benchmarks/{w.dataset}/{m}/seed{s}/train.tsv" for m in MODELS for s in SEEDS],
        eval_store=lambda w: eval_inputs(w)["eval_store"],
    output:
        table=report(f"{ANALYSIS}/cost/cost.csv", caption="../report/cost_table.rst", category="Analyses",
                     subcategory="Cost"),
        md=f"{ANALYSIS}/cost/cost.md",
        figure=report(f"{ANALYSIS}/cost/mAP_vs_cost.png", caption="../report/cost.rst", category="Analyses",
                      subcategory="Cost"),
    params:
        runs=analysis_run_dirs("cost"),
        clips=ANALYSES.get("cost", {}).get("inference_clips"),
        out=analysis_folder("cost"),
    resources:
        gpu=min(config["gpus_per_run"], 1),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/analysis/cost.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/analysis/cost.tsv"
    shell:
        "python -m atdr cost {params.runs} --benchmarks {input.benchmarks} --clips {params.clips} --gpus {resources.gpu}"
        " --out {params.out} 2> {log}"
