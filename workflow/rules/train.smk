# Stage 3: one training job per (dataset, model, seed). The run config is written by its own rule
# so that a changed setting re-runs exactly the runs it reaches. Training resumes from
# checkpoints/last.pt (not a declared output, so Snakemake keeps it) after pre-emption or a restart;
# with a changed run config or changed data (`atdr train` compares both), --force clears every
# output of the old run first.


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
        clips=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/predictions_clips.csv",
        best=f"{RESULTS}/{{dataset}}/{{model}}/seed{{seed}}/checkpoints/best.pt",
    params:
        out=run_path,
        gpus=config["gpus_per_run"],
        workers=lambda w, threads: atdr_workflow.loader_workers(config, threads),
        torch_threads=lambda w, threads: atdr_workflow.torch_threads(config, threads),
    threads: 8
    resources:
        mem_mb=32000,
        runtime=24 * 60,  # at the limit SLURM sends SIGTERM: the trainer saves and requeues its job
        **atdr_workflow.train_gpus(config),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/{{model}}/seed{{seed}}/train.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{model}}/seed{{seed}}/train.tsv"
    # exec: the trainer replaces the shell, so that a signal meant for it (pre-emption) does not end
    # the job first. `atdr train --restarts` starts the trainer again after a pre-emption or a transient
    # fault, never after a deterministic failure. Every attempt, also across SLURM requeues (which
    # replace this log), is appended to the run folder's train.log.
    shell:
        "exec python -m atdr train --config {input.config} --out {params.out} --gpus {params.gpus} --restarts 3"
        " --set train.num_workers={params.workers} --set train.threads={params.torch_threads} --force 2> {log}"
