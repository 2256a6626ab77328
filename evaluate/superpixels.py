"""Superpixel maps scored against DAVIS object masks (thesis tables 4.1-4.3)."""


def add_arguments(p):
    pass


def main(args) -> int:
    raise NotImplementedError
