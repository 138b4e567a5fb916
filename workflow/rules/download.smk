# Stage 0: real data and published weights from the network (atdr download), verified and resumable.
# A corpus is downloaded once into its folder (datasets.*.path, default resources/data/<corpus>),
# shared by every dataset and fold that reads it, and linked into results/{dataset}/download like
# a folder you prepared. The clips are not outputs of any rule, so a failed or re-run job never
# deletes them; each job marks its success in results/downloads/<folder key>/. Download jobs are
# local rules: on a cluster they run where the network is, not on compute nodes.
from atdr.download.addresses import WEIGHTS


rule download_youtube:
    output:
        touch(f"{RESULTS}/downloads/{{store}}/{{segments}}.ready"),
    params:
        path=lambda w: STORES[w.store]["path"],
        options=lambda w: atdr_workflow.download_args(STORES[w.store]),
    wildcard_constraints:
        store=choice([k for k, s in STORES.items() if s["source"] == "youtube"]),
        segments=choice(sorted({n for s in STORES.values() if s["source"] == "youtube" for n in s["lists"]})),
    threads: 8
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/{{store}}/{{segments}}.log",
    shell:
        "python -m atdr download audioset {params.path:q} --segments {wildcards.segments} --workers {threads}"
        " {params.options} 2> {log}"


rule download_archives:
    output:
        touch(f"{RESULTS}/downloads/{{store}}/archives.ready"),
    params:
        path=lambda w: STORES[w.store]["path"],
        options=lambda w: atdr_workflow.download_args(STORES[w.store]),
    wildcard_constraints:
        store=choice([k for k, s in STORES.items() if s["source"] == "archives"]),
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/{{store}}/archives.log",
    shell:
        "python -m atdr download archives {params.path:q} {params.options} 2> {log}"


rule download_corpus:
    output:
        touch(f"{RESULTS}/downloads/{{store}}/{{corpus}}.ready"),
    params:
        path=lambda w: STORES[w.store]["path"],
        options=lambda w: atdr_workflow.download_args(STORES[w.store]),
    wildcard_constraints:
        store=choice([k for k, s in STORES.items() if s["source"] in ("esc50", "speechcommands")]),
        corpus="esc50|speechcommands",
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/{{store}}/{{corpus}}.log",
    shell:
        "python -m atdr download {wildcards.corpus} {params.path:q} {params.options} 2> {log}"


rule link_download:
    input:
        # ancient: a download re-run that finds everything in place does not re-run what follows
        lambda w: [ancient(flag) for flag in atdr_workflow.download_flags(config, w.dataset)],
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
    params:
        source=lambda w: config["datasets"][w.dataset]["path"],
        out=download_dir,
        segments=lambda w: " ".join(segment_names(w.dataset)),
    wildcard_constraints:
        dataset=choice(of_source(*atdr_workflow.NETWORK_SOURCES)),
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/{{dataset}}/link.log",
    shell:
        "python -m atdr link {params.source:q} {params.out} --segments {params.segments} 2> {log}"


rule pretrained_weights:
    output:
        f"{CHECKPOINTS}/{{weights}}.pth",
    params:
        folder=lambda w, output: os.path.dirname(output[0]),
    wildcard_constraints:
        weights=choice(list(WEIGHTS)),
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/weights/{{weights}}.log",
    shell:
        "python -m atdr download weights {wildcards.weights} --dir {params.folder:q} 2> {log}"
