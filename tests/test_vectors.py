from pathlib import Path

import pytest

from tests.support.vectors import require_dir


def test_present_folder_is_returned(tmp_path: Path) -> None:
    assert require_dir(tmp_path, env={"CI": "true"}) == tmp_path


def test_absent_folder_skips_outside_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="not found"):
        require_dir(tmp_path / "missing", env={})


def test_absent_folder_fails_in_ci(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_dir(tmp_path / "missing", env={"CI": "true"})
