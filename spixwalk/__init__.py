"""The `spixwalk` console command over the stage packages preprocess/, train/, evaluate/, data_manifest/.

`pip install` puts those packages under this one (spixwalk.train, ...), never as top-level `evaluate` or
`train`, so they cannot collide with Hugging Face `evaluate` or any other distribution.
"""
import os as _os

_here = _os.path.dirname(_os.path.abspath(__file__))
_checkout = _os.path.dirname(_here)
if not _os.path.isdir(_os.path.join(_here, "preprocess")) and \
        _os.path.isfile(_os.path.join(_checkout, "preprocess", "__init__.py")):
    # a checkout (not installed): spixwalk.preprocess is ./preprocess, as an install maps it; zarr's codec
    # entry point (spixwalk.preprocess.jpegcodec) then resolves here too
    __path__.append(_checkout)
