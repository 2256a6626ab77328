"""spixwalk: contrastive random walk over superpixel nodes, as one package with four stages.

    spixwalk.data_manifest   list videos into numbered work shards       (folder data_manifest/)
    spixwalk.preprocess      frames + superpixel label maps -> Zarr store (folder preprocess/)
    spixwalk.train           the walk trainer, checkpoints, encoder files (folder train/)
    spixwalk.evaluate        DAVIS label propagation, J&F, reports        (folder evaluate/)
    spixwalk.cli             the `spixwalk` console command
    spixwalk.files           atomic writes, output paths checked before any work
    spixwalk.video           the ffmpeg binary, RGB frames to mp4
    spixwalk.options         what every stage's command line shares (parsers, help, --device)
    spixwalk.progress        the progress bar / log lines every stage shows on stderr

Every module has exactly one import name, `spixwalk.<stage>.<module>`: the stages import each other that
way (relative inside a stage). `pip install` maps the stage folders under this package (pyproject.toml:
package-dir); in a checkout (editable install, or the repository as the working directory) the folders sit
beside this one, and the package's search path includes the checkout root, so `spixwalk.train` is
./train there. `python -m train` (and the other three) from a checkout run a two-line `__main__.py` that
imports `spixwalk.<stage>.cli`; the stage folders' own `__init__.py` import nothing.
"""
import os as _os

# OpenMP threads that spin while waiting starve each other on a shared or oversubscribed CPU (measured 15x
# slower steps with 2 busy-waiting threads on 2 shared cores); must be set before torch loads libgomp.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_here = _os.path.dirname(_os.path.abspath(__file__))
_checkout = _os.path.dirname(_here)
if __name__ == "spixwalk" and not _os.path.isdir(_os.path.join(_here, "preprocess")) and all(
        _os.path.isfile(_os.path.join(_checkout, s, "__init__.py"))
        for s in ("preprocess", "train", "evaluate", "data_manifest")):
    # a checkout (not installed): spixwalk.preprocess is ./preprocess, as an install maps it; zarr's codec
    # entry point (spixwalk.preprocess.jpegcodec) then resolves here too. (The root's other folders become
    # reachable as spixwalk.<folder> as well; nothing imports them so, and the name test keeps the checkout's
    # own spixwalk/ folder, spixwalk.spixwalk, from extending itself again.)
    __path__.append(_checkout)
