"""``enroll``, ``watchlist list|show|remove|negative|rebuild`` and ``calibrate``: the people to recognise."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.cli.common import (
    UserError,
    add_engine_options,
    add_model_options,
    number,
    open_models,
    print_json,
    stderr,
)
from streamrec.embed.facenet import EMBEDDING_SIZE
from streamrec.faces import FaceModels
from streamrec.match.calibrate import Calibration, CalibrationError, Rates, calibrate, person_folders
from streamrec.match.enroll import (
    MIN_FACE_PX,
    MIN_SCORE,
    SIMILAR_AREA,
    EnrollReport,
    Photo,
    choose_face,
    enroll_photos,
)
from streamrec.match.erase import erase_person
from streamrec.match.index import IndexSettings, build_index
from streamrec.match.openset import OpenSetReport, Rate, open_set_rates
from streamrec.match.store import Person, Watchlist, WatchlistError
from streamrec.paths import data_dir

__all__ = ["register"]


def _metadata_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (got {text!r})")
    return key.strip(), value


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR",
        help="where the watchlist lives (default: $STREAMREC_DATA, else ~/.local/share/streamrec)",
    )


def _plain_verb(verbs: argparse._SubParsersAction, name: str, help_text: str, description: str) -> argparse.ArgumentParser:
    """A verb that needs no models: ``--data-dir`` and ``--json`` only."""
    parser = verbs.add_parser(name, help=help_text, description=description)
    _add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")
    return parser


def _redefault(parser: argparse.ArgumentParser, dest: str, default: Any, help_text: str) -> None:
    """Another default (and the help that describes it) for a shared option."""
    for action in parser._actions:
        if action.dest == dest:
            action.default, action.help = default, help_text


def register(verbs: argparse._SubParsersAction) -> None:
    """Add ``enroll``, ``watchlist`` and ``calibrate`` to the ``streamrec`` parser."""
    enroll = verbs.add_parser(
        "enroll", help="add a person's photos to the watchlist",
        description="Enroll the face of each photo as NAME: the largest face, refused (one line "
        f"per photo, exit status 1) when there is none, when its detection score is under {MIN_SCORE}, "
        f"when it is under {MIN_FACE_PX:.0f} px, or when another face is at least {SIMILAR_AREA:.0%} "
        "as large. The usable photos are enrolled all together. A NAME already in the watchlist "
        "gets the new photos added to it; --id picks or creates a person by id.",
    )
    enroll.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    enroll.add_argument("--name", required=True, help="the person's name")
    enroll.add_argument("--id", metavar="ID", help="person id (default: the name's slug, e.g. 'ada-lovelace', suffixed if taken)")
    enroll.add_argument(
        "--metadata", type=_metadata_item, action="append", default=[], metavar="KEY=VALUE",
        help="a note to keep with the person (repeatable; replaces the same key)",
    )
    _add_data_dir(enroll)
    add_model_options(enroll)
    add_engine_options(enroll)
    enroll.set_defaults(handler=run_enroll)
    _redefault(enroll, "selection", "largest_clipped", "which face of a photo is enrolled (default: %(default)s: "
               "the largest, clipped to the image)")

    watchlist = verbs.add_parser(
        "watchlist", help="list, show or remove enrolled people; mark faces as not a person; rebuild the search index",
        description="Inspect and edit the watchlist in the data directory.",
    )
    actions = watchlist.add_subparsers(dest="action", metavar="ACTION", required=True)
    _plain_verb(actions, "list", "everyone enrolled", "Everyone enrolled, by name, with their number of photos.").set_defaults(handler=run_list)
    show = _plain_verb(actions, "show", "one person and their photos", "One person: name, metadata and each enrolled photo with its face box.")
    show.add_argument("person_id", metavar="ID")
    show.set_defaults(handler=run_show)
    remove = _plain_verb(
        actions, "remove", "remove a person",
        "Remove a person, all their embeddings and their negatives (running matchers notice at once). "
        "With --purge, erase them: also their photos uploaded through the face library, the face crops "
        "kept of their matches, and their name in the event journal (replaced by their id; the events stay).",
    )
    remove.add_argument("person_id", metavar="ID")
    remove.add_argument("--purge", action="store_true", help="erase everything kept about the person (see above)")
    remove.set_defaults(handler=run_remove)
    negative = actions.add_parser(
        "negative", help="mark faces as not a person",
        description="Mark the face of each photo as not person ID (\"not this person\"): the matcher no "
        "longer names ID for a face closer to one of these than to ID's own nearest photo. Each photo "
        "must show one clear face, as for enroll.",
    )
    negative.add_argument("person_id", metavar="ID")
    negative.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    _add_data_dir(negative)
    add_model_options(negative)
    add_engine_options(negative)
    negative.set_defaults(handler=run_negative)
    _redefault(negative, "selection", "largest_clipped", "which face of a photo is taken (default: %(default)s)")
    _plain_verb(
        actions, "rebuild", "build the nearest-neighbour index now",
        "Build the Annoy index of the watchlist now (running matchers build it themselves in the "
        "background when the watchlist is large; see docs/watchlist.md).",
    ).set_defaults(handler=run_rebuild)

    calib = verbs.add_parser(
        "calibrate", help="propose a threshold for a chosen false-accept rate, or measure how often strangers are named",
        description="DIR holds one folder of photos per person. Every pair of main faces is "
        "compared; the proposed threshold is the largest at which at most --far of the "
        "different-person pairs are accepted, with the false-reject rate it costs. "
        "With --open-set, the decision rule of `streamrec run` ([matcher] of --config, else the defaults) "
        "is measured instead: the people of --images are enrolled, those of --strangers are not, and "
        "the report gives how many faces and tracks of the people not enrolled would be named (the "
        "false-positive identification rate, with its 95% upper bound) and how many held-out photos "
        "of the enrolled are named right, at the configured rule and over a sweep of thresholds "
        "(docs/accuracy.md, \"Open-set identification\").",
    )
    calib.add_argument("--images", type=Path, required=True, metavar="DIR", help="one sub-folder of photos per person (with --open-set: the enrolled people)")
    calib.add_argument("--far", type=number(gt=0, lt=1), default=0.001, help="target false-accept rate, between 0 and 1 (default: %(default)s)")
    open_set = calib.add_argument_group("open-set measurement")
    open_set.add_argument("--open-set", action="store_true", help="measure the decision rule on --strangers instead of proposing a threshold")
    open_set.add_argument("--strangers", type=Path, metavar="DIR", help="one sub-folder of photos per person who is not enrolled "
                          "(e.g. LFW's layout: DIR/Name/Name_0001.jpg); nobody may be in both folders")
    open_set.add_argument("--config", type=Path, metavar="FILE.toml", help="take the [matcher] rule from this configuration (default: the defaults)")
    open_set.add_argument("--track-length", type=number(whole=True, ge=1), default=6, metavar="K",
                          help="embeddings per pseudo-track of a person not enrolled (default: %(default)s)")
    open_set.add_argument("--draws", type=number(whole=True, ge=1), default=20, metavar="N",
                          help="several-view pseudo-tracks drawn per person with at least two photos (default: %(default)s)")
    open_set.add_argument("--seed", type=number(whole=True, ge=0), default=0, help="seed of the draws, >= 0 (default: %(default)s)")
    add_model_options(calib)
    add_engine_options(calib)
    calib.set_defaults(handler=run_calibrate)


@contextlib.contextmanager
def _watchlist(args: argparse.Namespace, create: bool = False) -> Iterator[Watchlist]:
    """The watchlist of ``--data-dir``, created only by ``enroll`` (the other verbs read it, or
    change someone already in it); its refusals become one-line user errors."""
    try:
        with Watchlist(data_dir(args.data_dir), create=create) as store:
            yield store
    except WatchlistError as exc:
        raise UserError(str(exc)) from None


def _person_json(person: Person) -> dict[str, Any]:
    return {"id": person.id, "name": person.name, "metadata": person.metadata,
            "created": round(person.created, 3), "photos": person.embeddings}


def _photos(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def run_enroll(args: argparse.Namespace) -> int:
    with _watchlist(args, create=True) as store:
        store.resolve(args.name, args.id)  # a bad name or id fails before the models load
        report = enroll_photos(store, open_models(args), args.name, args.images, args.id, dict(args.metadata))
    if args.json:
        print_json(_enroll_json(report))
    else:
        for photo in report.photos:
            print(f"{photo.image}: refused: {photo.refused}" if photo.refused else f"{photo.image}: enrolled")
        if report.enrolled:
            person = report.enrolled.person
            verb = "new person" if report.enrolled.created else "added to"
            print(f"enrolled {len(report.enrolled.embedding_ids)} of {len(report.photos)} photos: {verb} "
                  f"{person.name} (id {person.id}, {_photos(person.embeddings)} in all)")
    if report.enrolled is None:
        raise UserError(f"nothing enrolled: none of the {len(report.photos)} photos has a usable face")
    return 1 if any(photo.refused for photo in report.photos) else 0


def _photo_json(photo: Photo) -> dict[str, Any]:
    if photo.face is None:
        return {"image": str(photo.image), "refused": photo.refused}
    return {"image": str(photo.image), "box": [round(v, 2) for v in photo.face.box]}


def _enroll_json(report: EnrollReport) -> dict[str, Any]:
    enrolled = report.enrolled
    return {
        "person": _person_json(enrolled.person) if enrolled else None,
        "created": bool(enrolled and enrolled.created),
        "embedding_ids": enrolled.embedding_ids if enrolled else [],
        "photos": [_photo_json(photo) for photo in report.photos],
    }


def run_list(args: argparse.Namespace) -> int:
    with _watchlist(args) as store, store.read() as view:
        people, generation = view.persons(), view.generation()
    if args.json:
        print_json({"data_dir": str(store.path.parent), "generation": generation, "people": [_person_json(p) for p in people]})
        return 0
    if not people:
        print(f"the watchlist in {store.path.parent} is empty")
    for person in people:
        notes = ", ".join(f"{k}={v}" for k, v in person.metadata.items())
        print(f"{person.id:<24} {person.name:<32} {_photos(person.embeddings):>10}  {notes}".rstrip())
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _watchlist(args) as store, store.read() as view:
        person, embeddings = view.person(args.person_id), view.embeddings(args.person_id)
    if person is None:
        raise UserError(f"no person with id {args.person_id!r} in the watchlist")
    if args.json:
        items = [{"id": e.id, "image": e.image, "box": [round(v, 2) for v in e.box], "created": round(e.created, 3)} for e in embeddings]
        print_json({**_person_json(person), "embeddings": items})
        return 0
    print(f"{person.name} (id {person.id}), enrolled {_when(person.created)}")
    for key, value in person.metadata.items():
        print(f"  {key}: {value}")
    for e in embeddings:
        x1, y1, x2, y2 = e.box
        print(f"  embedding {e.id}: {e.image} face ({x1:.0f}, {y1:.0f})-({x2:.0f}, {y2:.0f}), {_when(e.created)}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    if args.purge:
        return _run_purge(args)
    with _watchlist(args) as store:
        person = store.remove(args.person_id)
    if args.json:
        print_json({"removed": person.id, "name": person.name, "embeddings": person.embeddings})
    else:
        plural = "s" if person.embeddings != 1 else ""
        print(f"removed {person.name} (id {person.id}) and {person.embeddings} embedding{plural}")
    return 0


def _run_purge(args: argparse.Namespace) -> int:
    with _watchlist(args) as store:
        erased = erase_person(store, args.person_id)
    person = erased.person
    if args.json:
        print_json({"removed": person.id, "name": person.name, "embeddings": person.embeddings, "negatives": erased.negatives,
                    "photos": erased.photos, "kept_faces": erased.kept_faces, "events_renamed": erased.events_renamed})
    else:
        print(f"erased {person.name} (id {person.id}): {person.embeddings} embeddings, {erased.negatives} negatives, "
              f"{erased.photos} photo files, {erased.kept_faces} kept face crops; {erased.events_renamed} events "
              f"now name {person.id}")
    return 0


def run_negative(args: argparse.Namespace) -> int:
    with _watchlist(args) as store:
        with store.read() as view:
            person = view.person(args.person_id)
        if person is None:  # before the models load
            raise UserError(f"no person with id {args.person_id!r} in the watchlist")
        photos = [choose_face(result) for result in open_models(args).analyse(args.images, embed="main")]
        marked = {photo.image: store.add_negative(person.id, photo.face.vector, photo.face.image)
                  for photo in photos if photo.face is not None}
    if args.json:
        print_json({"person_id": person.id, "photos": [
            {"image": str(p.image), "negative": marked[p.image]} if p.face else {"image": str(p.image), "refused": p.refused}
            for p in photos]})
    else:
        for photo in photos:
            print(f"{photo.image}: marked as not {person.name} (id {person.id})" if photo.face else
                  f"{photo.image}: refused: {photo.refused}")
    if not marked:
        raise UserError(f"nothing marked: none of the {len(photos)} photos has a usable face")
    return 1 if any(photo.refused for photo in photos) else 0


def run_rebuild(args: argparse.Namespace) -> int:
    settings = IndexSettings()
    with _watchlist(args) as store:
        started = time.monotonic()
        folder = build_index(store, settings)
        with store.read() as view:
            count = view.count()
    seconds = time.monotonic() - started
    used = count >= settings.exact_limit
    if args.json:
        print_json({"index": str(folder), "embeddings": count, "n_trees": settings.n_trees,
                    "seconds": round(seconds, 3), "used": used, "exact_limit": settings.exact_limit})
        return 0
    print(f"built {folder} ({count} embeddings, {settings.n_trees} trees) in {seconds:.1f} s")
    if not used:
        print(f"note: below {settings.exact_limit} embeddings the matcher searches exactly and does not use it")
    return 0


def _need_folder(path: Path) -> None:
    if not path.is_dir():
        raise UserError(f"{path}: not a folder (expected one sub-folder of photos per person)")


def _embed_folders(models: FaceModels, root: Path, what: str) -> tuple[dict[str, np.ndarray], int]:
    """The main-face embedding of every photo under ``root`` (one sub-folder per person), by
    person; photos without a usable face are skipped with one line each, and counted."""
    folders = person_folders(root)
    total, done, skipped = sum(len(paths) for paths in folders.values()), 0, 0
    embeddings, last_report = {}, time.monotonic()
    for person, paths in folders.items():
        vectors = []
        for result in models.analyse(paths, embed="main"):
            done += 1
            if len(result.embeddings):
                vectors.append(result.embeddings[0])
            else:
                skipped += 1
                stderr(f"{result.path}: skipped: {result.error or 'no face found'}")
            if time.monotonic() - last_report >= 5.0 and done < total:
                last_report = time.monotonic()
                stderr(f"{what}: {done}/{total} photos embedded")
        embeddings[person] = np.array(vectors, np.float32).reshape(-1, EMBEDDING_SIZE)
    return embeddings, skipped


def run_calibrate(args: argparse.Namespace) -> int:
    if args.open_set:
        return _run_open_set(args)
    if args.strangers is not None:
        raise UserError("--strangers needs --open-set")
    _need_folder(args.images)
    models = open_models(args)
    embeddings, skipped = _embed_folders(models, args.images, "photos")
    try:
        result = calibrate(embeddings, args.far)
    except (CalibrationError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if result.warning:
        stderr(f"streamrec: warning: {result.warning}")
    if args.json:
        print_json({**asdict(result), "skipped_photos": skipped})
    else:
        _print_calibration(result, skipped)
    return 0


def _run_open_set(args: argparse.Namespace) -> int:
    from streamrec.config import ConfigError, load_config
    from streamrec.config.model import MatcherConfig

    if args.strangers is None:
        raise UserError("--open-set needs --strangers DIR (photos of people who are not enrolled)")
    try:
        rule = load_config(args.config).matcher if args.config else MatcherConfig()
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    _need_folder(args.images)
    _need_folder(args.strangers)
    models = open_models(args)
    enrolled, skipped = _embed_folders(models, args.images, "enrolled people")
    strangers, skipped_strangers = _embed_folders(models, args.strangers, "people not enrolled")
    try:
        report = open_set_rates(enrolled, strangers, rule, args.track_length, args.draws, args.seed)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print_json({**report.to_json(), "config_file": str(args.config) if args.config else None,
                    "skipped_photos": skipped, "skipped_stranger_photos": skipped_strangers})
    else:
        _print_open_set(report, args.config, skipped + skipped_strangers)
    return 0


def _rates_text(rates: Rates, calibration: Calibration) -> str:
    return (f"false accepts {rates.false_accepts}/{calibration.different_pairs} ({rates.far:.4f}), "
            f"false rejects {rates.false_rejects}/{calibration.same_pairs} ({rates.frr:.4f})")


def _print_calibration(result: Calibration, skipped: int) -> None:
    print(f"people: {result.people}, photos: {result.photos} ({skipped} skipped: no usable face)")
    print(f"pairs: {result.same_pairs} same-person, {result.different_pairs} different-person")
    print("same-person distances: {:.3f} - {:.3f}".format(*result.same_range))
    print("different-person distances: {:.3f} - {:.3f}".format(*result.different_range))
    print(f"proposed threshold: {result.proposed.threshold:.3f} (target FAR {result.target_far:g}): {_rates_text(result.proposed, result)}")
    print(f"pair threshold {result.default.threshold} (the default of `compare`): {_rates_text(result.default, result)}")


def _rate(rate: Rate) -> str:
    return f"{rate.count}/{rate.trials} ({rate.rate:.4f}; 95% upper bound {rate.upper:.4f})"


def _print_open_set(report: OpenSetReport, config_file: Path | None, skipped: int) -> None:
    rule = ", ".join(f"{key} {value:g}" for key, value in report.config.items())
    print(f"decision rule ({config_file or 'defaults'}): {rule}")
    print(f"enrolled: {report.enrolled_people} people, {report.enrolled_photos} photos; not enrolled: "
          f"{report.stranger_people} people, {report.stranger_photos} photos ({skipped} photos skipped: no usable face)")
    print("people not enrolled, named as someone:")
    print(f"  per face:                        {_rate(report.face)}")
    print(f"  per track of one view x {report.track_length}:       {_rate(report.track_one_view)}")
    print(f"  per track of {report.track_length} views ({report.draws} draws): {_rate(report.track_views)}; "
          f"people named in any draw {_rate(report.track_views_people)}")
    face, track = report.enrolled_face, report.enrolled_track
    print(f"enrolled photos held out, named right: per face {face.count}/{face.trials} ({face.rate:.3f}), as a track "
          f"{track.count}/{track.trials} ({track.rate:.3f}); named as someone else: {report.enrolled_wrong.count}")
    print(f"{'threshold':>9} {'faces named':>12} {'one-view tracks':>16} {'several-view tracks':>20} {'enrolled named':>15}")
    for row in report.sweep:
        print(f"{row.threshold:>9.2f} {row.face.rate:>12.4f} {row.track_one_view.rate:>16.4f} {row.track_views.rate:>20.4f} "
              f"{row.enrolled_named.rate:>15.3f}")
