"""``scf-relay package --pipelines FILE``: the file is checked before any build and shipped as the package's
``relay_core/pipelines.toml`` (so the functions need no RELAY_PIPELINES)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from relay_core import pipelines
from relay_core.pipelines import load_pipelines
from scf_relay.cli.app import app
from scf_relay.function_zips import PackagingError, check_pipelines, install_pipelines

PACKAGED = Path(pipelines.__file__).parent / "pipelines.toml"


def test_a_checked_file_replaces_the_packaged_one(tmp_path):
    mine = tmp_path / "mine.toml"
    mine.write_text(PACKAGED.read_text().split("[pipelines.video_tryon]")[0])
    check_pipelines(mine)
    tree = tmp_path / "consumer"
    install_pipelines(tree, mine)
    shipped = tree / "relay_core" / "pipelines.toml"
    assert set(load_pipelines(shipped).pipelines) == {"model_pose12", "promo_poster"}


def test_a_broken_file_stops_the_build_before_it_starts(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[pipelines.x]\nvendor = 'nobody'\n")
    with pytest.raises(PackagingError, match="--pipelines"):
        check_pipelines(broken)
    result = CliRunner().invoke(app, ["package", "--pipelines", str(broken), "--out", str(tmp_path / "d"), "--json"])
    assert result.exit_code == 2 and "--pipelines" in result.output
    assert not (tmp_path / "d").exists()
