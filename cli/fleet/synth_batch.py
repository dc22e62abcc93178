"""Every stack of a fleet synthesized in one CDK app run: jsii, CDK and cdk-nag start once, not once per model.

Each model's deploy reaches its synth step at its own time (after its build and push). `BatchSynth.template`
holds it there until every model of the run has either arrived or left (failed earlier); the last to come runs
one app with all the stacks whose template is not cached yet, and each waiting model takes its own. If the app
fails (one model's stack refused by cdk-nag, say), each is synthesized alone so the failure stays with its model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..deploy_flow import Say, keep_template, synthesized_template, template_cache


@dataclass
class _Request:
    spec: Any
    image_uri: str
    stage: str
    target: str
    say: Say
    cached: Path
    result: Path | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class BatchSynth:
    """A rendezvous of `expected` models; `arrive` through `template`, or `leave` when a model stops early."""

    def __init__(self, expected: int, say: Say) -> None:
        self._lock = threading.Lock()
        self._outstanding = set(range(expected))
        self._pending: list[_Request] = []
        self.say = say
        self.runs = 0  # CDK app runs (the test checks one for the whole fleet)
        self.seconds = 0.0

    def leave(self, index: int) -> None:
        """Model `index` will not reach its synth step (it failed, or it is done)."""
        self._check_in(index)

    def template(self, index: int, spec: Any, image_uri: str, stage: str, target: str, say: Say) -> Path:
        cached = template_cache(spec, image_uri, stage, target)
        if cached.is_file():
            self._check_in(index)
            say("- template: unchanged inputs, synthesized before")
            return cached
        request = _Request(spec, image_uri, stage, target, say, cached)
        with self._lock:
            self._pending.append(request)
        say("- template: waiting for the fleet's one synth run")
        self._check_in(index)
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _check_in(self, index: int) -> None:
        with self._lock:
            if index not in self._outstanding:
                return
            self._outstanding.discard(index)
            if self._outstanding or not self._pending:
                return
            batch, self._pending = self._pending, []
        self._run(batch)

    def _run(self, batch: list[_Request]) -> None:
        from mlfn.infra.synth import synth_models

        from ..packaging.base import mlfn_home

        started = time.perf_counter()
        self.say(f"[fleet] - synthesizing {len(batch)} stack(s) in one CDK app run (CDK, cdk-nag) ...")
        self.runs += 1
        try:
            paths = synth_models([{"model_dir": r.spec.directory, "image_uri": r.image_uri, "stage": r.stage,
                                   "target": r.target} for r in batch], outdir=mlfn_home() / "synth" / "fleet.out")
            for request, path in zip(batch, paths, strict=True):
                keep_template(request.cached, path)
                request.result = request.cached
        except Exception as exc:  # one stack refused: find out which, each alone
            self.say(f"[fleet]   the shared synth failed ({str(exc).splitlines()[0][:200]}); synthesizing each "
                     "stack alone")
            for request in batch:
                try:
                    self.runs += 1
                    request.result = synthesized_template(request.spec, request.image_uri, request.stage,
                                                          request.target, request.say)
                except BaseException as each:
                    request.error = each
        finally:
            self.seconds = time.perf_counter() - started
            self.say(f"[fleet]   synthesized in {self.seconds:.1f}s")
            for request in batch:
                if request.result is None and request.error is None:
                    request.error = RuntimeError("synth did not finish")
                request.done.set()
