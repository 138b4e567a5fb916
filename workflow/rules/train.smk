# Stage 3: one training job per (dataset, model, seed). The run config is written by its own rule
# so that a changed setting re-runs exactly the runs it reaches. Training resumes from
# checkpoints/last.pt (not a declared output, so Snakemake keeps it) after pre-emption or a retry;
# with a changed run config, --force clears every output of the old run first.


rule run_config:
    output:
        f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/run.yaml",
    params:
        config=lambda w: atdr_workflow.run_config(config, w.dataset, w.model, int(w.seed)),
    log:
        f"{RESULTS}/logs/{{dataset}}/{{model}}/seed{{seed}}/run_config.log",
    localrule: True
    run:
        atdr_workflow.write_run_config(output[0], params.config)


rule train:
    input:
        unpack(train_inputs),
    output:
        summary=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/summary.json",
        metrics=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/metrics.csv",
        predictions=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/predictions.npy",
        ensemble=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/predictions_ensemble.npy",
        targets=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/targets.npy",
        best=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/checkpoints/best.pt",
    params:
        out=run_path,
        workers=lambda w, threads: max(threads - 1, 0),
    threads: 8
    resources:
        gpu=config["gpus_per_run"],
        mem_mb=16000,
        runtime=24 * 60,
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/{{model}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{model}}/seed{{seed}}/train.tsv"
    shell:
        "python -m atdr train --config {input.config} --out {params.out} --gpus {resources.gpu}"
        " --set train.num_workers={params.workers} --force 2> {log}"
