# Stage 1: raw data (synthesised, a folder of recordings, or downloaded: download.smk) -> [split] ->
# json datafiles -> packed stores (the fast data path) and sample weights. Every source leaves the same layout in
# results/{dataset}/download: class_labels_indices.csv, the segment lists and audio/. The segment
# lists and a folder's class list are inputs of the rules that read them: editing one re-runs what
# it reaches, and nothing else (a download's official lists are fixed). A folder's recordings are a
# parameter of the rules that read them (their sizes and times): one replaced under its name re-runs
# them too. The rules that find odd files (missing, unreadable, unsupported clips) or odd labels
# send their messages to the log and, with `2>&1 | tee {log} >&2`, to the terminal too (on a
# cluster, the job's output).


rule synth:
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
        segments=[f"{RESULTS}/{{dataset}}/download/{name}" for name in ("balanced_train_segments.csv", "eval_segments.csv")],
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
    input:
        class_list_source,
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
    params:
        source=lambda w: config["datasets"][w.dataset]["path"],
        out=download_dir,
        segments=lambda w: " ".join(segment_names(w.dataset)),
        classes=derived_classes,  # without a class list in the folder: re-link when the labels used change
    wildcard_constraints:
        dataset=choice(of_source("folder")),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/link.log",
    shell:
        "python -m atdr link {params.source:q} {params.out} --segments {params.segments} 2>&1 | tee {log} >&2"


rule split:
    input:
        segments=split_inputs,
        audio=f"{RESULTS}/{{dataset}}/download/audio",  # linked once the source was checked
    output:
        [f"{RESULTS}/{{dataset}}/data/{split}_segments.csv" for split in ("train", "valid", "eval")],
    params:
        split=lambda w: atdr_workflow.canonical(config["datasets"][w.dataset]["split"]),
        out=lambda w: atdr_workflow.data_dir(w.dataset),
        verify=verify_flag,
        recordings=lambda w: atdr_workflow.recordings_stamp(config, w.dataset),  # only readable clips count
    threads: 8  # clips probed at once (I/O bound): only readable clips are split
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/split.log",
    shell:
        "python -m atdr split {input.segments:q} --audio {input.audio} --valid {params.split[valid]}"
        " --eval {params.split[eval]} --seed {params.split[seed]} --out {params.out} {params.verify}"
        " --workers {threads} 2>&1 | tee {log} >&2"


rule datafile:
    input:
        segments=tracked_segments,
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=f"{RESULTS}/{{dataset}}/download/audio",
    output:
        datafile=f"{RESULTS}/{{dataset}}/data/{{split}}.json",
        missing=f"{RESULTS}/{{dataset}}/data/{{split}}_missing.csv",
        unreadable=f"{RESULTS}/{{dataset}}/data/{{split}}_unreadable.csv",
    wildcard_constraints:
        split="train|valid|eval",
    params:
        segments=datafile_segments,
        verify=verify_flag,
        recordings=lambda w: atdr_workflow.recordings_stamp(config, w.dataset),  # a recording replaced: made again
    threads: 8  # clips probed at once (I/O bound)
    resources:
        mem_mb=4000,  # two million clips' entries (AudioSet); explicit, so that its group job asks for it
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/datafile_{{split}}.log",
    shell:
        "python -m atdr prep --segments {params.segments:q} --audio {input.audio} --labels {input.labels}"
        " --out {output.datafile} --missing {output.missing} --unreadable {output.unreadable} {params.verify}"
        " --workers {threads} 2>&1 | tee {log} >&2"


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


rule pack:
    input:
        f"{RESULTS}/{{dataset}}/data/{{split}}.json",
    output:
        store=f"{RESULTS}/{{dataset}}/data/{{split}}.pack",
        undecodable=f"{RESULTS}/{{dataset}}/data/{{split}}_undecodable.csv",
    wildcard_constraints:
        split="train|valid|eval",
    params:
        codec=lambda w: config["datasets"][w.dataset]["pack_codec"],
    threads: 4
    resources:
        mem_mb=4000,
        runtime=6 * 60,  # AudioSet's full training set: two million clips decoded once
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/pack_{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/pack_{{split}}.tsv"
    shell:
        "python -m atdr pack {input} --out {output.store} --report {output.undecodable} --codec {params.codec}"
        " --workers {threads} 2>&1 | tee {log} >&2"
