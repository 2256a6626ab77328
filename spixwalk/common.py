"""Low-level helpers every stage may import (data_manifest included: none of these modules imports a stage),
by their homes:

spixwalk.files     atomic_path, write_atomic, check_out, replace_dir, fsync_dir
spixwalk.video     ffmpeg_exe, video_codec, Mp4Writer
spixwalk.options   stage_parser, show_defaults, DefaultsHelpFormatter, resolve_device (and COMMAND, set by
                   spixwalk.cli: set it there, spixwalk.options.COMMAND, not here)

This module re-exports them, so `from spixwalk.common import ...` keeps working.
"""
from .files import atomic_path, check_out, fsync_dir, replace_dir, write_atomic  # noqa: F401
from .options import DefaultsHelpFormatter, resolve_device, show_defaults, stage_parser  # noqa: F401
from .video import Mp4Writer, ffmpeg_exe, video_codec  # noqa: F401
