"""What scripts/campaign, scripts/reproduce and scripts/table share: a queue of dynamite_gpu training runs run side by
side and resumably, the matching of finished runs, and the statistics over seeds.

A job is one run: env, algorithm (with its flags, e.g. "dynamite --no-consistency"), seed, the folder its run
directory goes in, the frame budget and --set overrides. A job whose finished run (summary.json) exists is skipped;
an unfinished run directory with a checkpoint is resumed (dynamite_gpu --resume); one without a checkpoint is removed
and started again. SIGINT / SIGTERM to the queue stops the runs (each writes a checkpoint) so that the next call
resumes them.

On Slurm (submit_slurm) the jobs become one job array, a task per run; each task is this file run as

  python3 scripts/campaign_lib.py run-task TASKS.json INDEX --binary B --device D [--threads T]

which is the same queue with one job: a requeued task (preemption, `scontrol requeue`) resumes its run from the
checkpoint the run wrote on Slurm's SIGTERM, or skips it when it had finished.

Runs longer than a session survive in git as snapshots (scripts/snapshot): an unfinished run directory keeps its
config.toml and a snapshot.tar.gz of everything else (the checkpoint, the metrics); the checkpoint itself is never
committed (a gridworld ContraBAR checkpoint with its 100,000-episode replay is 215 MiB, which gzip makes ~10x smaller).
The queue restores a snapshot in place before it resumes the run, and deletes it once the run has finished.
"""
import argparse
import json
import math
import os
import pathlib
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tarfile
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# two-sided 95% t quantiles for n − 1 degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def ci95(values):
    """Half-width of the 95% confidence interval of the mean (t-distribution); NaN for fewer than two values."""
    n = len(values)
    if n < 2:
        return float("nan")
    return T95.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n)


def variant(algo):
    """The run's name as dynamite_gpu writes it: "dynamite --no-consistency" -> "dynamite-no-consistency"."""
    words = shlex.split(algo)
    return "-".join([words[0]] + [w.lstrip("-") for w in words[1:]])


class Job:
    def __init__(self, env, algo, seed, runs_dir, frames=0, sets=(), log_dir=None, config=None, needs=()):
        self.env, self.algo, self.seed = env, algo, int(seed)
        self.needs = list(needs)  # summary.json keys a finished run must have (Fig. 6: eval_carried)
        self.config = config  # a TOML merged over the env's config (--config), e.g. a preset
        self.runs_dir = pathlib.Path(runs_dir)
        self.frames = int(frames)
        self.sets = list(sets)
        self.log_dir = pathlib.Path(log_dir) if log_dir else self.runs_dir.parent

    def __str__(self):
        sets = f" [{' '.join(self.sets)}]" if self.sets else ""
        config = f" --config {self.config}" if self.config else ""
        return f"{self.env} | {self.algo} | seed {self.seed}{config}{sets}"

    def prefix(self):
        return f"{self.env}-{variant(self.algo)}-{self.seed}-"

    def log_path(self):
        """LOG_DIR/<env>-<algo>-<seed>[-K<sessions>].log (the number of sessions tells Fig. 8's runs apart)."""
        sessions = [s.partition("=")[2] for s in self.sets if s.startswith("env.sessions=")]
        tag = f"-K{sessions[-1]}" if sessions else ""
        return self.log_dir / f"{self.env}-{self.algo.replace(' ', '')}-{self.seed}{tag}.log"

    def command(self, binary, device, resume=None):
        if resume:
            cmd = [str(binary), "--resume", str(resume), "--device", device]
        else:
            cmd = [str(binary), "--env", self.env, "--algo", *shlex.split(self.algo), "--seed", str(self.seed),
                   "--device", device, "--set", f"run.out_dir={self.runs_dir}"]
            if self.config:
                cmd += ["--config", str(ROOT / self.config)]
            for s in self.sets:
                cmd += ["--set", s]
        if self.frames:
            cmd += ["--frames", str(self.frames)]
        return cmd


_configs = {}  # run directory -> its config, once read (a run's config.toml never changes after it is written)


