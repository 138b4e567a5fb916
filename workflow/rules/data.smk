# Stage 1: raw data (synthesised, an AudioSet-layout folder, or downloaded: download.smk) -> json
# datafiles -> sample weights. Every source leaves the same layout in results/{dataset}/download:
# class_labels_indices.csv, the segment lists named in the config, and audio/.


rule synth:
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
    params:
        out=download_dir,
        synth=lambda w: atdr_workflow.canonical(config["datasets"][w.dataset]["synth"]),
    wildcard_constraints:
        dataset=choice(of_source("synth")),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/synth.log",
    shell:
        "python -m atdr synth {params.out} --train {params.synth[train]} --eval {params.synth[eval]}"
        " --seconds {params.synth[seconds]} --classes {params.synth[classes]} --seed {params.synth[seed]} 2> {log}"


rule link_folder:
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
    params:
        source=lambda w: config["datasets"][w.dataset]["path"],
        out=download_dir,
        segments=lambda w: segment_names(w.dataset),
    wildcard_constraints:
        dataset=choice(of_source("folder")),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/link.log",
    shell:
        "python -m atdr link {params.source:q} {params.out} --segments {params.segments} 2> {log}"


rule datafile:
    input:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=f"{RESULTS}/{{dataset}}/download/audio",
    output:
        datafile=f"{RESULTS}/{{dataset}}/data/{{split}}.json",
        missing=f"{RESULTS}/{{dataset}}/data/{{split}}_missing.csv",
    wildcard_constraints:
        split="train|valid|eval",
    params:
        segments=segment_args,
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/datafile_{{split}}.log",
    shell:
        "python -m atdr prep {params.segments} --audio {input.audio} --labels {input.labels}"
        " --out {output.datafile} --missing {output.missing} 2> {log}"


rule weights:
    input:
        datafile=f"{RESULTS}/{{dataset}}/data/train.json",
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
    output:
        f"{RESULTS}/{{dataset}}/data/train_weight.csv",
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/weights.log",
    shell:
        "python -m atdr weights {input.datafile} --labels {input.labels} --out {output} 2> {log}"
