"""Linking commands: link (with weights learned from answers) and evaluate."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.io.tiff import read_movie
from attrackt.voxels import parse_voxel_size

if TYPE_CHECKING:
    from attrackt.data import Annotations, Associations
    from attrackt.link import LinkConfig


from attrackt.cli.common import app, reported
from attrackt.link.config import LinkConfig
from attrackt.link.learn import LearnConfig

#: every option's default is the configuration's (no value written twice)
LINK = LinkConfig()
LEARN = LearnConfig()


@app.command()
def evaluate(
    pred: Annotated[
        Path, typer.Argument(help="Prediction: CTC result folder, geff store or Tracks folder.")
    ],
    gt: Annotated[
        Path, typer.Argument(help="Ground truth: CTC GT folder, geff store or Tracks folder.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores as JSON here.")
    ] = None,
    match_distance: Annotated[
        float | None,
        typer.Option(help="Match detections within this distance (px) when nothing else can."),
    ] = None,
    chota: Annotated[bool, typer.Option(help="Compute CHOTA too.")] = True,
) -> None:
    """Score tracks against ground truth: AOGM, TRA, DET, CHOTA, edge errors, divisions."""
    from attrackt.errors import InputError
    from attrackt.evaluate import evaluate_paths, format_table, results_json
    from attrackt.io.atomic import atomic_write_text

    try:
        results = evaluate_paths(pred, gt, match_distance=match_distance, chota=chota)
    except InputError as err:
        typer.echo(f"ERROR {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(format_table(results))
    if json_out is not None:
        atomic_write_text(json_out, results_json(results))


@app.command("link")
def link_command(
    detections: Annotated[
        Path,
        typer.Argument(help="Detections parquet, or a CTC mask folder (TRA, RES or SEG frames)."),
    ],
    out: Annotated[Path, typer.Option(help="Tracks folder to write.")],
    associations: Annotated[
        Path | None, typer.Option(help="Associations parquet (scores lower link costs).")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Answers journal (JSON lines): links pinned in or out.")
    ] = None,
    k: Annotated[int, typer.Option(help="Nearest neighbours in each previous frame.")] = LINK.k,
    max_distance: Annotated[
        float | None, typer.Option(help="Longest candidate link.")
    ] = LINK.max_distance,
    max_gap: Annotated[
        int, typer.Option(help="Frames a link may span (1: no gaps).")
    ] = LINK.max_gap,
    divisions: Annotated[
        bool, typer.Option(help="Allow divisions (hyper-edges).")
    ] = LINK.divisions,
    solver: Annotated[str, typer.Option(help="fast (exact), motile (exact, slow) or greedy.")] = (
        LINK.solver
    ),
    time_limit: Annotated[
        float | None, typer.Option(help="Seconds before giving up.")
    ] = LINK.time_limit,
    threads: Annotated[int, typer.Option(help="Worker processes (fast) / threads.")] = LINK.threads,
    pin_nodes: Annotated[
        bool, typer.Option(help="Keep every detection in the tracks.")
    ] = LINK.pin_nodes,
    normalise: Annotated[
        bool, typer.Option(help="Normalise features (mean/std).")
    ] = LINK.normalise,
    distance_weight: Annotated[
        float, typer.Option(help="Weight of link distance.")
    ] = LINK.distance_weight,
    association_weight: Annotated[
        float, typer.Option(help="Weight of association.")
    ] = LINK.association_weight,
    edge_bias: Annotated[float, typer.Option(help="Constant on every link.")] = LINK.edge_bias,
    hyper_bias: Annotated[
        float, typer.Option(help="Constant on every division.")
    ] = LINK.hyper_bias,
    daughter_size_weight: Annotated[
        float,
        typer.Option(
            help="Cost per unit of |ln(d1/d2)| of a division's daughters' diameters (a cell "
            "divides into two alike; 0: sizes do not matter)."
        ),
    ] = LINK.daughter_size_weight,
    position_daughter_size_weight: Annotated[
        float | None,
        typer.Option(
            help="The same in a movie linked on position alone [default: "
            f"{LINK.position_daughter_size_weight}, or --daughter-size-weight where that is "
            "given]."
        ),
    ] = None,
    appear: Annotated[
        float, typer.Option(help="Cost of a track start where the associations are used.")
    ] = LINK.appear,
    disappear: Annotated[
        float, typer.Option(help="Cost of a track end where the associations are used.")
    ] = LINK.disappear,
    position_appear: Annotated[
        float | None,
        typer.Option(
            help="Cost of a track start in a movie linked on position alone (no associations, "
            f"or the guard turned them off) [default: {LINK.position_appear}, or --appear where "
            "that is given]."
        ),
    ] = None,
    position_disappear: Annotated[
        float | None,
        typer.Option(
            help="Cost of a track end in a movie linked on position alone [default: "
            f"{LINK.position_disappear}, or --disappear where that is given]."
        ),
    ] = None,
    border_cells: Annotated[
        float | None,
        typer.Option(
            help="Track starts and ends within this many typical cell diameters of the image "
            "border are free (cells come into view there); 0: nowhere."
        ),
    ] = LINK.border_cells,
    border_margin: Annotated[
        float | None,
        typer.Option(
            help="Instead of --border-cells: starts and ends this close to the border "
            "are free (in the voxel size's units)."
        ),
    ] = LINK.border_margin,
    voxel_size: Annotated[
        str | None, typer.Option(help="Pixel size per axis, e.g. 2,1,1 (Z,Y,X).")
    ] = None,
    ctc_out: Annotated[
        Path | None, typer.Option(help="Also write a CTC result folder (needs mask input).")
    ] = None,
    geff_out: Annotated[Path | None, typer.Option(help="Also write the tracks as geff.")] = None,
    guard: Annotated[
        bool,
        typer.Option(
            help="Let the associations change a movie's links only where they agree with "
            "position on the cells where position is obvious (the label-free guard)."
        ),
    ] = LINK.guard,
    learn_weights: Annotated[
        Path | None,
        typer.Option(
            "--learn-weights",
            help="First learn the cost weights from the answers (structured SVM); write them "
            "and the learning record to this JSON file.",
        ),
    ] = None,
    pseudo_fraction: Annotated[
        float,
        typer.Option(
            help="With --learn-weights: the share of least ambiguous cells whose current links "
            "count as answers too (0: the answers alone)."
        ),
    ] = 0.0,
    check_fraction: Annotated[
        float,
        typer.Option(
            help="With --learn-weights: the share of answered cells held out to check the "
            "learned weights, which are used only where they link those cells better than the "
            "starting weights (0: no check)."
        ),
    ] = LEARN.check_fraction,
    learn_seconds: Annotated[
        float | None, typer.Option(help="Wall-clock bound of the weight learning (seconds).")
    ] = LEARN.max_seconds,
) -> None:
    """Link detections into tracks: candidate graph, costs, and the method's ILP."""
    from attrackt.data import Annotations, Associations
    from attrackt.errors import SolverError
    from attrackt.link import LinkConfig, link

    log = logging.getLogger(__name__)
    with reported():
        config = LinkConfig(
            k=k,
            max_distance=max_distance,
            max_gap=max_gap,
            divisions=divisions,
            voxel_size=parse_voxel_size(voxel_size),
            distance_weight=distance_weight,
            association_weight=association_weight,
            edge_bias=edge_bias,
            hyper_distance_weight=distance_weight,
            hyper_association_weight=association_weight,
            hyper_bias=hyper_bias,
            daughter_size_weight=daughter_size_weight,
            position_daughter_size_weight=_position_cost(
                position_daughter_size_weight, daughter_size_weight, "daughter_size_weight"
            ),
            appear=appear,
            disappear=disappear,
            position_appear=_position_cost(position_appear, appear, "appear"),
            position_disappear=_position_cost(position_disappear, disappear, "disappear"),
            normalise=normalise,
            border_cells=border_cells,
            border_margin=border_margin,
            pin_nodes=pin_nodes,
            guard=guard,
            solver=solver,  # type: ignore[arg-type]
            time_limit=time_limit,
            threads=threads,
        )
        masks = None
        if detections.is_dir():
            from attrackt.io.ctc import detections_from_masks

            masks = read_movie(detections)
            dets = detections_from_masks(masks, sequence=detections.name)
        else:
            dets = Detections.load(detections)
        if ctc_out is not None and masks is None:
            raise InputError("--ctc-out", "needs detections read from a CTC mask folder")
        assoc = Associations.load(associations) if associations is not None else None
        answers = Annotations.load(annotations) if annotations is not None else None
        if learn_weights is not None:
            learn = LearnConfig(check_fraction=check_fraction, max_seconds=learn_seconds)
            config = _learned_config(
                dets, assoc, answers, config, learn_weights, pseudo_fraction, learn
            )
        try:
            result = link(dets, assoc, answers, config)
        except SolverError as err:
            typer.echo(f"ERROR {err}", err=True)
            raise typer.Exit(1) from err
        if result.guard is not None:
            typer.echo(result.guard.message())
        result.tracks.save(out)
        if ctc_out is not None:
            from attrackt.io.ctc import write_ctc_result

            write_ctc_result(ctc_out, result.tracks, masks)
        if geff_out is not None:
            from attrackt.io.geff import write_geff

            write_geff(result.tracks, geff_out, overwrite=True)
    log.info(
        "%s: %d links, %d divisions, objective %.6g (%s, gap %.3g) in %.1f s -> %s",
        result.solver,
        len(result.tracks.edges),
        len(result.tracks.divisions()),
        result.objective,
        result.status,
        result.gap,
        result.seconds,
        out,
    )


