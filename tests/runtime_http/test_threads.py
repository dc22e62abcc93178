"""Where service calls run: slow ones on the model thread pool (the event loop keeps answering), quick ones inline."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlfn.runtime.app import create_app
from mlfn.runtime.service import InferenceService, Reply

from .conftest import app_in_thread


class Recording(InferenceService):
    """The real service, recording which thread ran each call and optionally taking a while (injected)."""

    delay_s = 0.0
    threads: list[str]

    def invocations(self, body: bytes, headers: Mapping[str, str]) -> Reply:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay_s)
        return super().invocations(body, headers)


def recording(model_dir: Path, delay_s: float) -> Recording:
    loaded = InferenceService.from_dir(model_dir)
    service = Recording(loaded.spec, loaded.model)
    service.delay_s, service.threads = delay_s, []
    return service


BODY = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


def test_slow_calls_run_on_the_pool_and_the_loop_stays_responsive(models: dict[str, Path]) -> None:
    service = recording(models["doubler"], 0.3)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-model")
    with app_in_thread(create_app(service, executor=pool)) as client:
        for _ in range(2):
            assert client.post("/invocations", json=BODY).status_code == 200
        answers: list[int] = []
        slow = threading.Thread(target=lambda: answers.append(client.post("/invocations", json=BODY).status_code))
        slow.start()
        while len(service.threads) < 3:
            time.sleep(0.005)
        pings = [client.get("/ping").status_code for _ in range(3)]  # answered while the model call is running
        still_running = slow.is_alive()
        slow.join(10)
    pool.shutdown()
    assert all(name.startswith("test-model") for name in service.threads)
    assert pings == [200, 200, 200] and still_running and answers == [200]


def test_quick_calls_run_inline_once_known_to_be_quick(models: dict[str, Path]) -> None:
    service = recording(models["doubler"], 0.0)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-model")
    with app_in_thread(create_app(service, executor=pool)) as client:
        for _ in range(30):
            assert client.post("/invocations", json=BODY).status_code == 200
    pool.shutdown()
    assert service.threads[0].startswith("test-model")  # nothing known about the model yet
    assert not any(name.startswith("test-model") for name in service.threads[-10:])
