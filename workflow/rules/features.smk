# Stage 2: normalisation statistics of the training features, per dataset and front-end.


rule norm_stats:
    input:
        f"{RESULTS}/{{dataset}}/data/train.json",
    output:
        f"{RESULTS}/{{dataset}}/data/stats_{{frontend}}.json",
    params:
        target_length=lambda w: config["datasets"][w.dataset]["target_length"][w.frontend],
    threads: 8
    resources:
        mem_mb=8000,
        runtime=10 * 60,
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/stats_{{frontend}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/stats_{{frontend}}.tsv"
    shell:
        "python -m atdr norm-stats {input} --frontend {wildcards.frontend} --target-length {params.target_length}"
        " --workers {threads} --out {output} 2> {log}"