def _learned_config(
    dets: Detections,
    assoc: Associations | None,
    answers: Annotations | None,
    config: LinkConfig,
    out: Path,
    fraction: float,
    learn: LearnConfig,
) -> LinkConfig:
    """``config`` with the weights learned from ``answers`` as ``learn`` says (and, with
    associations, from the least ambiguous cells' links as pseudo-labels), the learning written
    to ``out``."""
    import json

    from attrackt.active import pseudo_labels
    from attrackt.io.atomic import atomic_write_text
    from attrackt.link import link
    from attrackt.link.learn import learn_weights

    if answers is None:
        raise InputError("--learn-weights", "needs --annotations (the answers to learn from)")
    pseudo = None
    if assoc is not None and fraction > 0:
        current = link(dets, assoc, answers, config).tracks
        pseudo = pseudo_labels(dets, current, assoc, answers, fraction, config)
    learned = learn_weights(dets, answers, assoc, config, learn, pseudo=pseudo)
    atomic_write_text(out, json.dumps(learned.to_dict(), indent=1))
    return learned.config


def _position_cost(on_position: float | None, with_model: float, name: str) -> float | None:
    """A cost on position alone (of a start, an end, unequal daughters): as given, else the
    one the user gave for linking with a model (``--appear``...), else the default."""
    if on_position is not None:
        return on_position
    return with_model if with_model != getattr(LINK, name) else getattr(LINK, f"position_{name}")
