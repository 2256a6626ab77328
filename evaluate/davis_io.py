"""Reading and writing DAVIS-format folders.

Layout: ROOT/JPEGImages/480p/<seq>/<frame>.jpg, ROOT/Annotations/480p/<seq>/<frame>.png,
ROOT/ImageSets/<year>/<set>.txt. DAVIS-2016 masks are mode L with 255 = object; DAVIS-2017 masks
are indexed (mode P) with 0 = background, k = object k, 255 = void. Every problem with the input
raises InputError with one line that names the file or sequence and the reason.
"""
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

VOID = 255
YEARS = (2016, 2017)


class InputError(Exception):
    """Bad input: the message is one line naming the input and the reason."""


def palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC colour map (256 x 3 uint8): bits of the index spread over r, g, b."""
    pal = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        pal[i] = (r, g, b)
    return pal


PALETTE = palette()


def sequence_list(root, year, subset="val", sequences=None) -> list[str]:
    """Sequences named on the command line, else those listed in ImageSets/<year>/<subset>.txt."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: DAVIS root not found")
    if sequences:
        names = list(sequences)
        unknown = [s for s in names if not (root / "JPEGImages" / "480p" / s).is_dir()]
        if unknown:
            raise InputError(f"{root}: unknown sequence(s) {', '.join(unknown)} (no folder JPEGImages/480p/<name>)")
    else:
        listing = root / "ImageSets" / str(year) / f"{subset}.txt"
        if not listing.is_file():
            raise InputError(f"{listing}: sequence list not found (pass --sequences or add the file)")
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not names:
        raise InputError(f"{root}: no sequences to evaluate")
    return names


def frame_paths(root, seq, resolution="480p") -> list[Path]:
    """Sorted JPEG frames of one sequence; raises for an unknown sequence or an empty folder."""
    folder = Path(root) / "JPEGImages" / resolution / seq
    if not folder.is_dir():
        raise InputError(f"{seq}: unknown sequence (no folder {folder})")
    frames = sorted(folder.glob("*.jpg"))
    if not frames:
        raise InputError(f"{seq}: no .jpg frames in {folder}")
    return frames


def count_frames(root, seq, resolution="480p") -> int:
    """The number of JPEG frames of a sequence (0 for a missing folder), unchecked: progress totals."""
    return len(list((Path(root) / "JPEGImages" / resolution / seq).glob("*.jpg")))


def mask_path(root, seq, frame_id, resolution="480p") -> Path:
    return Path(root) / "Annotations" / resolution / seq / f"{frame_id}.png"


def _listing(paths, n=4) -> str:
    names = [Path(p).name for p in paths]
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def png_ids(folder) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.png"))


def check_frame_ids(seq, ids: list[str], folder) -> None:
    """DAVIS numbers the frames of a sequence 00000, 00001, ...: a gap means a deleted JPEG."""
    if not all(i.isdigit() for i in ids):
        return
    nums = [int(i) for i in ids]
    gaps = [f"{n:0{len(ids[0])}d}.jpg" for a, b in zip(nums, nums[1:]) for n in range(a + 1, b)]
    if nums[0] != 0 or gaps:
        missing = ([f"{0:0{len(ids[0])}d}.jpg"] if nums[0] != 0 else []) + gaps
        raise InputError(f"{seq}: frames missing from {folder}: {_listing(missing)}")


def check_annotations(root, seq, ids: list[str], every_frame: bool, resolution="480p") -> None:
    """Annotations must match the JPEG ids: all of them (scoring) or at least the first (propagation)."""
    folder = Path(root) / "Annotations" / resolution / seq
    have = set(png_ids(folder)) if folder.is_dir() else set()
    extra = sorted(have - set(ids))
    if extra:
        raise InputError(f"{seq}: annotations without a JPEG frame in {folder}: {_listing(a + '.png' for a in extra)}")
    missing = [i for i in (ids if every_frame else ids[:1]) if i not in have]
    if missing:
        raise InputError(f"{seq}: annotations missing in {folder}: {_listing(m + '.png' for m in missing)}"
                         + ("" if every_frame else " (the first frame's mask starts the propagation)"))


def check_results(folder, seq, ids: list[str]) -> None:
    """Predictions for every scored frame (all but the first and last), none for frames that do not exist."""
    folder = Path(folder) / seq
    if not folder.is_dir():
        raise InputError(f"{folder}: results folder of sequence {seq} missing")
    have = set(png_ids(folder))
    extra = sorted(have - set(ids))
    if extra:
        raise InputError(f"{seq}: predictions without a JPEG frame in {folder}: {_listing(e + '.png' for e in extra)}")
    missing = [i for i in ids[1:-1] if i not in have]
    if missing:
        raise InputError(f"{seq}: result frames missing in {folder}: {_listing(m + '.png' for m in missing)}")


def sequence_frames(root, seq, year, every_frame=True, resolution="480p") -> list[Path]:
    """The JPEG frames of a sequence, after checking their ids and the annotations against them."""
    frames = frame_paths(root, seq, resolution)
    ids = [p.stem for p in frames]
    check_frame_ids(seq, ids, frames[0].parent)
    check_annotations(root, seq, ids, every_frame, resolution)
    return frames


def scaled_size(hw, scale: float) -> tuple[int, int]:
    """(H, W) of an image of size hw read at --eval-scale `scale`."""
    return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))


def _resized(arr: np.ndarray, scale: float, interpolation) -> np.ndarray:
    if scale == 1:
        return arr
    h, w = scaled_size(arr.shape[:2], scale)
    return cv2.resize(arr, (w, h), interpolation=interpolation)


