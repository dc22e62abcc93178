"""A canary rollout measured the way a user runs it: `mlfn deploy --local` (a subprocess with its own MLFN_HOME and
emulator) of the iris model with a canary `[rollout]`, then a redeploy of a bad version (answers shifted, a hook
failing a third of inputs) while signed HTTPS requests (botocore SigV4 + httpx) hit the Function URL one after
another. Reports the time from the first bad answer to the rollback (the CodeDeploy deployment's completeTime, when
the alias went back), the requests that reached the bad version, and the lost ones (old-version requests that
failed, or connection errors: must be 0).

    nice .venv/bin/python -m bench.rollout_canary --through-deploy [--scale 0.05] [--percent 30] [--interval 5]

`SignedLoad` and `shift_iris` are shared with tests/deploy (harness.py imports them).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IRIS = ROOT / "functions" / "iris"
# row j's first feature in hundredths is 450 + j: the bad hook (bench.rollout_canary.BAD_HOOK) fails j % 3 == 1
POOL = [[(450 + j) / 100, 3.0 + (j % 5) * 0.2, 1.5 + (j % 7) * 0.7, 0.2 + (j % 4) * 0.6] for j in range(30)]


class SignedLoad:
    """Signed HTTPS POSTs (botocore SigV4, service `lambda`, httpx) to a Function URL, one after another, until
    `stop` is set or `max_requests` were sent. `rows(i)` gives request i's instances; each answer is kept as
    (wall time, request index, status, predictions or error text); status 0 is a connection error."""

    def __init__(self, url: str, model: str, env: dict[str, str], ca: str, rows: Any, *,
                 max_requests: int = 3000) -> None:
        from botocore.credentials import Credentials

        self.url = f"{url.rstrip('/')}/v1/models/{model}:predict"
        self.rows, self.max_requests = rows, max_requests
        self.credentials = Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        self.region = env.get("AWS_REGION", "us-east-1")
        self.tls = ssl.create_default_context(cafile=ca)
        self.answers: list[tuple[float, int, int, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        import httpx
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        with httpx.Client(verify=self.tls, timeout=30) as client:
            for i in range(self.max_requests):
                if self.stop.is_set():
                    return
                body = json.dumps({"instances": self.rows(i)}).encode()
                request = AWSRequest("POST", self.url, data=body, headers={"content-type": "application/json"})
                SigV4Auth(self.credentials, "lambda", self.region).add_auth(request)
                try:
                    answer = client.post(self.url, content=body, headers=dict(request.headers.items()))
                    got = answer.json().get("predictions") if answer.status_code == 200 else answer.text
                    self.answers.append((time.time(), i, answer.status_code, got))
                except httpx.HTTPError as exc:
                    self.answers.append((time.time(), i, 0, repr(exc)))

    def __enter__(self) -> SignedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def shift_iris(model_dir: Path, delta: float = 0.8) -> None:
    """Change the iris model's answers: move its scaler's offsets (a new model, same signature)."""
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"))
    scaler = next(n for n in model.graph.node if n.op_type == "Scaler")
    offset = next(a for a in scaler.attribute if a.name == "offset")
    values = [v + delta for v in offset.floats]
    del offset.floats[:]
    offset.floats.extend(values)
    onnx.save(model, str(model_dir / "model.onnx"))


def _mlfn(home: Path, scale: float) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(MLFN_HOME=str(home), MLFN_ALARM_TIME_SCALE=str(scale), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "mlfn.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=900, stdin=subprocess.DEVNULL, cwd=home.parent)
        if check and done.returncode != 0:
            raise RuntimeError(f"mlfn {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done
    return run


def measure(*, scale: float, percent: int, interval: int, bad_hook: str) -> dict[str, Any]:
    """One canary of a bad version through `mlfn deploy --local`, under load; the figures for the note."""
    import boto3

    from mlfn.cli.local.control_plane import client_environment
    from mlfn.cli.rollout import latest_deployment

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        mlfn = _mlfn(home, scale)
        info = json.loads(mlfn("local", "start", "--json").stdout)
        try:
            env = client_environment(info["control_plane"])
            model = Path(tmp) / "canarybench"
            shutil.copytree(IRIS, model, ignore=shutil.ignore_patterns("__pycache__"))
            toml = (model / "mlfn.toml").read_text().replace('name = "iris"', 'name = "canarybench"')
            rollout = (f'[rollout]\nstrategy = "canary"\npercent = {percent}\ninterval_minutes = {interval}\n'
                       "error_count = 3\n")
            (model / "mlfn.toml").write_text(toml + "\n" + rollout)
            first = json.loads(mlfn("deploy", str(model), "--local", "--json").stdout)
            warm = SignedLoad(first["url"], "canarybench", env, info["ca"], lambda i: [POOL[i]],
                              max_requests=len(POOL))
            warm.run()  # each row's answer from the old version
            old = {i: got for _, i, status, got in warm.answers if status == 200}
            shift_iris(model)
            (model / "hooks.py").write_text(bad_hook)
            toml = (model / "mlfn.toml").read_text()
            (model / "mlfn.toml").write_text(toml.replace('target = "lambda"\n',
                                                          'target = "lambda"\nhooks = "hooks.py"\n'))
            with SignedLoad(first["url"], "canarybench", env, info["ca"], lambda i: [POOL[i % len(POOL)]],
                            max_requests=100_000) as load:
                started = time.time()
                redeploy = mlfn("deploy", str(model), "--local", check=False)
                ended = time.time()
                time.sleep(1.0)
            answers = list(load.answers)
            kwargs = {"endpoint_url": info["control_plane"], "region_name": env["AWS_REGION"],
                      "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
                      "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
            deployment = latest_deployment(boto3.client("codedeploy", **kwargs), first["outputs"]) or {}
        finally:
            mlfn("local", "stop", check=False)
    by_old = [a for a in answers if a[2] == 200 and a[3] == old.get(a[1] % len(POOL))]
    by_new_ok = [a for a in answers if a[2] == 200 and a[3] != old.get(a[1] % len(POOL))]
    by_new_5xx = [a for a in answers if a[2] >= 500 and round(POOL[a[1] % len(POOL)][0] * 100) % 3 == 1]
    lost = len(answers) - len(by_old) - len(by_new_ok) - len(by_new_5xx)
    rollback_at = deployment["completeTime"].timestamp() if deployment.get("completeTime") else None
    first_bad = min((a[0] for a in by_new_5xx), default=None)
    error = (deployment.get("errorInformation") or {}).get("message", "")
    return {"mode": "mlfn deploy --local", "deploy_exit_code": redeploy.returncode,
            "deployment_status": deployment.get("status"), "error": error, "scale": scale,
            "canary_percent": percent, "interval_minutes": interval, "requests": len(answers),
            "to_bad_version": len(by_new_ok) + len(by_new_5xx), "bad_version_5xx": len(by_new_5xx),
            "to_bad_version_before_rollback": len([a for a in by_new_ok + by_new_5xx
                                                   if rollback_at is None or a[0] <= rollback_at]),
            "first_bad_to_rollback_s": (round(rollback_at - first_bad, 3) if rollback_at and first_bad else None),
            # the data plane reads the alias's weights every second (cli/local/reconciler.py): its lag
            "last_bad_after_rollback_s": (round(max(a[0] for a in by_new_ok + by_new_5xx) - rollback_at, 3)
                                          if rollback_at and by_new_ok + by_new_5xx else None),
            "redeploy_s": round(ended - started, 1), "lost": lost}
