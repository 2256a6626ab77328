"""The test side of spixwalk.faults: start a command with fault points, wait until one is reached."""
import os
import select
import subprocess
import sys

from spixwalk.faults import ENV

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUARD_S = 300  # only a hang guard: a healthy run reaches its point or exits long before


class Points:
    def __init__(self, tmp_path):
        self.fifo = str(tmp_path / "fault.fifo")
        os.mkfifo(self.fifo)
        self.fd = os.open(self.fifo, os.O_RDWR)  # read end that never blocks the writer's open nor hits EOF
        self.buf = b""
        self.life_r = None  # set by start(); commands started otherwise are watched by the hang guard only

    def start(self, args, points, mode="stop", env_extra=None, **kw):
        """Popen of `python -m <args>` in its own session (its own process group; in the group of
        `process_group=PGID` where given), fault points armed, `env_extra` added to the environment."""
        env = {**os.environ, **(env_extra or {})}
        if points:
            env[ENV] = f"{mode}:{','.join(points)}:{self.fifo}"
        self.life_r, life_w = os.pipe()  # EOF once the command's main process is gone
        proc = subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=REPO, env=env, pass_fds=(life_w,),
                                start_new_session="process_group" not in kw, **kw)
        os.close(life_w)
        return proc

    def reached(self) -> tuple[str, int] | None:
        """(point, pid) of the next point reached, or None if the command exited first."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd] + ([self.life_r] if self.life_r is not None else []), [], [],
                                        GUARD_S)
            assert ready, f"no fault point reached and no exit in {GUARD_S} s"
            if self.fd in ready:
                self.buf += os.read(self.fd, 4096)
            elif not os.read(self.life_r, 1):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        name, pid = line.decode().split()
        return name, int(pid)
