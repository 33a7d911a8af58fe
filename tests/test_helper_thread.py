"""``HelperThread``: no thread until the first submit, then one named thread for all work."""

from __future__ import annotations

import threading

from signer.helper_thread import HelperThread


def test_one_named_thread_started_on_first_use() -> None:
    before = {t.name for t in threading.enumerate()}
    helper = HelperThread("signer-test-helper")
    assert not any(n.startswith("signer-test-helper") for n in before)
    assert {t.name for t in threading.enumerate()} == before  # none yet

    def name(x: int) -> tuple[str, int]:
        return threading.current_thread().name, x * 2

    results = [helper.submit(name, i).result(timeout=10) for i in range(5)]
    assert [x for _, x in results] == [0, 2, 4, 6, 8]
    names = {n for n, _ in results}
    assert len(names) == 1 and names.pop().startswith("signer-test-helper")
    assert threading.current_thread().name not in {n for n, _ in results}
