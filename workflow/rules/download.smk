# Stage 0: real data and published weights from the network (atdr download), verified and resumable.
# A corpus is downloaded once into its folder (datasets.*.path, default resources/data/<corpus>),
# shared by every dataset and fold that reads it, and linked into results/{dataset}/download like
# a folder you prepared. The clips are not outputs of any rule, so a failed or re-run job never
# deletes them; each job marks its success in results/downloads/<folder key>/. Download jobs are
# local rules: on a cluster they run where the network is, not on compute nodes.
import shlex

from atdr.download.addresses import AUDIOSET_CSV, WEIGHTS


def store_of(source):
    return [key for key, store in STORES.items() if store["source"] == source]


def store_path(w):
    return STORES[w.store]["path"]


def archive_override(w):
    """--url and --sha256/--md5 where the config replaces the official archive."""
    archive = STORES[w.store]["dataset"].get("archive")
    if not archive:
        return ""
    digest = f"--sha256 {archive['sha256']}" if "sha256" in archive else f"--md5 {archive['md5']}"
    return f"--url {shlex.quote(archive['url'])} {digest}"


def youtube_options(w):
    settings = STORES[w.store]["dataset"].get("youtube", {})
    template = f" --url-template {shlex.quote(settings['url_template'])}" if "url_template" in settings else ""
    return f"--min-fraction {settings.get('min_fraction', 0.5)}{template}"


def archives_options(w):
    """The shards, the metadata files (default: AudioSet's official class list and segment lists)
    and the parquet columns of an archives folder."""
    ds = STORES[w.store]["dataset"]
    files = ds.get("files") or {
        name: AUDIOSET_CSV.format(name=name)
        for name in ["class_labels_indices.csv", *STORES[w.store]["lists"]]
    }
    args = [f"--archive {shlex.quote(a['url'])} {a['sha256']}" for a in ds["archives"]]
    args += [f"--file {shlex.quote(f'{name}={source}')}" for name, source in files.items()]
    args += [f"--{key.replace('_', '-')} {shlex.quote(value)}" for key, value in ds.get("parquet", {}).items()]
    return " ".join(args)


def download_flags(dataset):
    """The success flags of the downloads a dataset reads: its lists (youtube) or the whole corpus.
    ancient(): a download re-run that finds everything in place does not re-run what follows."""
    ds = config["datasets"][dataset]
    key = atdr_workflow.store_key(ds["path"])
    if ds["source"] == "youtube":
        return [ancient(f"{RESULTS}/downloads/{key}/{name}.ready") for name in atdr_workflow.segment_lists(ds)]
    return [ancient(f"{RESULTS}/downloads/{key}/{ds['source']}.ready")]


rule download_youtube:
    output:
        touch(f"{RESULTS}/downloads/{{store}}/{{segments}}.ready"),
    params:
        path=store_path,
        options=youtube_options,
    wildcard_constraints:
        store=choice(store_of("youtube")),
        segments=choice(sorted({n for k in store_of("youtube") for n in STORES[k]["lists"]})),
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
        path=store_path,
        options=archives_options,
    wildcard_constraints:
        store=choice(store_of("archives")),
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
        path=store_path,
        override=archive_override,
    wildcard_constraints:
        store=choice(store_of("esc50") + store_of("speechcommands")),
        corpus="esc50|speechcommands",
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/{{store}}/{{corpus}}.log",
    shell:
        "python -m atdr download {wildcards.corpus} {params.path:q} {params.override} 2> {log}"


rule link_download:
    input:
        lambda w: download_flags(w.dataset),
    output:
        labels=f"{RESULTS}/{{dataset}}/download/class_labels_indices.csv",
        audio=directory(f"{RESULTS}/{{dataset}}/download/audio"),
    params:
        source=lambda w: config["datasets"][w.dataset]["path"],
        out=download_dir,
        segments=lambda w: segment_names(w.dataset),
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
        folder=CHECKPOINTS,
    wildcard_constraints:
        weights=choice(list(WEIGHTS)),
    localrule: True
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/downloads/weights/{{weights}}.log",
    shell:
        "python -m atdr download weights {wildcards.weights} --dir {params.folder:q} 2> {log}"
