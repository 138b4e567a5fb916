# Stage 5: the paper's comparison table and figures, registered for `snakemake --report`.


rule compare:
    input:
        evals=[f"{run}/eval/metrics.json" for run in run_dirs()],
        ensembles=[f"{ens}/metrics.json" for ens in ensemble_dirs()],
    output:
        csv=report(f"{COMPARISON}/table.csv", caption="../report/table.rst", category="Comparison"),
        md=f"{COMPARISON}/table.md",
        tex=f"{COMPARISON}/table.tex",
        map_png=report(f"{COMPARISON}/mAP_by_model.png", caption="../report/mAP_by_model.rst", category="Figures"),
        map_pdf=f"{COMPARISON}/mAP_by_model.pdf",
        per_class=report(f"{COMPARISON}/per_class_ap.png", caption="../report/per_class_ap.rst", category="Figures"),
        curves=report(f"{COMPARISON}/training_curves.png", caption="../report/training_curves.rst", category="Figures"),
        params=report(f"{COMPARISON}/mAP_vs_params.png", caption="../report/mAP_vs_params.rst", category="Figures"),
    params:
        runs=" ".join(run_dirs()),
        ensembles=" ".join(ensemble_dirs()),
        out=lambda w, output: os.path.dirname(output.csv),
    conda:
        "../../envs/atdr.yaml"
    log:
        f"{RESULTS}/logs/compare/{os.path.basename(COMPARISON)}.log",
    shell:
        "python -m atdr compare --runs {params.runs} --ensembles {params.ensembles} --out {params.out} 2> {log}"