def run_config(run_dir):
    """A run directory's resolved config (config.toml), as nested dicts; read once per directory, since finished()
    looks at every run directory for every job. A directory whose config is not written yet is not cached."""
    key = str(run_dir)
    if key not in _configs:
        try:
            _configs[key] = tomllib.loads((pathlib.Path(run_dir) / "config.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return {}
    return _configs[key]


def config_value(config, key):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def same_value(ours, theirs):
    """A --set value (text) against a config's value (TOML-typed)."""
    if theirs is None:
        return False
    if isinstance(theirs, bool):
        return ours.lower() == str(theirs).lower()
    if isinstance(theirs, (int, float)):
        try:
            return float(ours) == float(theirs)
        except ValueError:
            return False
    return ours.strip('"') == str(theirs)


# The config sections only some learners read: a --set key of one does not tell apart runs of the others (a campaign
# sets gridworld:contrabar.hidden=64 for every gridworld run; an rl2 run made without it is the same run).
LEARNER_SECTIONS = {"belief": ("dynamite", "varibad"), "contrabar": ("contrabar",), "rl2": ("rl2",)}


def reads_key(algo, key):
    """Whether a learner (the --algo word) reads this config key."""
    readers = LEARNER_SECTIONS.get(key.partition(".")[0])
    return readers is None or shlex.split(algo)[0] in readers


def matches(run_dir, job):
    """The run directory holds this job's run: its name, and every --set key of the job that its learner reads at
    the job's value."""
    if not run_dir.name.startswith(job.prefix()):
        return False
    config = run_config(run_dir)
    for s in job.sets:
        key, _, value = s.partition("=")
        if key == "run.out_dir" or not reads_key(job.algo, key):
            continue
        if not same_value(value, config_value(config, key)):
            return False
    return True


def finished(job, search=()):
    """The run directory of a finished run of this job (its folder first, then the folders in `search`), else None."""
    for runs in [job.runs_dir, *map(pathlib.Path, search)]:
        if not runs.exists():
            continue
        for d in sorted(runs.iterdir()):
            s = d / "summary.json"
            if s.exists() and matches(d, job):
                j = json.loads(s.read_text())
                if j.get("algo") == variant(job.algo) and j.get("seed") == job.seed and \
                        j.get("frames", 0) >= job.frames and all(k in j for k in job.needs):
                    return d
    return None


CHECKPOINT = "checkpoint.safetensors"
SNAPSHOT = "snapshot.tar.gz"  # an unfinished run's checkpoint and metrics, as committed (see the module's docstring)


def checkpoint_metadata(path):
    """A checkpoint's safetensors metadata (iteration, seconds, ...): the JSON header's __metadata__."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def snapshot_run(run_dir):
    """Writes run_dir/snapshot.tar.gz: every file of the run directory but config.toml (committed as it is) and the
    snapshot itself, atomically. The run may still be training: its checkpoint is replaced by rename (the archive
    reads whichever it opened), and a resumed run cuts its metrics back to the lengths its checkpoint recorded.
    Returns the checkpoint's metadata."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"{run_dir}: no {CHECKPOINT} to snapshot")
    meta = checkpoint_metadata(run_dir / CHECKPOINT)
    tmp = run_dir / (SNAPSHOT + ".tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for f in sorted(run_dir.iterdir()):
            if f.is_file() and f.name not in ("config.toml", SNAPSHOT, tmp.name):
                tar.add(f, arcname=f.name)
    os.replace(tmp, run_dir / SNAPSHOT)
    return meta


def restore_snapshot(run_dir):
    """Unpacks run_dir/snapshot.tar.gz in place when the run directory has no checkpoint (a fresh clone); returns
    whether it did. Only plain files with plain names are taken from the archive."""
    run_dir = pathlib.Path(run_dir)
    if (run_dir / CHECKPOINT).exists() or not (run_dir / SNAPSHOT).exists():
        return False
    with tarfile.open(run_dir / SNAPSHOT, "r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile() or pathlib.PurePath(m.name).name != m.name or m.name in ("", ".", ".."):
                raise ValueError(f"{run_dir / SNAPSHOT}: unexpected member {m.name!r} (plain files only)")
            tmp = run_dir / (m.name + ".tmp")
            with tar.extractfile(m) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, run_dir / m.name)
    return True


def resumable(run_dir):
    """An unfinished run directory the queue can continue: a checkpoint, or a snapshot of one."""
    return (run_dir / CHECKPOINT).exists() or (run_dir / SNAPSHOT).exists()


def unfinished_dirs(job):
    if not job.runs_dir.exists():
        return []
    return [d for d in sorted(job.runs_dir.iterdir())
            if d.is_dir() and matches(d, job) and not (d / "summary.json").exists()]


def scripted_references(binary, env, out, device="cpu"):
    """out/random.json, and out/oracle.json where the env has a scripted oracle (the ceiling): dynamite_gpu --policy
    P, 256 envs x 4 episodes."""
    out.mkdir(parents=True, exist_ok=True)
    for policy in ("random", "oracle"):
        path = out / f"{policy}.json"
        if path.exists():
            continue
        cmd = [str(binary), "--env", env, "--policy", policy, "--envs", "256", "--episodes", "4", "--device", device,
               "--out", str(path)]
        print("+", " ".join(cmd), flush=True)
        done = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 and policy == "random":
            sys.exit(f"{pathlib.Path(sys.argv[0]).name}: {' '.join(cmd)} failed: {done.stderr.strip()}")
        # no scripted oracle on this env (dynamite_gpu refuses --policy oracle): no ceiling line


class Stopped(Exception):
    """SIGINT / SIGTERM reached the queue; the runs were stopped with a checkpoint each."""

    def __init__(self, sig):
        super().__init__(f"stopped by signal {sig}")
        self.sig = sig


def run_queue(jobs, binary, workers=2, device="cpu", threads=1, commands_file=None, after_each=None,
              delete_finished_checkpoints=True, search=()):
    """Runs the jobs that have no finished run, `workers` at a time (each with OMP_NUM_THREADS=threads). Returns the
    number of failed runs. after_each(job, returncode) is called as each ends; every command line launched is
    appended to commands_file. On SIGINT / SIGTERM the running runs get SIGTERM (they checkpoint and exit) and Stopped
    is raised."""
    binary = pathlib.Path(binary)
    todo = [j for j in jobs if not finished(j, search)]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished, {len(todo)} to run with {workers} workers",
          flush=True)
    for j in todo:
        print(f"  {j}")
    if not todo:
        return 0
    if not binary.exists():
        sys.exit(f"{pathlib.Path(sys.argv[0]).name}: {binary} not found; build first (cmake --workflow --preset "
                 "release)")
    stop = {"sig": 0}

    def on_signal(sig, _frame):
        stop["sig"] = sig

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    running = []  # (process, job, log file, start time)
    queue = list(todo)
    failures = 0
    try:
        while (queue or running) and not stop["sig"]:
            while queue and len(running) < workers and not stop["sig"]:
                job = queue.pop(0)
                # an unfinished run with a checkpoint (a stopped session) continues from it; one without starts again
                resume = None
                for d in unfinished_dirs(job):
                    if resume is None and resumable(d):
                        resume = d
                        if restore_snapshot(d):
                            print(f"restored {d} from its {SNAPSHOT}", flush=True)
                        continue
                    print(f"removing the unfinished run {d} (no checkpoint)", flush=True)
                    shutil.rmtree(d)
                job.runs_dir.mkdir(parents=True, exist_ok=True)
                job.log_dir.mkdir(parents=True, exist_ok=True)
                if resume:
                    print(f"resuming {resume} from its checkpoint", flush=True)
                cmd = job.command(binary, device, resume)
                line = " ".join(shlex.quote(c) for c in cmd)
                print("+", line, flush=True)
                if commands_file:
                    with open(commands_file, "a") as f:
                        f.write(f"OMP_NUM_THREADS={threads} {line}\n")
                log = open(job.log_path(), "a" if resume else "w")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, OMP_NUM_THREADS=str(threads)), start_new_session=True)
                running.append((proc, job, log, time.time()))
            time.sleep(1)
            for item in list(running):
                proc, job, log, t0 = item
                if proc.poll() is None:
                    continue
                running.remove(item)
                log.close()
                # 130 / 143: the run was stopped by SIGINT / SIGTERM (a scheduler's preemption or requeue) after
                # writing a checkpoint; the next call resumes it
                stopped = proc.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM)
                status = "done" if proc.returncode == 0 else \
                    f"stopped with a checkpoint (exit {proc.returncode})" if stopped else \
                    f"FAILED (exit {proc.returncode}; see {log.name})"
                if proc.returncode == 0 and delete_finished_checkpoints:
                    # a finished run's checkpoint (a physics run's is ~0.5 GiB) is not a result: its metrics are
                    done_dir = finished(job)
                    if done_dir and (done_dir / CHECKPOINT).exists():
                        (done_dir / CHECKPOINT).unlink()
                done_dir = finished(job) if proc.returncode == 0 else None
                if done_dir and (done_dir / SNAPSHOT).exists():
                    (done_dir / SNAPSHOT).unlink()  # finished: its metrics and summary are the result
                failures += proc.returncode != 0 and not stopped
                if stopped:
                    stop["sig"] = stop["sig"] or proc.returncode - 128
                print(f"{job}: {status} in {time.time() - t0:.0f} s", flush=True)
                if after_each:
                    after_each(job, proc.returncode)
        if stop["sig"]:
            for proc, job, log, _ in running:
                proc.send_signal(signal.SIGTERM)  # the run finishes its iteration and writes a checkpoint
            for proc, job, log, _ in running:
                proc.wait()
                log.close()
                print(f"{job}: stopped with a checkpoint (exit {proc.returncode})", flush=True)
            raise Stopped(stop["sig"])
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return failures


