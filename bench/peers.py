#!/usr/bin/env python3
"""Training throughput of CPU peers on the same MLP training step as tabnas.

For each architecture (input-hidden...-output, e.g. 54-512-512-512-7) it measures
samples per second of full training steps (forward, backward, Adam update, softmax
cross-entropy; logistic loss when the output width is 1) at a fixed batch size in
float32, for:

  pytorch   torch.nn MLP, torch.set_num_threads(THREADS), once with
            OMP_WAIT_POLICY=PASSIVE (its OpenMP threads otherwise fight the BLAS
            threads) and once with the environment's default policy;
  sklearn   MLPClassifier.partial_fit (solver adam) on float32 input, one step per
            call, BLAS limited to THREADS threads.

Each measurement runs in its own child process so that thread settings read at
library start-up take effect. One JSON object per line goes to stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import time


def parse_arch(s):
    widths = [int(x) for x in s.split("-")]
    if len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"bad architecture {s!r}: want IN-H1-...-OUT")
    return widths


def timed(step, warmup_s, measure_s, repeats):
    """Best steps/s over repeats, each at least measure_s long, after warmup_s of steps."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < warmup_s:
        step()
    best, total_steps = 0.0, 0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= measure_s:
                break
        best = max(best, n / dt)
        total_steps += n
    return best, total_steps


def data(widths, batch, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, widths[0]), dtype=np.float32)
    classes = max(widths[-1], 2)
    y = rng.integers(0, classes, size=batch)
    y[:classes] = np.arange(classes)  # every class present, as partial_fit's first call needs
    return x, y, classes


def run_torch(args, widths):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x_np, y_np, classes = data(widths, args.batch)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(x_np)
    if widths[-1] == 1:
        y = torch.from_numpy(y_np.astype("float32")).reshape(-1, 1)
        loss_fn = torch.nn.BCEWithLogitsLoss()
    else:
        y = torch.from_numpy(y_np)
        loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    rate, steps = timed(step, args.warmup, args.seconds, args.repeats)
    return {
        "version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "steps_per_s": rate,
        "steps": steps,
    }


def run_sklearn(args, widths):
    import warnings

    import numpy as np
    import sklearn
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_info, threadpool_limits

    x, y, classes = data(widths, args.batch)
    if widths[-1] != 1 and widths[-1] != classes:
        raise SystemExit(f"sklearn: output width {widths[-1]} must equal the class count")
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(widths[1:-1]),
        solver="adam",
        batch_size=args.batch,
        learning_rate_init=1e-3,
        shuffle=False,
        random_state=0,
    )
    labels = np.arange(classes)
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(x, y, classes=labels)
        if clf.coefs_[0].dtype != np.float32:
            raise SystemExit(f"sklearn: weights are {clf.coefs_[0].dtype}, not float32")

        def step():
            clf.partial_fit(x, y)

        rate, steps = timed(step, args.warmup, args.seconds, args.repeats)
        blas = [
            {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for p in threadpool_info()
            if p.get("user_api") == "blas"
        ]
    return {"version": sklearn.__version__, "blas": blas, "steps_per_s": rate, "steps": steps}


def child(args):
    widths = parse_arch(args.child_arch)
    runner = {"pytorch": run_torch, "sklearn": run_sklearn}[args.child]
    res = runner(args, widths)
    out = {
        "peer": args.child,
        "setting": args.setting,
        "arch": args.child_arch,
        "batch": args.batch,
        "threads": args.threads,
        "dtype": "float32",
        "samples_per_s": round(res.pop("steps_per_s") * args.batch, 1),
    }
    out.update(res)
    for k in ("OMP_WAIT_POLICY", "OPENBLAS_CORETYPE"):
        out[k] = os.environ.get(k)
    print(json.dumps(out), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("arch", nargs="*", default=["54-512-512-512-7", "180-48-160-32-144-10"])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of untimed steps first")
    ap.add_argument("--peers", default="pytorch,sklearn", help="comma-separated subset")
    ap.add_argument("--child", choices=["pytorch", "sklearn"], help=argparse.SUPPRESS)
    ap.add_argument("--child-arch", help=argparse.SUPPRESS)
    ap.add_argument("--setting", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    for a in args.arch:
        parse_arch(a)

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    runs = []
    for p in peers:
        if p == "pytorch":
            runs.append(("pytorch", "OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}))
            runs.append(("pytorch", "default", {"OMP_WAIT_POLICY": None}))
        elif p == "sklearn":
            runs.append(("sklearn", "default", {}))
        else:
            ap.error(f"unknown peer {p!r}")

    failed = False
    for a in args.arch:
        for peer, setting, env_change in runs:
            env = dict(os.environ)
            for k, v in env_change.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = v
            # Thread counts fixed before the libraries start their pools.
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env[k] = str(args.threads)
            cmd = [
                sys.executable, os.path.abspath(__file__),
                "--child", peer, "--child-arch", a, "--setting", setting,
                "--batch", str(args.batch), "--threads", str(args.threads),
                "--seconds", str(args.seconds), "--repeats", str(args.repeats),
                "--warmup", str(args.warmup),
            ]
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
            if r.returncode != 0:
                failed = True
                print(json.dumps({"peer": peer, "setting": setting, "arch": a, "error": f"exit {r.returncode}"}), flush=True)
                continue
            sys.stdout.write(r.stdout)
            sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
