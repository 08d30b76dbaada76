"""`python -m core nas ...`: SuperNAS, supernet training, SparseNAS, candidate lookup, CIFAR-10 download.

    python -m core nas supernas  --flash-kb 1024 --sram-kb 320            # pick a search space
    python -m core nas supernet  --dataset shapes10 [--space auto|NAME]   # SPOS-train its supernet
    python -m core nas sparsenas --flash-kb 1024 --sram-kb 320 --dataset shapes10   # candidates table
                                 [--latency-ms 500] [--scheduler local|tcp://host:port]
    python -m core nas finetune --id 0 --steps 6000 [--resume]            # long, resumable fine-tune
    python -m core nas engine --id 0          # CMSIS-NN / dense / sparse runs -> data/nas/engine/0.json
    python -m core nas latency                # re-price the candidates' latency and flash (same search)
    python -m core nas show --id 3                                        # one candidate as JSON
    python -m core nas download-cifar10 [--root DIR]

Results go to `data/nas/` (or `--out`); `data/nas/manifest.json` records, per artefact, the command,
config and time that made it. `supernas` also writes its table to `data/results/nas_supernas.{md,json}`
(next to the other results; with `--out`, into that folder). Every input, the manifest and the
output paths are checked before any work starts, so a refusal leaves nothing written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError, brief
from core.io import check_target, command_line, data_dir, to_jsonable, write_json_atomic

#: SparseNAS settings the CLI exposes (integers of `SearchConfig`)
SEARCH_FLAGS = (
    "population",
    "generations",
    "parents",
    "val_size",
    "calib_size",
    "test_size",
    "finetune_top",
    "finetune_steps",
    "int8_size",
)


def _out(args: argparse.Namespace) -> Path:
    return Path(args.out) if args.out else data_dir() / "nas"


def _command() -> str:
    """The command line, with `python -m core.tinyformer.cli` spelled out when run that way."""
    cmd = command_line()
    return "python -m core.tinyformer.cli" + cmd[len("cli.py") :] if cmd.startswith("cli.py") else cmd


#: lower-bound throughputs for refusing what cannot finish (measured: 2675 analytic evaluations/s
#: and 78 exact ones, data/results/bench_nas.md; these are 40x and 100x faster)
SUPERNAS_EVALS_PER_S = 1e5
SPARSENAS_EVALS_PER_S = 1e4


def _manifest(folder: Path) -> dict[str, Any]:
    """`folder/manifest.json` ({"artefacts": {}} when absent); WorkbenchError when it is garbled."""
    path = folder / "manifest.json"
    if not path.exists():
        return {"artefacts": {}}
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("artefacts"), dict):
            raise ValueError("no 'artefacts' table")
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"NAS manifest {str(path)!r} is garbled ({brief(exc)}); repair it or move it "
                             "away (it only records how each artefact was made)") from exc
    return doc


def _prepare(folder: Path, *artefacts: str) -> None:
    """Before any work: the manifest must be readable and every output path writable (a folder
    where a file goes is refused, never deleted)."""
    _manifest(folder)
    for name in (*artefacts, "manifest.json"):
        check_target(folder / name)


def record(folder: Path, artefact: str, config: Any, summary: dict[str, Any] | None = None) -> Path:
    """Add/replace `artefact`'s entry (command, config, created, summary) in `folder/manifest.json`."""
    doc = _manifest(folder)
    doc["artefacts"][artefact] = {
        "command": _command(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": to_jsonable(config),
        "summary": to_jsonable(summary or {}),
    }
    return write_json_atomic(folder / "manifest.json", doc)


def _manifest_entry(folder: Path, artefact: str) -> dict[str, Any] | None:
    return _manifest(folder)["artefacts"].get(artefact)


def _budgets(args: argparse.Namespace) -> tuple[int, int]:
    """(flash, SRAM) budgets in bytes from --flash-kb / --sram-kb (finite and > 0)."""
    from core.limits import check_number

    flash = check_number("--flash-kb", args.flash_kb, 0, strict=True)
    sram = check_number("--sram-kb", args.sram_kb, 0, strict=True)
    return int(flash * 1024), int(sram * 1024)


def _resolve_space(name: str, folder: Path):  # noqa: ANN202
    from core.tinyformer.space import SpaceConfig
    from core.tinyformer.supernas import space_by_name

    if name == "auto":
        from core.tinyformer.supernas import read_result

        choice = folder / "supernas.json"
        return space_by_name(read_result(choice)["best"]) if choice.exists() else SpaceConfig()
    return SpaceConfig() if name == "default" else space_by_name(name)


def _cmd_supernas(args: argparse.Namespace) -> int:
    from core.io import markdown_table, tqdm_progress, write_result
    from core.limits import check_number, check_work
    from core.tinyformer.supernas import candidate_spaces, run_supernas

    folder = _out(args)
    flash, sram = _budgets(args)
    samples = check_number("--samples", args.samples, 1, integer=True)
    evals = samples * len(candidate_spaces())
    check_work("SuperNAS", evals / SUPERNAS_EVALS_PER_S,
               f"{evals} subnet evaluations at >= {SUPERNAS_EVALS_PER_S:.0e}/s", "lower --samples")
    results = data_dir() / "results" if args.out is None else folder
    _prepare(folder, "supernas.json")
    check_target(results / "nas_supernas.md")
    check_target(results / "nas_supernas.json")
    with tqdm_progress("SuperNAS spaces") as progress:
        result = run_supernas(flash, sram, m=samples, seed=args.seed, progress=progress,
                              max_sparsity=args.max_sparsity, max_mmacs=args.max_mmacs)
    write_json_atomic(folder / "supernas.json", {"command": _command(), **result})
    config = vars(args) | {"func": None}
    record(folder, "supernas.json", config, {"best": result["best"]})
    rows = [[r["space"], r["fitting"], r["samples"], r["mean_mmacs"], r["p80_mmacs"], r["eligible"],
             r["min_flash_kb"], r["min_sram_kb"]] for r in result["spaces"]]
    how = (f", pruned to {args.max_sparsity:g} sparsity" if args.max_sparsity else ", dense") + (
        f", ≤ {args.max_mmacs:g} MMACs" if args.max_mmacs else "")
    md = (f"## SuperNAS: search spaces within {flash / 1024:g} KB flash and {sram / 1024:g} KB SRAM{how}\n\n"
          + markdown_table(["space", "fitting", "samples", "mean MMACs (fitting)", "p80 MMACs", "eligible",
                            "min flash KB", "min SRAM KB"], rows)
          + f"\n\nBest space: **{result['best']}** (highest mean MACs among the subnets that fit).")
    write_result("nas_supernas", md, {"best": result["best"], "spaces": result["spaces"]}, config,
                 folder=results)
    for row in result["spaces"]:
        print(
            f"{row['space']:18s} fit {row['fitting']:4d}/{row['samples']}  "
            f"mean {row['mean_mmacs']:7.2f} MMACs  p80 {row['p80_mmacs']:7.2f}"
        )
    print(f"best space: {result['best']} -> {folder / 'supernas.json'} "
          f"(table: {results / 'nas_supernas.md'})")
    return 0


def _cmd_supernet(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.tinyformer.supernet import TrainConfig, train_supernet

    folder = _out(args)
    _prepare(folder, "supernet.pt")
    space = _resolve_space(args.space, folder)
    cfg = TrainConfig(
        dataset=args.dataset,
        train_size=args.train_size,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        shift=args.shift,
    )
    path = folder / "supernet.pt"
    t0 = time.monotonic()
    with tqdm_progress(f"SPOS supernet {space.name}", unit="step") as progress:
        train_supernet(space, cfg, out=path, root=args.root, progress=progress, init=args.init,
                       resume=args.resume)
    config: dict[str, Any] = {"space": space, "train": cfg}
    if args.init:  # keep the provenance of the checkpoint this run continued
        config["init"] = {"path": args.init, "made_by": _manifest_entry(folder, "supernet.pt")}
    record(folder, "supernet.pt", config, {"seconds": time.monotonic() - t0})
    print(f"supernet of {space.name} -> {path}")
    return 0


def _cmd_sparsenas(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.limits import check_work
    from core.tinyformer.candidates import run_sparsenas, write_candidates
    from core.tinyformer.sparsenas import SearchConfig, n_evaluations

    folder = _out(args)
    flash, sram = _budgets(args)
    overrides = {k: getattr(args, k) for k in SEARCH_FLAGS if getattr(args, k) is not None}
    cfg = SearchConfig(
        flash_budget=flash,
        sram_budget=sram,
        dataset=args.dataset,
        seed=args.seed,
        threads=args.threads,
        latency_budget_ms=args.latency_ms,
        **overrides,
    )
    evals = n_evaluations(cfg)
    check_work("SparseNAS", evals / SPARSENAS_EVALS_PER_S,
               f"{evals} candidate evaluations at >= {SPARSENAS_EVALS_PER_S:.0e}/s",
               "lower --population or --generations")
    _prepare(folder, "candidates.parquet", "finetuned.pt")
    ckpt = Path(args.checkpoint) if args.checkpoint else folder / "supernet.pt"
    t0 = time.monotonic()
    with tqdm_progress("SparseNAS", unit="eval") as progress:
        table = run_sparsenas(ckpt, cfg, root=args.root, progress=progress, out_dir=folder,
                              scheduler=args.scheduler, latency_model=args.latency_model)
    path = write_candidates(table, folder / "candidates.parquet")
    record(
        folder,
        "candidates.parquet",
        {"search": cfg, "checkpoint": str(ckpt)},
        {"rows": len(table), "seconds": time.monotonic() - t0},
    )
    cols = [c for c in ("id", "accuracy", "accuracy_int8", "latency_ms", "mmacs", "flash_kb", "sram_kb",
                        "dense_flash_kb") if c in table]
    print(table[cols].head(10).to_string(index=False))
    print(f"{len(table)} candidates -> {path}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.tinyformer.finetune import FinetuneConfig, finetune_candidate

    folder = _out(args)
    _prepare(folder, "candidates.parquet", "finetuned.pt", f"finetune_{args.id}.pt")
    cfg = FinetuneConfig(steps=args.steps, batch=args.batch, lr=args.lr, shift=args.shift,
                         test_size=args.test_size, seed=args.seed, threads=args.threads)
    t0 = time.monotonic()
    with tqdm_progress(f"fine-tune candidate {args.id}", unit="step") as progress:
        res = finetune_candidate(folder, args.id, cfg, resume=args.resume, checkpoint=args.checkpoint,
                                 root=args.root, progress=progress,
                                 stop_after=0 if args.score_now else None, finish=args.score_now)
    record(folder, f"finetune_{args.id}", {"finetune": cfg, "id": args.id},
           res | {"seconds": time.monotonic() - t0})
    print(f"candidate {args.id} after {res['steps_done']} of {res['steps']} steps: float {res['float']:.4f}, "
          f"int8 {res['int8']:.4f} on {res['images']} test images -> {folder / 'finetuned.pt'}")
    return 0


def _cmd_engine(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.tinyformer.explore import compare_sentence, engine_runs, runs_path, ship_engine_runs

    folder = _out(args)
    check_target(runs_path(args.id, folder))
    with tqdm_progress(f"engine runs of candidate {args.id}") as progress:
        path = ship_engine_runs(args.id, _command(), folder, progress)
    print(compare_sentence(engine_runs(args.id, folder)))
    print(f"-> {path}")
    return 0


def _cmd_latency(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.tinyformer.candidates import read_table, refresh_latency, reprice_summary, search_budgets

    folder = _out(args)
    _prepare(folder, "candidates.parquet")
    before = read_table(folder / "candidates.parquet")
    with tqdm_progress("latency and flash of the candidates") as progress:
        table = refresh_latency(folder, args.latency_model, progress)
    record(folder, "candidates.parquet:latency", {"latency_model": args.latency_model or "shipped"},
           reprice_summary(before, table, search_budgets(folder)))
    print(f"latency and flash of {len(table)} candidates refreshed: {table['latency_ms'].min():.0f}-"
          f"{table['latency_ms'].max():.0f} ms, {table['flash_kb'].min():.0f}-"
          f"{table['flash_kb'].max():.0f} KB")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from core.tinyformer.candidates import load_candidate

    path = Path(args.table) if args.table else _out(args) / "candidates.parquet"
    print(json.dumps(load_candidate(path, args.id), indent=2))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from core.tinyformer.data import download_cifar10

    print(f"CIFAR-10 batches under {download_cifar10(args.root)}")
    return 0


def _common(p: argparse.ArgumentParser, budgets: bool = True) -> None:
    if budgets:
        p.add_argument("--flash-kb", type=float, default=1024.0, help="flash budget in KiB (default 1024)")
        p.add_argument("--sram-kb", type=float, default=320.0, help="SRAM budget in KiB (default 320)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="result folder (default data/nas)")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="shapes10", help="shapes10 (offline, default) or cifar10")
    p.add_argument("--root", default=None, help="CIFAR-10 folder (holding cifar-10-batches-py/)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `nas` and its sub-commands."""
    nas = subparsers.add_parser("nas", help="TinyFormer NAS: supernas | supernet | sparsenas | show")
    sub = nas.add_subparsers(dest="nas_command", metavar="STEP")
    sub.required = True
    p = sub.add_parser("supernas", help="score candidate search spaces by the MACs of fitting subnets")
    _common(p)
    p.add_argument("--samples", type=int, default=200, help="subnets sampled per space")
    p.add_argument("--max-sparsity", type=float, default=0.0,
                   help="a subnet fits when it fits pruned to this sparsity (default 0: dense)")
    p.add_argument("--max-mmacs", type=float, default=None, help="MAC budget in millions (latency proxy)")
    p.set_defaults(func=_cmd_supernas)
    p = sub.add_parser("supernet", help="SPOS-train the weight-sharing supernet of a space")
    _common(p, budgets=False)
    _data(p)
    p.add_argument(
        "--space", default="auto", help="auto (SuperNAS choice in --out), default, or a space name"
    )
    p.add_argument("--init", default=None, help="warm start from this supernet checkpoint (same space)")
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--shift", type=int, default=0, help="random translations by up to this many pixels")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in <out>/supernet.pt (same settings) exactly")
    p.set_defaults(func=_cmd_supernet)
    p = sub.add_parser("sparsenas", help="evolutionary search of sparse single paths -> candidates table")
    _common(p)
    _data(p)
    p.add_argument("--checkpoint", default=None, help="supernet checkpoint (default <out>/supernet.pt)")
    for flag in SEARCH_FLAGS:  # defaults live in SearchConfig (None = keep the default)
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, default=None, help=f"SearchConfig.{flag}")
    p.add_argument("--latency-ms", type=float, default=None,
                   help="latency budget in ms at 216 MHz (fitted model; default: none)")
    p.add_argument("--latency-model", default=None,
                   help="fitted latency model JSON (default data/nas/latency_model.json)")
    p.add_argument("--scheduler", default=None,
                   help="evaluate candidates on Dask: 'local' or tcp://host:port (default: in-process)")
    p.set_defaults(func=_cmd_sparsenas)
    p = sub.add_parser("finetune", help="fine-tune one candidate long and resumably; float and int8 top-1")
    _common(p, budgets=False)
    _data(p)
    p.set_defaults(threads=1)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--shift", type=int, default=2)
    p.add_argument("--test-size", type=int, default=2000, help="test images for float and int8 top-1")
    p.add_argument("--checkpoint", default=None, help="supernet checkpoint (default <out>/supernet.pt)")
    p.add_argument("--resume", action="store_true", help="continue <out>/finetune_<id>.pt exactly")
    p.add_argument("--score-now", action="store_true",
                   help="with --resume: score the run where its last checkpoint stands (it stays resumable)")
    p.set_defaults(func=_cmd_finetune)
    p = sub.add_parser("engine", help="emulate a candidate as CMSIS-NN / dense / sparse deployments "
                                      "-> <out>/engine/<id>.json (what the explorer shows)")
    _common(p, budgets=False)
    p.add_argument("--id", type=int, required=True)
    p.set_defaults(func=_cmd_engine)
    p = sub.add_parser("latency", help="recompute the candidates' latency and flash columns with the fitted "
                                       "model and the engine's code-size table")
    _common(p, budgets=False)
    p.add_argument("--latency-model", default=None,
                   help="fitted model JSON (default data/nas/latency_model.json)")
    p.set_defaults(func=_cmd_latency)
    p = sub.add_parser("show", help="print one candidate of the candidates table as JSON")
    _common(p, budgets=False)
    p.add_argument("--id", type=int, required=True)
    p.add_argument("--table", default=None, help="candidates table (default <out>/candidates.parquet)")
    p.set_defaults(func=_cmd_show)
    p = sub.add_parser("download-cifar10", help="download + MD5-check the official CIFAR-10 python archive")
    p.add_argument("--root", default=None)
    p.set_defaults(func=_cmd_download)


def main(argv: list[str] | None = None) -> int:
    """`python -m core.tinyformer.cli STEP ...`: the `nas` command alone (same handlers and errors)."""
    import sys

    parser = argparse.ArgumentParser(prog="python -m core nas")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nas", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
