"""The `spixwalk` console command over the stage packages preprocess/, train/, evaluate/, data_manifest/.

`pip install` puts those packages under this one (spixwalk.train, ...), never as top-level `evaluate` or
`train`, so they cannot collide with Hugging Face `evaluate` or any other distribution.
"""