def load_run(run_dir):
    """A finished run: its summary and its evaluation curve [(frames, eval return)]."""
    run_dir = pathlib.Path(run_dir)
    s = json.loads((run_dir / "summary.json").read_text())
    curve = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        with open(metrics) as f:
            for line in f:
                m = json.loads(line)
                if m.get("eval_return") is not None:
                    curve.append((m["frames"], m["eval_return"]))
    return {"summary": s, "curve": curve, "dir": run_dir}


def job_spec(job):
    """A job as JSON-ready data (a Slurm task's description)."""
    return {"env": job.env, "algo": job.algo, "seed": job.seed, "runs_dir": str(job.runs_dir), "frames": job.frames,
            "sets": job.sets, "log_dir": str(job.log_dir), "config": job.config, "needs": job.needs}


def argv_without(argv, option):
    """argv without `option` and its value (either "--opt v" or "--opt=v")."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == option:
            skip = True
            continue
        if not a.startswith(option + "="):
            out.append(a)
    return out


def submit_slurm(jobs, binary, device, threads, slurm_dir, sbatch_args=(), name="dynamite", then=None,
                 delete_finished_checkpoints=True, commands_file=None):
    """Submits the jobs without a finished run as one Slurm job array (a task per run, requeueable) and, with
    `then` (a command line), a job that runs it once every task has ended (afterany). Returns the array's job id,
    or None when every run had finished."""
    todo = [j for j in jobs if not finished(j)]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished, {len(todo)} to submit to Slurm", flush=True)
    slurm_dir = pathlib.Path(slurm_dir)
    slurm_dir.mkdir(parents=True, exist_ok=True)
    if not todo:
        return None
    tasks = slurm_dir / "tasks.json"
    tasks.write_text(json.dumps([job_spec(j) for j in todo], indent=1) + "\n")
    extra = [] if delete_finished_checkpoints else ["--keep-checkpoints"]
    if commands_file:
        extra += ["--commands", str(pathlib.Path(commands_file).resolve())]
    task_cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "run-task", str(tasks)]
    task_opts = ["--binary", str(pathlib.Path(binary).resolve()), "--device", device, "--threads", str(threads), *extra]
    task_line = " ".join(map(shlex.quote, task_cmd)) + ' "$SLURM_ARRAY_TASK_ID" ' + " ".join(map(shlex.quote, task_opts))
    script = slurm_dir / "array.sh"
    script.write_text("#!/bin/bash\n"
                      f"#SBATCH --job-name={name}\n"
                      f"#SBATCH --array=0-{len(todo) - 1}\n"
                      f"#SBATCH --cpus-per-task={threads}\n"
                      "#SBATCH --requeue\n"
                      "#SBATCH --open-mode=append\n"
                      f"#SBATCH --output={slurm_dir}/task-%A_%a.out\n"
                      f"cd {shlex.quote(str(ROOT))}\n"
                      "exec " + task_line + "\n")
    out = subprocess.run(["sbatch", "--parsable", *sbatch_args, str(script)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{pathlib.Path(sys.argv[0]).name}: sbatch {script} failed: {out.stderr.strip()}")
    array_id = out.stdout.strip().split(";")[0]
    print(f"submitted Slurm job array {array_id}: {len(todo)} tasks ({script})", flush=True)
    if then:
        dep = subprocess.run(["sbatch", "--parsable", *sbatch_args, f"--dependency=afterany:{array_id}",
                              f"--job-name={name}-table", f"--output={slurm_dir}/table-%j.out", f"--chdir={ROOT}",
                              "--wrap", then], capture_output=True, text=True)
        if dep.returncode != 0:
            sys.exit(f"{pathlib.Path(sys.argv[0]).name}: sbatch of the table job failed: {dep.stderr.strip()}")
        print(f"submitted Slurm job {dep.stdout.strip()}: tables once the array has ended", flush=True)
    return array_id


def run_task(argv):
    """One Slurm array task: the queue with the task's one job."""
    p = argparse.ArgumentParser(prog="campaign_lib.py run-task")
    p.add_argument("tasks")
    p.add_argument("index", type=int)
    p.add_argument("--binary", required=True)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--commands", help="append the launched command line here")
    args = p.parse_args(argv)
    specs = json.loads(pathlib.Path(args.tasks).read_text())
    if not 0 <= args.index < len(specs):
        sys.exit(f"run-task: index {args.index}: allowed 0..{len(specs) - 1} ({args.tasks})")
    job = Job(**specs[args.index])
    try:
        failures = run_queue([job], args.binary, workers=1, device=args.device, threads=args.threads,
                             commands_file=args.commands,
                             delete_finished_checkpoints=not args.keep_checkpoints)
    except Stopped as e:
        sys.exit(128 + e.sig)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "run-task":
        run_task(sys.argv[2:])
    else:
        sys.exit("usage: python3 scripts/campaign_lib.py run-task TASKS.json INDEX --binary B [--device D] "
                 "(a Slurm array task; scripts/reproduce and scripts/campaign import the rest)")
