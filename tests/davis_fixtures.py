"""Small DAVIS roots cut from the real data, shared by the evaluation tests."""


def truncated(src, seq, n, dst):
    """A DAVIS root holding the first n frames (and masks) of one real sequence, as symlinks."""
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "png")):
        d = dst / sub / "480p" / seq
        d.mkdir(parents=True)
        for p in sorted((src / sub / "480p" / seq).glob(f"*.{ext}"))[:n]:
            (d / p.name).symlink_to(p)
    return dst
