# Stage 4: metrics with bootstrap CIs per run (best epoch, checkpoint ensemble, weight averaging),
# and cross-model ensembles of the runs' eval predictions.


rule evaluate:
    input:
        summary=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/summary.json",
        predictions=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/predictions.npy",
        targets=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/targets.npy",
        best=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/checkpoints/best.pt",
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/eval/metrics.json",
        per_class=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/eval/per_class_best.csv",
    params:
        run=run_path,
        bootstrap=config["bootstrap"],
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/{{model}}/seed{{seed}}/evaluate.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{model}}/seed{{seed}}/evaluate.tsv"
    shell:
        "python -m atdr evaluate {params.run} --bootstrap {params.bootstrap} 2> {log}"


rule ensemble:
    input:
        ensemble_inputs,
    output:
        metrics=f"{RESULTS}/{{dataset}}/ensembles/{{ensemble}}/seed{{seed}}/metrics.json",
        predictions=f"{RESULTS}/{{dataset}}/ensembles/{{ensemble}}/seed{{seed}}/predictions.npy",
    params:
        runs=lambda w: " ".join(ensemble_members(w)),
        out=lambda w: f"{RESULTS}/{w.dataset}/ensembles/{w.ensemble}/seed{w.seed}",
        bootstrap=config["bootstrap"],
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/ensembles/{{ensemble}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/ensembles/{{ensemble}}/seed{{seed}}.tsv"
    shell:
        "python -m atdr ensemble {params.runs} --out {params.out} --bootstrap {params.bootstrap} 2> {log}"