def load_frame(path, scale: float = 1.0) -> np.ndarray:
    """RGB uint8 (H, W, 3), resized by `scale` (area averaging) where it is not 1."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable frame ({e})") from None
    return _resized(arr, scale, cv2.INTER_AREA)


def load_mask(path, year, scale: float = 1.0) -> np.ndarray:
    """Label map uint8 (H, W): 0 background, k object k, 255 void (2017 only), resized by `scale`
    (nearest neighbour: labels are never blended) where it is not 1.

    2016 masks (mode L, 255 = object) become 0/1 by `> 0` as the official DAVIS-2016 reader does, so a
    0/1 mask scores as its 0/255 twin; more than one non-zero value is refused. A 2017 mask must be
    indexed (mode P): a colour or grey PNG read as labels is exactly the conversion bug that silently
    ruins scores.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: mask missing")
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.array(im)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable mask ({e})") from None
    if int(year) == 2016:
        if arr.ndim != 2:
            raise InputError(f"{path}: DAVIS-2016 mask must be single-channel, got mode {mode}")
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=1)) if arr.dtype == np.uint8 else np.unique(arr)
        if len(values) > 2 or (len(values) == 2 and values[0] != 0):
            raise InputError(f"{path}: DAVIS-2016 mask must hold 0 and one object value (255), got values "
                             f"{values[:6].tolist()}{'...' if len(values) > 6 else ''}")
        # the official DAVIS-2016 reader: annot > 0
        return _resized((arr > 0).astype(np.uint8), scale, cv2.INTER_NEAREST)
    if mode != "P":
        raise InputError(f"{path}: DAVIS-2017 mask must be an indexed (palette) PNG, got mode {mode}")
    return _resized(arr.astype(np.uint8), scale, cv2.INTER_NEAREST)


def listed_years(root) -> list[int]:
    """The DAVIS years whose sequence lists the root holds (ImageSets/2016, ImageSets/2017)."""
    return [y for y in YEARS if (Path(root) / "ImageSets" / str(y)).is_dir()]


def _first_mask(root, seq) -> tuple[Path | None, str | None]:
    """The first annotation of a sequence and its PIL mode (None, None where there is none to read)."""
    folder = Path(root) / "Annotations" / "480p" / seq
    first = min(folder.glob("*.png"), default=None) if folder.is_dir() else None
    if first is None:
        return None, None
    try:
        with Image.open(first) as im:
            return first, im.mode
    except (OSError, ValueError):
        return None, None  # the sequence's own checks name the unreadable file


def _readable_as(path: Path, mode: str, year: int) -> bool:
    if mode not in ("P", "L", "1"):
        return True  # neither year's kind: the sequence's own checks name the mode
    if year == 2017:
        return mode == "P"
    try:
        load_mask(path, 2016)  # an indexed mask holding one object reads as a 2016 mask too
        return True
    except InputError:
        return mode != "P"  # a grey mask with bad values: its own sequence fails, naming the values


def resolve_year(root, year: int | None, subset: str = "val", sequences=None) -> tuple[int, list[str]]:
    """(year, sequences) of a DAVIS root, checked before any work. Without `year`: the one year the root's
    ImageSets lists, else the kind of its first mask (indexed: 2017, grey: 2016). A year the root's ImageSets
    does not list is checked against the first mask: one it cannot be read as (2017 on grey masks, 2016 on
    indexed masks of several objects) raises one InputError naming the year to pass. (A year the root lists is
    trusted: a damaged mask fails its own sequence.)"""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: DAVIS root not found")
    years = listed_years(root)
    listed = ", ".join(f"ImageSets/{y}" for y in years) or "no ImageSets"
    probe = list(sequences) if sequences else None
    if year is None and len(years) == 1:
        year = years[0]
    if year is not None and int(year) in years:
        return int(year), sequence_list(root, year, subset, probe)
    names = probe or sequence_list(root, years[0] if years else 2017, subset)
    path, mode = _first_mask(root, names[0])
    if year is None:
        year = 2016 if mode in ("L", "1") else 2017
    elif path is not None and not _readable_as(path, mode, int(year)):
        kind = "indexed (palette) masks, as DAVIS-2017 has" if mode == "P" else f"mode-{mode} masks, as DAVIS-2016 has"
        raise InputError(f"--year {year}: {root} holds {kind} ({names[0]}/{path.name}; the root has {listed}); "
                         f"pass --year {2017 if mode == 'P' else 2016} or leave --year out")
    return int(year), sequence_list(root, year, subset, probe)


def load_result(path) -> np.ndarray:
    """A predicted label map as the official toolkit reads it (the PNG's raw values)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: result frame missing")
    return read_single_channel(path, "result", "a single-channel indexed PNG")


def read_single_channel(path, what: str, must_be: str) -> np.ndarray:
    """A PNG's raw values as one (H, W) array; InputError naming the file for anything else."""
    try:
        with Image.open(path) as im:
            arr = np.array(im)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable {what} ({e})") from None
    if arr.ndim != 2:
        raise InputError(f"{path}: {what} must be {must_be}, got shape {arr.shape}")
    return arr


def save_indexed(labels: np.ndarray, path) -> None:
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(PALETTE.flatten().tolist())
    im.save(path)


def mask_overlay(frame: np.ndarray, labels: np.ndarray, alpha=0.5) -> np.ndarray:
    """Objects tinted with their palette colour, background untouched."""
    out = frame.astype(np.float32)
    fg = labels > 0
    out[fg] = alpha * out[fg] + (1 - alpha) * PALETTE[labels[fg]]
    return out.astype(np.uint8)


def write_listing(root, year, subset, names) -> None:
    d = Path(root) / "ImageSets" / str(year)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{subset}.txt").write_text("".join(f"{n}\n" for n in names))
